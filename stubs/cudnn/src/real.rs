//! NVIDIA's real cuDNN beside the stub, in a process that executes on the real GPU (profiling mode:
//! docs/profiling.md, docs/cudnn.md "Profiling"). Every handle and backend descriptor the stub hands out gets a
//! **twin** made by NVIDIA's `libcudnn.so.9` (opened by `phantom_stub_runtime::real_library`, by absolute path);
//! every attribute set on the stub's is set on the twin, with descriptor- and handle-typed values translated
//! to their twins; finalizing, querying and destroying go to the twin as well, so the application sees NVIDIA's
//! heuristics, engine configurations and workspace sizes, and an execution runs NVIDIA's kernels on the real
//! stream that stands for the handle's Phantom stream. Pointer-typed values (the variant pack's data pointers
//! and workspace) are real device addresses in an executing process and pass unchanged.
//!
//! Nothing here is used unless `phantom_stub_runtime::profile_mode()` is `Execute`.

use super::backend::{Fail, R};
use super::consts::{status, ty};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The soname of NVIDIA's library (which loads its sub-libraries, `libcudnn_graph.so.9`, …, from its folder).
pub const SONAME: &str = "libcudnn.so.9";

type Ptr = *mut c_void;

type Create = unsafe extern "C" fn(*mut Ptr) -> c_int;
type Destroy = unsafe extern "C" fn(Ptr) -> c_int;
type SetStream = unsafe extern "C" fn(Ptr, Ptr) -> c_int;
type CreateDescriptor = unsafe extern "C" fn(c_int, *mut Ptr) -> c_int;
type SetAttribute = unsafe extern "C" fn(Ptr, c_int, c_int, i64, *const c_void) -> c_int;
type GetAttribute = unsafe extern "C" fn(Ptr, c_int, c_int, i64, *mut i64, *mut c_void) -> c_int;
type Execute = unsafe extern "C" fn(Ptr, Ptr, Ptr) -> c_int;
type LastError = unsafe extern "C" fn(*mut c_char, usize);
type GetVersion = unsafe extern "C" fn() -> usize;

/// NVIDIA's functions (cudnn_graph.h of cuDNN 9: `cudnnStatus_t` is a C enum, an `int` on the wire).
pub struct Api {
    create: Create,
    destroy: Destroy,
    set_stream: SetStream,
    create_descriptor: CreateDescriptor,
    destroy_descriptor: Destroy,
    set_attribute: SetAttribute,
    get_attribute: GetAttribute,
    finalize: Destroy,
    execute: Execute,
    /// `void cudnnGetLastErrorString(char *message, size_t max_size)` (cuDNN 9), for log lines.
    last_error: Option<LastError>,
    /// `size_t cudnnGetVersion(void)`: an executing process reports NVIDIA's version, so that the application
    /// builds graphs the real library accepts.
    version: Option<GetVersion>,
}

/// NVIDIA's cuDNN version (`major * 10000 + minor * 100 + patch`), when the real library is in use.
pub fn version() -> Option<usize> {
    let api = api().ok()?;
    api.version.map(|f| unsafe { f() })
}

fn load() -> Result<Api, String> {
    let lib = phantom_stub_runtime::real_library(SONAME)?;
    let sym = |name: &CStr| -> Result<Ptr, String> {
        let p = phantom_stub_runtime::real_symbol(lib, name);
        if p.is_null() {
            Err(format!("NVIDIA's {SONAME} has no {}", name.to_string_lossy()))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is NVIDIA's function of that name, whose C signature the field's type spells.
    unsafe {
        Ok(Api {
            create: std::mem::transmute::<Ptr, Create>(sym(c"cudnnCreate")?),
            destroy: std::mem::transmute::<Ptr, Destroy>(sym(c"cudnnDestroy")?),
            set_stream: std::mem::transmute::<Ptr, SetStream>(sym(c"cudnnSetStream")?),
            create_descriptor: std::mem::transmute::<Ptr, CreateDescriptor>(sym(c"cudnnBackendCreateDescriptor")?),
            destroy_descriptor: std::mem::transmute::<Ptr, Destroy>(sym(c"cudnnBackendDestroyDescriptor")?),
            set_attribute: std::mem::transmute::<Ptr, SetAttribute>(sym(c"cudnnBackendSetAttribute")?),
            get_attribute: std::mem::transmute::<Ptr, GetAttribute>(sym(c"cudnnBackendGetAttribute")?),
            finalize: std::mem::transmute::<Ptr, Destroy>(sym(c"cudnnBackendFinalize")?),
            execute: std::mem::transmute::<Ptr, Execute>(sym(c"cudnnBackendExecute")?),
            last_error: sym(c"cudnnGetLastErrorString").ok().map(|p| std::mem::transmute::<Ptr, LastError>(p)),
            version: sym(c"cudnnGetVersion").ok().map(|p| std::mem::transmute::<Ptr, GetVersion>(p)),
        })
    }
}

/// NVIDIA's library, opened on first use. If it cannot be opened, the reason is logged once and every call that
/// needs it fails with `CUDNN_STATUS_NOT_INITIALIZED`.
pub fn api() -> R<&'static Api> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    let api = API.get_or_init(|| {
        load()
            .inspect_err(|why| super::log(&format!("profiling: cannot use NVIDIA's cuDNN, so cuDNN calls fail: {why}")))
    });
    match api {
        Ok(a) => Ok(a),
        Err(why) => Err(Fail {
            code: status::NOT_INITIALIZED,
            msg: format!("NVIDIA's cuDNN is not available: {why}"),
            logged: true,
        }),
    }
}

