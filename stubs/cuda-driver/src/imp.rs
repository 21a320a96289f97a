//! The implemented part of Phantom's `libcuda.so.1` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries"). Every other export stays a stub
//! returning `CUDA_ERROR_NOT_SUPPORTED`.
//!
//! The driver API is a thin view of Phantom's runtime: `libcudart.so.13` (Phantom's, found with `dlopen`, never
//! linked) owns devices, memory and the current device; this module only translates. A device's primary context
//! is a fake `CUcontext`, a stable non-null address per device (`&CONTEXTS[d]`); making it current switches the
//! runtime's current device (`cudaSetDevice`).

use phantom_cuda_sys::{cudaDeviceAttr, cudaDeviceProp, cudaPointerAttributes};
use phantom_stub_common::Status;
use std::cell::RefCell;
// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub type CUdevice = c_int;
pub type CUcontext = *mut c_void;
pub type CUdeviceptr = u64;
pub type CUstream = *mut c_void;
/// `CUuuid`: 16 bytes.
pub type CUuuid = [u8; 16];

/// `CUresult` values this module returns (cuda.h).
mod code {
    pub const INVALID_VALUE: u32 = 1;
    pub const NOT_INITIALIZED: u32 = 3;
    pub const INVALID_DEVICE: u32 = 101;
    pub const INVALID_CONTEXT: u32 = 201;
    pub const NOT_FOUND: u32 = 500;
    pub const NOT_SUPPORTED: u32 = 801;
}

fn err(code: u32) -> Status {
    Err(NonZeroU32::new(code).expect("an error code is nonzero"))
}

/// A `cudaError_t` as a `CUresult`: the runtime's codes that these calls return (invalid value, invalid device,
/// not supported, ...) have the driver's numbers.
fn rt_status(code: c_int) -> Status {
    match NonZeroU32::new(code as u32) {
        None => Ok(()),
        Some(c) => Err(c),
    }
}

/// The most devices a fake context exists for (the runtime's device count is checked on every call).
const MAX_DEVICES: usize = 64;

/// One fake primary context per device: its address is the `CUcontext`; the value counts retains.
static CONTEXTS: [AtomicU32; MAX_DEVICES] = [const { AtomicU32::new(0) }; MAX_DEVICES];

fn context(dev: CUdevice) -> CUcontext {
    &CONTEXTS[dev as usize] as *const AtomicU32 as CUcontext
}

/// The device of a fake context, if it is one.
fn device_of(ctx: CUcontext) -> Option<CUdevice> {
    let base = CONTEXTS.as_ptr() as usize;
    let off = (ctx as usize).checked_sub(base)?;
    let size = std::mem::size_of::<AtomicU32>();
    (off % size == 0 && off / size < MAX_DEVICES).then_some((off / size) as CUdevice)
}

thread_local! {
    /// Devices current before each `cuCtxPushCurrent` of this thread, to restore on `cuCtxPopCurrent`.
    static PUSHED: RefCell<Vec<CUdevice>> = const { RefCell::new(Vec::new()) };
}

