//! The implemented part of Phantom's `libcudnn.so.9` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries"). Every other export stays a stub
//! returning `CUDNN_STATUS_NOT_SUPPORTED`. docs/cudnn.md describes the whole library.
//!
//! Versions and handles; the backend (graph) API that cuDNN frontends, PyTorch's included, build on: descriptors
//! (`backend.rs`), what a finalized graph is, how long it runs and its library-call key (`graph.rs`). An
//! execution computes nothing (device memory holds no data under Phantom): it takes the time profiling or a
//! kernel-time table has for its key, else it is timed as equivalent GEMMs by the runtime's roofline model on the
//! GPU of the handle's stream, and is placed on that stream as one kernel, through the runtime table of Phantom's
//! `libcudart.so.13` (reached through `phantom-stub-runtime`, never linked). In a process that executes on the
//! real GPU (profiling mode) every handle and descriptor also has a twin in NVIDIA's library, which answers the
//! queries and really runs the executions (`real.rs`; docs/cudnn.md, "Keys and profiling").

#[path = "backend.rs"]
mod backend;
#[path = "consts.rs"]
mod consts;
#[path = "graph.rs"]
mod graph;
#[path = "real.rs"]
mod real;

use backend::{Fail, R};
use consts::status;
use graph::Cost;
use phantom_stub_common::Status;
use phantom_stub_runtime::{Profile, Source};
use sim_core::shim_abi::ShimGemm;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::num::NonZeroU32;
use std::sync::Mutex;

// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use phantom_stub_common::StaticStr;
pub use std::ffi::{c_char, c_int, c_void};

#[allow(non_camel_case_types)]
pub type cudnnHandle_t = *mut c_void;
#[allow(non_camel_case_types)]
pub type cudnnBackendDescriptor_t = *mut c_void;
#[allow(non_camel_case_types)]
pub type cudaStream_t = *mut c_void;

/// cuDNN 9.19.0, the version torch 2.11 pins (`nvidia-cudnn-cu13==9.19.0.56`): major·10000 + minor·100 + patch.
const VERSION: (usize, usize, usize) = (9, 19, 0);
/// The newest compute capability cuDNN 9.19 supports (sm_121), as major·100 + minor·10.
const MAX_DEVICE_VERSION: usize = 1210;
/// The CUDA runtime the cu13 build of cuDNN 9.19 was built against (13.0).
const CUDART_VERSION: usize = 13000;

const LIBRARY: &str = "libcudnn.so.9";

fn log(msg: &str) {
    phantom_stub_runtime::log(LIBRARY, msg);
}

