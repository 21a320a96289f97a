//! NVIDIA's own `libcublasLt.so.13`, for Phantom's cuBLASLt and cuBLAS stubs in a process that executes on the
//! real GPU (profiling mode; docs/profiling.md, "Library calls"). Opened by absolute path ([`crate::real_library`],
//! `RTLD_DEEPBIND`), never by name, so it is never Phantom's stub; in every other mode nothing here runs.
//!
//! One table of the functions both stubs use, and one real `cublasLtHandle_t` per library (made on first use: the
//! application's handle may be a handle of Phantom's libraries, which NVIDIA's would not know). A cuBLASLt handle
//! holds no stream, and NVIDIA documents its handles as usable from several threads. The algorithm
//! (`cublasLtMatmulAlgo_t`) and heuristic result (`cublasLtMatmulHeuristicResult_t`) parameters are untyped
//! pointers here: each stub passes its own `#[repr(C)]` mirror of cublasLt.h's structs.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

pub type Ptr = *mut c_void;
pub type CPtr = *const c_void;

/// Declares the functions used, as fields of [`Fns`], each found with `real_symbol` by its C name.
macro_rules! functions {
    ($($field:ident = $name:literal ($($arg:ty),*);)*) => {
        /// NVIDIA's functions, as the real library exports them. All return `cublasStatus_t`.
        pub struct Fns {
            $(pub $field: unsafe extern "C" fn($($arg),*) -> c_int,)*
        }

        impl Fns {
            fn load(lib: usize) -> Result<Fns, String> {
                Ok(Fns {
                    $($field: {
                        let name: &CStr = $name;
                        let p = crate::real_symbol(lib, name);
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
    heuristic = c"cublasLtMatmulAlgoGetHeuristic"(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, c_int, Ptr, *mut c_int);
    algo_get_ids = c"cublasLtMatmulAlgoGetIds"(Ptr, c_int, c_int, c_int, c_int, c_int, c_int, c_int, *mut c_int, *mut c_int);
    algo_init = c"cublasLtMatmulAlgoInit"(Ptr, c_int, c_int, c_int, c_int, c_int, c_int, c_int, Ptr);
    algo_check = c"cublasLtMatmulAlgoCheck"(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, CPtr, Ptr);
    algo_config_set = c"cublasLtMatmulAlgoConfigSetAttribute"(Ptr, c_int, CPtr, usize);
    algo_config_get = c"cublasLtMatmulAlgoConfigGetAttribute"(CPtr, c_int, Ptr, usize, *mut usize);
    matmul = c"cublasLtMatmul"(Ptr, Ptr, CPtr, CPtr, Ptr, CPtr, Ptr, CPtr, CPtr, Ptr, Ptr, Ptr, CPtr, Ptr, usize, Ptr);
}

/// NVIDIA's library, opened on first use, or why it cannot be.
pub fn lib() -> Result<&'static Fns, &'static str> {
    static LIB: OnceLock<Result<Fns, String>> = OnceLock::new();
    LIB.get_or_init(|| crate::real_library("libcublasLt.so.13").and_then(Fns::load)).as_ref().map_err(String::as_str)
}

/// The real cuBLASLt handle, made on first use, or why it cannot be.
pub fn handle() -> Result<Ptr, &'static str> {
    static HANDLE: OnceLock<Result<usize, String>> = OnceLock::new();
    let h = HANDLE.get_or_init(|| {
        let f = lib().map_err(str::to_string)?;
        let mut h: Ptr = std::ptr::null_mut();
        match unsafe { (f.create)(&mut h) } {
            0 if !h.is_null() => Ok(h as usize),
            s => Err(format!("NVIDIA's cublasLtCreate returned {s}")),
        }
    });
    h.as_ref().map(|&h| h as Ptr).map_err(String::as_str)
}
