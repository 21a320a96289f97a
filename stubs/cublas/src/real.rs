//! cuBLAS GEMMs on the real GPU, in a process that executes (`phantom_stub_runtime::profile_mode() ==
//! Profile::Execute`; docs/profiling.md, "Library calls"): each one runs as one `cublasLtMatmul` of NVIDIA's own
//! `libcublasLt.so.13`. In every other mode nothing here runs and no NVIDIA library is loaded.
//!
//! Why cuBLASLt and not NVIDIA's `libcublas.so.13`: that library has `DT_NEEDED libcublasLt.so.13`, and in the
//! process that name is already taken by Phantom's cuBLASLt stub (preloaded, same soname), so NVIDIA's cuBLAS would
//! bind its internals to Phantom's stub. NVIDIA's `libcublasLt.so.13` needs no other NVIDIA library, so it is opened
//! by absolute path (`phantom_stub_runtime::real_library`, `RTLD_DEEPBIND`), never by name.
//!
//! - [`matmul`] turns a checked GEMM (its [`KeyArgs`], the handle's pointer mode and workspace size, its operands'
//!   alignment) into a [`Matmul`]: compute and scale types, transposes, the layouts of A, B and C (D is C), the
//!   preference. Pure, so it is unit-tested.
//! - [`plan`] makes the matmul descriptor and the three layouts and asks the heuristic for one algorithm, once per
//!   distinct [`Matmul`] (everything those objects hold is in it, so it is their exact key), and keeps them for the
//!   life of the process.
//! - [`run`] queues `cublasLtMatmul` with a plan on a real stream.
//!
//! One real `cublasLtHandle_t` (`cublasLtCreate`, on first use) serves the process: a cuBLASLt handle holds no
//! stream, and NVIDIA documents its handles as usable from several threads.

use super::{code, compute, dtype, log, math, KeyArgs};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::num::NonZeroU32;
use std::sync::Mutex;

type Ptr = *mut c_void;
type CPtr = *const c_void;