thread_local! {
    /// The last error of this thread, for `cudnnGetLastErrorString`.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Turns an internal result into the export's status: an error is recorded for `cudnnGetLastErrorString`, and
/// logged when it is Phantom's limitation or failure (not-supported, internal, execution) rather than the
/// application's mistake.
fn finish(function: &str, r: R<()>) -> Status {
    let Err(Fail { code, msg, logged }) = r else { return Ok(()) };
    let name = status::name(code).map_or("CUDNN_STATUS_?".into(), |n| n.to_string_lossy());
    let line = format!("{function}: {name} ({code}): {msg}");
    if code >= status::NOT_SUPPORTED && !logged {
        log(&line);
    }
    LAST_ERROR.with(|e| *e.borrow_mut() = line);
    Err(NonZeroU32::new(code).expect("an error code is nonzero"))
}

fn err<T>(code: u32, msg: impl Into<String>) -> R<T> {
    backend::fail(code, msg)
}

// ---------------------------------------------------------------------------------------------------------
// Versions and errors
// ---------------------------------------------------------------------------------------------------------

/// The version the application sees: NVIDIA's in an executing process (profiling mode), else the stub's.
fn version() -> (usize, usize, usize) {
    if phantom_stub_runtime::profile_mode() == phantom_stub_runtime::Profile::Execute {
        if let Some(v) = real::version() {
            return (v / 10000, v / 100 % 100, v % 100);
        }
    }
    VERSION
}

pub fn cudnnGetVersion() -> usize {
    let v = version();
    v.0 * 10000 + v.1 * 100 + v.2
}

pub fn cudnnGetMaxDeviceVersion() -> usize {
    MAX_DEVICE_VERSION
}

pub fn cudnnGetCudartVersion() -> usize {
    CUDART_VERSION
}

pub fn cudnnGetProperty(kind: c_int, value: &mut c_int) -> Status {
    // libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL.
    let (major, minor, patch) = version();
    let v = match kind {
        0 => major,
        1 => minor,
        2 => patch,
        _ => return finish("cudnnGetProperty", err(status::BAD_PARAM, format!("unknown libraryPropertyType {kind}"))),
    };
    *value = v as c_int;
    Ok(())
}

pub fn cudnnGetErrorString(code: c_int) -> StaticStr {
    let name = u32::try_from(code).ok().and_then(status::name).unwrap_or(c"CUDNN_UNKNOWN_STATUS");
    StaticStr::new(name)
}

/// `void cudnnGetLastErrorString(char *message, size_t max_size)`: this thread's last error message (empty if
/// none), truncated to `max_size - 1` bytes and NUL-terminated; it is then cleared, so a later report does not
/// repeat it.
/// Returns a status only because every implemented export does; a `void` caller ignores it.
pub fn cudnnGetLastErrorString(message: *mut c_char, max_size: usize) -> Status {
    if message.is_null() || max_size == 0 {
        return Ok(());
    }
    let text = LAST_ERROR.with(|e| std::mem::take(&mut *e.borrow_mut()));
    let n = text.len().min(max_size - 1);
    // SAFETY: the caller provides `max_size` writable bytes at `message`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), message as *mut u8, n);
        *message.add(n) = 0;
    }
    Ok(())
}

