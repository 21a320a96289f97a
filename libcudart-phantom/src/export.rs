//! The FFI edge shared by every export: panic containment, "not supported" stubs, and the per-thread last
//! error that `cudaGetLastError` / `cudaPeekAtLastError` report.

use phantom_cuda_sys::cudaError;
use std::cell::Cell;
use std::os::raw::{c_char, c_uint, c_void};

/// Result of a typed implementation; `Err` carries the CUDA error code returned to the application.
pub type CudaResult<T> = Result<T, cudaError>;

thread_local! {
    static LAST_ERROR: Cell<cudaError> = const { Cell::new(cudaError::cudaSuccess) };
    static PER_THREAD_STREAM: Cell<bool> = const { Cell::new(false) };
}

/// What an export returns, and how that return value is produced when the call is unsupported or panics.
pub trait FfiReturn: Sized {
    fn unsupported(name: &'static str) -> Self;
    fn panicked() -> Self;
    /// Called with every value export `name` returns (records CUDA errors as the thread's last error).
    fn observe(&self, _name: &'static str) {}
}

impl FfiReturn for cudaError {
    fn unsupported(name: &'static str) -> Self {
        crate::log::unsupported_once(name);
        cudaError::cudaErrorNotSupported
    }
    fn panicked() -> Self {
        cudaError::cudaErrorUnknown
    }
    fn observe(&self, name: &'static str) {
        // cudaErrorNotReady is a status, not an error: CUDA does not record it as the last error. The two
        // calls that report the last error must not record what they report.
        if *self != cudaError::cudaSuccess
            && *self != cudaError::cudaErrorNotReady
            && name != "cudaGetLastError"
            && name != "cudaPeekAtLastError"
        {
            set_last_error(*self);
        }
    }
}

macro_rules! zero_return {
    ($($t:ty => $zero:expr),* $(,)?) => {$(
        impl FfiReturn for $t {
            fn unsupported(name: &'static str) -> Self {
                crate::log::unsupported_once(name);
                $zero
            }
            fn panicked() -> Self {
                $zero
            }
        }
    )*};
}
zero_return! {
    () => (),
    *const c_char => std::ptr::null(),
    *mut *mut c_void => std::ptr::null_mut(),
    c_uint => 0,
    c_char => 0,
    phantom_cuda_sys::cudaChannelFormatDesc => Default::default(),
}

/// Runs an export's body; a panic becomes a logged internal error and the type's failure value.
pub fn guard<R: FfiReturn>(name: &'static str, f: impl FnOnce() -> R) -> R {
    // The call's span on the host API track (docs/trace.md); with tracing off, one relaxed load.
    let _traced = crate::trace::ApiCall::enter(name);
    let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            phantom_log::internal_error(name, &*payload);
            R::panicked()
        }
    };
    r.observe(name);
    r
}

/// Converts a typed result to the status returned on the wire.
pub fn status(r: CudaResult<()>) -> cudaError {
    match r {
        Ok(()) => cudaError::cudaSuccess,
        Err(e) => e,
    }
}

pub fn set_last_error(e: cudaError) {
    LAST_ERROR.with(|c| c.set(e));
}

/// `cudaGetLastError`: returns and resets the calling thread's last error.
pub fn take_last_error() -> cudaError {
    LAST_ERROR.with(|c| c.replace(cudaError::cudaSuccess))
}

/// `cudaPeekAtLastError`: returns the calling thread's last error without resetting it.
pub fn peek_last_error() -> cudaError {
    LAST_ERROR.with(|c| c.get())
}

/// Runs `f` with the legacy default stream (handle 0) meaning the per-thread default stream, as the
/// `_ptsz` / `_ptds` variants of the API require.
pub fn per_thread_default_stream<R>(f: impl FnOnce() -> R) -> R {
    let previous = PER_THREAD_STREAM.with(|c| c.replace(true));
    let r = f();
    PER_THREAD_STREAM.with(|c| c.set(previous));
    r
}

/// Whether stream handle 0 currently means the per-thread default stream.
pub fn default_stream_is_per_thread() -> bool {
    PER_THREAD_STREAM.with(|c| c.get())
}
