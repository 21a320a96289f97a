//! The implemented part of Phantom's `libcublas.so.13` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries"). Every other export stays a stub
//! returning `CUBLAS_STATUS_NOT_SUPPORTED`.
//!
//! Handles are validated: a `cublasHandle_t` is a registered number, never a pointer Phantom dereferences. A GEMM
//! computes nothing (device memory holds no data under Phantom): it is timed by the roofline model of
//! `sim_core::blas` on the GPU of the handle's stream and placed on that stream as a kernel, through the runtime
//! table of Phantom's `libcudart.so.13` (reached through `phantom-stub-runtime`, never linked).

use phantom_stub_common::Status;
use sim_core::shim_abi::{self as abi, ShimGemm};
use std::collections::BTreeMap;
// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use std::ffi::{c_int, c_void, CStr};
use std::num::NonZeroU32;
use std::sync::Mutex;


#[allow(non_camel_case_types)]
pub type cublasHandle_t = *mut c_void;
#[allow(non_camel_case_types)]
pub type cudaStream_t = *mut c_void;

/// `cublasStatus_t` values this module returns (cublas_api.h).
mod code {
    pub const NOT_INITIALIZED: u32 = 1;
    pub const INVALID_VALUE: u32 = 7;
    pub const EXECUTION_FAILED: u32 = 13;
    pub const NOT_SUPPORTED: u32 = 15;
}

fn err(code: u32) -> Status {
    Err(NonZeroU32::new(code).expect("an error code is nonzero"))
}

/// The version this library reports (NVIDIA's 13.1.0.3 as `major·10000 + minor·100 + patch`).
const VERSION: c_int = 130100;

/// What a handle holds.
#[derive(Clone, Copy)]
struct Handle {
    stream: usize,
    math_mode: c_int,
    pointer_mode: c_int,
    atomics_mode: c_int,
}

struct Handles {
    next: usize,
    live: BTreeMap<usize, Handle>,
}

static HANDLES: Mutex<Handles> = Mutex::new(Handles { next: 0, live: BTreeMap::new() });