/// The sub-library version checks: Phantom's one library is always consistent with itself.
pub fn cudnnGraphVersionCheck() -> Status {
    Ok(())
}
pub fn cudnnOpsVersionCheck() -> Status {
    Ok(())
}
pub fn cudnnCnnVersionCheck() -> Status {
    Ok(())
}
pub fn cudnnAdvVersionCheck() -> Status {
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------------------------------------

struct Handles {
    next: usize,
    /// Live handles and the stream each is set to.
    live: BTreeMap<usize, usize>,
}

static HANDLES: Mutex<Handles> = Mutex::new(Handles { next: 0, live: BTreeMap::new() });

fn handles() -> std::sync::MutexGuard<'static, Handles> {
    HANDLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handles are numbered from here: never null, never a mapped address.
const HANDLE_BASE: usize = 0xcd7e_0000_0000;

fn is_handle(h: usize) -> bool {
    handles().live.contains_key(&h)
}

/// The stream of a live handle; a destroyed or foreign one is `CUDNN_STATUS_NOT_INITIALIZED`.
fn stream_of(h: cudnnHandle_t) -> R<usize> {
    match handles().live.get(&(h as usize)) {
        Some(&s) => Ok(s),
        None => err(status::NOT_INITIALIZED, format!("{h:p} is not a live cudnnHandle_t")),
    }
}

/// Whether this process executes on the real GPU (profiling mode), where every handle and descriptor has a twin
/// in NVIDIA's library (`real.rs`). Decided once: the runtime's mode does not change.
fn executing() -> bool {
    static EXECUTING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXECUTING.get_or_init(|| phantom_stub_runtime::profile_mode() == Profile::Execute)
}

pub fn cudnnCreate(handle: &mut cudnnHandle_t) -> Status {
    let h = {
        let mut hs = handles();
        hs.next += 1;
        let h = HANDLE_BASE + hs.next * 0x10;
        hs.live.insert(h, 0);
        h
    };
    if executing() {
        if let Err(e) = real::create_handle(h) {
            handles().live.remove(&h);
            return finish("cudnnCreate", Err(e));
        }
    }
    *handle = h as cudnnHandle_t;
    Ok(())
}

pub fn cudnnDestroy(handle: cudnnHandle_t) -> Status {
    let removed = handles().live.remove(&(handle as usize)).is_some();
    let r = if !removed {
        err(status::NOT_INITIALIZED, format!("{handle:p} is not a live cudnnHandle_t"))
    } else if executing() {
        real::destroy_handle(handle as usize)
    } else {
        Ok(())
    };
    finish("cudnnDestroy", r)
}

pub fn cudnnSetStream(handle: cudnnHandle_t, stream: cudaStream_t) -> Status {
    let r = match handles().live.get_mut(&(handle as usize)) {
        Some(s) => {
            *s = stream as usize;
            Ok(())
        }
        None => err(status::NOT_INITIALIZED, format!("{handle:p} is not a live cudnnHandle_t")),
    };
    finish("cudnnSetStream", r)
}

pub fn cudnnGetStream(handle: cudnnHandle_t, stream: &mut cudaStream_t) -> Status {
    match stream_of(handle) {
        Ok(s) => {
            *stream = s as cudaStream_t;
            Ok(())
        }
        Err(e) => finish("cudnnGetStream", Err(e)),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Backend (graph) API
// ---------------------------------------------------------------------------------------------------------

pub fn cudnnBackendCreateDescriptor(descriptor_type: c_int, descriptor: &mut cudnnBackendDescriptor_t) -> Status {
    let r = backend::create(descriptor_type).and_then(|d| {
        if executing() {
            if let Err(e) = real::create_desc(d, descriptor_type) {
                let _ = backend::destroy(d);
                return Err(e);
            }
        }
        Ok(d)
    });
    match r {
        Ok(d) => {
            *descriptor = d as cudnnBackendDescriptor_t;
            Ok(())
        }
        Err(e) => finish("cudnnBackendCreateDescriptor", Err(e)),
    }
}

pub fn cudnnBackendDestroyDescriptor(descriptor: cudnnBackendDescriptor_t) -> Status {
    let d = descriptor as usize;
    let r = backend::destroy(d).and_then(|()| if executing() { real::destroy_desc(d) } else { Ok(()) });
    finish("cudnnBackendDestroyDescriptor", r)
}

/// Executing process: the twin gets the attribute first (what NVIDIA's library refuses is refused, with its
/// status), then the stub.
pub fn cudnnBackendSetAttribute(
    descriptor: cudnnBackendDescriptor_t,
    attribute_name: c_int,
    attribute_type: c_int,
    element_count: i64,
    array_of_elements: *const c_void,
) -> Status {
    let d = descriptor as usize;
    let r = (|| {
        if executing() {
            backend::kind_of(d)?;
            real::set(d, attribute_name, attribute_type, element_count, array_of_elements)?;
        }
        backend::set(d, attribute_name, attribute_type, element_count, array_of_elements)
    })();
    finish("cudnnBackendSetAttribute", r)
}

/// Executing process: NVIDIA's library answers from the twin (its heuristics, engine configurations, workspace
/// sizes); for descriptor-typed attributes the stub also fills its own descriptors (`backend::fill_like`), so
/// that a plan made from them still carries the graph.
pub fn cudnnBackendGetAttribute(
    descriptor: cudnnBackendDescriptor_t,
    attribute_name: c_int,
    attribute_type: c_int,
    requested_element_count: i64,
    element_count: Option<&mut i64>,
    array_of_elements: *mut c_void,
) -> Status {
    let d = descriptor as usize;
    if !executing() {
        let r =
            backend::get(d, attribute_name, attribute_type, requested_element_count, element_count, array_of_elements);
        return finish("cudnnBackendGetAttribute", r);
    }
    let r = (|| {
        backend::kind_of(d)?;
        if requested_element_count < 0 {
            return err(status::BAD_PARAM, format!("negative requested element count {requested_element_count}"));
        }
        let n =
            real::get(d, attribute_name, attribute_type, requested_element_count, element_count, array_of_elements)?;
        if attribute_type as u32 == consts::ty::BACKEND_DESCRIPTOR && !array_of_elements.is_null() {
            let filled = n.clamp(0, requested_element_count) as usize;
            // SAFETY: the caller passes `requested_element_count` descriptors it created (cuDNN's contract).
            let targets = unsafe { std::slice::from_raw_parts(array_of_elements as *const usize, filled) };
            backend::fill_like(d, attribute_name, targets);
        }
        Ok(())
    })();
    finish("cudnnBackendGetAttribute", r)
}

/// Executing process: the twin is finalized first, and NVIDIA's status returned if it fails (that is what a
/// real GPU says: an engine configuration it cannot build, …); then the stub's analysis.
pub fn cudnnBackendFinalize(descriptor: cudnnBackendDescriptor_t) -> Status {
    let d = descriptor as usize;
    let r = (|| {
        if executing() {
            backend::kind_of(d)?;
            real::finalize(d)?;
        }
        backend::finalize(d, &is_handle, executing())
    })();
    finish("cudnnBackendFinalize", r)
}

/// Runs the plan on the handle's stream as one piece of GPU work, timed (docs/cudnn.md, "Execution and the timing
/// model", "Keys and profiling"): an executing process runs it in NVIDIA's library on the real GPU and takes the
/// measured time; any other takes the time profiling or a kernel-time table has for the execution's key, else
/// the model's.
pub fn cudnnBackendExecute(
    handle: cudnnHandle_t,
    execution_plan: cudnnBackendDescriptor_t,
    variant_pack: cudnnBackendDescriptor_t,
) -> Status {
    finish("cudnnBackendExecute", execute(handle, execution_plan as usize, variant_pack as usize))
}

/// A failure of Phantom's runtime, as a cuDNN status.
fn runtime_failure(name: &str, what: &str, e: phantom_stub_runtime::Error) -> Fail {
    Fail {
        code: match e.code() {
            801 => status::NOT_SUPPORTED,
            3 => status::NOT_INITIALIZED,
            _ => status::EXECUTION_FAILED,
        },
        msg: format!("{name}: cannot {what} it: {e}"),
        logged: false,
    }
}

fn execute(handle: cudnnHandle_t, plan: usize, pack: usize) -> R<()> {
    let stream = stream_of(handle)? as *mut c_void;
    let engine = backend::execution(plan, pack, !executing())?;
    let (name, costs) = engine.graph.kernel(engine.choice.index);
    let key = engine.graph.key();
    let cname = CString::new(name.as_str()).unwrap_or_else(|_| CString::from(c"cudnn graph"));
    let (ns, source) = if executing() {
        (run_real(stream, handle as usize, plan, pack, &name, key)?, Source::Profiled)
    } else if let Some(timed) = phantom_stub_runtime::call_time(key) {
        timed
    } else {
        (model_ns(stream, &name, &costs)?, Source::Model)
    };
    phantom_stub_runtime::enqueue_timed(stream, ns, &cname, source).map_err(|e| runtime_failure(&name, "queue", e))
}

/// The model's time (ns) of `costs` on the GPU of `stream`.
fn model_ns(stream: *mut c_void, name: &str, costs: &[Cost]) -> R<u64> {
    let gemm_ns = |g: &ShimGemm| phantom_stub_runtime::gemm_ns(stream, g).map_err(|e| runtime_failure(name, "time", e));
    let mut ns = 0u64;
    for c in costs {
        ns += match c {
            Cost::Gemm(g) => gemm_ns(g)?,
            Cost::Roofline { compute, bytes: 0 } => gemm_ns(compute)?,
            Cost::Roofline { compute, bytes } => gemm_ns(compute)?.max(gemm_ns(&Cost::memory_gemm(*bytes))?),
        };
    }
    Ok(ns)
}

/// Executing process: runs the plan in NVIDIA's library on the real stream standing for `stream`, through the
/// runtime (which measures the first execution of each key); returns its duration. A failure of NVIDIA's
/// library is returned with its own status.
fn run_real(stream: *mut c_void, handle: usize, plan: usize, pack: usize, name: &str, key: &str) -> R<u64> {
    let e = real::execution(handle, plan, pack)?;
    let mut failed: Option<Fail> = None;
    let r = phantom_stub_runtime::run_call(stream, key, |real_stream| match real::execute(e, real_stream) {
        Ok(()) => 0,
        Err(f) => {
            let code = f.code as i32;
            failed = Some(f);
            code
        }
    });
    match (r, failed) {
        (Ok(ns), _) => Ok(ns),
        (Err(_), Some(f)) => Err(f),
        (Err(e), None) => Err(runtime_failure(name, "run", e)),
    }
}
