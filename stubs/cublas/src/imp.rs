//! The implemented part of Phantom's `libcublas.so.13` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries"). Every other export stays a stub
//! returning `CUBLAS_STATUS_NOT_SUPPORTED`.
//!
//! Handles are validated: a `cublasHandle_t` is a registered number, never a pointer Phantom dereferences. A GEMM
//! computes nothing (device memory holds no data under Phantom): it is timed by the roofline model of
//! `sim_core::blas` on the GPU of the handle's stream and placed on that stream as a kernel, through the runtime
//! table of Phantom's `libcudart.so.13` (reached through `phantom-stub-runtime`, never linked).
//!
//! Keys, tables and profiling (docs/profiling.md, "Library calls"): every checked GEMM has a key, one line of text
//! built from its arguments and the handle's math mode ([`gemm_key`]), the same in every mode. A process that does
//! not execute asks `phantom_stub_runtime::call_time(key)` first (an executing process's measurement, or a
//! kernel-time table's `call` record) and uses the model only without one. A process that **executes** on the real
//! GPU runs the GEMM as one `cublasLtMatmul` of NVIDIA's cuBLASLt (`real.rs`; never NVIDIA's cuBLAS, which would
//! bind to Phantom's cuBLASLt stub), built from the arguments and the handle's state, on the real stream inside
//! `phantom_stub_runtime::run_call`, which measures it; the measured time is queued.

use phantom_stub_common::Status;
use phantom_stub_runtime::words::{compute_name, dtype_name, op_name};
use sim_core::shim_abi::{self as abi, ShimGemm};
use std::collections::BTreeMap;
// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use std::ffi::{c_int, c_void, CStr};
use std::num::NonZeroU32;
use std::sync::Mutex;

