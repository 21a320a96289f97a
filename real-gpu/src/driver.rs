//! NVIDIA's driver API, loaded by absolute path.
//!
//! Where Phantom's `libcuda.so.1` shadows NVIDIA's (DESIGN.md, reference facts), `dlopen("libcuda.so.1")` would
//! return Phantom's stub, so the real driver is opened by path (`PHANTOM_REAL_DRIVER`, else the usual install
//! locations) with `RTLD_DEEPBIND`, which keeps the driver's own symbol references inside the driver. Only the
//! functions profiling mode needs are looked up ([`Functions`], all required), each by its exact versioned name
//! (cuda.h's `#define`s map the plain names to these), plus a few that `phantom calibrate` needs
//! ([`OptionalFunctions`], each `None` where the library lacks it, so that profiling mode never depends on them).
//! cudarc was considered: its loader finds the driver by name, which is exactly what must not happen here, and a
//! small typed table is all this needs.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};

pub type CUresult = c_int;
pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type CUcontext = *mut c_void;
pub type CUmodule = *mut c_void;
pub type CUfunction = *mut c_void;
pub type CUstream = *mut c_void;
pub type CUevent = *mut c_void;
pub type CUmemGenericAllocationHandle = u64;

pub const CUDA_SUCCESS: CUresult = 0;
pub const CUDA_ERROR_NOT_READY: CUresult = 600;
/// `CU_STREAM_LEGACY`: the legacy default stream's handle.
pub const CU_STREAM_LEGACY: CUstream = 1 as CUstream;
/// `CU_STREAM_PER_THREAD`.
pub const CU_STREAM_PER_THREAD: CUstream = 2 as CUstream;
pub const CU_STREAM_NON_BLOCKING: c_uint = 1;
pub const CU_EVENT_BLOCKING_SYNC: c_uint = 1;
pub const CU_EVENT_DISABLE_TIMING: c_uint = 2;
pub const CU_CTX_SCHED_BLOCKING_SYNC: c_uint = 4;
pub const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;

/// `CUmemLocation` (a device location: type 1, id = ordinal).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CUmemLocation {
    pub type_: c_uint,
    pub id: c_int,
}

/// `CUmemAllocationProp`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUmemAllocationProp {
    pub type_: c_uint,
    pub requested_handle_types: c_uint,
    pub location: CUmemLocation,
    pub win32_handle_meta_data: *mut c_void,
    pub compression_type: u8,
    pub gpu_direct_rdma_capable: u8,
    pub usage: u16,
    pub reserved: [u8; 4],
}

/// `CUmemAccessDesc`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUmemAccessDesc {
    pub location: CUmemLocation,
    pub flags: c_uint,
}

pub const CU_MEM_ALLOCATION_TYPE_PINNED: c_uint = 1;
pub const CU_MEM_LOCATION_TYPE_DEVICE: c_uint = 1;
pub const CU_MEM_ACCESS_FLAGS_PROT_READWRITE: c_uint = 3;

/// A failed driver call: what was called and what the driver said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverError {
    pub code: CUresult,
    pub message: String,
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (CUresult {})", self.message, self.code)
    }
}

impl std::error::Error for DriverError {}

/// The address of `symbol` (NUL-terminated) in the library `lib`, or null.
fn symbol(lib: *mut c_void, symbol: &str) -> *mut c_void {
    debug_assert!(symbol.ends_with('\0'));
    // SAFETY: `lib` is a live dlopen handle and the name is NUL-terminated (the callers' `concat!`).
    unsafe { libc::dlsym(lib, symbol.as_ptr() as *const c_char) }
}

macro_rules! driver_table {
    ($($field:ident = $symbol:literal : fn($($arg:ty),*);)*) => {
        /// The driver functions profiling mode uses, by their exact exported names.
        #[allow(non_snake_case)]
        pub struct Functions {
            $(pub $field: unsafe extern "C" fn($($arg),*) -> CUresult,)*
        }

        impl Functions {
            /// Looks every function up in `lib`; the first one missing is the error.
            fn resolve(lib: *mut c_void) -> Result<Functions, String> {
                Ok(Functions {
                    $($field: {
                        let p = symbol(lib, concat!($symbol, "\0"));
                        if p.is_null() {
                            return Err(format!("the driver has no {}", $symbol));
                        }
                        // SAFETY: the symbol is the driver function with cuda.h's signature, declared above.
                        unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> CUresult>(p) }
                    },)*
                })
            }
        }
    };
}

