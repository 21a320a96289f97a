//! The implemented part of Phantom's `libcublasLt.so.13` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries"). Every other export stays a stub
//! returning `CUBLAS_STATUS_NOT_SUPPORTED`.
//!
//! What torch 2.11 calls (calibration/torch/h100-sxm-80gb/cublaslt.log.gz: `addmm` with a bias, i.e. every
//! `nn.Linear` under autocast, goes through `cublasLtMatmul` with `CUBLASLT_EPILOGUE_BIAS`), and what it does here:
//!
//! - **Handles.** `cublasLtCreate` registers a number (`0xb17_0000_0000 + n`, never dereferenced);
//!   `cublasLtDestroy` unregisters it. torch never creates one: it passes its **cuBLAS** handle cast to
//!   `cublasLtHandle_t` (NVIDIA's cuBLAS handle embeds a cuBLASLt context). So a handle is valid if it is a live
//!   cuBLASLt handle or a live handle of the loaded `libcublas.so.13` (asked with `cublasGetMathMode`, found with
//!   `dlopen(RTLD_NOLOAD)` + `dlsym`). NULL, destroyed or foreign: `CUBLAS_STATUS_NOT_INITIALIZED`.
//! - **Descriptors** (matmul, matrix layout, preference). `*Create` allocates a zeroed block of the size of
//!   NVIDIA's opaque struct (so the pointer is real, unique memory) and registers its address with the
//!   descriptor's attributes; `*Destroy` frees it. `*Init_internal` registers the caller's own block (an
//!   `ALLOC_FAILED` if it is smaller than NVIDIA's struct); such entries are never removed (re-initialising the same
//!   address replaces them). Every call looks a descriptor up by address first, so an unknown, destroyed or garbage
//!   pointer is `CUBLAS_STATUS_INVALID_VALUE`, never a dereference. Attributes are stored as bytes by id, against
//!   a table of cublasLt.h 13.1's ids with their C sizes and defaults: an unknown id, a `sizeInBytes` that is not
//!   the attribute's size, or a NULL buffer is `CUBLAS_STATUS_INVALID_VALUE`; `Get` with `sizeInBytes == 0` reports
//!   the size in `*sizeWritten`, as NVIDIA's does.
//! - **Algorithms.** Phantom models one algorithm per problem. A `cublasLtMatmulAlgo_t` (8 × u64) made here holds
//!   [`ALGO_MAGIC`] ("PhntmAlg") in `data[0]` and the `CUBLASLT_ALGO_CONFIG_*` values in `data[1..]`;
//!   `cublasLtMatmulAlgoGetHeuristic` returns one result (state `SUCCESS`, workspace 0 bytes, `wavesCount` 1.0,
//!   algo id 0); `AlgoGetIds` lists id 0; `AlgoInit` accepts any id ≥ 0 (the time does not depend on it);
//!   `AlgoCheck` validates like the heuristic; `AlgoConfigSet/GetAttribute` store the config fields.
//!   `cublasLtMatmul` accepts NULL (NVIDIA's then runs the heuristic itself) or an algo made here.
//! - **`cublasLtMatmul`** computes nothing (device memory holds no data under Phantom). With op(X) the transposed
//!   X when `TRANSA/B` is `T` or `C`: op(A) is m × k, op(B) is k × n, C and D are m × n, and the batch is D's
//!   `BATCH_COUNT` (A's, B's and C's must be 1 or the same). Anything else (a bad transpose, mismatched shapes, a
//!   leading dimension smaller than the rows, or the columns for `CUBLASLT_ORDER_ROW`, a batch count < 1, an
//!   epilogue without its bias or aux pointer) is `CUBLAS_STATUS_INVALID_VALUE`, checked in
//!   `AlgoGetHeuristic` too, as NVIDIA's library does. The precision comes from the compute type and A's type:
//!   `COMPUTE_32F` with fp16 / bf16 / fp8 / fp32 inputs is fp16 / bf16 / fp8 / fp32, `32F_FAST_TF32` (fp32
//!   inputs) is tf32, `32F_FAST_16F` / `_16BF` are fp16 / bf16, `64F` is fp64, `32I` with 8-bit integer inputs
//!   runs at the fp8 rate (Hopper's int8 and fp8 tensor-core peaks are equal); other combinations (complex types,
//!   fp4, the emulated compute types) are `CUBLAS_STATUS_NOT_SUPPORTED`. The GEMM is timed by the roofline model of
//!   `sim_core::blas` on the GPU of `stream` (`phantom_stub_runtime::gemm_ns`) and queued there as one kernel
//!   named `cublasLtMatmul`. An empty output (m, n or batch 0) queues nothing.
//! - **Keys, tables and profiling** (docs/profiling.md, "Library calls"). Every checked matmul has a key, one line
//!   of text built from the descriptors alone ([`matmul_key`]), so it is the same in every mode. A process that
//!   does not execute asks `phantom_stub_runtime::call_time(key)` first (an executing process's measurement, or a
//!   kernel-time table's `call` record) and uses the model only without one. A process that **executes** on the
//!   real GPU runs the call with NVIDIA's library (`real.rs`): descriptors have real twins, the heuristic and the
//!   `Algo*` functions are NVIDIA's (so the algos the application holds are NVIDIA's bytes), and the matmul runs
//!   on the real stream inside `phantom_stub_runtime::run_call`, which measures it; the measured time is queued.
//! - **Epilogues.** A fused epilogue costs what it moves; its arithmetic is free (it is elementwise on data the
//!   kernel already holds). The model's memory term counts A, B and D (sim-core/src/blas.rs); an epilogue that
//!   reads or writes a full m × n auxiliary matrix (`GELU_AUX`, `GELU_AUX_BIAS` write the GELU input; `DGELU`,
//!   `DGELU_BGRAD` read it) adds its element size (`EPILOGUE_AUX_DATA_TYPE`, default D's type) to D's bytes per
//!   element (`ShimGemm::out_bytes`), exactly its traffic. Vectors (the bias read, a bias gradient written: m or n
//!   elements against D's m · n) and the ReLU bit masks (1 bit per element, 1/16 of a bf16 D) are not counted.
//!   So a bias epilogue takes the plain GEMM's time, and an aux epilogue matters only where the GEMM is
//!   memory-bound.
//! - **Misc.** `cublasLtGetVersion` (130100), `cublasLtGetCudartVersion` (13000: the pinned 13.1.0.3 wheel ships in
//!   the CUDA 13.0.2 toolkit), `cublasLtGetProperty`, `cublasLtGetStatusName/String`, the heuristics cache capacity
//!   (stored), and the logger functions (accepted and ignored: Phantom logs through `PHANTOM_LOG`).
//!
//! Nothing here logs except a failure to reach Phantom's runtime or, in an executing process, NVIDIA's library
//! (or a real call that fails): application errors are statuses, as NVIDIA's.

// The C API is raw pointers: the generated exports pass `buf`/array pointers through, and these functions read or
// write exactly the bytes the cuBLASLt contract gives them (`sizeInBytes`, one result).
#![allow(clippy::not_unsafe_ptr_arg_deref, non_camel_case_types, non_snake_case)]

pub use phantom_stub_common::StaticStr;
use phantom_stub_common::Status;
use phantom_stub_runtime::words::{compute_name, dtype_name, op_name};
use sim_core::shim_abi::{self as abi, ShimGemm};
use std::collections::{BTreeMap, BTreeSet};
// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use std::ffi::{c_int, c_void, CStr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

mod real;

pub type cublasLtHandle_t = *mut c_void;
pub type cublasLtMatmulDesc_t = *mut c_void;
pub type cublasLtMatrixLayout_t = *mut c_void;
pub type cublasLtMatmulPreference_t = *mut c_void;
pub type cudaStream_t = *mut c_void;