/// The public runtime API of Phantom's `libcudart.so.13` that the driver calls use.
struct Runtime {
    get_device_count: unsafe extern "C" fn(*mut c_int) -> c_int,
    get_device: unsafe extern "C" fn(*mut c_int) -> c_int,
    set_device: unsafe extern "C" fn(c_int) -> c_int,
    driver_version: unsafe extern "C" fn(*mut c_int) -> c_int,
    properties: unsafe extern "C" fn(*mut cudaDeviceProp, c_int) -> c_int,
    attribute: unsafe extern "C" fn(*mut c_int, cudaDeviceAttr, c_int) -> c_int,
    pointer_attributes: unsafe extern "C" fn(*mut cudaPointerAttributes, *const c_void) -> c_int,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, found on first use; when it cannot be, every call returns `CUDA_ERROR_NOT_INITIALIZED` (the
/// reason is logged once).
fn runtime() -> Result<&'static Runtime, NonZeroU32> {
    let found = RUNTIME.get_or_init(|| {
        let r = unsafe { find() };
        if let Err(e) = &r {
            if std::env::var("PHANTOM_LOG").map_or(true, |l| !matches!(l.trim(), "off")) {
                eprintln!("phantom: libcuda.so.1 cannot work: {e}");
            }
        }
        r
    });
    found.as_ref().map_err(|_| NonZeroU32::new(code::NOT_INITIALIZED).unwrap())
}

// The target types are the `Runtime` fields' (the runtime API's signatures), written once there.
#[allow(clippy::missing_transmute_annotations)]
unsafe fn find() -> Result<Runtime, String> {
    let name = c"libcudart.so.13";
    let mut lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_NOW) };
    if lib.is_null() {
        lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    }
    if lib.is_null() {
        let why = unsafe { CStr::from_ptr(libc::dlerror()) }.to_string_lossy().into_owned();
        return Err(format!("cannot load libcudart.so.13 ({why}); put Phantom's library directory on LD_LIBRARY_PATH"));
    }
    let sym = |n: &CStr| {
        let p = unsafe { libc::dlsym(lib, n.as_ptr()) };
        if p.is_null() {
            Err(format!("libcudart.so.13 has no {}", n.to_string_lossy()))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is the runtime API function of that name, with the signature of NVIDIA's header.
    unsafe {
        Ok(Runtime {
            get_device_count: std::mem::transmute::<*mut c_void, _>(sym(c"cudaGetDeviceCount")?),
            get_device: std::mem::transmute::<*mut c_void, _>(sym(c"cudaGetDevice")?),
            set_device: std::mem::transmute::<*mut c_void, _>(sym(c"cudaSetDevice")?),
            driver_version: std::mem::transmute::<*mut c_void, _>(sym(c"cudaDriverGetVersion")?),
            properties: std::mem::transmute::<*mut c_void, _>(sym(c"cudaGetDeviceProperties")?),
            attribute: std::mem::transmute::<*mut c_void, _>(sym(c"cudaDeviceGetAttribute")?),
            pointer_attributes: std::mem::transmute::<*mut c_void, _>(sym(c"cudaPointerGetAttributes")?),
        })
    }
}

fn device_count() -> Result<c_int, NonZeroU32> {
    let rt = runtime()?;
    let mut n = 0;
    rt_status(unsafe { (rt.get_device_count)(&mut n) })?;
    Ok(n.min(MAX_DEVICES as c_int))
}

/// `dev` if it is a device of the cluster, else `CUDA_ERROR_INVALID_DEVICE`.
fn check_device(dev: CUdevice) -> Result<CUdevice, NonZeroU32> {
    if (0..device_count()?).contains(&dev) {
        Ok(dev)
    } else {
        Err(NonZeroU32::new(code::INVALID_DEVICE).unwrap())
    }
}

fn current_device() -> Result<CUdevice, NonZeroU32> {
    let rt = runtime()?;
    let mut d = 0;
    rt_status(unsafe { (rt.get_device)(&mut d) })?;
    Ok(d)
}

fn set_device(dev: CUdevice) -> Status {
    let rt = runtime()?;
    rt_status(unsafe { (rt.set_device)(dev) })
}

fn properties(dev: CUdevice) -> Result<cudaDeviceProp, NonZeroU32> {
    let rt = runtime()?;
    let dev = check_device(dev)?;
    // SAFETY: cudaDeviceProp is plain data (integers, arrays); all-zero is a valid value.
    let mut prop: cudaDeviceProp = unsafe { std::mem::zeroed() };
    rt_status(unsafe { (rt.properties)(&mut prop, dev) })?;
    Ok(prop)
}

pub fn cuInit(_flags: c_uint) -> Status {
    device_count().map(|_| ())
}

pub fn cuDriverGetVersion(version: &mut c_int) -> Status {
    let rt = runtime()?;
    rt_status(unsafe { (rt.driver_version)(version) })
}

pub fn cuDeviceGetCount(count: &mut c_int) -> Status {
    *count = device_count()?;
    Ok(())
}

pub fn cuDeviceGet(device: &mut CUdevice, ordinal: c_int) -> Status {
    *device = check_device(ordinal)?;
    Ok(())
}

/// `name` is a buffer of `len` bytes (a raw pointer: the generator has no slice parameters).
pub fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> Status {
    if name.is_null() || len <= 0 {
        return err(code::INVALID_VALUE);
    }
    let prop = properties(dev)?;
    let src = unsafe { CStr::from_ptr(prop.name.as_ptr()) }.to_bytes();
    let n = src.len().min(len as usize - 1);
    // SAFETY: the caller gives `len` writable bytes; `n + 1 <= len`.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr() as *const c_char, name, n);
        *name.add(n) = 0;
    }
    Ok(())
}