macro_rules! optional_table {
    ($($field:ident = $symbol:literal : fn($($arg:ty),*);)*) => {
        /// Driver functions that only some users need (`phantom calibrate`: plain device and pinned host
        /// allocations), looked up separately so that a driver, or a stand-in, without them still opens and
        /// serves profiling mode. `None` where the library lacks the symbol; [`Driver::need`] turns that into an
        /// error naming it.
        #[allow(non_snake_case)]
        pub struct OptionalFunctions {
            $(pub $field: Option<unsafe extern "C" fn($($arg),*) -> CUresult>,)*
        }

        impl OptionalFunctions {
            /// Looks every function up in `lib`; a missing one is `None`.
            pub(crate) fn resolve(lib: *mut c_void) -> OptionalFunctions {
                OptionalFunctions {
                    $($field: {
                        let p = symbol(lib, concat!($symbol, "\0"));
                        // SAFETY: the symbol is the driver function with cuda.h's signature, declared above.
                        (!p.is_null()).then(|| unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> CUresult>(p)
                        })
                    },)*
                }
            }

            /// The exported names, in declaration order, with whether each was found.
            pub fn found(&self) -> Vec<(&'static str, bool)> {
                vec![$(($symbol, self.$field.is_some()),)*]
            }
        }
    };
}

driver_table! {
    cuInit = "cuInit": fn(c_uint);
    cuDriverGetVersion = "cuDriverGetVersion": fn(*mut c_int);
    cuDeviceGet = "cuDeviceGet": fn(*mut CUdevice, c_int);
    cuDeviceGetName = "cuDeviceGetName": fn(*mut c_char, c_int, CUdevice);
    cuDevicePrimaryCtxSetFlags = "cuDevicePrimaryCtxSetFlags_v2": fn(CUdevice, c_uint);
    cuDevicePrimaryCtxRetain = "cuDevicePrimaryCtxRetain": fn(*mut CUcontext, CUdevice);
    cuCtxSetCurrent = "cuCtxSetCurrent": fn(CUcontext);
    cuCtxSynchronize = "cuCtxSynchronize": fn();
    cuGetErrorString = "cuGetErrorString": fn(CUresult, *mut *const c_char);
    cuMemAddressReserve = "cuMemAddressReserve": fn(*mut CUdeviceptr, usize, usize, CUdeviceptr, u64);
    cuMemAddressFree = "cuMemAddressFree": fn(CUdeviceptr, usize);
    cuMemCreate = "cuMemCreate": fn(*mut CUmemGenericAllocationHandle, usize, *const CUmemAllocationProp, u64);
    cuMemMap = "cuMemMap": fn(CUdeviceptr, usize, usize, CUmemGenericAllocationHandle, u64);
    cuMemSetAccess = "cuMemSetAccess": fn(CUdeviceptr, usize, *const CUmemAccessDesc, usize);
    cuMemUnmap = "cuMemUnmap": fn(CUdeviceptr, usize);
    cuMemRelease = "cuMemRelease": fn(CUmemGenericAllocationHandle);
    cuModuleLoadData = "cuModuleLoadData": fn(*mut CUmodule, *const c_void);
    cuModuleGetFunction = "cuModuleGetFunction": fn(*mut CUfunction, CUmodule, *const c_char);
    cuFuncSetAttribute = "cuFuncSetAttribute": fn(CUfunction, c_int, c_int);
    cuFuncLoad = "cuFuncLoad": fn(CUfunction);
    cuLaunchKernel = "cuLaunchKernel": fn(CUfunction, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, CUstream, *mut *mut c_void, *mut *mut c_void);
    cuStreamCreate = "cuStreamCreate": fn(*mut CUstream, c_uint);
    cuStreamDestroy = "cuStreamDestroy_v2": fn(CUstream);
    cuStreamSynchronize = "cuStreamSynchronize": fn(CUstream);
    cuStreamWaitEvent = "cuStreamWaitEvent": fn(CUstream, CUevent, c_uint);
    cuEventCreate = "cuEventCreate": fn(*mut CUevent, c_uint);
    cuEventRecord = "cuEventRecord": fn(CUevent, CUstream);
    cuEventSynchronize = "cuEventSynchronize": fn(CUevent);
    cuEventQuery = "cuEventQuery": fn(CUevent);
    cuEventElapsedTime = "cuEventElapsedTime_v2": fn(*mut f32, CUevent, CUevent);
    cuEventDestroy = "cuEventDestroy_v2": fn(CUevent);
    cuMemcpyAsync = "cuMemcpyAsync": fn(CUdeviceptr, CUdeviceptr, usize, CUstream);
    cuMemsetD8Async = "cuMemsetD8Async": fn(CUdeviceptr, u8, usize, CUstream);
}

