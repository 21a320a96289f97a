//! NVIDIA's own `libcublasLt.so.13`, used only by a process that executes on the real GPU
//! (`phantom_stub_runtime::profile_mode() == Profile::Execute`; docs/profiling.md, "Library calls"). It is opened
//! by absolute path (`phantom_stub_runtime::real_library`, `RTLD_DEEPBIND`), never by name, so it is never this
//! stub. In every other mode nothing here runs and NVIDIA's library is never loaded.
//!
//! What is mirrored: every descriptor of the stub (matmul, matrix layout, preference) has a **twin** made by the
//! real library when the stub's is made; every accepted `SetAttribute` is applied to the twin with the same id and
//! bytes (pointer attributes hold real device addresses in an executing process); `Destroy` destroys it. The
//! function table and the one real `cublasLtHandle_t` are `phantom_stub_runtime::real_lt`'s, shared with the cuBLAS
//! stub.

use super::{code, cublasLtMatmulAlgo_t, cublasLtMatmulHeuristicResult_t, log, status};
use std::ffi::c_int;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) use phantom_stub_runtime::real_lt::{Fns, Ptr};

// The shared table passes these as untyped pointers: the stub's types must be cublasLt.h's layouts.
const _: () = assert!(std::mem::size_of::<cublasLtMatmulAlgo_t>() == 64);
const _: () = assert!(std::mem::size_of::<cublasLtMatmulHeuristicResult_t>() == 96);

/// Why NVIDIA's library or handle cannot be used, logged the first time: `NOT_INITIALIZED`.
fn unavailable(why: &str) -> NonZeroU32 {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        log(&format!("cannot run cuBLASLt calls on the real GPU: {why}"));
    }
    status(code::NOT_INITIALIZED)
}

/// NVIDIA's library (`phantom_stub_runtime::real_lt`), opened on first use.
pub(super) fn lib() -> Result<&'static Fns, NonZeroU32> {
    phantom_stub_runtime::real_lt::lib().map_err(unavailable)
}

/// The process's real cuBLASLt handle, made on first use.
pub(super) fn handle() -> Result<Ptr, NonZeroU32> {
    phantom_stub_runtime::real_lt::handle().map_err(unavailable)
}

/// A real call's status as this library's result; a failure is logged (`what` names the call).
pub(super) fn check(what: &str, s: c_int) -> Result<(), NonZeroU32> {
    match NonZeroU32::new(s as u32) {
        None => Ok(()),
        Some(e) => {
            log(&format!("{what}: NVIDIA's cuBLASLt returned {s}"));
            Err(e)
        }
    }
}