/// `CUdevice_attribute` and `cudaDeviceAttr` number their common attributes alike (cuda.h, driver_types.h).
pub fn cuDeviceGetAttribute(value: &mut c_int, attribute: c_uint, dev: CUdevice) -> Status {
    let rt = runtime()?;
    let dev = check_device(dev)?;
    rt_status(unsafe { (rt.attribute)(value, cudaDeviceAttr(attribute), dev) })
}

pub fn cuDeviceTotalMem_v2(bytes: &mut usize, dev: CUdevice) -> Status {
    *bytes = properties(dev)?.totalGlobalMem;
    Ok(())
}

pub fn cuDeviceGetUuid(uuid: &mut CUuuid, dev: CUdevice) -> Status {
    let prop = properties(dev)?;
    for (o, i) in uuid.iter_mut().zip(prop.uuid.bytes) {
        *o = i as u8;
    }
    Ok(())
}

pub fn cuDeviceGetUuid_v2(uuid: &mut CUuuid, dev: CUdevice) -> Status {
    cuDeviceGetUuid(uuid, dev)
}

/// Flags are always 0. A primary context is active once retained (and not fully released) or while its device
/// is the calling thread's current device: the runtime makes the current device's context on first use, and
/// Phantom's runtime always has a current device.
pub fn cuDevicePrimaryCtxGetState(dev: CUdevice, flags: &mut c_uint, active: &mut c_int) -> Status {
    let dev = check_device(dev)?;
    *flags = 0;
    *active = c_int::from(CONTEXTS[dev as usize].load(Ordering::Relaxed) > 0 || current_device()? == dev);
    Ok(())
}

pub fn cuDevicePrimaryCtxRetain(ctx: &mut CUcontext, dev: CUdevice) -> Status {
    let dev = check_device(dev)?;
    CONTEXTS[dev as usize].fetch_add(1, Ordering::Relaxed);
    *ctx = context(dev);
    Ok(())
}

pub fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> Status {
    let dev = check_device(dev)?;
    let released = CONTEXTS[dev as usize].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    released.map(|_| ()).or_else(|_| err(code::INVALID_CONTEXT))
}

pub fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> Status {
    cuDevicePrimaryCtxRelease_v2(dev)
}

/// The primary context of the runtime's current device: Phantom's runtime always has one.
pub fn cuCtxGetCurrent(ctx: &mut CUcontext) -> Status {
    *ctx = context(current_device()?);
    Ok(())
}

/// Makes `ctx`'s device the runtime's current device; NULL ("no context") changes nothing.
pub fn cuCtxSetCurrent(ctx: CUcontext) -> Status {
    if ctx.is_null() {
        return Ok(());
    }
    match device_of(ctx) {
        Some(dev) => set_device(check_device(dev)?),
        None => err(code::INVALID_CONTEXT),
    }
}

pub fn cuCtxPushCurrent_v2(ctx: CUcontext) -> Status {
    let Some(dev) = device_of(ctx) else { return err(code::INVALID_CONTEXT) };
    let dev = check_device(dev)?;
    let previous = current_device()?;
    set_device(dev)?;
    PUSHED.with(|p| p.borrow_mut().push(previous));
    Ok(())
}

pub fn cuCtxPushCurrent(ctx: CUcontext) -> Status {
    cuCtxPushCurrent_v2(ctx)
}