optional_table! {
    cuMemAlloc = "cuMemAlloc_v2": fn(*mut CUdeviceptr, usize);
    cuMemFree = "cuMemFree_v2": fn(CUdeviceptr);
    cuMemHostAlloc = "cuMemHostAlloc": fn(*mut *mut c_void, usize, c_uint);
    cuMemFreeHost = "cuMemFreeHost": fn(*mut c_void);
    cuStreamQuery = "cuStreamQuery": fn(CUstream);
}

/// Where NVIDIA's driver is usually installed (distribution packages, NVIDIA's container toolkit, WSL).
pub const DRIVER_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    "/usr/lib64/libcuda.so.1",
    "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
    "/usr/local/nvidia/lib64/libcuda.so.1",
    "/usr/lib/wsl/lib/libcuda.so.1",
];

/// The environment variable that names the driver library to use.
pub const DRIVER_ENV: &str = "PHANTOM_REAL_DRIVER";

/// NVIDIA's driver with device 0's primary context made current on the loading thread.
pub struct Driver {
    pub f: Functions,
    /// Functions profiling mode does not need (`None` where the library lacks them).
    pub opt: OptionalFunctions,
    pub path: PathBuf,
    pub device: CUdevice,
    pub context: CUcontext,
    /// `cuDeviceGetName` of device 0.
    pub name: String,
}

// SAFETY: the driver API is thread-safe; the handles are plain identifiers.
unsafe impl Send for Driver {}
unsafe impl Sync for Driver {}

/// The driver library to open: `PHANTOM_REAL_DRIVER` when set, else the first of [`DRIVER_PATHS`] that exists.
pub fn driver_path(env: Option<&str>) -> Result<PathBuf, String> {
    match env.map(str::trim).filter(|s| !s.is_empty()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => DRIVER_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
            format!("no NVIDIA driver found (looked for {}); set {DRIVER_ENV} to its libcuda.so.1", DRIVER_PATHS.join(", "))
        }),
    }
}