/// NVIDIA's last error message on this thread (empty if it has none or no `cudnnGetLastErrorString`).
fn last_error(api: &Api) -> String {
    let Some(f) = api.last_error else { return String::new() };
    let mut buf = vec![0 as c_char; 1024];
    // SAFETY: the buffer has `len` bytes; NVIDIA's function writes at most that many.
    unsafe { f(buf.as_mut_ptr(), buf.len()) };
    *buf.last_mut().expect("1024 bytes") = 0;
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// A status of NVIDIA's library: `Ok` for success; otherwise that status, with one log line naming the call and
/// NVIDIA's message.
pub fn check(api: &Api, what: &str, s: c_int) -> R<()> {
    if s == 0 {
        return Ok(());
    }
    let code = s as u32;
    let name = status::name(code).map_or_else(|| "CUDNN_STATUS_?".to_string(), |n| n.to_string_lossy().into_owned());
    let why = last_error(api);
    let msg = format!("NVIDIA's cuDNN: {what}: {name} ({s}){}{why}", if why.is_empty() { "" } else { ": " });
    super::log(&msg);
    Err(Fail { code, msg, logged: true })
}

// ---------------------------------------------------------------------------------------------------------
// Twins
// ---------------------------------------------------------------------------------------------------------

/// Stub handle → NVIDIA's handle, stub descriptor → NVIDIA's descriptor.
struct Twins {
    handles: BTreeMap<usize, usize>,
    descs: BTreeMap<usize, usize>,
}

static TWINS: Mutex<Twins> = Mutex::new(Twins { handles: BTreeMap::new(), descs: BTreeMap::new() });

fn twins() -> MutexGuard<'static, Twins> {
    TWINS.lock().unwrap_or_else(|e| e.into_inner())
}

fn no_twin(what: &str, stub: usize) -> Fail {
    Fail {
        code: status::BAD_PARAM,
        msg: format!("{what} {stub:#x} has no twin in NVIDIA's cuDNN (not made by this library in this process)"),
        logged: false,
    }
}

/// NVIDIA's handle standing for stub handle `h` (NULL for NULL).
pub fn handle(h: usize) -> R<usize> {
    if h == 0 {
        return Ok(0);
    }
    twins().handles.get(&h).copied().ok_or_else(|| no_twin("cudnnHandle_t", h))
}

/// NVIDIA's descriptor standing for stub descriptor `d` (NULL for NULL).
pub fn desc(d: usize) -> R<usize> {
    if d == 0 {
        return Ok(0);
    }
    twins().descs.get(&d).copied().ok_or_else(|| no_twin("backend descriptor", d))
}

/// `cudnnCreate` in NVIDIA's library for stub handle `h`.
pub fn create_handle(h: usize) -> R<()> {
    let api = api()?;
    let mut real: Ptr = std::ptr::null_mut();
    check(api, "cudnnCreate", phantom_stub_runtime::nvidia(|| unsafe { (api.create)(&mut real) }))?;
    twins().handles.insert(h, real as usize);
    Ok(())
}

/// `cudnnDestroy` of stub handle `h`'s twin (none: nothing to do).
pub fn destroy_handle(h: usize) -> R<()> {
    let Some(real) = twins().handles.remove(&h) else { return Ok(()) };
    let api = api()?;
    check(api, "cudnnDestroy", phantom_stub_runtime::nvidia(|| unsafe { (api.destroy)(real as Ptr) }))
}

/// `cudnnBackendCreateDescriptor` of the same type for stub descriptor `d`.
pub fn create_desc(d: usize, kind: c_int) -> R<()> {
    let api = api()?;
    let mut real: Ptr = std::ptr::null_mut();
    check(api, "cudnnBackendCreateDescriptor", phantom_stub_runtime::nvidia(|| unsafe { (api.create_descriptor)(kind, &mut real) }))?;
    twins().descs.insert(d, real as usize);
    Ok(())
}

/// `cudnnBackendDestroyDescriptor` of stub descriptor `d`'s twin (none: nothing to do).
pub fn destroy_desc(d: usize) -> R<()> {
    let Some(real) = twins().descs.remove(&d) else { return Ok(()) };
    let api = api()?;
    check(api, "cudnnBackendDestroyDescriptor", phantom_stub_runtime::nvidia(|| unsafe { (api.destroy_descriptor)(real as Ptr) }))
}

