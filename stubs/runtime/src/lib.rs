//! How a hand-written stub library (cuBLAS, cuBLASLt, cuDNN: docs/abi.md, "Stub libraries") reaches Phantom's
//! runtime: the versioned table of `sim_core::shim_abi` that Phantom's `libcudart.so.13` returns from
//! `cudaGetExportTable` for a private id. The runtime is found with `dlopen(RTLD_NOLOAD|RTLD_NOW)`, else
//! `dlopen(RTLD_NOW)`, never linked, so a stub loads even where no runtime is (and then says why its calls fail).
//!
//! One obvious place for the three things every library model needs: time a GEMM on a stream's GPU
//! ([`gemm_ns`]), put timed work on a stream ([`enqueue`]), and log a line the way the stubs do ([`log`]).

pub mod host;
pub mod real_lt;
pub mod words;

pub use host::{guard, guard_value, nvidia, nvidia_queue};

use sim_core::shim_abi::{RuntimeTable, ShimGemm, RUNTIME_TABLE_ID};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// Why a call into the runtime failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No Phantom runtime is loaded or loadable (the reason was logged once).
    NoRuntime,
    /// The runtime refused: its CUDA error code and its last message.
    Cuda { code: c_int, message: String },
}

impl Error {
    /// The CUDA error code (`cudaErrorInitializationError` = 3 when there is no runtime).
    pub fn code(&self) -> c_int {
        match self {
            Error::NoRuntime => 3,
            Error::Cuda { code, .. } => *code,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoRuntime => f.write_str("Phantom's libcudart.so.13 is not available"),
            Error::Cuda { code, message } => write!(f, "CUDA error {code}: {message}"),
        }
    }
}

/// Writes `phantom: <library>: <msg>` to stderr unless `PHANTOM_LOG=off`.
pub fn log(library: &str, msg: &str) {
    if !matches!(std::env::var("PHANTOM_LOG").as_deref().map(str::trim), Ok("off")) {
        eprintln!("phantom: {library}: {msg}");
    }
}

/// Phantom's runtime table, found on first use; `None` (logged once) where there is none or it is too old.
pub fn table() -> Option<&'static RuntimeTable> {
    static TABLE: OnceLock<Option<usize>> = OnceLock::new();
    let t = TABLE.get_or_init(|| unsafe {
        let mut lib = libc::dlopen(c"libcudart.so.13".as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_NOW);
        if lib.is_null() {
            lib = libc::dlopen(c"libcudart.so.13".as_ptr(), libc::RTLD_NOW);
        }
        if lib.is_null() {
            log("runtime", "cannot load libcudart.so.13: put Phantom's library directory on LD_LIBRARY_PATH");
            return None;
        }
        let get = libc::dlsym(lib, c"cudaGetExportTable".as_ptr());
        if get.is_null() {
            log("runtime", "libcudart.so.13 has no cudaGetExportTable");
            return None;
        }
        type GetExportTable = unsafe extern "C" fn(*mut *const c_void, *const [u8; 16]) -> c_int;
        let get = std::mem::transmute::<*mut c_void, GetExportTable>(get);
        let mut table: *const c_void = std::ptr::null();
        if get(&mut table, &RUNTIME_TABLE_ID) != 0 || table.is_null() {
            log("runtime", "the libcudart.so.13 loaded is not Phantom's; Phantom's CUDA libraries need Phantom's runtime");
            return None;
        }
        let t = &*(table as *const RuntimeTable);
        // Version 2 introduced `enqueue_work` and `gemm_ns`, the last fields the library models use.
        if t.version < 2 || t.size < std::mem::size_of::<RuntimeTable>() {
            log("runtime", "Phantom's libcudart.so.13 is too old for this library (runtime table version < 2)");
            return None;
        }
        Some(table as usize)
    });
    t.map(|p| unsafe { &*(p as *const RuntimeTable) })
}