impl Driver {
    /// Opens the driver at `path`, initialises it and makes device 0's primary context (blocking
    /// synchronisation, so that waiting for the GPU costs the host no CPU time) current on this thread.
    pub fn open(path: &Path) -> Result<Driver, String> {
        if !path.is_absolute() {
            return Err(format!("{}: the real driver must be named by an absolute path", path.display()));
        }
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| format!("{}: bad path", path.display()))?;
        // SAFETY: dlopen with a NUL-terminated path.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND) };
        if lib.is_null() {
            // SAFETY: dlerror returns a thread-local message or null.
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() { "unknown error".into() } else { unsafe { CStr::from_ptr(why) }.to_string_lossy().into_owned() };
            return Err(format!("cannot open the real driver {}: {why}", path.display()));
        }
        let f = Functions::resolve(lib).map_err(|e| format!("{}: {e}", path.display()))?;
        let opt = OptionalFunctions::resolve(lib);
        let mut d = Driver { f, opt, path: path.to_path_buf(), device: 0, context: std::ptr::null_mut(), name: String::new() };
        d.check(unsafe { (d.f.cuInit)(0) }, "cuInit")?;
        let mut dev: CUdevice = 0;
        d.check(unsafe { (d.f.cuDeviceGet)(&mut dev, 0) }, "cuDeviceGet(0)")?;
        d.device = dev;
        // Fails harmlessly when the context is already active with other flags.
        let _ = unsafe { (d.f.cuDevicePrimaryCtxSetFlags)(dev, CU_CTX_SCHED_BLOCKING_SYNC) };
        let mut ctx: CUcontext = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuDevicePrimaryCtxRetain)(&mut ctx, dev) }, "cuDevicePrimaryCtxRetain")?;
        d.context = ctx;
        d.make_current()?;
        let mut name = [0 as c_char; 256];
        if unsafe { (d.f.cuDeviceGetName)(name.as_mut_ptr(), name.len() as c_int, dev) } == CUDA_SUCCESS {
            d.name = unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        }
        Ok(d)
    }

    /// An optional function (`d.need(d.opt.cuMemAlloc, "cuMemAlloc_v2")?`), or an error naming the symbol the
    /// driver lacks.
    pub fn need<F>(&self, f: Option<F>, symbol: &str) -> Result<F, String> {
        f.ok_or_else(|| format!("the driver {} has no {symbol}", self.path.display()))
    }

    /// `cuDriverGetVersion`: the CUDA version the driver supports, as `major.minor` (13000 → `13.0`).
    pub fn cuda_version(&self) -> Result<String, String> {
        let mut v = 0;
        self.check(unsafe { (self.f.cuDriverGetVersion)(&mut v) }, "cuDriverGetVersion")?;
        Ok(format!("{}.{}", v / 1000, v % 1000 / 10))
    }

    /// Makes the primary context current on the calling thread (every thread that touches the GPU does this
    /// once; the runtime API does it implicitly).
    pub fn make_current(&self) -> Result<(), String> {
        self.check(unsafe { (self.f.cuCtxSetCurrent)(self.context) }, "cuCtxSetCurrent")
    }

    /// `Ok` for `CUDA_SUCCESS`, else the call named `what` with the driver's message.
    pub fn check(&self, rc: CUresult, what: &str) -> Result<(), String> {
        self.result(rc, what).map_err(|e| e.to_string())
    }

    /// Like [`Driver::check`], keeping the code.
    pub fn result(&self, rc: CUresult, what: &str) -> Result<(), DriverError> {
        if rc == CUDA_SUCCESS {
            return Ok(());
        }
        let mut s: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorString stores a static string or leaves the pointer null.
        let text = if unsafe { (self.f.cuGetErrorString)(rc, &mut s) } == CUDA_SUCCESS && !s.is_null() {
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        } else {
            "unknown error".into()
        };
        Err(DriverError { code: rc, message: format!("{what}: {text}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_the_driver_first() {
        assert_eq!(driver_path(Some("/opt/x/libcuda.so.1")).unwrap(), PathBuf::from("/opt/x/libcuda.so.1"));
        assert_eq!(driver_path(Some(" /opt/y/libcuda.so.1 ")).unwrap(), PathBuf::from("/opt/y/libcuda.so.1"));
    }

    #[test]
    fn a_relative_path_is_refused() {
        let e = Driver::open(Path::new("libcuda.so.1")).err().unwrap();
        assert_eq!(e, "libcuda.so.1: the real driver must be named by an absolute path");
    }

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let e = Driver::open(Path::new("/nonexistent/libcuda.so.1")).err().unwrap();
        assert!(e.starts_with("cannot open the real driver /nonexistent/libcuda.so.1: "), "{e}");
    }

    #[test]
    fn optional_functions_a_library_lacks_are_none() {
        // The test program itself exports none of the driver's functions.
        // SAFETY: dlopen(NULL) is the main program's handle.
        let main = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_NOW) };
        assert!(!main.is_null());
        let opt = OptionalFunctions::resolve(main);
        let found = opt.found();
        assert_eq!(
            found.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ["cuMemAlloc_v2", "cuMemFree_v2", "cuMemHostAlloc", "cuMemFreeHost", "cuStreamQuery"]
        );
        assert!(found.iter().all(|(_, f)| !f), "{found:?}");
        assert!(opt.cuMemAlloc.is_none());
    }

    #[test]
    fn allocation_structs_have_cuda_h_layout() {
        assert_eq!(std::mem::size_of::<CUmemAllocationProp>(), 32);
        assert_eq!(std::mem::size_of::<CUmemAccessDesc>(), 12);
    }
}