fn handles() -> std::sync::MutexGuard<'static, Handles> {
    HANDLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a live handle; a destroyed or foreign one is `CUBLAS_STATUS_NOT_INITIALIZED` (as NVIDIA's).
fn with<T>(h: cublasHandle_t, f: impl FnOnce(&mut Handle) -> T) -> Result<T, NonZeroU32> {
    match handles().live.get_mut(&(h as usize)) {
        Some(handle) => Ok(f(handle)),
        None => Err(NonZeroU32::new(code::NOT_INITIALIZED).unwrap()),
    }
}

fn log(msg: &str) {
    phantom_stub_runtime::log("libcublas.so.13", msg);
}

/// Times `g` on the stream of `h` and places it there.
fn run_gemm(h: cublasHandle_t, name: &CStr, g: ShimGemm) -> Status {
    let stream = with(h, |h| h.stream)? as *mut c_void;
    let ns = phantom_stub_runtime::gemm_ns(stream, &g).map_err(|e| {
        log(&format!("{}: cannot time it: {e}", name.to_string_lossy()));
        NonZeroU32::new(match e.code() {
            801 => code::NOT_SUPPORTED,
            3 => code::NOT_INITIALIZED,
            _ => code::EXECUTION_FAILED,
        })
        .unwrap()
    })?;
    phantom_stub_runtime::enqueue(stream, ns, name).map_err(|e| {
        log(&format!("{}: cannot queue it: {e}", name.to_string_lossy()));
        NonZeroU32::new(code::EXECUTION_FAILED).unwrap()
    })
}

/// `cudaDataType_t` values (library_types.h) and their element sizes.
mod dtype {
    pub const R_32F: i32 = 0;
    pub const R_64F: i32 = 1;
    pub const R_16F: i32 = 2;
    pub const R_16BF: i32 = 14;
    pub const R_8F_E4M3: i32 = 28;
    pub const R_8F_E5M2: i32 = 29;
}

fn dtype_bytes(t: c_int) -> Option<u32> {
    match t {
        dtype::R_32F => Some(4),
        dtype::R_64F => Some(8),
        dtype::R_16F | dtype::R_16BF => Some(2),
        dtype::R_8F_E4M3 | dtype::R_8F_E5M2 => Some(1),
        _ => None,
    }
}

/// `CUBLAS_TF32_TENSOR_OP_MATH`: fp32 GEMMs may run in TF32.
const TF32_TENSOR_OP_MATH: c_int = 3;

/// The precision cuBLAS computes a GEMM in, from `cublasComputeType_t`, the input type and the math mode.
fn precision(compute: c_int, a_type: c_int, math_mode: c_int) -> Option<u32> {
    let by_input = || match a_type {
        dtype::R_16F => Some(abi::PREC_FP16),
        dtype::R_16BF => Some(abi::PREC_BF16),
        dtype::R_8F_E4M3 | dtype::R_8F_E5M2 => Some(abi::PREC_FP8),
        dtype::R_32F if math_mode & 0xf == TF32_TENSOR_OP_MATH => Some(abi::PREC_TF32),
        dtype::R_32F => Some(abi::PREC_FP32),
        _ => None,
    };
    match compute {
        64 | 65 => Some(abi::PREC_FP16),     // CUBLAS_COMPUTE_16F(_PEDANTIC)
        68 => by_input(),                    // CUBLAS_COMPUTE_32F
        69 => by_input().map(|p| if p == abi::PREC_TF32 { abi::PREC_FP32 } else { p }), // 32F_PEDANTIC
        70 | 71 => Some(abi::PREC_FP64),     // CUBLAS_COMPUTE_64F(_PEDANTIC)
        74 => Some(abi::PREC_FP16),          // CUBLAS_COMPUTE_32F_FAST_16F
        75 => Some(abi::PREC_BF16),          // CUBLAS_COMPUTE_32F_FAST_16BF
        77 => Some(abi::PREC_TF32),          // CUBLAS_COMPUTE_32F_FAST_TF32
        _ => None,
    }
}

fn dims(m: c_int, n: c_int, k: c_int, batch: c_int) -> Result<(u64, u64, u64, u64), NonZeroU32> {
    if m < 0 || n < 0 || k < 0 || batch < 0 {
        return Err(NonZeroU32::new(code::INVALID_VALUE).unwrap());
    }
    Ok((m as u64, n as u64, k as u64, batch as u64))
}

fn check_ops(transa: c_int, transb: c_int) -> Status {
    // CUBLAS_OP_N, _T, _C (and _CONJG = 3 is accepted by NVIDIA's for real types too).
    if !(0..=3).contains(&transa) || !(0..=3).contains(&transb) {
        return err(code::INVALID_VALUE);
    }
    Ok(())
}

pub fn cublasCreate_v2(handle: &mut cublasHandle_t) -> Status {
    let mut hs = handles();
    hs.next += 1;
    // Never null, never a mapped address: 0xb1a5 in the high bits, then a serial number.
    let h = 0xb1a5_0000_0000 + hs.next;
    hs.live.insert(h, Handle { stream: 0, math_mode: 0, pointer_mode: 0, atomics_mode: 0 });
    *handle = h as cublasHandle_t;
    Ok(())
}

pub fn cublasDestroy_v2(handle: cublasHandle_t) -> Status {
    match handles().live.remove(&(handle as usize)) {
        Some(_) => Ok(()),
        None => err(code::NOT_INITIALIZED),
    }
}

pub fn cublasGetVersion_v2(handle: cublasHandle_t, version: &mut c_int) -> Status {
    with(handle, |_| ())?;
    *version = VERSION;
    Ok(())
}

pub fn cublasGetProperty(kind: c_int, value: &mut c_int) -> Status {
    *value = match kind {
        0 => 13, // MAJOR_VERSION
        1 => 1,  // MINOR_VERSION
        2 => 0,  // PATCH_LEVEL
        _ => return err(code::INVALID_VALUE),
    };
    Ok(())
}

pub fn cublasSetStream_v2(handle: cublasHandle_t, stream: cudaStream_t) -> Status {
    with(handle, |h| h.stream = stream as usize)
}

pub fn cublasGetStream_v2(handle: cublasHandle_t, stream: &mut cudaStream_t) -> Status {
    *stream = with(handle, |h| h.stream)? as cudaStream_t;
    Ok(())
}

/// The workspace is the caller's memory; Phantom's GEMMs need none, so it is only validated.
pub fn cublasSetWorkspace_v2(handle: cublasHandle_t, workspace: *mut c_void, size: usize) -> Status {
    with(handle, |_| ())?;
    if workspace.is_null() && size != 0 {
        return err(code::INVALID_VALUE);
    }
    Ok(())
}

pub fn cublasSetMathMode(handle: cublasHandle_t, mode: c_int) -> Status {
    with(handle, |h| h.math_mode = mode)
}

pub fn cublasGetMathMode(handle: cublasHandle_t, mode: &mut c_int) -> Status {
    *mode = with(handle, |h| h.math_mode)?;
    Ok(())
}

pub fn cublasSetPointerMode_v2(handle: cublasHandle_t, mode: c_int) -> Status {
    if !(0..=1).contains(&mode) {
        return err(code::INVALID_VALUE);
    }
    with(handle, |h| h.pointer_mode = mode)
}

pub fn cublasGetPointerMode_v2(handle: cublasHandle_t, mode: &mut c_int) -> Status {
    *mode = with(handle, |h| h.pointer_mode)?;
    Ok(())
}

pub fn cublasSetAtomicsMode(handle: cublasHandle_t, mode: c_int) -> Status {
    if !(0..=1).contains(&mode) {
        return err(code::INVALID_VALUE);
    }
    with(handle, |h| h.atomics_mode = mode)
}

pub fn cublasGetAtomicsMode(handle: cublasHandle_t, mode: &mut c_int) -> Status {
    *mode = with(handle, |h| h.atomics_mode)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cublasSgemm_v2(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    _alpha: *const f32,
    _a: *const f32,
    _lda: c_int,
    _b: *const f32,
    _ldb: c_int,
    _beta: *const f32,
    _c: *mut f32,
    _ldc: c_int,
) -> Status {
    check_ops(transa, transb)?;
    let (m, n, k, batch) = dims(m, n, k, 1)?;
    let mode = with(handle, |h| h.math_mode)?;
    let precision = precision(68, dtype::R_32F, mode).unwrap_or(abi::PREC_FP32);
    run_gemm(handle, c"cublasSgemm_v2", ShimGemm { m, n, k, batch, precision, in_bytes: 4, out_bytes: 4 })
}

#[allow(clippy::too_many_arguments)]
pub fn cublasSgemmStridedBatched(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    _alpha: *const f32,
    _a: *const f32,
    _lda: c_int,
    _stride_a: i64,
    _b: *const f32,
    _ldb: c_int,
    _stride_b: i64,
    _beta: *const f32,
    _c: *mut f32,
    _ldc: c_int,
    _stride_c: i64,
    batch: c_int,
) -> Status {
    check_ops(transa, transb)?;
    let (m, n, k, batch) = dims(m, n, k, batch)?;
    let mode = with(handle, |h| h.math_mode)?;
    let precision = precision(68, dtype::R_32F, mode).unwrap_or(abi::PREC_FP32);
    run_gemm(handle, c"cublasSgemmStridedBatched", ShimGemm { m, n, k, batch, precision, in_bytes: 4, out_bytes: 4 })
}

#[allow(clippy::too_many_arguments)]
fn gemm_ex(
    name: &CStr,
    handle: cublasHandle_t,
    (transa, transb): (c_int, c_int),
    (m, n, k, batch): (c_int, c_int, c_int, c_int),
    (a_type, b_type, c_type): (c_int, c_int, c_int),
    compute: c_int,
) -> Status {
    check_ops(transa, transb)?;
    let (m, n, k, batch) = dims(m, n, k, batch)?;
    let mode = with(handle, |h| h.math_mode)?;
    let (Some(a), Some(b), Some(c)) = (dtype_bytes(a_type), dtype_bytes(b_type), dtype_bytes(c_type)) else {
        return err(code::NOT_SUPPORTED);
    };
    let Some(precision) = precision(compute, a_type, mode) else { return err(code::NOT_SUPPORTED) };
    run_gemm(handle, name, ShimGemm { m, n, k, batch, precision, in_bytes: a.max(b), out_bytes: c })
}

#[allow(clippy::too_many_arguments)]
pub fn cublasGemmEx(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    _alpha: *const c_void,
    _a: *const c_void,
    a_type: c_int,
    _lda: c_int,
    _b: *const c_void,
    b_type: c_int,
    _ldb: c_int,
    _beta: *const c_void,
    _c: *mut c_void,
    c_type: c_int,
    _ldc: c_int,
    compute: c_int,
    _algo: c_int,
) -> Status {
    gemm_ex(c"cublasGemmEx", handle, (transa, transb), (m, n, k, 1), (a_type, b_type, c_type), compute)
}

#[allow(clippy::too_many_arguments)]
pub fn cublasGemmStridedBatchedEx(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    _alpha: *const c_void,
    _a: *const c_void,
    a_type: c_int,
    _lda: c_int,
    _stride_a: i64,
    _b: *const c_void,
    b_type: c_int,
    _ldb: c_int,
    _stride_b: i64,
    _beta: *const c_void,
    _c: *mut c_void,
    c_type: c_int,
    _ldc: c_int,
    _stride_c: i64,
    batch: c_int,
    compute: c_int,
    _algo: c_int,
) -> Status {
    gemm_ex(c"cublasGemmStridedBatchedEx", handle, (transa, transb), (m, n, k, batch), (a_type, b_type, c_type), compute)
}
