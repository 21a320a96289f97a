//! The runtime this library runs on: Phantom's `libcudart.so.13`, reached through its private table
//! (`sim_core::shim_abi`) and its public API, so that NCCL and CUDA share one state (streams, devices,
//! clocks, the simulator link) and never a second copy.

use sim_core::shim_abi::{RuntimeTable, RUNTIME_TABLE_ID};

/// The table version whose fields this library uses (version 1: NCCL's entries).
/// Version 3 added `submit_with_buffers`, which this library uses for every operation.
const NEEDS_VERSION: u32 = 3;
use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

/// Entry points of the runtime this library uses.
pub struct Runtime {
    pub table: &'static RuntimeTable,
    pub get_device: unsafe extern "C" fn(*mut c_int) -> c_int,
    pub malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> c_int,
    pub free: unsafe extern "C" fn(*mut c_void) -> c_int,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, found on first use; the error says why it cannot be used (logged once).
pub fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            let r = unsafe { find() };
            if let Err(e) = &r {
                crate::log::init();
                tracing::error!("phantom: libnccl.so.2 cannot work: {e}");
            }
            r
        })
        .as_ref()
        .map_err(Clone::clone)
}

unsafe fn sym(lib: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if p.is_null() {
        Err(format!("libcudart.so.13 has no {}", name.to_string_lossy()))
    } else {
        Ok(p)
    }
}

unsafe fn find() -> Result<Runtime, String> {
    let lib = unsafe { libc::dlopen(c"libcudart.so.13".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if lib.is_null() {
        let why = unsafe { CStr::from_ptr(libc::dlerror()) }.to_string_lossy().into_owned();
        return Err(format!("cannot load libcudart.so.13 ({why}); put Phantom's library directory on LD_LIBRARY_PATH or use `phantom run`"));
    }
    type GetExportTable = unsafe extern "C" fn(*mut *const c_void, *const [u8; 16]) -> c_int;
    let get = unsafe { std::mem::transmute::<*mut c_void, GetExportTable>(sym(lib, c"cudaGetExportTable")?) };
    let mut table: *const c_void = std::ptr::null();
    let rc = unsafe { get(&mut table, &RUNTIME_TABLE_ID) };
    if rc != 0 || table.is_null() {
        return Err("the libcudart.so.13 loaded is not Phantom's (it has no Phantom runtime table); \
                    Phantom's libnccl.so.2 needs Phantom's libcudart.so.13 from the same directory"
            .into());
    }
    let table = unsafe { &*(table as *const RuntimeTable) };
    if table.version < NEEDS_VERSION || table.size < std::mem::size_of::<RuntimeTable>() {
        return Err(format!(
            "Phantom's libcudart.so.13 has runtime table version {} ({} bytes); this libnccl.so.2 needs version {NEEDS_VERSION}: use libraries from the same build",
            table.version, table.size
        ));
    }
    unsafe {
        Ok(Runtime {
            table,
            get_device: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_int) -> c_int>(sym(lib, c"cudaGetDevice")?),
            malloc: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut *mut c_void, usize) -> c_int>(sym(lib, c"cudaMalloc")?),
            free: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> c_int>(sym(lib, c"cudaFree")?),
        })
    }
}

/// The reason for the calling thread's last failed table call.
pub fn last_message(rt: &Runtime) -> String {
    let mut buf = vec![0 as std::ffi::c_char; 1024];
    unsafe { (rt.table.last_message)(buf.as_mut_ptr(), buf.len()) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}
