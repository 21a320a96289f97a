//! NVIDIA's own `libcublasLt.so.13`, used only by a process that executes on the real GPU
//! (`phantom_stub_runtime::profile_mode() == Profile::Execute`; docs/profiling.md, "Library calls"). It is opened
//! by absolute path (`phantom_stub_runtime::real_library`, `RTLD_DEEPBIND`), never by name, so it is never this
//! stub. In every other mode nothing here runs and NVIDIA's library is never loaded.
//!
//! What is mirrored: every descriptor of the stub (matmul, matrix layout, preference) has a **twin** made by the
//! real library when the stub's is made; every accepted `SetAttribute` is applied to the twin with the same id and
//! bytes (pointer attributes hold real device addresses in an executing process); `Destroy` destroys it. One real
//! `cublasLtHandle_t` serves the whole process (made on first use: the application's handle may be a cuBLAS handle
//! of Phantom's `libcublas.so.13`, which NVIDIA's library would not know). A cuBLASLt handle holds no stream, and
//! cuBLAS documents its handles as usable from several threads, so sharing it is safe.

use super::{code, cublasLtMatmulAlgo_t, cublasLtMatmulHeuristicResult_t, log, status};
use std::ffi::{c_int, c_void, CStr};
use std::num::NonZeroU32;
use std::sync::OnceLock;

type Ptr = *mut c_void;
type CPtr = *const c_void;

/// Declares the functions used, as fields of [`Fns`], each found with `real_symbol` by its C name.
macro_rules! functions {
    ($($field:ident = $name:literal ($($arg:ty),*);)*) => {
        /// NVIDIA's functions, as the real library exports them. All return `cublasStatus_t`.
        pub(super) struct Fns {
            $(pub $field: unsafe extern "C" fn($($arg),*) -> c_int,)*
        }

        impl Fns {
            fn load(lib: usize) -> Result<Fns, String> {
                Ok(Fns {
                    $($field: {
                        let name: &CStr = $name;
                        let p = phantom_stub_runtime::real_symbol(lib, name);
                        if p.is_null() {
                            return Err(format!("NVIDIA's libcublasLt.so.13 has no {}", name.to_string_lossy()));
                        }
                        // SAFETY: the symbol is the function of that name in cublasLt.h, of this signature.
                        unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> c_int>(p) }
                    },)*
                })
            }
        }
    };
}

functions! {
    create = c"cublasLtCreate"(*mut Ptr);
    matmul_desc_create = c"cublasLtMatmulDescCreate"(*mut Ptr, c_int, c_int);
    matmul_desc_destroy = c"cublasLtMatmulDescDestroy"(Ptr);
    matmul_desc_set = c"cublasLtMatmulDescSetAttribute"(Ptr, c_int, CPtr, usize);
    layout_create = c"cublasLtMatrixLayoutCreate"(*mut Ptr, c_int, u64, u64, i64);
    layout_destroy = c"cublasLtMatrixLayoutDestroy"(Ptr);
    layout_set = c"cublasLtMatrixLayoutSetAttribute"(Ptr, c_int, CPtr, usize);
    pref_create = c"cublasLtMatmulPreferenceCreate"(*mut Ptr);
    pref_destroy = c"cublasLtMatmulPreferenceDestroy"(Ptr);
    pref_set = c"cublasLtMatmulPreferenceSetAttribute"(Ptr, c_int, CPtr, usize);
    heuristic = c"cublasLtMatmulAlgoGetHeuristic"(
        Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, c_int, *mut cublasLtMatmulHeuristicResult_t, *mut c_int
    );
    algo_get_ids = c"cublasLtMatmulAlgoGetIds"(Ptr, c_int, c_int, c_int, c_int, c_int, c_int, c_int, *mut c_int, *mut c_int);
    algo_init = c"cublasLtMatmulAlgoInit"(Ptr, c_int, c_int, c_int, c_int, c_int, c_int, c_int, *mut cublasLtMatmulAlgo_t);
    algo_check = c"cublasLtMatmulAlgoCheck"(
        Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, *const cublasLtMatmulAlgo_t, *mut cublasLtMatmulHeuristicResult_t
    );
    algo_config_set = c"cublasLtMatmulAlgoConfigSetAttribute"(*mut cublasLtMatmulAlgo_t, c_int, CPtr, usize);
    algo_config_get = c"cublasLtMatmulAlgoConfigGetAttribute"(*const cublasLtMatmulAlgo_t, c_int, Ptr, usize, *mut usize);
    matmul = c"cublasLtMatmul"(
        Ptr, Ptr, CPtr, CPtr, Ptr, CPtr, Ptr, CPtr, CPtr, Ptr, Ptr, Ptr, *const cublasLtMatmulAlgo_t, Ptr, usize, Ptr
    );
}

/// NVIDIA's library, opened on first use; `NOT_INITIALIZED` (the reason logged once) if it cannot be.
pub(super) fn lib() -> Result<&'static Fns, NonZeroU32> {
    static LIB: OnceLock<Option<Fns>> = OnceLock::new();
    LIB.get_or_init(|| {
        let opened = phantom_stub_runtime::real_library("libcublasLt.so.13").and_then(Fns::load);
        opened.map_err(|e| log(&format!("cannot run cuBLASLt calls on the real GPU: {e}"))).ok()
    })
    .as_ref()
    .ok_or(status(code::NOT_INITIALIZED))
}

/// The process's real cuBLASLt handle, made on first use; `NOT_INITIALIZED` (logged once) if it cannot be.
pub(super) fn handle() -> Result<Ptr, NonZeroU32> {
    static HANDLE: OnceLock<Option<usize>> = OnceLock::new();
    let h = HANDLE.get_or_init(|| {
        let f = lib().ok()?;
        let mut h: Ptr = std::ptr::null_mut();
        match unsafe { (f.create)(&mut h) } {
            0 if !h.is_null() => Some(h as usize),
            s => {
                log(&format!("cannot run cuBLASLt calls on the real GPU: NVIDIA's cublasLtCreate returned {s}"));
                None
            }
        }
    });
    h.map(|h| h as Ptr).ok_or(status(code::NOT_INITIALIZED))
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
