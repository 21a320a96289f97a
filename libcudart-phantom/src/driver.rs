//! The driver library beside this runtime: Phantom's `libcuda.so.1` (`stubs/cuda-driver`), a separate cdylib found
//! with `dlopen` (never linked), so that `cudaGetDriverEntryPoint*` hands out its functions, as NVIDIA's runtime
//! hands out the driver's. PyTorch's c10 `DriverAPI` fetches every driver function it uses this way.
//!
//! In an executing process (profiling mode) the process's `libcuda.so.1` is NVIDIA's driver, which NVIDIA's
//! libraries need; the application's driver calls must still see the simulated cluster (eight GPUs, say, where
//! the machine has one), so Phantom's stub is opened by absolute path from the directory of this library.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::sync::OnceLock;

/// `cuGetProcAddress_v2`'s C signature (cuda.h).
type GetProcAddress = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_int) -> c_uint;

/// The driver's `cuGetProcAddress_v2`, if `libcuda.so.1` is loaded or loadable (looked up once).
fn get_proc_address_fn() -> Option<GetProcAddress> {
    static FOUND: OnceLock<Option<GetProcAddress>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let name = c"libcuda.so.1";
        let mut lib = if crate::profile::mode() == crate::profile::Mode::Execute {
            // NVIDIA's driver must own the name first (runtime initialisation opens it), then the stub is
            // opened beside it by path.
            let _ = crate::runtime::rt();
            stub_beside_runtime().map_or(std::ptr::null_mut(), |p| unsafe {
                libc::dlopen(p.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND)
            })
        } else {
            unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_NOW) }
        };
        if lib.is_null() {
            lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
        }
        if lib.is_null() {
            return None;
        }
        let f = unsafe { libc::dlsym(lib, c"cuGetProcAddress_v2".as_ptr()) };
        // SAFETY: the symbol is cuGetProcAddress_v2, with cuda.h's signature.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, GetProcAddress>(f) })
    })
}

/// Phantom's `libcuda.so.1` in the directory this runtime was loaded from (following symbolic links: an
/// executing rank's library directory links to Phantom's).
pub fn stub_path() -> Option<std::path::PathBuf> {
    let own = crate::profile::own_file()?;
    let stub = own.parent()?.join("libcuda.so.1");
    if !stub.is_file() {
        tracing::warn!("phantom: profiling: Phantom's libcuda.so.1 is not beside {}; driver calls go to NVIDIA's driver", own.display());
        return None;
    }
    Some(stub)
}

fn stub_beside_runtime() -> Option<std::ffi::CString> {
    std::ffi::CString::new(stub_path()?.into_os_string().into_encoded_bytes()).ok()
}

/// The driver function `symbol` (a base name: the driver picks its variant) for CUDA `version`, or `None`.
///
/// # Safety
/// `symbol` is a NUL-terminated string.
pub unsafe fn get_proc_address(symbol: *const c_char, version: c_uint, flags: c_ulonglong) -> Option<*mut c_void> {
    let get = get_proc_address_fn()?;
    let mut f: *mut c_void = std::ptr::null_mut();
    let mut status: c_int = 0;
    let rc = unsafe { get(symbol, &mut f, version as c_int, flags, &mut status) };
    (rc == 0 && !f.is_null()).then_some(f)
}