mod real;
use real::Operands;

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
#[derive(Clone, Copy, Default)]
struct Handle {
    stream: usize,
    math_mode: c_int,
    pointer_mode: c_int,
    atomics_mode: c_int,
    /// `cublasSetWorkspace_v2`'s address and size ((0, 0) for none); an executing process gives it to cuBLASLt.
    workspace: (usize, usize),
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

/// Whether this process executes on the real GPU, where every call also goes to NVIDIA's library ([`real`]).
fn executing() -> bool {
    phantom_stub_runtime::profile_mode() == phantom_stub_runtime::Profile::Execute
}

/// Maps a runtime error to this library's status, logging it (`what`: the call and what failed).
fn runtime_error(what: &str, e: phantom_stub_runtime::Error) -> NonZeroU32 {
    log(&format!("{what}: {e}"));
    NonZeroU32::new(match e.code() {
        801 => code::NOT_SUPPORTED,
        3 => code::NOT_INITIALIZED,
        _ => code::EXECUTION_FAILED,
    })
    .unwrap()
}

/// Places a checked GEMM (`x`, with the handle's math mode and a normalized compute type) on the stream of `h`.
/// Not executing: timed by profiling's measurement or a table's `call` record for `key`, else by the model (`g`).
/// Executing: NVIDIA's cuBLASLt runs it on `operands` ([`real`]) on the real stream that stands for the handle's,
/// inside `run_call`, which measures it. A GEMM with no output (m, n or batch 0) runs nothing there, as cuBLAS.
fn run_gemm(h: cublasHandle_t, name: &CStr, g: ShimGemm, x: &KeyArgs, key: &str, operands: Operands) -> Status {
    use phantom_stub_runtime::Source;
    let handle = with(h, |h| *h)?;
    let stream = handle.stream as *mut c_void;
    let fname = name.to_string_lossy();
    let (ns, source) = if !executing() {
        match phantom_stub_runtime::call_time(key) {
            Some(timed) => timed,
            None => (
                phantom_stub_runtime::gemm_ns(stream, &g)
                    .map_err(|e| runtime_error(&format!("{fname}: cannot time it"), e))?,
                Source::Model,
            ),
        }
    } else {
        let plan = if x.mnk.0 == 0 || x.mnk.1 == 0 || x.batch == 0 {
            None
        } else {
            let Some(m) = real::matmul(x, handle.pointer_mode, handle.workspace.1, operands.alignment()) else {
                log(&format!("{fname}: compute type {} has no cuBLASLt scale type", x.compute));
                return err(code::NOT_SUPPORTED);
            };
            Some(real::plan(&m, &fname, key)?)
        };
        let mut library_status: c_int = 0;
        let ran = phantom_stub_runtime::run_call(stream, key, |real_stream| {
            library_status = match &plan {
                Some(p) => real::run(p, &operands, handle.workspace, real_stream),
                None => 0,
            };
            library_status
        });
        match ran {
            Ok(ns) => (ns, Source::Profiled),
            Err(_) if library_status != 0 => {
                log(&format!("{fname}: NVIDIA's cublasLtMatmul returned {library_status}"));
                return err(library_status as u32);
            }
            Err(e) => return Err(runtime_error(&format!("{fname}: cannot run it on the real GPU"), e)),
        }
    };
    phantom_stub_runtime::enqueue_timed(stream, ns, name, source)
        .map_err(|e| runtime_error(&format!("{fname}: cannot queue it"), e))
}

/// `cudaDataType_t` values (library_types.h) and their element sizes.
mod dtype {
    pub const R_32F: i32 = 0;
    pub const R_64F: i32 = 1;
    pub const R_16F: i32 = 2;
    pub const C_32F: i32 = 4;
    pub const C_64F: i32 = 5;
    pub const R_32I: i32 = 10;
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

/// `cublasComputeType_t` values (cublas_api.h; cuBLASLt takes the same).
mod compute {
    use std::ffi::c_int;
    pub const F16: c_int = 64;
    pub const F16_PEDANTIC: c_int = 65;
    pub const F32: c_int = 68;
    pub const F32_PEDANTIC: c_int = 69;
    pub const F64: c_int = 70;
    pub const F64_PEDANTIC: c_int = 71;
    pub const I32: c_int = 72;
    pub const I32_PEDANTIC: c_int = 73;
    pub const F32_FAST_16F: c_int = 74;
    pub const F32_FAST_BF16: c_int = 75;
    pub const F32_FAST_TF32: c_int = 77;
    pub const F32_EMULATED_16BFX9: c_int = 78;
    pub const F64_EMULATED_FIXEDPOINT: c_int = 79;
}

/// `cublasMath_t` values (cublas_api.h): modes in the low 4 bits, then a flag.
mod math {
    use std::ffi::c_int;
    /// Deprecated: single-precision GEMMs as `CUBLAS_COMPUTE_32F_FAST_16F`.
    pub const TENSOR_OP: c_int = 1;
    /// `cublas<T>` routines and legacy compute types as their `_PEDANTIC` compute type.
    pub const PEDANTIC: c_int = 2;
    /// Single-precision GEMMs may run in TF32.
    pub const TF32_TENSOR_OP: c_int = 3;
    pub const FP32_EMULATED_BF16X9: c_int = 4;
    pub const FP64_EMULATED_FIXEDPOINT: c_int = 8;
    /// Split-K reductions in the compute type, never in a narrower output type.
    pub const DISALLOW_REDUCED_PRECISION_REDUCTION: c_int = 16;
}

/// A compute-type argument as a `cublasComputeType_t`. Before CUDA 11 the `Ex` functions took a `cudaDataType_t`
/// there; such a value (no `cublasComputeType_t` shares one) becomes what cublas_api.h's `cublasMigrateComputeType`
/// makes of it: `CUDA_R_32F`/`CUDA_C_32F` → `32F`, `CUDA_R_64F`/`CUDA_C_64F` → `64F`, `CUDA_R_16F` → `16F`,
/// `CUDA_R_32I` → `32I`, each `_PEDANTIC` under `CUBLAS_PEDANTIC_MATH`. Any other value is kept.
fn compute_type(c: c_int, math_mode: c_int) -> c_int {
    let pedantic = math_mode & 0xf == math::PEDANTIC;
    let (plain, strict) = match c {
        dtype::R_32F | dtype::C_32F => (compute::F32, compute::F32_PEDANTIC),
        dtype::R_64F | dtype::C_64F => (compute::F64, compute::F64_PEDANTIC),
        dtype::R_16F => (compute::F16, compute::F16_PEDANTIC),
        dtype::R_32I => (compute::I32, compute::I32_PEDANTIC),
        _ => return c,
    };
    if pedantic {
        strict
    } else {
        plain
    }
}

/// The precision cuBLAS computes a GEMM in, from `cublasComputeType_t`, the input type and the math mode.
fn precision(c: c_int, a_type: c_int, math_mode: c_int) -> Option<u32> {
    let by_input = || match a_type {
        dtype::R_16F => Some(abi::PREC_FP16),
        dtype::R_16BF => Some(abi::PREC_BF16),
        dtype::R_8F_E4M3 | dtype::R_8F_E5M2 => Some(abi::PREC_FP8),
        dtype::R_32F if math_mode & 0xf == math::TF32_TENSOR_OP => Some(abi::PREC_TF32),
        dtype::R_32F => Some(abi::PREC_FP32),
        _ => None,
    };
    match c {
        compute::F16 | compute::F16_PEDANTIC => Some(abi::PREC_FP16),
        compute::F32 => by_input(),
        compute::F32_PEDANTIC => by_input().map(|p| if p == abi::PREC_TF32 { abi::PREC_FP32 } else { p }),
        compute::F64 | compute::F64_PEDANTIC => Some(abi::PREC_FP64),
        compute::F32_FAST_16F => Some(abi::PREC_FP16),
        compute::F32_FAST_BF16 => Some(abi::PREC_BF16),
        compute::F32_FAST_TF32 => Some(abi::PREC_TF32),
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

// ---------------------------------------------------------------------------------------------------------------
// Keys (docs/profiling.md, "Library calls": every field is listed there; change both together)

/// `cublasMath_t` as a key word: the mode (cublas_api.h's name, lower-case, without `CUBLAS_` and `_MATH`), then
/// `+disallow_reduced_precision_reduction` for that flag.
fn math_name(mode: c_int) -> String {
    let base = match mode & 0xf {
        0 => "default",
        1 => "tensor_op",
        2 => "pedantic",
        3 => "tf32_tensor_op",
        4 => "fp32_emulated_bf16x9",
        8 => "fp64_emulated_fixedpoint",
        _ => return mode.to_string(),
    };
    match mode & !0xf {
        0 => base.to_string(),
        16 => format!("{base}+disallow_reduced_precision_reduction"),
        _ => mode.to_string(),
    }
}

/// What a GEMM's key says.
struct KeyArgs {
    /// The function without `cublas` and `_v2`: `sgemm`, `sgemmStridedBatched`, `gemmEx`, `gemmStridedBatchedEx`.
    function: &'static str,
    ops: (c_int, c_int),
    mnk: (c_int, c_int, c_int),
    batch: c_int,
    types: (c_int, c_int, c_int),
    lds: (c_int, c_int, c_int),
    /// The strided-batch functions' strides of A, B and C.
    strides: Option<(i64, i64, i64)>,
    compute: c_int,
    math_mode: c_int,
    /// The `cublasGemmAlgo_t` argument of the `Ex` functions (`CUBLAS_GEMM_DEFAULT` = -1 for the others).
    algo: c_int,
}

impl KeyArgs {
    /// Whether the function is a typed `cublas<T>` routine (`S…`), not an `Ex` one.
    fn typed(&self) -> bool {
        matches!(self.function, "sgemm" | "sgemmStridedBatched")
    }
}

/// The key of a checked GEMM (docs/profiling.md, "Library calls").
fn gemm_key(x: &KeyArgs) -> String {
    let mut k = format!(
        "cublas {} m={} n={} k={} batch={} ta={} tb={} a={} b={} c={} lda={} ldb={} ldc={}",
        x.function,
        x.mnk.0,
        x.mnk.1,
        x.mnk.2,
        x.batch,
        op_name(x.ops.0),
        op_name(x.ops.1),
        dtype_name(x.types.0),
        dtype_name(x.types.1),
        dtype_name(x.types.2),
        x.lds.0,
        x.lds.1,
        x.lds.2,
    );
    if let Some((sa, sb, sc)) = x.strides {
        k.push_str(&format!(" sa={sa} sb={sb} sc={sc}"));
    }
    k.push_str(&format!(" compute={} math={}", compute_name(x.compute), math_name(x.math_mode)));
    // CUBLAS_GEMM_DEFAULT and CUBLAS_GEMM_DEFAULT_TENSOR_OP (the same in cuBLAS 13) are not written.
    match x.algo {
        -1 | 99 => {}
        999 => k.push_str(" algo=autotune"),
        a => k.push_str(&format!(" algo={a}")),
    }
    k
}

// ---------------------------------------------------------------------------------------------------------------
// Handles

/// A handle is the stub's alone, in every mode: an executing process runs its GEMMs through cuBLASLt ([`real`]),
/// with the state kept here.
pub fn cublasCreate_v2(handle: &mut cublasHandle_t) -> Status {
    let mut hs = handles();
    hs.next += 1;
    // Never null, never a mapped address: 0xb1a5 in the high bits, then a serial number.
    let h = 0xb1a5_0000_0000 + hs.next;
    hs.live.insert(h, Handle::default());
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

/// The stream is Phantom's; an executing process runs each GEMM on the real stream standing for it.
pub fn cublasSetStream_v2(handle: cublasHandle_t, stream: cudaStream_t) -> Status {
    with(handle, |h| h.stream = stream as usize)
}

pub fn cublasGetStream_v2(handle: cublasHandle_t, stream: &mut cudaStream_t) -> Status {
    *stream = with(handle, |h| h.stream)? as cudaStream_t;
    Ok(())
}

/// The workspace is the caller's memory; Phantom's model needs none, so it is validated and kept (an executing
/// process gives it to cuBLASLt: it is real device memory there).
pub fn cublasSetWorkspace_v2(handle: cublasHandle_t, workspace: *mut c_void, size: usize) -> Status {
    with(handle, |_| ())?;
    if workspace.is_null() && size != 0 {
        return err(code::INVALID_VALUE);
    }
    with(handle, |h| h.workspace = (workspace as usize, size))
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

// ---------------------------------------------------------------------------------------------------------------
// GEMMs

/// The application's operands of a GEMM, for an executing process.
fn operands(alpha: *const c_void, a: *const c_void, b: *const c_void, beta: *const c_void, c: *mut c_void) -> Operands {
    Operands { alpha, a, b, beta, c }
}

#[allow(clippy::too_many_arguments)]
pub fn cublasSgemm_v2(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: *const f32,
    c: *mut f32,
    ldc: c_int,
) -> Status {
    check_ops(transa, transb)?;
    let (mu, nu, ku, batch) = dims(m, n, k, 1)?;
    let mode = with(handle, |h| h.math_mode)?;
    let precision = precision(compute::F32, dtype::R_32F, mode).unwrap_or(abi::PREC_FP32);
    let g = ShimGemm { m: mu, n: nu, k: ku, batch, precision, in_bytes: 4, out_bytes: 4 };
    let x = KeyArgs {
        function: "sgemm",
        ops: (transa, transb),
        mnk: (m, n, k),
        batch: 1,
        types: (dtype::R_32F, dtype::R_32F, dtype::R_32F),
        lds: (lda, ldb, ldc),
        strides: None,
        compute: compute::F32,
        math_mode: mode,
        algo: -1,
    };
    let key = gemm_key(&x);
    let ops = operands(alpha.cast(), a.cast(), b.cast(), beta.cast(), c.cast());
    run_gemm(handle, c"cublasSgemm_v2", g, &x, &key, ops)
}

#[allow(clippy::too_many_arguments)]
pub fn cublasSgemmStridedBatched(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const f32,
    a: *const f32,
    lda: c_int,
    stride_a: i64,
    b: *const f32,
    ldb: c_int,
    stride_b: i64,
    beta: *const f32,
    c: *mut f32,
    ldc: c_int,
    stride_c: i64,
    batch: c_int,
) -> Status {
    check_ops(transa, transb)?;
    let (mu, nu, ku, batch_u) = dims(m, n, k, batch)?;
    let mode = with(handle, |h| h.math_mode)?;
    let precision = precision(compute::F32, dtype::R_32F, mode).unwrap_or(abi::PREC_FP32);
    let g = ShimGemm { m: mu, n: nu, k: ku, batch: batch_u, precision, in_bytes: 4, out_bytes: 4 };
    let x = KeyArgs {
        function: "sgemmStridedBatched",
        ops: (transa, transb),
        mnk: (m, n, k),
        batch,
        types: (dtype::R_32F, dtype::R_32F, dtype::R_32F),
        lds: (lda, ldb, ldc),
        strides: Some((stride_a, stride_b, stride_c)),
        compute: compute::F32,
        math_mode: mode,
        algo: -1,
    };
    let key = gemm_key(&x);
    let ops = operands(alpha.cast(), a.cast(), b.cast(), beta.cast(), c.cast());
    run_gemm(handle, c"cublasSgemmStridedBatched", g, &x, &key, ops)
}

/// Checks a `GemmEx`-style GEMM, completes `x` (the handle's math mode; the compute type normalized:
/// [`compute_type`]) and gives the model's GEMM and the key.
fn gemm_ex(handle: cublasHandle_t, x: &mut KeyArgs) -> Result<(ShimGemm, String), NonZeroU32> {
    check_ops(x.ops.0, x.ops.1)?;
    let (m, n, k, batch) = dims(x.mnk.0, x.mnk.1, x.mnk.2, x.batch)?;
    x.math_mode = with(handle, |h| h.math_mode)?;
    x.compute = compute_type(x.compute, x.math_mode);
    let (a_type, b_type, c_type) = x.types;
    let (Some(a), Some(b), Some(c)) = (dtype_bytes(a_type), dtype_bytes(b_type), dtype_bytes(c_type)) else {
        return Err(NonZeroU32::new(code::NOT_SUPPORTED).unwrap());
    };
    let Some(precision) = precision(x.compute, a_type, x.math_mode) else {
        return Err(NonZeroU32::new(code::NOT_SUPPORTED).unwrap());
    };
    Ok((ShimGemm { m, n, k, batch, precision, in_bytes: a.max(b), out_bytes: c }, gemm_key(x)))
}

#[allow(clippy::too_many_arguments)]
pub fn cublasGemmEx(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    beta: *const c_void,
    c: *mut c_void,
    c_type: c_int,
    ldc: c_int,
    compute: c_int,
    algo: c_int,
) -> Status {
    let mut x = KeyArgs {
        function: "gemmEx",
        ops: (transa, transb),
        mnk: (m, n, k),
        batch: 1,
        types: (a_type, b_type, c_type),
        lds: (lda, ldb, ldc),
        strides: None,
        compute,
        math_mode: 0,
        algo,
    };
    let (g, key) = gemm_ex(handle, &mut x)?;
    run_gemm(handle, c"cublasGemmEx", g, &x, &key, operands(alpha, a, b, beta, c))
}

#[allow(clippy::too_many_arguments)]
pub fn cublasGemmStridedBatchedEx(
    handle: cublasHandle_t,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    stride_a: i64,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    stride_b: i64,
    beta: *const c_void,
    c: *mut c_void,
    c_type: c_int,
    ldc: c_int,
    stride_c: i64,
    batch: c_int,
    compute: c_int,
    algo: c_int,
) -> Status {
    let mut x = KeyArgs {
        function: "gemmStridedBatchedEx",
        ops: (transa, transb),
        mnk: (m, n, k),
        batch,
        types: (a_type, b_type, c_type),
        lds: (lda, ldb, ldc),
        strides: Some((stride_a, stride_b, stride_c)),
        compute,
        math_mode: 0,
        algo,
    };
    let (g, key) = gemm_ex(handle, &mut x)?;
    run_gemm(handle, c"cublasGemmStridedBatchedEx", g, &x, &key, operands(alpha, a, b, beta, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of tests/programs/cublas_gemm.c's GEMMs (tests/tests/e2e/cublaslt.rs puts them in a table), and a
    /// strided batch under the TF32 math mode with `CUBLAS_GEMM_AUTOTUNE`.
    #[test]
    fn gemm_keys() {
        let mut h: cublasHandle_t = std::ptr::null_mut();
        cublasCreate_v2(&mut h).unwrap();
        let mut x = KeyArgs {
            function: "sgemm",
            ops: (0, 0),
            mnk: (4096, 4096, 4096),
            batch: 1,
            types: (dtype::R_32F, dtype::R_32F, dtype::R_32F),
            lds: (4096, 4096, 4096),
            strides: None,
            compute: 68,
            math_mode: 0,
            algo: -1,
        };
        assert_eq!(
            gemm_key(&x),
            "cublas sgemm m=4096 n=4096 k=4096 batch=1 ta=N tb=N a=f32 b=f32 c=f32 lda=4096 ldb=4096 ldc=4096 \
             compute=f32 math=default"
        );
        x.function = "gemmEx";
        x.types = (dtype::R_16BF, dtype::R_16BF, dtype::R_16BF);
        let (_, key) = gemm_ex(h, &mut x).unwrap();
        assert_eq!(
            key,
            "cublas gemmEx m=4096 n=4096 k=4096 batch=1 ta=N tb=N a=bf16 b=bf16 c=bf16 lda=4096 ldb=4096 ldc=4096 \
             compute=f32 math=default"
        );

        // The math mode is the handle's.
        cublasSetMathMode(h, math::TF32_TENSOR_OP | math::DISALLOW_REDUCED_PRECISION_REDUCTION).unwrap();
        let mut x = KeyArgs {
            function: "gemmStridedBatchedEx",
            ops: (1, 0),
            mnk: (128, 256, 64),
            batch: 12,
            types: (dtype::R_32F, dtype::R_32F, dtype::R_32F),
            lds: (64, 64, 128),
            strides: Some((8192, 16384, 32768)),
            compute: 68,
            math_mode: 0,
            algo: 999,
        };
        let (g, key) = gemm_ex(h, &mut x).unwrap();
        assert_eq!(g.precision, abi::PREC_TF32);
        assert_eq!(
            key,
            "cublas gemmStridedBatchedEx m=128 n=256 k=64 batch=12 ta=T tb=N a=f32 b=f32 c=f32 lda=64 ldb=64 \
             ldc=128 sa=8192 sb=16384 sc=32768 compute=f32 math=tf32_tensor_op+disallow_reduced_precision_reduction \
             algo=autotune"
        );
        cublasDestroy_v2(h).unwrap();
    }

    /// A legacy `cudaDataType_t` compute type (`CUDA_R_32F` = 0) is the `cublasComputeType_t` it stands for, in the
    /// key, the model and cuBLASLt; the handle's state reaches the cuBLASLt matmul.
    #[test]
    fn legacy_compute_type_and_handle_state() {
        let mut h: cublasHandle_t = std::ptr::null_mut();
        cublasCreate_v2(&mut h).unwrap();
        cublasSetMathMode(h, math::PEDANTIC).unwrap();
        cublasSetPointerMode_v2(h, 1).unwrap();
        let ws = 0x7f00_0000_0000usize as *mut c_void;
        cublasSetWorkspace_v2(h, ws, 4 << 20).unwrap();
        let mut x = KeyArgs {
            function: "gemmEx",
            ops: (0, 1),
            mnk: (64, 32, 16),
            batch: 1,
            types: (dtype::R_16F, dtype::R_16F, dtype::R_16F),
            lds: (64, 32, 64),
            strides: None,
            compute: dtype::R_32F,
            math_mode: 0,
            algo: -1,
        };
        let (g, key) = gemm_ex(h, &mut x).unwrap();
        assert_eq!((x.compute, x.math_mode, g.precision), (compute::F32_PEDANTIC, math::PEDANTIC, abi::PREC_FP16));
        assert!(key.ends_with(" compute=f32_pedantic math=pedantic"), "{key}");

        let state = with(h, |h| *h).unwrap();
        assert_eq!((state.pointer_mode, state.workspace), (1, (ws as usize, 4 << 20)));
        let m = real::matmul(&x, state.pointer_mode, state.workspace.1, [256, 256, 64]).unwrap();
        assert_eq!((m.compute, m.fallback, m.scale, m.trans), (69, None, dtype::R_32F, (0, 1)));
        assert_eq!((m.pointer_mode, m.workspace, m.reductions, m.alignment), (1, 4 << 20, 7, [256, 256, 64]));
        assert_eq!((m.b.rows, m.b.cols, m.b.ld), (32, 16, 32));

        // A compute type unknown to both is still refused.
        x.compute = 76;
        assert_eq!(gemm_ex(h, &mut x).unwrap_err().get(), code::NOT_SUPPORTED);
        cublasDestroy_v2(h).unwrap();
    }

    #[test]
    fn key_words() {
        assert_eq!(math_name(0), "default");
        assert_eq!(math_name(2), "pedantic");
        assert_eq!(math_name(5), "5");
        assert_eq!(math_name(64), "64");
        assert_eq!(compute_name(75), "f32_fast_bf16");
        assert_eq!(dtype_name(dtype::R_8F_E5M2), "e5m2");
        assert_eq!(op_name(3), "CONJG");
    }
}