/// Reads `count` pointer-sized elements at `elems` and maps each through `map` (descriptor- or handle-typed
/// attribute values).
fn translated(count: i64, elems: *const c_void, map: fn(usize) -> R<usize>) -> R<Vec<usize>> {
    if count <= 0 || elems.is_null() {
        return Ok(Vec::new());
    }
    // As the stub's own `backend::set`: no attribute has anywhere near 2^24 elements.
    if count >= 1 << 24 {
        return Err(Fail { code: status::BAD_PARAM, msg: format!("element count {count}"), logged: false });
    }
    // SAFETY: the caller passes `count` elements of 8 bytes (cuDNN's contract), non-NULL, bounded above.
    let src = unsafe { std::slice::from_raw_parts(elems as *const usize, count as usize) };
    src.iter().map(|&p| map(p)).collect()
}

/// `cudnnBackendSetAttribute` on `d`'s twin: descriptors and handles become their twins, everything else (data
/// types, integers, scalars, device pointers) passes as the application gave it.
pub fn set(d: usize, name: c_int, t: c_int, count: i64, elems: *const c_void) -> R<()> {
    let api = api()?;
    let real = desc(d)?;
    let map: Option<fn(usize) -> R<usize>> = match t as u32 {
        ty::BACKEND_DESCRIPTOR => Some(desc),
        ty::HANDLE => Some(handle),
        _ => None,
    };
    let s = match map {
        Some(map) => {
            let values = translated(count, elems, map)?;
            let p = if values.is_empty() { elems } else { values.as_ptr() as *const c_void };
            phantom_stub_runtime::nvidia(|| unsafe { (api.set_attribute)(real as Ptr, name, t, count, p) })
        }
        None => phantom_stub_runtime::nvidia(|| unsafe { (api.set_attribute)(real as Ptr, name, t, count, elems) }),
    };
    check(api, "cudnnBackendSetAttribute", s)
}

/// `cudnnBackendFinalize` on `d`'s twin.
pub fn finalize(d: usize) -> R<()> {
    let api = api()?;
    let real = desc(d)?;
    check(api, "cudnnBackendFinalize", phantom_stub_runtime::nvidia(|| unsafe { (api.finalize)(real as Ptr) }))
}

/// `cudnnBackendGetAttribute` answered by `d`'s twin. Descriptor-typed: the caller's descriptors are passed as
/// their twins, which NVIDIA's library fills. Handle-typed: NVIDIA's handles written are turned back into the
/// stub's. Returns the attribute's element count (also written to `count`).
pub fn get(d: usize, name: c_int, t: c_int, requested: i64, count: Option<&mut i64>, elems: *mut c_void) -> R<i64> {
    let api = api()?;
    let real = desc(d)?;
    let mut n: i64 = 0;
    let s = if t as u32 == ty::BACKEND_DESCRIPTOR && !elems.is_null() && requested > 0 {
        let mut targets = translated(requested, elems, desc)?;
        phantom_stub_runtime::nvidia(|| unsafe { (api.get_attribute)(real as Ptr, name, t, requested, &mut n, targets.as_mut_ptr() as *mut c_void) })
    } else {
        phantom_stub_runtime::nvidia(|| unsafe { (api.get_attribute)(real as Ptr, name, t, requested, &mut n, elems) })
    };
    check(api, "cudnnBackendGetAttribute", s)?;
    if t as u32 == ty::HANDLE && !elems.is_null() {
        let written = n.clamp(0, requested.max(0)) as usize;
        // SAFETY: NVIDIA's library wrote `written` handles there (the caller provided room for `requested`).
        let out = unsafe { std::slice::from_raw_parts_mut(elems as *mut usize, written) };
        let t = twins();
        for h in out.iter_mut() {
            if let Some((&stub, _)) = t.handles.iter().find(|(_, &r)| r == *h) {
                *h = stub;
            }
        }
    }
    if let Some(c) = count {
        *c = n;
    }
    Ok(n)
}

/// What an execution runs in NVIDIA's library: its handle, plan and variant pack.
#[derive(Clone, Copy)]
pub struct Execution {
    handle: usize,
    plan: usize,
    pack: usize,
}

/// The twins an execution of `plan` with `pack` on stub handle `h` needs.
pub fn execution(h: usize, plan: usize, pack: usize) -> R<Execution> {
    Ok(Execution { handle: handle(h)?, plan: desc(plan)?, pack: desc(pack)? })
}

/// Queues the execution on `real_stream` (NVIDIA's `cudnnSetStream`, then `cudnnBackendExecute`) and returns
/// NVIDIA's status: 0, or the failure (logged, with NVIDIA's message).
pub fn execute(e: Execution, real_stream: *mut c_void) -> Result<(), Fail> {
    let api = api()?;
    check(api, "cudnnSetStream", phantom_stub_runtime::nvidia(|| unsafe { (api.set_stream)(e.handle as Ptr, real_stream) }))?;
    check(api, "cudnnBackendExecute", phantom_stub_runtime::nvidia_queue(|| unsafe { (api.execute)(e.handle as Ptr, e.plan as Ptr, e.pack as Ptr) }))
}