/// The runtime's last error message (thread-local there).
fn last_message(t: &RuntimeTable) -> String {
    let mut buf = vec![0 as c_char; 1024];
    unsafe { (t.last_message)(buf.as_mut_ptr(), buf.len()) };
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// How long `g` takes on the GPU of `stream` (the roofline model of `sim_core::blas` with that GPU's spec).
/// `stream` is a handle the runtime validates, never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn gemm_ns(stream: *mut c_void, g: &ShimGemm) -> Result<u64, Error> {
    let t = table().ok_or(Error::NoRuntime)?;
    let mut ns = 0u64;
    match unsafe { (t.gemm_ns)(stream, g, &mut ns) } {
        0 => Ok(ns),
        code => Err(Error::Cuda { code, message: last_message(t) }),
    }
}

/// Places `ns` of GPU work named `name` on `stream`, in stream order, as a kernel would be. `stream` is a
/// handle the runtime validates, never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn enqueue(stream: *mut c_void, ns: u64, name: &CStr) -> Result<(), Error> {
    let t = table().ok_or(Error::NoRuntime)?;
    match unsafe { (t.enqueue_work)(stream, ns, 0, name.as_ptr()) } {
        0 => Ok(()),
        code => Err(Error::Cuda { code, message: last_message(t) }),
    }
}

/// Phantom's runtime table of version 4 or later (library calls in profiling mode and from tables).
fn table_v4() -> Option<&'static RuntimeTable> {
    table().filter(|t| t.version >= 4 && t.size >= std::mem::size_of::<RuntimeTable>())
}

/// What this process does in profiling mode (docs/profiling.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Library calls are timed by tables or the library's model.
    Off,
    /// Library calls run on the real GPU: use [`run_call`].
    Execute,
    /// Library call times may come from executing processes: [`call_time`] first.
    Follow,
}

/// This process's profiling mode (`Off` without a runtime of table version 4).
pub fn profile_mode() -> Profile {
    match table_v4().map(|t| unsafe { (t.profile_mode)() }) {
        Some(sim_core::shim_abi::PROFILE_EXECUTE) => Profile::Execute,
        Some(sim_core::shim_abi::PROFILE_FOLLOW) => Profile::Follow,
        _ => Profile::Off,
    }
}

/// Which source timed a library call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Profiled,
    Table,
    /// The library's own model.
    Model,
}

impl Source {
    fn code(self) -> u32 {
        match self {
            Source::Profiled => sim_core::shim_abi::SOURCE_PROFILED,
            Source::Table => sim_core::shim_abi::SOURCE_TABLE,
            Source::Model => sim_core::shim_abi::SOURCE_MODEL,
        }
    }
}

fn c_key(key: &str) -> Result<std::ffi::CString, Error> {
    std::ffi::CString::new(key.replace('\t', " "))
        .map_err(|_| Error::Cuda { code: 1, message: format!("library-call key {key:?} contains NUL") })
}

/// Executing process: runs a library call's real work on the real GPU. `run` gets the real `CUstream` standing
/// for `stream`, queues the call there (calling NVIDIA's library) and returns the library's status (0 =
/// success). The first call with `key` is measured; the call's duration in ns is returned either way.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn run_call<F: FnMut(*mut c_void) -> i32>(stream: *mut c_void, key: &str, mut run: F) -> Result<u64, Error> {
    unsafe extern "C" fn trampoline<F: FnMut(*mut c_void) -> i32>(ctx: *mut c_void, real_stream: *mut c_void) -> i32 {
        let f = unsafe { &mut *(ctx as *mut F) };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(real_stream))).unwrap_or(-1)
    }
    let t = table_v4().ok_or(Error::NoRuntime)?;
    let key = c_key(key)?;
    let mut ns = 0u64;
    let ctx = &mut run as *mut F as *mut c_void;
    match unsafe { (t.run_call)(stream, key.as_ptr(), trampoline::<F>, ctx, &mut ns) } {
        0 => Ok(ns),
        code => Err(Error::Cuda { code, message: last_message(t) }),
    }
}