/// `cublasLtMatmulAlgo_t`: NVIDIA's semi-opaque 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct cublasLtMatmulAlgo_t {
    pub data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t` (cublasLt.h): 96 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cublasLtMatmulHeuristicResult_t {
    pub algo: cublasLtMatmulAlgo_t,
    pub workspaceSize: usize,
    pub state: c_int,
    pub wavesCount: f32,
    pub reserved: [c_int; 4],
}

const _: () = assert!(std::mem::size_of::<cublasLtMatmulHeuristicResult_t>() == 96);

/// `cublasStatus_t` values this module returns (cublas_api.h).
mod code {
    pub const NOT_INITIALIZED: u32 = 1;
    pub const ALLOC_FAILED: u32 = 3;
    pub const INVALID_VALUE: u32 = 7;
    pub const EXECUTION_FAILED: u32 = 13;
    pub const NOT_SUPPORTED: u32 = 15;
}

fn status(code: u32) -> NonZeroU32 {
    NonZeroU32::new(code).expect("an error code is nonzero")
}

fn err<T>(code: u32) -> Result<T, NonZeroU32> {
    Err(status(code))
}

/// `CUBLAS_VERSION` of NVIDIA's 13.1.0.3 (`major·10000 + minor·100 + patch`).
const VERSION: usize = 130100;
/// The CUDA runtime version the pinned wheel was built for (toolkit 13.0.2).
const CUDART_VERSION: usize = 13000;

/// `data[0]` of every algo made here ("PhntmAlg" in ASCII).
pub const ALGO_MAGIC: u64 = u64::from_be_bytes(*b"PhntmAlg");

/// `cudaDataType_t` values (library_types.h).
mod dtype {
    pub const R_32F: i64 = 0;
    pub const R_64F: i64 = 1;
    pub const R_16F: i64 = 2;
    pub const R_8I: i64 = 3;
    pub const R_8U: i64 = 8;
    pub const R_32I: i64 = 10;
    pub const R_32U: i64 = 12;
    pub const R_16BF: i64 = 14;
    pub const R_8F_E4M3: i64 = 28;
    pub const R_8F_E5M2: i64 = 29;
    /// The last `cudaDataType_t` of CUDA 13 (`CUDA_R_4F_E2M1`).
    pub const LAST: i64 = 33;
}

/// Element size of the real types Phantom times; `None` for complex and sub-byte types.
fn dtype_bytes(t: i64) -> Option<u32> {
    use dtype::*;
    match t {
        R_64F => Some(8),
        R_32F | R_32I | R_32U => Some(4),
        R_16F | R_16BF => Some(2),
        R_8I | R_8U | R_8F_E4M3 | R_8F_E5M2 => Some(1),
        _ => None,
    }
}

/// `cublasComputeType_t` values (cublas_api.h).
const COMPUTE_TYPES: [i64; 13] = [64, 65, 68, 69, 70, 71, 72, 73, 74, 75, 77, 78, 79];

/// The precision a GEMM runs in, from `cublasComputeType_t` and A's type; `None`: not supported.
fn precision(compute: i64, a_type: i64) -> Option<u32> {
    use dtype::*;
    let by_input = match a_type {
        R_16F => Some(abi::PREC_FP16),
        R_16BF => Some(abi::PREC_BF16),
        R_8F_E4M3 | R_8F_E5M2 => Some(abi::PREC_FP8),
        R_32F => Some(abi::PREC_FP32),
        _ => None,
    };
    match compute {
        64 | 65 => (a_type == R_16F).then_some(abi::PREC_FP16), // COMPUTE_16F(_PEDANTIC)
        68 | 69 => by_input,                                    // COMPUTE_32F(_PEDANTIC)
        70 | 71 => (a_type == R_64F).then_some(abi::PREC_FP64), // COMPUTE_64F(_PEDANTIC)
        // COMPUTE_32I(_PEDANTIC): int8 tensor cores, at Hopper's fp8 rate (the same peak).
        72 | 73 => matches!(a_type, R_8I | R_8U).then_some(abi::PREC_FP8),
        // 32F_FAST_16F / _16BF / _TF32 down-convert fp32 inputs; 16-bit inputs run at their own rate.
        74 if a_type == R_32F => Some(abi::PREC_FP16),
        75 if a_type == R_32F => Some(abi::PREC_BF16),
        77 if a_type == R_32F => Some(abi::PREC_TF32),
        74 | 75 | 77 => by_input,
        _ => None, // 78 / 79: the emulated compute types
    }
}

/// `cublasLtEpilogue_t` values (cublasLt.h) and what each needs and moves.
mod epilogue {
    pub const DEFAULT: i64 = 1;
    pub const RELU: i64 = 2;
    pub const RELU_AUX: i64 = 130;
    pub const BIAS: i64 = 4;
    pub const RELU_BIAS: i64 = 6;
    pub const RELU_AUX_BIAS: i64 = 134;
    pub const DRELU: i64 = 136;
    pub const DRELU_BGRAD: i64 = 152;
    pub const GELU: i64 = 32;
    pub const GELU_AUX: i64 = 160;
    pub const GELU_BIAS: i64 = 36;
    pub const GELU_AUX_BIAS: i64 = 164;
    pub const DGELU: i64 = 192;
    pub const DGELU_BGRAD: i64 = 208;
    pub const BGRADA: i64 = 256;
    pub const BGRADB: i64 = 512;

    /// (uses the bias pointer, uses the aux pointer, moves a full m × n aux matrix), or `None`: not an epilogue.
    pub fn needs(e: i64) -> Option<(bool, bool, bool)> {
        Some(match e {
            DEFAULT | RELU | GELU => (false, false, false),
            BIAS | RELU_BIAS | GELU_BIAS | BGRADA | BGRADB => (true, false, false),
            RELU_AUX | DRELU => (false, true, false),
            RELU_AUX_BIAS | DRELU_BGRAD => (true, true, false),
            GELU_AUX | DGELU => (false, true, true),
            GELU_AUX_BIAS | DGELU_BGRAD => (true, true, true),
            _ => return None,
        })
    }
}

/// One attribute of a descriptor: its id, its C size in bytes, its default value.
struct Spec {
    id: u32,
    size: usize,
    default: i64,
}

const fn s(id: u32, size: usize, default: i64) -> Spec {
    Spec { id, size, default }
}

/// `cublasLtMatmulDescAttributes_t` of cublasLt.h 13.1 (27–30, the removed atomic-sync ones, are not in 13.x).
const MATMUL_ATTRS: &[Spec] = &[
    s(0, 4, 68),  // COMPUTE_TYPE (set by Create)
    s(1, 4, 0),   // SCALE_TYPE (set by Create)
    s(2, 4, 0),   // POINTER_MODE
    s(3, 4, 0),   // TRANSA
    s(4, 4, 0),   // TRANSB
    s(5, 4, 0),   // TRANSC
    s(6, 4, 2),   // FILL_MODE: CUBLAS_FILL_MODE_FULL
    s(7, 4, 1),   // EPILOGUE: DEFAULT
    s(8, 8, 0),   // BIAS_POINTER
    s(10, 8, 0),  // BIAS_BATCH_STRIDE
    s(11, 8, 0),  // EPILOGUE_AUX_POINTER
    s(12, 8, 0),  // EPILOGUE_AUX_LD
    s(13, 8, 0),  // EPILOGUE_AUX_BATCH_STRIDE
    s(14, 8, 0),  // ALPHA_VECTOR_BATCH_STRIDE
    s(15, 4, 0),  // SM_COUNT_TARGET
    s(17, 8, 0),  // A_SCALE_POINTER
    s(18, 8, 0),  // B_SCALE_POINTER
    s(19, 8, 0),  // C_SCALE_POINTER
    s(20, 8, 0),  // D_SCALE_POINTER
    s(21, 8, 0),  // AMAX_D_POINTER
    s(22, 4, -1), // EPILOGUE_AUX_DATA_TYPE
    s(23, 8, 0),  // EPILOGUE_AUX_SCALE_POINTER
    s(24, 8, 0),  // EPILOGUE_AUX_AMAX_POINTER
    s(25, 1, 0),  // FAST_ACCUM (int8_t)
    s(26, 4, -1), // BIAS_DATA_TYPE
    s(31, 4, 0),  // A_SCALE_MODE
    s(32, 4, 0),  // B_SCALE_MODE
    s(33, 4, 0),  // C_SCALE_MODE
    s(34, 4, 0),  // D_SCALE_MODE
    s(35, 4, 0),  // EPILOGUE_AUX_SCALE_MODE
    s(36, 8, 0),  // D_OUT_SCALE_POINTER
    s(37, 4, 0),  // D_OUT_SCALE_MODE
    s(38, 8, 0),  // EMULATION_DESCRIPTOR
];

mod attr {
    pub const COMPUTE_TYPE: u32 = 0;
    pub const SCALE_TYPE: u32 = 1;
    pub const POINTER_MODE: u32 = 2;
    pub const TRANSA: u32 = 3;
    pub const TRANSB: u32 = 4;
    pub const EPILOGUE: u32 = 7;
    pub const BIAS_POINTER: u32 = 8;
    pub const EPILOGUE_AUX_POINTER: u32 = 11;
    pub const EPILOGUE_AUX_LD: u32 = 12;
    pub const SM_COUNT_TARGET: u32 = 15;
    pub const AMAX_D_POINTER: u32 = 21;
    pub const EPILOGUE_AUX_DATA_TYPE: u32 = 22;
    pub const FAST_ACCUM: u32 = 25;
    pub const BIAS_DATA_TYPE: u32 = 26;

    pub const LAYOUT_TYPE: u32 = 0;
    pub const LAYOUT_ORDER: u32 = 1;
    pub const LAYOUT_ROWS: u32 = 2;
    pub const LAYOUT_COLS: u32 = 3;
    pub const LAYOUT_LD: u32 = 4;
    pub const LAYOUT_BATCH_COUNT: u32 = 5;
    pub const LAYOUT_STRIDED_BATCH_OFFSET: u32 = 6;
}

/// `cublasLtMatrixLayoutAttribute_t` of cublasLt.h 13.1.
const LAYOUT_ATTRS: &[Spec] = &[
    s(0, 4, 0), // TYPE (set by Create)
    s(1, 4, 0), // ORDER: CUBLASLT_ORDER_COL
    s(2, 8, 0), // ROWS (set by Create)
    s(3, 8, 0), // COLS (set by Create)
    s(4, 8, 0), // LD (set by Create)
    s(5, 4, 1), // BATCH_COUNT
    s(6, 8, 0), // STRIDED_BATCH_OFFSET
    s(7, 8, 0), // PLANE_OFFSET
    s(8, 4, 0), // BATCH_MODE: STRIDED
];

/// `cublasLtMatmulPreferenceAttributes_t` of cublasLt.h 13.1.
const PREF_ATTRS: &[Spec] = &[
    s(0, 4, 0),   // SEARCH_MODE: BEST_FIT
    s(1, 8, 0),   // MAX_WORKSPACE_BYTES
    s(3, 4, 7),   // REDUCTION_SCHEME_MASK: all
    s(5, 4, 256), // MIN_ALIGNMENT_A_BYTES
    s(6, 4, 256), // MIN_ALIGNMENT_B_BYTES
    s(7, 4, 256), // MIN_ALIGNMENT_C_BYTES
    s(8, 4, 256), // MIN_ALIGNMENT_D_BYTES
    s(9, 4, 0),   // MAX_WAVES_COUNT (float, 0.0f)
    s(12, 8, -1), // IMPL_MASK: everything
];

/// `cublasLtMatmulAlgoConfigAttributes_t`: (size, default), stored as u32 slot `id` of `data[1..]`.
const ALGO_CONFIG: [(usize, u32); 9] = [
    (4, 0), // ID (read-only)
    (4, 0), // TILE_ID
    (4, 1), // SPLITK_NUM
    (4, 0), // REDUCTION_SCHEME
    (4, 0), // CTA_SWIZZLING
    (4, 0), // CUSTOM_OPTION
    (4, 0), // STAGES_ID
    (2, 0), // INNER_SHAPE_ID (uint16_t)
    (2, 0), // CLUSTER_SHAPE_ID (uint16_t)
];

/// The three kinds of descriptor.
#[derive(Clone, Copy)]
enum Kind {
    Matmul,
    Layout,
    Pref,
}

impl Kind {
    fn table(self) -> &'static [Spec] {
        match self {
            Kind::Matmul => MATMUL_ATTRS,
            Kind::Layout => LAYOUT_ATTRS,
            Kind::Pref => PREF_ATTRS,
        }
    }

    /// Size of NVIDIA's opaque struct, in u64 words.
    fn words(self) -> usize {
        match self {
            Kind::Matmul => 32,
            Kind::Layout | Kind::Pref => 8,
        }
    }
}

/// A live descriptor: its attributes (raw little-endian bytes by id), the block its address names when this
/// library allocated it, and in an executing process its twin made by NVIDIA's library ([`real`]; 0: none).
struct Desc {
    values: BTreeMap<u32, [u8; 8]>,
    _block: Option<Box<[u64]>>,
    twin: usize,
}

impl Desc {
    fn raw(&self, spec: &Spec) -> [u8; 8] {
        self.values.get(&spec.id).copied().unwrap_or_else(|| spec.default.to_le_bytes())
    }

    /// The attribute's value, sign-extended from its size.
    fn get(&self, kind: Kind, id: u32) -> i64 {
        let spec = kind.table().iter().find(|s| s.id == id).expect("attribute in the table");
        let b = self.raw(spec);
        match spec.size {
            1 => b[0] as i8 as i64,
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes(b),
        }
    }

    fn put(&mut self, id: u32, value: i64) {
        self.values.insert(id, value.to_le_bytes());
    }
}

struct State {
    next_handle: usize,
    handles: BTreeSet<usize>,
    matmul: BTreeMap<usize, Desc>,
    layouts: BTreeMap<usize, Desc>,
    prefs: BTreeMap<usize, Desc>,
    cache_capacity: usize,
}

impl State {
    fn descs(&mut self, kind: Kind) -> &mut BTreeMap<usize, Desc> {
        match kind {
            Kind::Matmul => &mut self.matmul,
            Kind::Layout => &mut self.layouts,
            Kind::Pref => &mut self.prefs,
        }
    }

    fn desc(&mut self, kind: Kind, p: *mut c_void) -> Result<&mut Desc, NonZeroU32> {
        self.descs(kind).get_mut(&(p as usize)).ok_or(status(code::INVALID_VALUE))
    }

    /// The real twin of a live descriptor (executing process).
    fn twin(&mut self, kind: Kind, p: *mut c_void) -> Result<*mut c_void, NonZeroU32> {
        match self.desc(kind, p)?.twin {
            0 => {
                log("a descriptor has no twin in NVIDIA's cuBLASLt");
                err(code::NOT_INITIALIZED)
            }
            t => Ok(t as *mut c_void),
        }
    }
}

static STATE: Mutex<State> = Mutex::new(State {
    next_handle: 0,
    handles: BTreeSet::new(),
    matmul: BTreeMap::new(),
    layouts: BTreeMap::new(),
    prefs: BTreeMap::new(),
    // NVIDIA's default heuristics cache capacity.
    cache_capacity: 8192,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn log(msg: &str) {
    phantom_stub_runtime::log("libcublasLt.so.13", msg);
}

// ---------------------------------------------------------------------------------------------------------------
// Handles

extern "C" {
    fn dlopen(filename: *const std::ffi::c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
}
const RTLD_NOW: c_int = 2;
const RTLD_NOLOAD: c_int = 4;

/// Whether `h` is a live handle of the loaded `libcublas.so.13` (torch passes its cuBLAS handle as the cuBLASLt
/// one). The function is looked up until found (cuBLAS may be loaded after the first call here).
fn is_cublas_handle(h: *mut c_void) -> bool {
    static GET_MATH_MODE: AtomicUsize = AtomicUsize::new(0);
    let mut f = GET_MATH_MODE.load(Ordering::Acquire);
    if f == 0 {
        f = unsafe {
            let lib = dlopen(c"libcublas.so.13".as_ptr(), RTLD_NOLOAD | RTLD_NOW);
            if lib.is_null() {
                return false;
            }
            dlsym(lib, c"cublasGetMathMode".as_ptr()) as usize
        };
        if f == 0 {
            return false;
        }
        GET_MATH_MODE.store(f, Ordering::Release);
    }
    type GetMathMode = unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int;
    let get = unsafe { std::mem::transmute::<usize, GetMathMode>(f) };
    let mut mode: c_int = 0;
    unsafe { get(h, &mut mode) == 0 }
}

fn check_handle(h: cublasLtHandle_t) -> Status {
    if h.is_null() {
        return err(code::NOT_INITIALIZED);
    }
    let ours = state().handles.contains(&(h as usize));
    if ours || is_cublas_handle(h) {
        return Ok(());
    }
    err(code::NOT_INITIALIZED)
}

pub fn cublasLtCreate(handle: &mut cublasLtHandle_t) -> Status {
    let mut st = state();
    st.next_handle += 1;
    // Never null, never a mapped address, distinct from libcublas's 0xb1a5_… handles.
    let h = 0xb17_0000_0000 + st.next_handle;
    st.handles.insert(h);
    *handle = h as cublasLtHandle_t;
    Ok(())
}

pub fn cublasLtDestroy(handle: cublasLtHandle_t) -> Status {
    match state().handles.remove(&(handle as usize)) {
        true => Ok(()),
        false => err(code::NOT_INITIALIZED),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Library information

pub fn cublasLtGetVersion() -> usize {
    VERSION
}

pub fn cublasLtGetCudartVersion() -> usize {
    CUDART_VERSION
}

pub fn cublasLtGetProperty(kind: c_int, value: &mut c_int) -> Status {
    *value = match kind {
        0 => 13, // MAJOR_VERSION
        1 => 1,  // MINOR_VERSION
        2 => 0,  // PATCH_LEVEL
        _ => return err(code::INVALID_VALUE),
    };
    Ok(())
}

/// `(status, name, description)` of every `cublasStatus_t`.
const STATUSES: [(c_int, &CStr, &CStr); 10] = [
    (0, c"CUBLAS_STATUS_SUCCESS", c"the operation completed"),
    (1, c"CUBLAS_STATUS_NOT_INITIALIZED", c"the handle is not initialized"),
    (3, c"CUBLAS_STATUS_ALLOC_FAILED", c"allocating a resource failed"),
    (7, c"CUBLAS_STATUS_INVALID_VALUE", c"an argument or a configuration is invalid"),
    (8, c"CUBLAS_STATUS_ARCH_MISMATCH", c"the device lacks a feature the operation needs"),
    (11, c"CUBLAS_STATUS_MAPPING_ERROR", c"accessing GPU memory failed"),
    (13, c"CUBLAS_STATUS_EXECUTION_FAILED", c"the GPU program failed to run"),
    (14, c"CUBLAS_STATUS_INTERNAL_ERROR", c"an internal operation failed"),
    (15, c"CUBLAS_STATUS_NOT_SUPPORTED", c"the operation is not supported"),
    (16, c"CUBLAS_STATUS_LICENSE_ERROR", c"the operation needs a license"),
];

pub fn cublasLtGetStatusName(status: c_int) -> StaticStr {
    let name = STATUSES.iter().find(|s| s.0 == status).map_or(c"CUBLAS_STATUS_UNKNOWN", |s| s.1);
    StaticStr::new(name)
}

pub fn cublasLtGetStatusString(status: c_int) -> StaticStr {
    let text = STATUSES.iter().find(|s| s.0 == status).map_or(c"unknown cuBLAS status", |s| s.2);
    StaticStr::new(text)
}

pub fn cublasLtHeuristicsCacheGetCapacity(capacity: &mut usize) -> Status {
    *capacity = state().cache_capacity;
    Ok(())
}

pub fn cublasLtHeuristicsCacheSetCapacity(capacity: usize) -> Status {
    state().cache_capacity = capacity;
    Ok(())
}

// The logger: accepted and ignored (Phantom logs through PHANTOM_LOG).

pub fn cublasLtLoggerSetCallback(_callback: *mut c_void) -> Status {
    Ok(())
}

pub fn cublasLtLoggerSetFile(_file: *mut c_void) -> Status {
    Ok(())
}

pub fn cublasLtLoggerOpenFile(_path: &CStr) -> Status {
    Ok(())
}

pub fn cublasLtLoggerSetLevel(level: c_int) -> Status {
    if !(0..=5).contains(&level) {
        return err(code::INVALID_VALUE);
    }
    Ok(())
}

pub fn cublasLtLoggerSetMask(_mask: c_int) -> Status {
    Ok(())
}

pub fn cublasLtLoggerForceDisable() -> Status {
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Descriptors

/// Whether this process executes on the real GPU, where every call also goes to NVIDIA's library ([`real`]).
fn executing() -> bool {
    phantom_stub_runtime::profile_mode() == phantom_stub_runtime::Profile::Execute
}

/// Makes a descriptor's twin in NVIDIA's library with `create` (executing process), or 0.
fn make_twin(what: &str, create: impl FnOnce(&real::Fns, &mut *mut c_void) -> c_int) -> Result<usize, NonZeroU32> {
    if !executing() {
        return Ok(0);
    }
    let f = real::lib()?;
    let mut twin: *mut c_void = std::ptr::null_mut();
    real::check(what, create(f, &mut twin))?;
    Ok(twin as usize)
}

/// Destroys a descriptor's twin (0: none).
fn destroy_twin(kind: Kind, twin: usize) -> Status {
    if twin == 0 {
        return Ok(());
    }
    let f = real::lib()?;
    let t = twin as *mut c_void;
    let (what, s) = match kind {
        Kind::Matmul => ("cublasLtMatmulDescDestroy", phantom_stub_runtime::nvidia(|| unsafe { (f.matmul_desc_destroy)(t) })),
        Kind::Layout => ("cublasLtMatrixLayoutDestroy", phantom_stub_runtime::nvidia(|| unsafe { (f.layout_destroy)(t) })),
        Kind::Pref => ("cublasLtMatmulPreferenceDestroy", phantom_stub_runtime::nvidia(|| unsafe { (f.pref_destroy)(t) })),
    };
    real::check(what, s)
}

/// Registers a new descriptor of `kind` with `init` attributes; `Some(block)`: at the caller's address. In an
/// executing process `twin` makes its twin in NVIDIA's library (`make_twin`) once the arguments are valid.
fn register(
    kind: Kind,
    at: Option<(*mut c_void, usize)>,
    init: &[(u32, i64)],
    twin: impl FnOnce() -> Result<usize, NonZeroU32>,
) -> Result<*mut c_void, NonZeroU32> {
    let mut desc = Desc { values: BTreeMap::new(), _block: None, twin: 0 };
    for &(id, value) in init {
        desc.put(id, value);
    }
    let addr = match at {
        Some((p, size)) => {
            if p.is_null() {
                return err(code::INVALID_VALUE);
            }
            if size < kind.words() * 8 {
                return err(code::ALLOC_FAILED);
            }
            p
        }
        None => {
            let block = vec![0u64; kind.words()].into_boxed_slice();
            let p = block.as_ptr() as *mut c_void;
            desc._block = Some(block);
            p
        }
    };
    desc.twin = twin()?;
    // Re-initialising a caller's block replaces its entry: its old twin goes.
    let old = state().descs(kind).insert(addr as usize, desc);
    if let Some(old) = old {
        destroy_twin(kind, old.twin)?;
    }
    Ok(addr)
}

fn unregister(kind: Kind, p: *mut c_void) -> Status {
    if p.is_null() {
        return Ok(());
    }
    let removed = state().descs(kind).remove(&(p as usize));
    match removed {
        Some(desc) => destroy_twin(kind, desc.twin),
        None => err(code::INVALID_VALUE),
    }
}

fn set_attribute(kind: Kind, p: *mut c_void, id: c_int, buf: *const c_void, size: usize) -> Status {
    let mut st = state();
    let desc = st.desc(kind, p)?;
    let Some(spec) = kind.table().iter().find(|s| s.id as c_int == id) else { return err(code::INVALID_VALUE) };
    if buf.is_null() || size != spec.size {
        return err(code::INVALID_VALUE);
    }
    // The twin gets the same attribute, byte for byte, first: what NVIDIA's library refuses is not stored.
    if desc.twin != 0 {
        let (f, t) = (real::lib()?, desc.twin as *mut c_void);
        let (what, s) = match kind {
            Kind::Matmul => ("cublasLtMatmulDescSetAttribute", phantom_stub_runtime::nvidia(|| unsafe { (f.matmul_desc_set)(t, id, buf, size) })),
            Kind::Layout => ("cublasLtMatrixLayoutSetAttribute", phantom_stub_runtime::nvidia(|| unsafe { (f.layout_set)(t, id, buf, size) })),
            Kind::Pref => ("cublasLtMatmulPreferenceSetAttribute", phantom_stub_runtime::nvidia(|| unsafe { (f.pref_set)(t, id, buf, size) })),
        };
        real::check(what, s)?;
    }
    let mut raw = [0u8; 8];
    unsafe { std::ptr::copy_nonoverlapping(buf as *const u8, raw.as_mut_ptr(), size) };
    // Sign-extend, so that the stored 8 bytes read back as the same value at any width.
    if raw[size - 1] & 0x80 != 0 {
        raw[size..].fill(0xff);
    }
    desc.values.insert(spec.id, raw);
    Ok(())
}

fn get_attribute(
    kind: Kind,
    p: *mut c_void,
    id: c_int,
    buf: *mut c_void,
    size: usize,
    written: Option<&mut usize>,
) -> Status {
    let mut st = state();
    let desc = st.desc(kind, p)?;
    let Some(spec) = kind.table().iter().find(|s| s.id as c_int == id) else { return err(code::INVALID_VALUE) };
    if size == 0 {
        let Some(w) = written else { return err(code::INVALID_VALUE) };
        *w = spec.size;
        return Ok(());
    }
    if buf.is_null() || size != spec.size {
        return err(code::INVALID_VALUE);
    }
    let raw = desc.raw(spec);
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), buf as *mut u8, size) };
    if let Some(w) = written {
        *w = spec.size;
    }
    Ok(())
}

fn matmul_init(compute: c_int, scale: c_int) -> Result<[(u32, i64); 2], NonZeroU32> {
    if !COMPUTE_TYPES.contains(&(compute as i64)) || !(0..=dtype::LAST).contains(&(scale as i64)) {
        return err(code::INVALID_VALUE);
    }
    Ok([(attr::COMPUTE_TYPE, compute as i64), (attr::SCALE_TYPE, scale as i64)])
}

fn matmul_twin(compute: c_int, scale: c_int) -> Result<usize, NonZeroU32> {
    make_twin("cublasLtMatmulDescCreate", |f, t| phantom_stub_runtime::nvidia(|| unsafe { (f.matmul_desc_create)(t, compute, scale) }))
}

pub fn cublasLtMatmulDescCreate(desc: &mut cublasLtMatmulDesc_t, compute: c_int, scale: c_int) -> Status {
    *desc = register(Kind::Matmul, None, &matmul_init(compute, scale)?, || matmul_twin(compute, scale))?;
    Ok(())
}

pub fn cublasLtMatmulDescInit_internal(
    desc: cublasLtMatmulDesc_t,
    size: usize,
    compute: c_int,
    scale: c_int,
) -> Status {
    register(Kind::Matmul, Some((desc, size)), &matmul_init(compute, scale)?, || matmul_twin(compute, scale)).map(|_| ())
}

pub fn cublasLtMatmulDescDestroy(desc: cublasLtMatmulDesc_t) -> Status {
    unregister(Kind::Matmul, desc)
}

pub fn cublasLtMatmulDescSetAttribute(
    desc: cublasLtMatmulDesc_t,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    set_attribute(Kind::Matmul, desc, attr, buf, size)
}

pub fn cublasLtMatmulDescGetAttribute(
    desc: cublasLtMatmulDesc_t,
    attr: c_int,
    buf: *mut c_void,
    size: usize,
    written: Option<&mut usize>,
) -> Status {
    get_attribute(Kind::Matmul, desc, attr, buf, size, written)
}

fn layout_init(dtype: c_int, rows: u64, cols: u64, ld: i64) -> [(u32, i64); 4] {
    [
        (attr::LAYOUT_TYPE, dtype as i64),
        (attr::LAYOUT_ROWS, rows as i64),
        (attr::LAYOUT_COLS, cols as i64),
        (attr::LAYOUT_LD, ld),
    ]
}

fn layout_twin(dtype: c_int, rows: u64, cols: u64, ld: i64) -> Result<usize, NonZeroU32> {
    make_twin("cublasLtMatrixLayoutCreate", |f, t| phantom_stub_runtime::nvidia(|| unsafe { (f.layout_create)(t, dtype, rows, cols, ld) }))
}

pub fn cublasLtMatrixLayoutCreate(
    layout: &mut cublasLtMatrixLayout_t,
    dtype: c_int,
    rows: u64,
    cols: u64,
    ld: i64,
) -> Status {
    *layout = register(Kind::Layout, None, &layout_init(dtype, rows, cols, ld), || layout_twin(dtype, rows, cols, ld))?;
    Ok(())
}

pub fn cublasLtMatrixLayoutInit_internal(
    layout: cublasLtMatrixLayout_t,
    size: usize,
    dtype: c_int,
    rows: u64,
    cols: u64,
    ld: i64,
) -> Status {
    let twin = || layout_twin(dtype, rows, cols, ld);
    register(Kind::Layout, Some((layout, size)), &layout_init(dtype, rows, cols, ld), twin).map(|_| ())
}

pub fn cublasLtMatrixLayoutDestroy(layout: cublasLtMatrixLayout_t) -> Status {
    unregister(Kind::Layout, layout)
}

pub fn cublasLtMatrixLayoutSetAttribute(
    layout: cublasLtMatrixLayout_t,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    set_attribute(Kind::Layout, layout, attr, buf, size)
}

pub fn cublasLtMatrixLayoutGetAttribute(
    layout: cublasLtMatrixLayout_t,
    attr: c_int,
    buf: *mut c_void,
    size: usize,
    written: Option<&mut usize>,
) -> Status {
    get_attribute(Kind::Layout, layout, attr, buf, size, written)
}

fn pref_twin() -> Result<usize, NonZeroU32> {
    make_twin("cublasLtMatmulPreferenceCreate", |f, t| phantom_stub_runtime::nvidia(|| unsafe { (f.pref_create)(t) }))
}

pub fn cublasLtMatmulPreferenceCreate(pref: &mut cublasLtMatmulPreference_t) -> Status {
    *pref = register(Kind::Pref, None, &[], pref_twin)?;
    Ok(())
}

pub fn cublasLtMatmulPreferenceInit_internal(pref: cublasLtMatmulPreference_t, size: usize) -> Status {
    register(Kind::Pref, Some((pref, size)), &[], pref_twin).map(|_| ())
}

pub fn cublasLtMatmulPreferenceDestroy(pref: cublasLtMatmulPreference_t) -> Status {
    unregister(Kind::Pref, pref)
}

pub fn cublasLtMatmulPreferenceSetAttribute(
    pref: cublasLtMatmulPreference_t,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    set_attribute(Kind::Pref, pref, attr, buf, size)
}

pub fn cublasLtMatmulPreferenceGetAttribute(
    pref: cublasLtMatmulPreference_t,
    attr: c_int,
    buf: *mut c_void,
    size: usize,
    written: Option<&mut usize>,
) -> Status {
    get_attribute(Kind::Pref, pref, attr, buf, size, written)
}

// ---------------------------------------------------------------------------------------------------------------
// The GEMM

/// A matrix layout's fields that shape a GEMM and its key.
struct Layout {
    dtype: i64,
    order: i64,
    rows: u64,
    cols: u64,
    ld: i64,
    batch: i64,
    stride: i64,
}

fn layout(st: &mut State, p: cublasLtMatrixLayout_t) -> Result<Layout, NonZeroU32> {
    let d = st.desc(Kind::Layout, p)?;
    let get = |id| d.get(Kind::Layout, id);
    let (rows, cols, ld, order) =
        (get(attr::LAYOUT_ROWS), get(attr::LAYOUT_COLS), get(attr::LAYOUT_LD), get(attr::LAYOUT_ORDER));
    if rows < 0 || cols < 0 || ld < 0 {
        return err(code::INVALID_VALUE);
    }
    // The leading dimension spans a column (COL) or a row (ROW); tiled orders have their own rules.
    let min_ld = match order {
        0 => rows,
        1 => cols,
        _ => 0,
    };
    if ld < min_ld {
        return err(code::INVALID_VALUE);
    }
    Ok(Layout {
        dtype: get(attr::LAYOUT_TYPE),
        order,
        rows: rows as u64,
        cols: cols as u64,
        ld,
        batch: get(attr::LAYOUT_BATCH_COUNT),
        stride: get(attr::LAYOUT_STRIDED_BATCH_OFFSET),
    })
}

/// A checked matmul: the GEMM the model times, and the call's key.
struct Plan {
    gemm: ShimGemm,
    key: String,
}

/// Checks `D = op(A)·op(B) (+ C)` and gives the GEMM to time and its key: `INVALID_VALUE` for an inconsistent
/// problem, `NOT_SUPPORTED` for types Phantom cannot time.
fn plan(
    desc: cublasLtMatmulDesc_t,
    a: cublasLtMatrixLayout_t,
    b: cublasLtMatrixLayout_t,
    c: cublasLtMatrixLayout_t,
    d: cublasLtMatrixLayout_t,
) -> Result<Plan, NonZeroU32> {
    let mut st = state();
    let op = st.desc(Kind::Matmul, desc)?;
    let get = |id| op.get(Kind::Matmul, id);
    let (compute, transa, transb, epi) =
        (get(attr::COMPUTE_TYPE), get(attr::TRANSA), get(attr::TRANSB), get(attr::EPILOGUE));
    let (bias, aux, aux_type) =
        (get(attr::BIAS_POINTER), get(attr::EPILOGUE_AUX_POINTER), get(attr::EPILOGUE_AUX_DATA_TYPE));
    let key_attrs = KeyAttrs::of(op);
    let (a, b, c, d) = (layout(&mut st, a)?, layout(&mut st, b)?, layout(&mut st, c)?, layout(&mut st, d)?);

    // CUBLAS_OP_N, _T, _C.
    if !(0..=2).contains(&transa) || !(0..=2).contains(&transb) {
        return err(code::INVALID_VALUE);
    }
    let (m, k) = if transa == 0 { (a.rows, a.cols) } else { (a.cols, a.rows) };
    let (kb, n) = if transb == 0 { (b.rows, b.cols) } else { (b.cols, b.rows) };
    if k != kb || (d.rows, d.cols) != (m, n) || (c.rows, c.cols) != (m, n) {
        return err(code::INVALID_VALUE);
    }
    let batch = d.batch;
    if batch < 1 || [a.batch, b.batch, c.batch].iter().any(|&x| x != 1 && x != batch) {
        return err(code::INVALID_VALUE);
    }
    let Some((needs_bias, needs_aux, aux_matrix)) = epilogue::needs(epi) else { return err(code::INVALID_VALUE) };
    if (needs_bias && bias == 0) || (needs_aux && aux == 0) {
        return err(code::INVALID_VALUE);
    }

    let (Some(a_bytes), Some(b_bytes), Some(_), Some(d_bytes)) =
        (dtype_bytes(a.dtype), dtype_bytes(b.dtype), dtype_bytes(c.dtype), dtype_bytes(d.dtype))
    else {
        return err(code::NOT_SUPPORTED);
    };
    let Some(precision) = precision(compute, a.dtype) else { return err(code::NOT_SUPPORTED) };
    let aux_bytes = match (aux_matrix, aux_type) {
        (false, _) => 0,
        (true, -1) => d_bytes,
        (true, t) => dtype_bytes(t).ok_or(status(code::NOT_SUPPORTED))?,
    };
    let gemm = ShimGemm {
        m,
        n,
        k,
        batch: batch as u64,
        precision,
        in_bytes: a_bytes.max(b_bytes),
        out_bytes: d_bytes + aux_bytes,
    };
    Ok(Plan { key: matmul_key(&gemm, &key_attrs, [&a, &b, &c, &d]), gemm })
}

// ---------------------------------------------------------------------------------------------------------------
// Keys (docs/profiling.md, "Library calls": every field is listed there; change both together)

/// `cublasLtEpilogue_t` as a key word (cublasLt.h's name without `CUBLASLT_EPILOGUE_`).
fn epilogue_name(e: i64) -> String {
    use epilogue::*;
    let name = match e {
        DEFAULT => "DEFAULT",
        RELU => "RELU",
        RELU_AUX => "RELU_AUX",
        BIAS => "BIAS",
        RELU_BIAS => "RELU_BIAS",
        RELU_AUX_BIAS => "RELU_AUX_BIAS",
        DRELU => "DRELU",
        DRELU_BGRAD => "DRELU_BGRAD",
        GELU => "GELU",
        GELU_AUX => "GELU_AUX",
        GELU_BIAS => "GELU_BIAS",
        GELU_AUX_BIAS => "GELU_AUX_BIAS",
        DGELU => "DGELU",
        DGELU_BGRAD => "DGELU_BGRAD",
        BGRADA => "BGRADA",
        BGRADB => "BGRADB",
        _ => return format!("{e}"),
    };
    name.to_string()
}

/// `cublasLtOrder_t` as a key word.
fn order_name(o: i64) -> String {
    match o {
        0 => "col".into(),
        1 => "row".into(),
        2 => "col32".into(),
        3 => "col4_4r2_8c".into(),
        4 => "col32_2r_4r4".into(),
        _ => format!("order{o}"),
    }
}

/// The matmul descriptor's attributes that enter the key.
struct KeyAttrs {
    transa: i64,
    transb: i64,
    compute: i64,
    scale: i64,
    epilogue: i64,
    pointer_mode: i64,
    bias: bool,
    bias_type: i64,
    aux: bool,
    aux_type: i64,
    aux_ld: i64,
    sm_target: i64,
    /// A, B, C, D, aux and D-out scale pointers set.
    scaled: [bool; 6],
    amax: bool,
    fast_accum: i64,
    /// A, B, C, D, aux and D-out scale modes.
    scale_modes: [i64; 6],
}

impl KeyAttrs {
    fn of(op: &Desc) -> KeyAttrs {
        let get = |id| op.get(Kind::Matmul, id);
        KeyAttrs {
            transa: get(attr::TRANSA),
            transb: get(attr::TRANSB),
            compute: get(attr::COMPUTE_TYPE),
            scale: get(attr::SCALE_TYPE),
            epilogue: get(attr::EPILOGUE),
            pointer_mode: get(attr::POINTER_MODE),
            bias: get(attr::BIAS_POINTER) != 0,
            bias_type: get(attr::BIAS_DATA_TYPE),
            aux: get(attr::EPILOGUE_AUX_POINTER) != 0,
            aux_type: get(attr::EPILOGUE_AUX_DATA_TYPE),
            aux_ld: get(attr::EPILOGUE_AUX_LD),
            sm_target: get(attr::SM_COUNT_TARGET),
            scaled: [17, 18, 19, 20, 23, 36].map(|id| get(id) != 0),
            amax: get(attr::AMAX_D_POINTER) != 0,
            fast_accum: get(attr::FAST_ACCUM),
            scale_modes: [31, 32, 33, 34, 35, 37].map(get),
        }
    }
}

/// The key of a checked matmul: the fields every matmul has, then those that differ from their defaults, in a
/// fixed order (docs/profiling.md, "Library calls").
fn matmul_key(g: &ShimGemm, x: &KeyAttrs, [a, b, c, d]: [&Layout; 4]) -> String {
    use std::fmt::Write;
    let mut k = format!(
        "cublasLt matmul m={} n={} k={} batch={} ta={} tb={} a={} b={} c={} d={} lda={} ldb={} ldc={} ldd={} \
         compute={} scale={} epilogue={}",
        g.m,
        g.n,
        g.k,
        g.batch,
        op_name(x.transa),
        op_name(x.transb),
        dtype_name(a.dtype),
        dtype_name(b.dtype),
        dtype_name(c.dtype),
        dtype_name(d.dtype),
        a.ld,
        b.ld,
        c.ld,
        d.ld,
        compute_name(x.compute),
        dtype_name(x.scale),
        epilogue_name(x.epilogue),
    );
    let layouts = [a, b, c, d];
    if layouts.iter().any(|l| l.order != 0) {
        let o: Vec<String> = layouts.iter().map(|l| order_name(l.order)).collect();
        let _ = write!(k, " order={}", o.join(","));
    }
    if g.batch > 1 {
        if layouts.iter().any(|l| l.batch != d.batch) {
            let _ = write!(k, " batches={},{},{},{}", a.batch, b.batch, c.batch, d.batch);
        }
        let _ = write!(k, " sa={} sb={} sc={} sd={}", a.stride, b.stride, c.stride, d.stride);
    }
    if x.bias {
        k.push_str(" bias=1");
    }
    if x.bias_type != -1 {
        let _ = write!(k, " bias_type={}", dtype_name(x.bias_type));
    }
    if x.aux {
        let _ = write!(k, " aux=1 aux_ld={}", x.aux_ld);
    }
    if x.aux_type != -1 {
        let _ = write!(k, " aux_type={}", dtype_name(x.aux_type));
    }
    if x.scaled.iter().any(|&s| s) {
        let letters: String = "ABCDXO".chars().zip(x.scaled).filter(|&(_, s)| s).map(|(l, _)| l).collect();
        let _ = write!(k, " scaled={letters}");
    }
    if x.scale_modes.iter().any(|&m| m != 0) {
        let m: Vec<String> = x.scale_modes.iter().map(|m| m.to_string()).collect();
        let _ = write!(k, " scale_modes={}", m.join(","));
    }
    if x.amax {
        k.push_str(" amax=1");
    }
    if x.fast_accum != 0 {
        k.push_str(" fast_accum=1");
    }
    if x.pointer_mode != 0 {
        let _ = write!(k, " pointer_mode={}", x.pointer_mode);
    }
    if x.sm_target != 0 {
        let _ = write!(k, " sm_target={}", x.sm_target);
    }
    k
}

// ---------------------------------------------------------------------------------------------------------------
// Timing and running

/// Maps a runtime error to this library's status, logging it (`what`: the call and what failed).
fn runtime_error(what: &str, e: phantom_stub_runtime::Error) -> NonZeroU32 {
    log(&format!("{what}: {e}"));
    status(match e.code() {
        801 => code::NOT_SUPPORTED,
        3 => code::NOT_INITIALIZED,
        _ => code::EXECUTION_FAILED,
    })
}

/// Not executing: times `p` (profiling's measurement or a table's `call` record for its key, else the model) on
/// the GPU of `stream` and queues it there.
fn time_and_queue(stream: cudaStream_t, p: &Plan) -> Status {
    use phantom_stub_runtime::Source;
    let (ns, source) = match phantom_stub_runtime::call_time(&p.key) {
        Some(timed) => timed,
        None => (
            phantom_stub_runtime::gemm_ns(stream, &p.gemm)
                .map_err(|e| runtime_error("cublasLtMatmul: cannot time it", e))?,
            Source::Model,
        ),
    };
    phantom_stub_runtime::enqueue_timed(stream, ns, c"cublasLtMatmul", source)
        .map_err(|e| runtime_error("cublasLtMatmul: cannot queue it", e))
}

/// The algo Phantom hands out: the magic, then the config fields (id `id`, defaults otherwise).
fn algo(id: c_int) -> cublasLtMatmulAlgo_t {
    let mut a = cublasLtMatmulAlgo_t { data: [0; 8] };
    a.data[0] = ALGO_MAGIC;
    for (slot, &(_, default)) in ALGO_CONFIG.iter().enumerate() {
        set_slot(&mut a, slot, default);
    }
    set_slot(&mut a, 0, id as u32);
    a
}

fn set_slot(a: &mut cublasLtMatmulAlgo_t, slot: usize, v: u32) {
    let (word, shift) = (1 + slot / 2, 32 * (slot % 2));
    a.data[word] = (a.data[word] & !(0xffff_ffff << shift)) | ((v as u64) << shift);
}

fn slot(a: &cublasLtMatmulAlgo_t, slot: usize) -> u32 {
    (a.data[1 + slot / 2] >> (32 * (slot % 2))) as u32
}

fn check_algo(a: &cublasLtMatmulAlgo_t) -> Status {
    if a.data[0] != ALGO_MAGIC {
        return err(code::INVALID_VALUE);
    }
    Ok(())
}

fn heuristic(a: cublasLtMatmulAlgo_t) -> cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulHeuristicResult_t { algo: a, workspaceSize: 0, state: 0, wavesCount: 1.0, reserved: [0; 4] }
}

/// The twins of a matmul's descriptors (executing process), in the order of the arguments.
fn twins(
    desc: cublasLtMatmulDesc_t,
    layouts: [cublasLtMatrixLayout_t; 4],
) -> Result<(*mut c_void, [*mut c_void; 4]), NonZeroU32> {
    let mut st = state();
    let op = st.twin(Kind::Matmul, desc)?;
    let mut out = [std::ptr::null_mut(); 4];
    for (o, l) in out.iter_mut().zip(layouts) {
        *o = st.twin(Kind::Layout, l)?;
    }
    Ok((op, out))
}

/// In an executing process the algorithms are NVIDIA's: the real heuristic, run on the twins with the process's
/// real handle, fills the application's array.
#[allow(clippy::too_many_arguments)]
pub fn cublasLtMatmulAlgoGetHeuristic(
    handle: cublasLtHandle_t,
    desc: cublasLtMatmulDesc_t,
    a: cublasLtMatrixLayout_t,
    b: cublasLtMatrixLayout_t,
    c: cublasLtMatrixLayout_t,
    d: cublasLtMatrixLayout_t,
    pref: cublasLtMatmulPreference_t,
    requested: c_int,
    results: *mut cublasLtMatmulHeuristicResult_t,
    returned: &mut c_int,
) -> Status {
    *returned = 0;
    check_handle(handle)?;
    if requested <= 0 || results.is_null() {
        return err(code::INVALID_VALUE);
    }
    state().desc(Kind::Pref, pref)?;
    plan(desc, a, b, c, d)?;
    if executing() {
        let (f, h) = (real::lib()?, real::handle()?);
        let (op, [a, b, c, d]) = twins(desc, [a, b, c, d])?;
        let pref = state().twin(Kind::Pref, pref)?;
        let s = phantom_stub_runtime::nvidia(|| unsafe { (f.heuristic)(h, op, a, b, c, d, pref, requested, results.cast(), returned) });
        return real::check("cublasLtMatmulAlgoGetHeuristic", s);
    }
    unsafe { results.write(heuristic(algo(0))) };
    *returned = 1;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cublasLtMatmulAlgoGetIds(
    handle: cublasLtHandle_t,
    compute: c_int,
    scale: c_int,
    a_type: c_int,
    b_type: c_int,
    c_type: c_int,
    d_type: c_int,
    requested: c_int,
    ids: *mut c_int,
    returned: &mut c_int,
) -> Status {
    check_handle(handle)?;
    if requested <= 0 || ids.is_null() {
        return err(code::INVALID_VALUE);
    }
    *returned = 0;
    if executing() {
        let (f, h) = (real::lib()?, real::handle()?);
        let s = phantom_stub_runtime::nvidia(|| unsafe { (f.algo_get_ids)(h, compute, scale, a_type, b_type, c_type, d_type, requested, ids, returned) });
        return real::check("cublasLtMatmulAlgoGetIds", s);
    }
    if precision(compute as i64, a_type as i64).is_some() {
        unsafe { *ids = 0 };
        *returned = 1;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cublasLtMatmulAlgoInit(
    handle: cublasLtHandle_t,
    compute: c_int,
    scale: c_int,
    a_type: c_int,
    b_type: c_int,
    c_type: c_int,
    d_type: c_int,
    id: c_int,
    out: &mut cublasLtMatmulAlgo_t,
) -> Status {
    check_handle(handle)?;
    if executing() {
        let (f, h) = (real::lib()?, real::handle()?);
        let s = phantom_stub_runtime::nvidia(|| unsafe { (f.algo_init)(h, compute, scale, a_type, b_type, c_type, d_type, id, (out as *mut cublasLtMatmulAlgo_t).cast()) });
        return real::check("cublasLtMatmulAlgoInit", s);
    }
    if id < 0 {
        return err(code::INVALID_VALUE);
    }
    if precision(compute as i64, a_type as i64).is_none() {
        return err(code::NOT_SUPPORTED);
    }
    *out = algo(id);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cublasLtMatmulAlgoCheck(
    handle: cublasLtHandle_t,
    desc: cublasLtMatmulDesc_t,
    a: cublasLtMatrixLayout_t,
    b: cublasLtMatrixLayout_t,
    c: cublasLtMatrixLayout_t,
    d: cublasLtMatrixLayout_t,
    algo: *const cublasLtMatmulAlgo_t,
    result: *mut cublasLtMatmulHeuristicResult_t,
) -> Status {
    // Raw pointers, not references: `algo` may point into `*result` (the header says so).
    if algo.is_null() || result.is_null() {
        return err(code::INVALID_VALUE);
    }
    check_handle(handle)?;
    if executing() {
        plan(desc, a, b, c, d)?;
        let (f, h) = (real::lib()?, real::handle()?);
        let (op, [a, b, c, d]) = twins(desc, [a, b, c, d])?;
        let s = phantom_stub_runtime::nvidia(|| unsafe { (f.algo_check)(h, op, a, b, c, d, algo.cast(), result.cast()) });
        return real::check("cublasLtMatmulAlgoCheck", s);
    }
    let algo = unsafe { std::ptr::read(algo) };
    check_algo(&algo)?;
    plan(desc, a, b, c, d)?;
    unsafe { std::ptr::write(result, heuristic(algo)) };
    Ok(())
}

pub fn cublasLtMatmulAlgoConfigSetAttribute(
    algo: &mut cublasLtMatmulAlgo_t,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    if executing() {
        let s = {
            let f = real::lib()?;
            phantom_stub_runtime::nvidia(|| unsafe { (f.algo_config_set)((algo as *mut cublasLtMatmulAlgo_t).cast(), attr, buf, size) })
        };
        return real::check("cublasLtMatmulAlgoConfigSetAttribute", s);
    }
    check_algo(algo)?;
    // CUBLASLT_ALGO_CONFIG_ID (0) is read-only.
    let Some(&(want, _)) = ALGO_CONFIG.get(attr as usize).filter(|_| attr >= 1) else {
        return err(code::INVALID_VALUE);
    };
    if buf.is_null() || size != want {
        return err(code::INVALID_VALUE);
    }
    let mut raw = [0u8; 4];
    unsafe { std::ptr::copy_nonoverlapping(buf as *const u8, raw.as_mut_ptr(), size) };
    set_slot(algo, attr as usize, u32::from_le_bytes(raw));
    Ok(())
}

pub fn cublasLtMatmulAlgoConfigGetAttribute(
    algo: &cublasLtMatmulAlgo_t,
    attr: c_int,
    buf: *mut c_void,
    size: usize,
    written: Option<&mut usize>,
) -> Status {
    if executing() {
        let written = written.map_or(std::ptr::null_mut(), |w| w as *mut usize);
        let s = {
            let f = real::lib()?;
            phantom_stub_runtime::nvidia(|| unsafe { (f.algo_config_get)((algo as *const cublasLtMatmulAlgo_t).cast(), attr, buf, size, written) })
        };
        return real::check("cublasLtMatmulAlgoConfigGetAttribute", s);
    }
    check_algo(algo)?;
    let Some(&(want, _)) = ALGO_CONFIG.get(attr as usize).filter(|_| attr >= 0) else {
        return err(code::INVALID_VALUE);
    };
    if size == 0 {
        let Some(w) = written else { return err(code::INVALID_VALUE) };
        *w = want;
        return Ok(());
    }
    if buf.is_null() || size != want {
        return err(code::INVALID_VALUE);
    }
    let raw = slot(algo, attr as usize).to_le_bytes();
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), buf as *mut u8, size) };
    if let Some(w) = written {
        *w = want;
    }
    Ok(())
}

/// Checks the problem (as the model does in every mode), then: not executing, times it by its key or the model
/// and queues it; executing, runs it with NVIDIA's `cublasLtMatmul` on the real stream standing for `stream`, with
/// the twins, the process's real handle and the application's algo, workspace and pointers, and queues the
/// duration the runtime measured (`phantom_stub_runtime::run_call`).
#[allow(clippy::too_many_arguments)]
pub fn cublasLtMatmul(
    handle: cublasLtHandle_t,
    desc: cublasLtMatmulDesc_t,
    alpha: *const c_void,
    a: *const c_void,
    a_desc: cublasLtMatrixLayout_t,
    b: *const c_void,
    b_desc: cublasLtMatrixLayout_t,
    beta: *const c_void,
    c: *const c_void,
    c_desc: cublasLtMatrixLayout_t,
    d: *mut c_void,
    d_desc: cublasLtMatrixLayout_t,
    algo: Option<&cublasLtMatmulAlgo_t>,
    workspace: *mut c_void,
    workspace_size: usize,
    stream: cudaStream_t,
) -> Status {
    check_handle(handle)?;
    let executing = executing();
    if let (Some(a), false) = (algo, executing) {
        check_algo(a)?;
    }
    let p = plan(desc, a_desc, b_desc, c_desc, d_desc)?;
    if p.gemm.m == 0 || p.gemm.n == 0 {
        return Ok(());
    }
    if !executing {
        return time_and_queue(stream, &p);
    }
    let (f, h) = (real::lib()?, real::handle()?);
    let (op, [la, lb, lc, ld]) = twins(desc, [a_desc, b_desc, c_desc, d_desc])?;
    let algo = algo.map_or(std::ptr::null(), |a| a as *const cublasLtMatmulAlgo_t);
    let mut library_status: c_int = 0;
    let ran = phantom_stub_runtime::run_call(stream, &p.key, |real_stream| {
        library_status = phantom_stub_runtime::nvidia_queue(|| unsafe {
            (f.matmul)(h, op, alpha, a, la, b, lb, beta, c, lc, d, ld, algo.cast(), workspace, workspace_size, real_stream)
        });
        library_status
    });
    let ns = match ran {
        Ok(ns) => ns,
        Err(_) if library_status != 0 => return real::check("cublasLtMatmul", library_status),
        Err(e) => return Err(runtime_error("cublasLtMatmul: cannot run it on the real GPU", e)),
    };
    phantom_stub_runtime::enqueue_timed(stream, ns, c"cublasLtMatmul", phantom_stub_runtime::Source::Profiled)
        .map_err(|e| runtime_error("cublasLtMatmul: cannot queue it", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_tables_are_sorted_and_unique() {
        for table in [MATMUL_ATTRS, LAYOUT_ATTRS, PREF_ATTRS] {
            assert!(table.windows(2).all(|w| w[0].id < w[1].id));
            assert!(table.iter().all(|s| matches!(s.size, 1 | 2 | 4 | 8)));
        }
    }

    #[test]
    fn algo_slots_round_trip() {
        let mut a = algo(7);
        assert_eq!(slot(&a, 0), 7);
        assert_eq!(slot(&a, 2), 1, "SPLITK_NUM defaults to 1");
        set_slot(&mut a, 3, 0xdead_beef);
        assert_eq!(slot(&a, 3), 0xdead_beef);
        assert_eq!(slot(&a, 2), 1);
        assert_eq!(a.data[0], ALGO_MAGIC);
    }

    #[test]
    fn precisions() {
        assert_eq!(precision(68, dtype::R_16BF), Some(abi::PREC_BF16));
        assert_eq!(precision(68, dtype::R_32F), Some(abi::PREC_FP32));
        assert_eq!(precision(77, dtype::R_32F), Some(abi::PREC_TF32));
        assert_eq!(precision(68, dtype::R_8F_E4M3), Some(abi::PREC_FP8));
        assert_eq!(precision(72, dtype::R_8I), Some(abi::PREC_FP8));
        assert_eq!(precision(70, dtype::R_64F), Some(abi::PREC_FP64));
        assert_eq!(precision(68, 4), None, "complex");
        assert_eq!(precision(78, dtype::R_32F), None, "emulated");
    }

    #[test]
    fn epilogues() {
        assert_eq!(epilogue::needs(epilogue::BIAS), Some((true, false, false)));
        assert_eq!(epilogue::needs(epilogue::GELU_AUX_BIAS), Some((true, true, true)));
        assert_eq!(epilogue::needs(epilogue::DRELU_BGRAD), Some((true, true, false)));
        assert_eq!(epilogue::needs(3), None);
    }

    #[test]
    fn descriptors_validate_ids_and_sizes() {
        let mut d: cublasLtMatmulDesc_t = std::ptr::null_mut();
        cublasLtMatmulDescCreate(&mut d, 68, 0).unwrap();
        let t: i32 = 1;
        let p = &t as *const i32 as *const c_void;
        assert!(cublasLtMatmulDescSetAttribute(d, 3, p, 4).is_ok());
        assert_eq!(cublasLtMatmulDescSetAttribute(d, 3, p, 8), err(code::INVALID_VALUE));
        assert_eq!(cublasLtMatmulDescSetAttribute(d, 9, p, 4), err(code::INVALID_VALUE));
        let mut out: i32 = 0;
        let mut w = 0usize;
        cublasLtMatmulDescGetAttribute(d, 3, &mut out as *mut i32 as *mut c_void, 4, Some(&mut w)).unwrap();
        assert_eq!((out, w), (1, 4));
        cublasLtMatmulDescGetAttribute(d, 22, &mut out as *mut i32 as *mut c_void, 4, None).unwrap();
        assert_eq!(out, -1, "EPILOGUE_AUX_DATA_TYPE defaults to -1");
        cublasLtMatmulDescGetAttribute(d, 8, std::ptr::null_mut(), 0, Some(&mut w)).unwrap();
        assert_eq!(w, 8);
        cublasLtMatmulDescDestroy(d).unwrap();
        assert_eq!(cublasLtMatmulDescDestroy(d), err(code::INVALID_VALUE));
        assert_eq!(cublasLtMatmulDescSetAttribute(d, 3, p, 4), err(code::INVALID_VALUE));
    }

    fn layout_of(dtype: c_int, rows: u64, cols: u64) -> cublasLtMatrixLayout_t {
        let mut l = std::ptr::null_mut();
        cublasLtMatrixLayoutCreate(&mut l, dtype, rows, cols, rows as i64).unwrap();
        l
    }

    #[test]
    fn plans_check_shapes_and_fold_aux_matrices() {
        let mut d = std::ptr::null_mut();
        cublasLtMatmulDescCreate(&mut d, 68, 0).unwrap();
        let t: i32 = 1; // transa = T, as torch's Linear
        cublasLtMatmulDescSetAttribute(d, attr::TRANSA as c_int, &t as *const i32 as *const c_void, 4).unwrap();
        let bf16 = dtype::R_16BF as c_int;
        let (a, b, c) = (layout_of(bf16, 768, 2304), layout_of(bf16, 768, 8192), layout_of(bf16, 2304, 8192));
        let g = plan(d, a, b, c, c).unwrap().gemm;
        assert_eq!(
            (g.m, g.n, g.k, g.batch, g.precision, g.in_bytes, g.out_bytes),
            (2304, 8192, 768, 1, abi::PREC_BF16, 2, 2)
        );

        // GELU_AUX_BIAS without its pointers is invalid; with them, D's traffic doubles.
        let e: u32 = epilogue::GELU_AUX_BIAS as u32;
        cublasLtMatmulDescSetAttribute(d, attr::EPILOGUE as c_int, &e as *const u32 as *const c_void, 4).unwrap();
        assert_eq!(plan(d, a, b, c, c).err().map(|e| e.get()), Some(code::INVALID_VALUE));
        let ptr: u64 = 0x1000;
        for id in [attr::BIAS_POINTER, attr::EPILOGUE_AUX_POINTER] {
            cublasLtMatmulDescSetAttribute(d, id as c_int, &ptr as *const u64 as *const c_void, 8).unwrap();
        }
        assert_eq!(plan(d, a, b, c, c).unwrap().gemm.out_bytes, 4);

        // k mismatch (B has 769 rows), and an unsupported (complex) type.
        let bad = layout_of(bf16, 769, 8192);
        assert_eq!(plan(d, a, bad, c, c).err().map(|e| e.get()), Some(code::INVALID_VALUE));
        let cplx = layout_of(4, 768, 8192);
        assert_eq!(plan(d, a, cplx, c, c).err().map(|e| e.get()), Some(code::NOT_SUPPORTED));
        for l in [a, b, c, bad, cplx] {
            cublasLtMatrixLayoutDestroy(l).unwrap();
        }
        cublasLtMatmulDescDestroy(d).unwrap();
    }

    fn set_i32(d: cublasLtMatmulDesc_t, id: u32, v: i32) {
        cublasLtMatmulDescSetAttribute(d, id as c_int, &v as *const i32 as *const c_void, 4).unwrap();
    }

    /// The key of torch's `nn.Linear(768, 2304)` on 8192 bf16 tokens with a bias (tests/programs/cublaslt_gemm.c's
    /// `bias_bf16`, whose key tests/tests/e2e/cublaslt.rs puts in a table), and what non-default fields add.
    #[test]
    fn matmul_keys() {
        let mut d = std::ptr::null_mut();
        cublasLtMatmulDescCreate(&mut d, 68, dtype::R_32F as c_int).unwrap();
        set_i32(d, attr::TRANSA, 1);
        set_i32(d, attr::EPILOGUE, epilogue::BIAS as i32);
        let bias: u64 = 0x7f00_0000_1000;
        cublasLtMatmulDescSetAttribute(d, attr::BIAS_POINTER as c_int, &bias as *const u64 as *const c_void, 8)
            .unwrap();
        let bf16 = dtype::R_16BF as c_int;
        let (a, b, c) = (layout_of(bf16, 768, 2304), layout_of(bf16, 768, 8192), layout_of(bf16, 2304, 8192));
        assert_eq!(
            plan(d, a, b, c, c).unwrap().key,
            "cublasLt matmul m=2304 n=8192 k=768 batch=1 ta=T tb=N a=bf16 b=bf16 c=bf16 d=bf16 lda=768 ldb=768 \
             ldc=2304 ldd=2304 compute=f32 scale=f32 epilogue=BIAS bias=1"
        );

        // A strided batch, a row-major A, an SM target and fp8-style scale pointers and fast accumulation.
        for l in [a, b, c] {
            let (batch, stride): (i32, i64) = (4, 1 << 22);
            cublasLtMatrixLayoutSetAttribute(l, attr::LAYOUT_BATCH_COUNT as c_int, &batch as *const i32 as _, 4)
                .unwrap();
            cublasLtMatrixLayoutSetAttribute(l, attr::LAYOUT_STRIDED_BATCH_OFFSET as c_int, &stride as *const i64 as _, 8)
                .unwrap();
        }
        let (row, ld): (i32, i64) = (1, 2304);
        cublasLtMatrixLayoutSetAttribute(a, attr::LAYOUT_ORDER as c_int, &row as *const i32 as _, 4).unwrap();
        cublasLtMatrixLayoutSetAttribute(a, attr::LAYOUT_LD as c_int, &ld as *const i64 as _, 8).unwrap();
        set_i32(d, attr::SM_COUNT_TARGET, 66);
        for id in [17, 18] {
            cublasLtMatmulDescSetAttribute(d, id, &bias as *const u64 as *const c_void, 8).unwrap();
        }
        let fast: i8 = 1;
        cublasLtMatmulDescSetAttribute(d, attr::FAST_ACCUM as c_int, &fast as *const i8 as *const c_void, 1).unwrap();
        assert_eq!(
            plan(d, a, b, c, c).unwrap().key,
            "cublasLt matmul m=2304 n=8192 k=768 batch=4 ta=T tb=N a=bf16 b=bf16 c=bf16 d=bf16 lda=2304 ldb=768 \
             ldc=2304 ldd=2304 compute=f32 scale=f32 epilogue=BIAS order=row,col,col,col sa=4194304 sb=4194304 \
             sc=4194304 sd=4194304 bias=1 scaled=AB fast_accum=1 sm_target=66"
        );
        assert!(!plan(d, a, b, c, c).unwrap().key.contains('\t'));
        for l in [a, b, c] {
            cublasLtMatrixLayoutDestroy(l).unwrap();
        }
        cublasLtMatmulDescDestroy(d).unwrap();
    }

    #[test]
    fn key_words() {
        assert_eq!(dtype_name(dtype::R_16BF), "bf16");
        assert_eq!(dtype_name(dtype::R_8F_E4M3), "e4m3");
        assert_eq!(dtype_name(4), "c32f");
        assert_eq!(dtype_name(99), "type99");
        assert_eq!(compute_name(77), "f32_fast_tf32");
        assert_eq!(compute_name(1), "compute1");
        assert_eq!(epilogue_name(epilogue::GELU_AUX_BIAS), "GELU_AUX_BIAS");
        assert_eq!(epilogue_name(3), "3");
        assert_eq!((op_name(0), op_name(2), op_name(7)), ("N".into(), "C".into(), "op7".into()));
    }
}
