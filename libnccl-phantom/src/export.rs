//! The FFI edge shared by every export: panic containment, "not supported" stubs, and the per-thread last error
//! message that `ncclGetLastError` reports.

use phantom_cuda_sys::nccl::{ncclResult_t, ncclTeam_t};
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, CStr};

/// Result of a typed implementation; `Err` carries the NCCL status returned to the application.
pub type NcclResult<T> = Result<T, ncclResult_t>;

/// Size of the per-thread last-error buffer, as in NCCL (`ncclLastError[1024]`); longer messages are truncated.
const LAST_ERROR_BYTES: usize = 1024;

thread_local! {
    /// NUL-terminated. A fixed buffer, as in NCCL: the pointer `ncclGetLastError` returns stays valid for the
    /// thread's lifetime; its contents change with the next error on that thread.
    static LAST_ERROR: UnsafeCell<[u8; LAST_ERROR_BYTES]> = const { UnsafeCell::new([0; LAST_ERROR_BYTES]) };
}

/// Records `msg` as the calling thread's last error message (what `ncclGetLastError` returns).
pub fn set_last_error(msg: &str) {
    let bytes = msg.as_bytes();
    // Stop at an interior NUL and leave room for the terminator; never split a UTF-8 sequence.
    let mut len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len()).min(LAST_ERROR_BYTES - 1);
    while len > 0 && !msg.is_char_boundary(len) {
        len -= 1;
    }
    LAST_ERROR.with(|buf| {
        // SAFETY: the buffer is this thread's own and no reference to it outlives this call; readers only hold
        // the raw pointer (C semantics, as NCCL's own buffer).
        let buf = unsafe { &mut *buf.get() };
        buf[..len].copy_from_slice(&bytes[..len]);
        buf[len] = 0;
    });
}

/// The calling thread's last error message ("" when there has been none), as a pointer valid for the thread's
/// lifetime.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|buf| buf.get() as *const c_char)
}

/// The calling thread's last error message, copied.
pub fn last_error() -> String {
    // SAFETY: the buffer is always NUL-terminated (zero-initialised, and `set_last_error` terminates it).
    unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
}

/// Records `msg` as the thread's last error, logs it at `info`, and returns `code`: the way an implementation
/// fails a call (`return Err(export::error(ncclResult_t::ncclInvalidArgument, "ncclX: comm is NULL"))`).
/// `info`, not `warn`: a bad argument is the application's to handle (it has the status and `ncclGetLastError`),
/// and NCCL too is silent about it unless asked (`NCCL_DEBUG`); stderr stays the application's.
pub fn error(code: ncclResult_t, msg: impl std::fmt::Display) -> ncclResult_t {
    let msg = msg.to_string();
    crate::log::init();
    tracing::info!("{msg}");
    set_last_error(&msg);
    code
}

/// Converts a typed result to the status returned on the wire.
pub fn status(r: NcclResult<()>) -> ncclResult_t {
    match r {
        Ok(()) => ncclResult_t::ncclSuccess,
        Err(e) => e,
    }
}

/// What an export returns, and how that return value is produced when the call is unsupported or panics.
pub trait FfiReturn: Sized {
    /// The default body of every trait method that `api.rs` does not override.
    fn unsupported(name: &'static str) -> Self;
    /// Returned when the implementation panicked.
    fn panicked() -> Self;
}

fn record_unsupported(name: &'static str) {
    crate::log::unsupported_once(name);
    set_last_error(&format!("{name} is not supported by Phantom yet"));
}

impl FfiReturn for ncclResult_t {
    fn unsupported(name: &'static str) -> Self {
        record_unsupported(name);
        ncclResult_t::ncclInvalidUsage
    }
    fn panicked() -> Self {
        ncclResult_t::ncclInternalError
    }
}

/// `ncclGetErrorString` / `ncclGetLastError`: never NULL (applications print the result unchecked).
impl FfiReturn for *const c_char {
    fn unsupported(name: &'static str) -> Self {
        record_unsupported(name);
        c"Phantom does not support this NCCL function yet".as_ptr()
    }
    fn panicked() -> Self {
        c"internal error in Phantom".as_ptr()
    }
}

/// `ncclTeamRankToWorld`, `ncclTeamRankToLsa`, `ncclLLA2ACalcSlots`: -1 is no valid rank or slot count.
impl FfiReturn for c_int {
    fn unsupported(name: &'static str) -> Self {
        record_unsupported(name);
        -1
    }
    fn panicked() -> Self {
        -1
    }
}

/// `ncclTeamWorld` and friends return a team by value: the empty team.
impl FfiReturn for ncclTeam_t {
    fn unsupported(name: &'static str) -> Self {
        record_unsupported(name);
        ncclTeam_t::default()
    }
    fn panicked() -> Self {
        ncclTeam_t::default()
    }
}

impl FfiReturn for () {
    fn unsupported(name: &'static str) {
        record_unsupported(name);
    }
    fn panicked() {}
}

/// Runs an export's body; a panic becomes a logged internal error, the thread's last error message, and the
/// type's failure value. Nothing unwinds across `extern "C"`.
pub fn guard<R: FfiReturn>(name: &'static str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = phantom_log::internal_error(name, &*payload);
            set_last_error(&format!("internal error in Phantom's {name}: {msg}"));
            R::panicked()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_per_thread_and_truncated() {
        let ptr = last_error_ptr();
        set_last_error("first");
        assert_eq!(last_error(), "first");
        set_last_error(&"é".repeat(600)); // 1200 bytes: cut at a character boundary below 1024
        let kept = last_error();
        assert!(kept.len() < LAST_ERROR_BYTES && kept.chars().all(|c| c == 'é'), "{}", kept.len());
        assert_eq!(last_error_ptr(), ptr, "the buffer does not move");
        std::thread::spawn(|| assert_eq!(last_error(), "")).join().unwrap();
    }

    #[test]
    fn interior_nul_ends_the_message() {
        set_last_error("a\0b");
        assert_eq!(last_error(), "a");
    }

    #[test]
    fn guard_turns_a_panic_into_an_internal_error() {
        let r: ncclResult_t = guard("ncclTest", || panic!("boom"));
        assert_eq!(r, ncclResult_t::ncclInternalError);
        assert!(last_error().contains("boom"), "{}", last_error());
        let p: *const c_char = guard("ncclTestString", || panic!("boom"));
        assert!(!p.is_null());
    }

    #[test]
    fn unsupported_records_the_function() {
        let r = <ncclResult_t as FfiReturn>::unsupported("ncclTestUnsupported");
        assert_eq!(r, ncclResult_t::ncclInvalidUsage);
        assert_eq!(last_error(), "ncclTestUnsupported is not supported by Phantom yet");
        assert!(!crate::log::first_report("ncclTestUnsupported"), "reported once, then never again");
    }
}