/// The duration (ns) of library call `key` from profiling or a kernel-time table's `call` record, if either
/// has it (a following process may wait here for an executing one to measure it).
pub fn call_time(key: &str) -> Option<(u64, Source)> {
    let t = table_v4()?;
    let key = c_key(key).ok()?;
    let (mut ns, mut source) = (0u64, 0u32);
    match unsafe { (t.call_time)(key.as_ptr(), &mut ns, &mut source) } {
        0 => Some((ns, if source == sim_core::shim_abi::SOURCE_PROFILED { Source::Profiled } else { Source::Table })),
        _ => None,
    }
}

/// [`enqueue`], saying which source timed the work (for the run's coverage report).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn enqueue_timed(stream: *mut c_void, ns: u64, name: &CStr, source: Source) -> Result<(), Error> {
    let Some(t) = table_v4() else { return enqueue(stream, ns, name) };
    match unsafe { (t.enqueue_timed)(stream, ns, 0, name.as_ptr(), source.code()) } {
        0 => Ok(()),
        code => Err(Error::Cuda { code, message: last_message(t) }),
    }
}

/// The environment variable listing directories (`:`-separated) that hold NVIDIA's real libraries.
pub const REAL_LIBS_ENV: &str = "PHANTOM_REAL_LIBS";

/// Directories where NVIDIA's real `soname` may be: `PHANTOM_REAL_LIBS`, then the `nvidia/*/lib` folders of
/// every Python `site-packages` (or `dist-packages`) folder that a loaded library lives in (where a pip install
/// of torch puts NVIDIA's wheels).
fn real_library_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var(REAL_LIBS_ENV)
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.trim().is_empty())
        .map(|s| std::path::PathBuf::from(s.trim()))
        .collect();
    let mut roots: Vec<std::path::PathBuf> = Vec::new();
    for path in loaded_objects() {
        for marker in ["/site-packages/", "/dist-packages/"] {
            if let Some(i) = path.find(marker) {
                let root = std::path::PathBuf::from(&path[..i + marker.len() - 1]);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        }
    }
    for root in roots {
        if let Ok(rd) = std::fs::read_dir(root.join("nvidia")) {
            let mut found: Vec<_> = rd.flatten().map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs
}

/// Paths of the objects loaded in this process (`dl_iterate_phdr`).
fn loaded_objects() -> Vec<String> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
        let out = unsafe { &mut *(data as *mut Vec<String>) };
        let name = unsafe { (*info).dlpi_name };
        if !name.is_null() {
            let s = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
            if !s.is_empty() {
                out.push(s);
            }
        }
        0
    }
    let mut out: Vec<String> = Vec::new();
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut Vec<String> as *mut c_void) };
    out
}

/// The file this code was loaded from (the Phantom stub library that calls [`real_library`]).
fn own_file() -> Option<std::path::PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let here = own_file as *const c_void;
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let p = std::path::PathBuf::from(unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned());
    p.canonicalize().ok()
}

/// Opens NVIDIA's real `soname` (for example `libcublasLt.so.13`) by absolute path, never Phantom's stub of it:
/// the first candidate of [`real_library_dirs`] that is not the calling Phantom library itself. `RTLD_DEEPBIND`
/// keeps the real library's references to its own symbols inside it, although Phantom's stub exports the same
/// names.
pub fn real_library(soname: &str) -> Result<usize, String> {
    let dirs = real_library_dirs();
    let own = own_file();
    for dir in &dirs {
        let path = dir.join(soname);
        if !path.is_file() || (own.is_some() && path.canonicalize().ok() == own) {
            continue;
        }
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND) };
        if lib.is_null() {
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() { "unknown error".into() } else { unsafe { CStr::from_ptr(why) }.to_string_lossy().into_owned() };
            log("runtime", &format!("cannot open {}: {why}", path.display()));
            continue;
        }
        return Ok(lib as usize);
    }
    Err(format!(
        "NVIDIA's {soname} was not found (looked in {}); set {REAL_LIBS_ENV} to the folder that holds it",
        if dirs.is_empty() { "no folder".to_string() } else { dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ") }
    ))
}

/// The address of `symbol` in a library opened by [`real_library`], or null.
pub fn real_symbol(lib: usize, symbol: &CStr) -> *mut c_void {
    unsafe { libc::dlsym(lib as *mut c_void, symbol.as_ptr()) }
}