/// `cublasLtMatmulAlgo_t` (cublasLt.h): NVIDIA's semi-opaque 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Algo {
    data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t` (cublasLt.h): 96 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct HeuristicResult {
    algo: Algo,
    workspace_size: usize,
    state: c_int,
    waves_count: f32,
    reserved: [c_int; 4],
}

const _: () = assert!(std::mem::size_of::<HeuristicResult>() == 96);

use phantom_stub_runtime::real_lt::Fns;

/// Why NVIDIA's cuBLASLt or its handle cannot be used, logged the first time: `NOT_INITIALIZED`.
fn unavailable(why: &str) -> NonZeroU32 {
    static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log(&format!("cannot run cuBLAS GEMMs on the real GPU: {why}"));
    }
    status(code::NOT_INITIALIZED)
}

/// NVIDIA's cuBLASLt (`phantom_stub_runtime::real_lt`, shared with the cuBLASLt stub), opened on first use.
fn lib() -> Result<&'static Fns, NonZeroU32> {
    phantom_stub_runtime::real_lt::lib().map_err(unavailable)
}

/// The process's real cuBLASLt handle, made on first use.
fn handle() -> Result<Ptr, NonZeroU32> {
    phantom_stub_runtime::real_lt::handle().map_err(unavailable)
}

fn status(code: u32) -> NonZeroU32 {
    NonZeroU32::new(code).expect("an error code is nonzero")
}

/// A real call's status as this library's result; a failure is logged (`what` names the call).
fn check(what: &str, s: c_int) -> Result<(), NonZeroU32> {
    match NonZeroU32::new(s as u32) {
        None => Ok(()),
        Some(e) => {
            log(&format!("{what}: NVIDIA's cuBLASLt returned {s}"));
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A cuBLAS GEMM as a cuBLASLt matmul (pure)

/// `cublasLtMatmulDescAttributes_t`, `cublasLtMatrixLayoutAttribute_t` and `cublasLtMatmulPreferenceAttributes_t`
/// ids used here (cublasLt.h 13.1), with the C type of each value.
mod attr {
    use std::ffi::c_int;
    /// int32 (`CUBLASLT_POINTER_MODE_HOST` = 0 = `CUBLAS_POINTER_MODE_HOST`, `_DEVICE` = 1 = cuBLAS's).
    pub const DESC_POINTER_MODE: c_int = 2;
    /// int32 (`cublasOperation_t`).
    pub const DESC_TRANSA: c_int = 3;
    pub const DESC_TRANSB: c_int = 4;
    /// int32.
    pub const LAYOUT_BATCH_COUNT: c_int = 5;
    /// int64, in elements.
    pub const LAYOUT_STRIDED_BATCH_OFFSET: c_int = 6;
    /// uint64.
    pub const PREF_MAX_WORKSPACE_BYTES: c_int = 1;
    /// uint32 (`cublasLtReductionScheme_t` bits).
    pub const PREF_REDUCTION_SCHEME_MASK: c_int = 3;
    /// uint32 each: A, B, C, D are 5, 6, 7, 8.
    pub const PREF_MIN_ALIGNMENT_A_BYTES: c_int = 5;
}

/// `CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE`: split-K partial results kept in the compute type.
const REDUCTION_COMPUTE_TYPE: u32 = 2;
/// `CUBLASLT_REDUCTION_SCHEME_MASK`: every scheme (the preference's default).
const REDUCTION_ALL: u32 = 7;

/// `cublasOperation_t`.
const OP_N: c_int = 0;
const OP_T: c_int = 1;
const OP_C: c_int = 2;

/// One matrix layout: `cublasLtMatrixLayoutCreate(type, rows, cols, ld)`, the matrix as stored (before its
/// transpose), column-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Layout {
    pub dtype: c_int,
    pub rows: u64,
    pub cols: u64,
    pub ld: i64,
    /// `BATCH_COUNT` and `STRIDED_BATCH_OFFSET` (elements), set for the strided-batch functions only.
    pub batch: Option<(i32, i64)>,
}

/// A cuBLAS GEMM as one cuBLASLt matmul, `D = alpha·op(A)·op(B) + beta·C` with D = C (same memory, same layout):
/// everything the descriptor, the layouts and the preference hold, so also the key of its [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Matmul {
    /// `cublasLtMatmulDescCreate`'s compute type (`cublasComputeType_t`, the same values as cuBLAS's).
    pub compute: c_int,
    /// Where `compute` is a faster type that the handle's math mode only *allows* (TF32, fast 16F, emulation): the
    /// call's own compute type, tried when cuBLASLt has no algorithm for `compute` (cuBLAS then computes in it).
    pub fallback: Option<c_int>,
    /// `cublasLtMatmulDescCreate`'s scale type (`cudaDataType_t` of alpha and beta).
    pub scale: c_int,
    /// `TRANSA`, `TRANSB`: `CUBLAS_OP_N` or `CUBLAS_OP_T`.
    pub trans: (c_int, c_int),
    /// `POINTER_MODE`: the handle's pointer mode (host 0, device 1).
    pub pointer_mode: c_int,
    pub a: Layout,
    pub b: Layout,
    /// C's layout, also D's.
    pub c: Layout,
    /// `MAX_WORKSPACE_BYTES`: the handle's workspace size (`cublasSetWorkspace_v2`), 0 without one.
    pub workspace: usize,
    /// `REDUCTION_SCHEME_MASK`.
    pub reductions: u32,
    /// `MIN_ALIGNMENT_{A,B,C}_BYTES` ([`alignment`] of each pointer); D's is C's.
    pub alignment: [u32; 3],
}

/// Whether cuBLAS's `op` transposes. The checked GEMMs take real data only (complex types are refused before),
/// where `CUBLAS_OP_C` (conjugate transpose) is a transpose and `CUBLAS_OP_CONJG` (conjugate) is none.
fn transposes(op: c_int) -> bool {
    op == OP_T || op == OP_C
}

/// The layout of an operand whose `op(X)` is `rows` × `cols`.
fn layout(dtype: c_int, op: c_int, rows: c_int, cols: c_int, ld: c_int, batch: Option<(i32, i64)>) -> Layout {
    let (rows, cols) = (rows.max(0) as u64, cols.max(0) as u64);
    let (rows, cols) = if transposes(op) { (cols, rows) } else { (rows, cols) };
    Layout { dtype, rows, cols, ld: i64::from(ld), batch }
}

/// The compute type cuBLASLt is given for a checked GEMM, and its [`Matmul::fallback`]. cuBLAS's rules
/// (cublas_api.h's `cublasMath_t`), for a *single-precision* GEMM (compute `32F`, A and B `f32`; every `S`
/// function) and a *double-precision* one (compute `64F`, A and B `f64`), by the handle's math mode (low 4 bits):
///
/// - `CUBLAS_TENSOR_OP_MATH` (deprecated): single → `32F_FAST_16F`;
/// - `CUBLAS_PEDANTIC_MATH`: an `S` function → `32F_PEDANTIC` (an `Ex` function's `32F` stays: the mode only acts
///   on `cublas<T>` routines and legacy compute types, which [`super::compute_type`] already made pedantic);
/// - `CUBLAS_TF32_TENSOR_OP_MATH`: single → `32F_FAST_TF32`;
/// - `CUBLAS_FP32_EMULATED_BF16X9_MATH`: single → `32F_EMULATED_16BFX9`;
/// - `CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH`: double → `64F_EMULATED_FIXEDPOINT`;
/// - anything else, and every other GEMM: the call's compute type, as given (`32F` for the `S` functions).
///
/// `CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION` changes no compute type (it is the preference's reduction
/// mask: [`matmul`]).
pub(super) fn lt_compute(x: &KeyArgs) -> (c_int, Option<c_int>) {
    let (a, b, _) = x.types;
    let single = x.compute == compute::F32 && a == dtype::R_32F && b == dtype::R_32F;
    let double = x.compute == compute::F64 && a == dtype::R_64F && b == dtype::R_64F;
    let allowed = |faster| (faster, Some(x.compute));
    match x.math_mode & 0xf {
        math::TENSOR_OP if single => allowed(compute::F32_FAST_16F),
        math::PEDANTIC if single && x.typed() => (compute::F32_PEDANTIC, None),
        math::TF32_TENSOR_OP if single => allowed(compute::F32_FAST_TF32),
        math::FP32_EMULATED_BF16X9 if single => allowed(compute::F32_EMULATED_16BFX9),
        math::FP64_EMULATED_FIXEDPOINT if double => allowed(compute::F64_EMULATED_FIXEDPOINT),
        _ => (x.compute, None),
    }
}

/// The scale type (alpha's and beta's `cudaDataType_t`) cuBLAS uses with a compute type: `CUDA_R_16F` for the
/// `16F` types, `CUDA_R_32F` for the `32F` family (pedantic, fast, emulated), `CUDA_R_64F` for the `64F` ones,
/// `CUDA_R_32I` for `32I`; `None` for a value that is none of these.
pub(super) fn scale_type(c: c_int) -> Option<c_int> {
    use compute::*;
    match c {
        F16 | F16_PEDANTIC => Some(dtype::R_16F),
        F32 | F32_PEDANTIC | F32_FAST_16F | F32_FAST_BF16 | F32_FAST_TF32 | F32_EMULATED_16BFX9 => Some(dtype::R_32F),
        F64 | F64_PEDANTIC | F64_EMULATED_FIXEDPOINT => Some(dtype::R_64F),
        I32 | I32_PEDANTIC => Some(dtype::R_32I),
        _ => None,
    }
}

/// The largest power of two up to 256 that divides `address` (what cuBLASLt's `MIN_ALIGNMENT_*_BYTES` mean; 256,
/// the preference's default, for null).
pub(super) fn alignment(address: usize) -> u32 {
    1 << address.trailing_zeros().min(8)
}

/// A checked GEMM as a cuBLASLt matmul. `x` has the handle's math mode and a normalized compute type
/// ([`super::compute_type`]); `alignment` is [`alignment`] of A, B and C. `None` where the compute type has no
/// scale type (never for a GEMM the checks accepted).
///
/// Layouts, cuBLAS being column-major with `op(A)` m × k, `op(B)` k × n, C m × n: A is m × k (`lda`) under `N`,
/// k × m under `T`; B is k × n (`ldb`) under `N`, n × k under `T`; C is m × n (`ldc`). The strided-batch functions
/// also give each layout `BATCH_COUNT` = `batch` and `STRIDED_BATCH_OFFSET` = its stride. The preference allows
/// the handle's workspace size and the operands' alignment, and under
/// `CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION` only split-K reductions in the compute type.
pub(super) fn matmul(x: &KeyArgs, pointer_mode: c_int, workspace: usize, alignment: [u32; 3]) -> Option<Matmul> {
    let (compute, fallback) = lt_compute(x);
    let scale = scale_type(compute)?;
    let (ta, tb) = x.ops;
    let (m, n, k) = x.mnk;
    let (at, bt, ct) = x.types;
    let (lda, ldb, ldc) = x.lds;
    let batch = |stride| x.strides.map(|_| (x.batch, stride));
    let (sa, sb, sc) = x.strides.unwrap_or_default();
    let op = |o| if transposes(o) { OP_T } else { OP_N };
    Some(Matmul {
        compute,
        fallback,
        scale,
        trans: (op(ta), op(tb)),
        pointer_mode,
        a: layout(at, ta, m, k, lda, batch(sa)),
        b: layout(bt, tb, k, n, ldb, batch(sb)),
        c: layout(ct, OP_N, m, n, ldc, batch(sc)),
        workspace,
        reductions: if x.math_mode & math::DISALLOW_REDUCED_PRECISION_REDUCTION != 0 {
            REDUCTION_COMPUTE_TYPE
        } else {
            REDUCTION_ALL
        },
        alignment,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Plans: NVIDIA's objects for a Matmul

/// NVIDIA's descriptor and layouts for one [`Matmul`] and the algorithm its heuristic chose; kept (never destroyed)
/// for the life of the process. Addresses as numbers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    desc: usize,
    a: usize,
    b: usize,
    c: usize,
    algo: Algo,
}

/// NVIDIA's objects being made for a plan; whatever is still held when this is dropped is destroyed.
struct Objects<'f> {
    f: &'f Fns,
    desc: Ptr,
    layouts: [Ptr; 3],
    pref: Ptr,
}

impl Drop for Objects<'_> {
    fn drop(&mut self) {
        let f = self.f;
        unsafe {
            if !self.desc.is_null() {
                (f.matmul_desc_destroy)(self.desc);
            }
            for l in self.layouts.into_iter().filter(|l| !l.is_null()) {
                (f.layout_destroy)(l);
            }
            if !self.pref.is_null() {
                (f.pref_destroy)(self.pref);
            }
        }
    }
}

/// NVIDIA's `…SetAttribute(object, id, value address, value size)`.
type Setter = unsafe extern "C" fn(Ptr, c_int, CPtr, usize) -> c_int;

/// Sets attribute `id` of `object` to `value` with NVIDIA's setter `set`.
fn set<T>(what: &str, set: Setter, object: Ptr, id: c_int, value: T) -> Result<(), NonZeroU32> {
    check(what, unsafe { set(object, id, &value as *const T as CPtr, std::mem::size_of::<T>()) })
}

fn make_layout(f: &Fns, l: &Layout) -> Result<Ptr, NonZeroU32> {
    let mut p: Ptr = std::ptr::null_mut();
    check("cublasLtMatrixLayoutCreate", phantom_stub_runtime::nvidia(|| unsafe { (f.layout_create)(&mut p, l.dtype, l.rows, l.cols, l.ld) }))?;
    if let Some((count, stride)) = l.batch {
        let what = "cublasLtMatrixLayoutSetAttribute";
        let made = set(what, f.layout_set, p, attr::LAYOUT_BATCH_COUNT, count)
            .and_then(|()| set(what, f.layout_set, p, attr::LAYOUT_STRIDED_BATCH_OFFSET, stride));
        if let Err(e) = made {
            phantom_stub_runtime::nvidia(|| unsafe { (f.layout_destroy)(p) });
            return Err(e);
        }
    }
    Ok(p)
}

/// Makes `o.desc` for `compute` and asks the heuristic for one algorithm; `None` if it has none.
fn try_compute(f: &Fns, h: Ptr, m: &Matmul, compute: c_int, o: &mut Objects) -> Result<Option<Algo>, NonZeroU32> {
    let what = "cublasLtMatmulDescSetAttribute";
    let mut desc: Ptr = std::ptr::null_mut();
    check("cublasLtMatmulDescCreate", phantom_stub_runtime::nvidia(|| unsafe { (f.matmul_desc_create)(&mut desc, compute, m.scale) }))?;
    o.desc = desc;
    set(what, f.matmul_desc_set, o.desc, attr::DESC_TRANSA, m.trans.0)?;
    set(what, f.matmul_desc_set, o.desc, attr::DESC_TRANSB, m.trans.1)?;
    set(what, f.matmul_desc_set, o.desc, attr::DESC_POINTER_MODE, m.pointer_mode)?;
    let [a, b, c] = o.layouts;
    let mut result = HeuristicResult::default();
    let mut count: c_int = 0;
    let s = phantom_stub_runtime::nvidia(|| unsafe { (f.heuristic)(h, o.desc, a, b, c, c, o.pref, 1, (&mut result as *mut HeuristicResult).cast(), &mut count) });
    if s == code::NOT_SUPPORTED as c_int {
        return Ok(None); // "no heuristic function available for the current configuration"
    }
    check("cublasLtMatmulAlgoGetHeuristic", s)?;
    Ok((count > 0 && result.state == 0).then_some(result.algo))
}

/// Makes the objects of `m`'s plan; `None` (everything destroyed) where the heuristic has no algorithm.
fn make(f: &Fns, h: Ptr, m: &Matmul) -> Result<Option<Plan>, NonZeroU32> {
    let null = std::ptr::null_mut();
    let mut o = Objects { f, desc: null, layouts: [null; 3], pref: null };
    for (i, l) in [&m.a, &m.b, &m.c].into_iter().enumerate() {
        o.layouts[i] = make_layout(f, l)?;
    }
    let mut pref: Ptr = null;
    check("cublasLtMatmulPreferenceCreate", phantom_stub_runtime::nvidia(|| unsafe { (f.pref_create)(&mut pref) }))?;
    o.pref = pref;
    let what = "cublasLtMatmulPreferenceSetAttribute";
    set(what, f.pref_set, o.pref, attr::PREF_MAX_WORKSPACE_BYTES, m.workspace as u64)?;
    set(what, f.pref_set, o.pref, attr::PREF_REDUCTION_SCHEME_MASK, m.reductions)?;
    for (i, align) in [m.alignment[0], m.alignment[1], m.alignment[2], m.alignment[2]].into_iter().enumerate() {
        set(what, f.pref_set, o.pref, attr::PREF_MIN_ALIGNMENT_A_BYTES + i as c_int, align)?;
    }
    for compute in std::iter::once(m.compute).chain(m.fallback) {
        if let Some(algo) = try_compute(f, h, m, compute, &mut o)? {
            let [a, b, c] = o.layouts;
            let plan = Plan { desc: o.desc as usize, a: a as usize, b: b as usize, c: c as usize, algo };
            // Kept: only the preference is destroyed with `o`.
            (o.desc, o.layouts) = (null, [null; 3]);
            return Ok(Some(plan));
        }
        phantom_stub_runtime::nvidia(|| unsafe { (f.matmul_desc_destroy)(o.desc) });
        o.desc = null;
    }
    Ok(None)
}

/// The plan of `m`, made on first use. A GEMM the heuristic has no algorithm for is `CUBLAS_STATUS_NOT_SUPPORTED`,
/// logged once (`function` and `key` name it); a failing NVIDIA call returns its status (not kept: the next call
/// tries again); NVIDIA's library missing or its `cublasLtCreate` failing is `NOT_INITIALIZED`.
pub(super) fn plan(m: &Matmul, function: &str, key: &str) -> Result<Plan, NonZeroU32> {
    static PLANS: Mutex<BTreeMap<Matmul, Option<Plan>>> = Mutex::new(BTreeMap::new());
    let mut plans = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    let made = match plans.get(m) {
        Some(kept) => *kept,
        None => {
            let made = make(lib()?, handle()?, m)?;
            if made.is_none() {
                log(&format!(
                    "{function}: NVIDIA's cuBLASLt has no algorithm for this GEMM ({key}; {m:?}): \
                     CUBLAS_STATUS_NOT_SUPPORTED"
                ));
            }
            plans.insert(m.clone(), made);
            made
        }
    };
    made.ok_or(status(code::NOT_SUPPORTED))
}

/// The application's operands, as it passed them (device addresses, or host ones for alpha and beta under the
/// host pointer mode).
pub(super) struct Operands {
    pub alpha: CPtr,
    pub a: CPtr,
    pub b: CPtr,
    pub beta: CPtr,
    pub c: Ptr,
}

impl Operands {
    /// [`alignment`] of A, B and C.
    pub fn alignment(&self) -> [u32; 3] {
        [alignment(self.a as usize), alignment(self.b as usize), alignment(self.c as usize)]
    }
}

/// Queues the GEMM of `plan` on the real stream `stream`: `cublasLtMatmul(handle, desc, alpha, A, Adesc, B, Bdesc,
/// beta, C, Cdesc, C, Cdesc, &algo, workspace, size, stream)`. NVIDIA's status, not logged here.
pub(super) fn run(plan: &Plan, x: &Operands, workspace: (usize, usize), stream: Ptr) -> c_int {
    let (f, h) = match (lib(), handle()) {
        (Ok(f), Ok(h)) => (f, h),
        (Err(e), _) | (_, Err(e)) => return e.get() as c_int,
    };
    let (desc, a, b, c) = (plan.desc as Ptr, plan.a as Ptr, plan.b as Ptr, plan.c as Ptr);
    let (ws, ws_size) = (workspace.0 as Ptr, workspace.1);
    phantom_stub_runtime::nvidia_queue(|| unsafe { (f.matmul)(h, desc, x.alpha, x.a, a, x.b, b, x.beta, x.c, c, x.c, c, (&plan.algo as *const Algo).cast(), ws, ws_size, stream) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sgemm(math_mode: c_int) -> KeyArgs {
        KeyArgs {
            function: "sgemm",
            ops: (OP_N, OP_N),
            mnk: (4096, 2048, 1024),
            batch: 1,
            types: (dtype::R_32F, dtype::R_32F, dtype::R_32F),
            lds: (4096, 1024, 4096),
            strides: None,
            compute: compute::F32,
            math_mode,
            algo: -1,
        }
    }

    fn gemm_ex(types: (c_int, c_int, c_int), compute: c_int, math_mode: c_int) -> KeyArgs {
        KeyArgs { function: "gemmEx", types, compute, ..sgemm(math_mode) }
    }

    /// `CUBLAS_DEFAULT_MATH`.
    const DEFAULT: c_int = 0;
    const F32: (c_int, c_int, c_int) = (dtype::R_32F, dtype::R_32F, dtype::R_32F);
    const BF16: (c_int, c_int, c_int) = (dtype::R_16BF, dtype::R_16BF, dtype::R_16BF);
    const F16: (c_int, c_int, c_int) = (dtype::R_16F, dtype::R_16F, dtype::R_16F);
    const F64: (c_int, c_int, c_int) = (dtype::R_64F, dtype::R_64F, dtype::R_64F);

    #[test]
    fn compute_types() {
        // cublasSgemm: 32F (68), TF32 (77) when the math mode allows it, whatever the flag bits.
        assert_eq!(lt_compute(&sgemm(DEFAULT)), (68, None));
        assert_eq!(lt_compute(&sgemm(math::TF32_TENSOR_OP)), (77, Some(68)));
        let tf32_strict = math::TF32_TENSOR_OP | math::DISALLOW_REDUCED_PRECISION_REDUCTION;
        assert_eq!(lt_compute(&sgemm(tf32_strict)), (77, Some(68)));
        assert_eq!(lt_compute(&sgemm(math::TENSOR_OP)), (74, Some(68)));
        assert_eq!(lt_compute(&sgemm(math::PEDANTIC)), (69, None));
        assert_eq!(lt_compute(&sgemm(math::FP32_EMULATED_BF16X9)), (78, Some(68)));
        assert_eq!(lt_compute(&sgemm(math::DISALLOW_REDUCED_PRECISION_REDUCTION)), (68, None));

        // cublasGemmEx: as given; TF32 only for a single-precision GEMM (f32 A and B, 32F).
        assert_eq!(lt_compute(&gemm_ex(BF16, compute::F32, math::TF32_TENSOR_OP)), (68, None));
        assert_eq!(lt_compute(&gemm_ex(F32, compute::F32, math::TF32_TENSOR_OP)), (77, Some(68)));
        assert_eq!(lt_compute(&gemm_ex(F32, compute::F32, math::PEDANTIC)), (68, None));
        assert_eq!(lt_compute(&gemm_ex(F32, compute::F32_FAST_BF16, DEFAULT)), (75, None));
        assert_eq!(lt_compute(&gemm_ex(F16, compute::F16, math::TF32_TENSOR_OP)), (64, None));
        assert_eq!(lt_compute(&gemm_ex(F64, compute::F64, math::FP64_EMULATED_FIXEDPOINT)), (79, Some(70)));
        assert_eq!(lt_compute(&gemm_ex(F64, compute::F64, DEFAULT)), (70, None));

        // Legacy cudaDataType compute types (normalized before: super::compute_type) then the same rules.
        let legacy = |c, mode| lt_compute(&gemm_ex(F32, super::super::compute_type(c, mode), mode));
        assert_eq!(legacy(dtype::R_32F, DEFAULT), (68, None));
        assert_eq!(legacy(dtype::R_32F, math::PEDANTIC), (69, None));
        assert_eq!(legacy(dtype::R_32F, math::TF32_TENSOR_OP), (77, Some(68)));
        assert_eq!(super::super::compute_type(dtype::R_16F, DEFAULT), 64);
        assert_eq!(super::super::compute_type(dtype::R_64F, math::PEDANTIC), 71);
        assert_eq!(super::super::compute_type(dtype::R_32I, DEFAULT), 72);
        assert_eq!(super::super::compute_type(compute::F32_FAST_16F, math::PEDANTIC), 74);

        // Scale types: R_16F = 2, R_32F = 0, R_64F = 1, R_32I = 10.
        let scales: Vec<_> = [64, 65, 68, 69, 74, 75, 77, 78, 70, 71, 79, 72, 73, 0, 76].map(scale_type).into();
        let f16 = Some(2);
        let f32 = Some(0);
        let f64 = Some(1);
        let i32 = Some(10);
        assert_eq!(scales, [f16, f16, f32, f32, f32, f32, f32, f32, f64, f64, f64, i32, i32, None, None]);
    }

    /// cublasGemmStridedBatchedEx(T, N, m = 128, n = 256, k = 64, bf16, lda = 64, ldb = 64, ldc = 128, strides
    /// 8192/16384/32768, batch 12), device pointer mode, a 32 MiB workspace, the flag disallowing reduced-precision
    /// reductions.
    #[test]
    fn strided_batched_transposed_layouts() {
        let x = KeyArgs {
            function: "gemmStridedBatchedEx",
            ops: (OP_T, OP_N),
            mnk: (128, 256, 64),
            batch: 12,
            types: BF16,
            lds: (64, 64, 128),
            strides: Some((8192, 16384, 32768)),
            compute: compute::F32,
            math_mode: math::DISALLOW_REDUCED_PRECISION_REDUCTION,
            algo: -1,
        };
        let got = matmul(&x, 1, 32 << 20, [256, 16, 8]).unwrap();
        let bf16 = dtype::R_16BF;
        assert_eq!(
            got,
            Matmul {
                compute: 68,
                fallback: None,
                scale: dtype::R_32F,
                trans: (OP_T, OP_N),
                pointer_mode: 1,
                a: Layout { dtype: bf16, rows: 64, cols: 128, ld: 64, batch: Some((12, 8192)) },
                b: Layout { dtype: bf16, rows: 64, cols: 256, ld: 64, batch: Some((12, 16384)) },
                c: Layout { dtype: bf16, rows: 128, cols: 256, ld: 128, batch: Some((12, 32768)) },
                workspace: 32 << 20,
                reductions: 2,
                alignment: [256, 16, 8],
            }
        );

        // Not strided: no batch attributes. For real data CUBLAS_OP_C is a transpose, CUBLAS_OP_CONJG none.
        let x = KeyArgs { function: "gemmEx", ops: (OP_C, 3), strides: None, batch: 1, math_mode: 0, ..x };
        let got = matmul(&x, 0, 0, [256; 3]).unwrap();
        assert_eq!(got.trans, (OP_T, OP_N));
        assert_eq!(got.a, Layout { dtype: bf16, rows: 64, cols: 128, ld: 64, batch: None });
        assert_eq!(got.b, Layout { dtype: bf16, rows: 64, cols: 256, ld: 64, batch: None });
        assert_eq!((got.reductions, got.workspace, got.pointer_mode), (7, 0, 0));
    }

    #[test]
    fn alignments() {
        assert_eq!(alignment(0), 256);
        assert_eq!(alignment(0x7f00_0000_1000), 256);
        assert_eq!(alignment(0x7f00_0000_1080), 128);
        assert_eq!(alignment(0x7f00_0000_1008), 8);
        assert_eq!(alignment(0x7f00_0000_1002), 2);
        let x = Operands {
            alpha: std::ptr::null(),
            a: 0x1000 as CPtr,
            b: 0x1010 as CPtr,
            beta: std::ptr::null(),
            c: 0x1004 as Ptr,
        };
        assert_eq!(x.alignment(), [256, 16, 4]);
    }
}