/// Returns the current context and makes the one current before the matching push current again.
pub fn cuCtxPopCurrent_v2(ctx: Option<&mut CUcontext>) -> Status {
    let Some(previous) = PUSHED.with(|p| p.borrow_mut().pop()) else { return err(code::INVALID_CONTEXT) };
    let current = current_device()?;
    set_device(previous)?;
    if let Some(ctx) = ctx {
        *ctx = context(current);
    }
    Ok(())
}

pub fn cuCtxPopCurrent(ctx: Option<&mut CUcontext>) -> Status {
    cuCtxPopCurrent_v2(ctx)
}

pub fn cuCtxGetDevice(device: &mut CUdevice) -> Status {
    *device = current_device()?;
    Ok(())
}

/// Every stream belongs to the current device's context here (Phantom has one context per device).
pub fn cuStreamGetCtx(_stream: CUstream, ctx: &mut CUcontext) -> Status {
    cuCtxGetCurrent(ctx)
}

/// `CUresult` names and NVIDIA's strings for them.
const ERRORS: &[(u32, &CStr, &CStr)] = &[
    (0, c"CUDA_SUCCESS", c"no error"),
    (1, c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
    (2, c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
    (3, c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
    (4, c"CUDA_ERROR_DEINITIALIZED", c"driver shutting down"),
    (34, c"CUDA_ERROR_STUB_LIBRARY", c"CUDA driver is a stub library"),
    (46, c"CUDA_ERROR_DEVICE_UNAVAILABLE", c"CUDA-capable device(s) is/are busy or unavailable"),
    (100, c"CUDA_ERROR_NO_DEVICE", c"no CUDA-capable device is detected"),
    (101, c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
    (200, c"CUDA_ERROR_INVALID_IMAGE", c"device kernel image is invalid"),
    (201, c"CUDA_ERROR_INVALID_CONTEXT", c"invalid device context"),
    (202, c"CUDA_ERROR_CONTEXT_ALREADY_CURRENT", c"context already current"),
    (209, c"CUDA_ERROR_NO_BINARY_FOR_GPU", c"no kernel image is available for execution on the device"),
    (218, c"CUDA_ERROR_INVALID_PTX", c"a PTX JIT compilation failed"),
    (301, c"CUDA_ERROR_FILE_NOT_FOUND", c"file not found"),
    (400, c"CUDA_ERROR_INVALID_HANDLE", c"invalid resource handle"),
    (401, c"CUDA_ERROR_ILLEGAL_STATE", c"the operation cannot be performed in the present state"),
    (500, c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
    (600, c"CUDA_ERROR_NOT_READY", c"device not ready"),
    (700, c"CUDA_ERROR_ILLEGAL_ADDRESS", c"an illegal memory access was encountered"),
    (701, c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", c"too many resources requested for launch"),
    (702, c"CUDA_ERROR_LAUNCH_TIMEOUT", c"the launch timed out and was terminated"),
    (710, c"CUDA_ERROR_ASSERT", c"device-side assert triggered"),
    (719, c"CUDA_ERROR_LAUNCH_FAILED", c"unspecified launch failure"),
    (800, c"CUDA_ERROR_NOT_PERMITTED", c"operation not permitted"),
    (801, c"CUDA_ERROR_NOT_SUPPORTED", c"operation not supported"),
    (900, c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", c"operation not permitted when stream is capturing"),
    (999, c"CUDA_ERROR_UNKNOWN", c"unknown error"),
];

/// An unknown code gives NULL and `CUDA_ERROR_INVALID_VALUE`, as NVIDIA's driver does.
fn error_text(error: c_uint, text: &mut *const c_char, pick: fn(&(u32, &'static CStr, &'static CStr)) -> &'static CStr) -> Status {
    match ERRORS.iter().find(|e| e.0 == error) {
        Some(e) => {
            *text = pick(e).as_ptr();
            Ok(())
        }
        None => {
            *text = std::ptr::null();
            err(code::INVALID_VALUE)
        }
    }
}

pub fn cuGetErrorString(error: c_uint, text: &mut *const c_char) -> Status {
    error_text(error, text, |e| e.2)
}

pub fn cuGetErrorName(error: c_uint, text: &mut *const c_char) -> Status {
    error_text(error, text, |e| e.1)
}

/// `CUdriverProcAddressQueryResult`: found, not found.
const SYMBOL_SUCCESS: c_int = 0;
const SYMBOL_NOT_FOUND: c_int = 1;

/// Any export of this library, by its base name: the newest variant we export (`name_v3`, `name_v2`, `name`),
/// whose signature is the one the header's macro gives `name` (implemented or a stub that says so when called).
/// The lookup is `dlsym` in this very library (found by its SONAME), never in another one.
pub(crate) fn lookup(symbol: &CStr) -> Option<*mut c_void> {
    let own = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_NOW) };
    if own.is_null() {
        return None;
    }
    let base = symbol.to_str().ok()?;
    ["_v3", "_v2", ""].iter().find_map(|suffix| {
        let name = std::ffi::CString::new(format!("{base}{suffix}")).ok()?;
        let p = unsafe { libc::dlsym(own, name.as_ptr()) };
        (!p.is_null()).then_some(p)
    })
}

/// Found: `*pfn` is the function; not found: `*pfn` is NULL, `*symbol_status` `CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND`
/// and the result `CUDA_ERROR_NOT_FOUND` (cuda.h). The version and flags (per-thread default stream) are ignored:
/// Phantom exports one variant of each function.
pub fn cuGetProcAddress_v2(
    symbol: &CStr,
    pfn: &mut *mut c_void,
    _cuda_version: c_int,
    _flags: u64,
    symbol_status: Option<&mut c_int>,
) -> Status {
    let found = lookup(symbol);
    *pfn = found.unwrap_or(std::ptr::null_mut());
    if let Some(s) = symbol_status {
        *s = if found.is_some() { SYMBOL_SUCCESS } else { SYMBOL_NOT_FOUND };
    }
    if found.is_some() {
        Ok(())
    } else {
        err(code::NOT_FOUND)
    }
}

/// CUDA 11's form, without the status out-parameter.
pub fn cuGetProcAddress(symbol: &CStr, pfn: &mut *mut c_void, cuda_version: c_int, flags: u64) -> Status {
    cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, None)
}

/// `CUpointer_attribute` values answered from `cudaPointerGetAttributes`; `data` points to the attribute's own
/// type (a raw pointer: its type depends on `attribute`).
pub fn cuPointerGetAttribute(data: *mut c_void, attribute: c_uint, ptr: CUdeviceptr) -> Status {
    const CONTEXT: c_uint = 1;
    const MEMORY_TYPE: c_uint = 2;
    const DEVICE_POINTER: c_uint = 3;
    const HOST_POINTER: c_uint = 4;
    const DEVICE_ORDINAL: c_uint = 9;
    if data.is_null() {
        return err(code::INVALID_VALUE);
    }
    let rt = runtime()?;
    // SAFETY: plain data; all-zero is valid.
    let mut attrs: cudaPointerAttributes = unsafe { std::mem::zeroed() };
    rt_status(unsafe { (rt.pointer_attributes)(&mut attrs, ptr as *const c_void) })?;
    // cudaMemoryType: unregistered 0, host 1, device 2, managed 3. CUmemorytype: host 1, device 2, unified 4.
    let memory_type: c_uint = match attrs.type_.0 {
        1 => 1,
        2 => 2,
        3 => 4,
        _ => return err(code::INVALID_VALUE), // not memory the driver knows
    };
    // SAFETY: the caller's `data` holds the attribute's type (cuda.h documents each).
    unsafe {
        match attribute {
            CONTEXT => *(data as *mut CUcontext) = context(check_device(attrs.device)?),
            MEMORY_TYPE => *(data as *mut c_uint) = memory_type,
            DEVICE_POINTER => *(data as *mut CUdeviceptr) = attrs.devicePointer as CUdeviceptr,
            HOST_POINTER => *(data as *mut *mut c_void) = attrs.hostPointer,
            DEVICE_ORDINAL => *(data as *mut c_int) = attrs.device,
            _ => return err(code::NOT_SUPPORTED),
        }
    }
    Ok(())
}
