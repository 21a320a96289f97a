//! How a hand-written stub library (cuBLAS, cuBLASLt, cuDNN: docs/abi.md, "Stub libraries") reaches Phantom's
//! runtime: the versioned table of `sim_core::shim_abi` that Phantom's `libcudart.so.13` returns from
//! `cudaGetExportTable` for a private id. The runtime is found with `dlopen(RTLD_NOLOAD|RTLD_NOW)`, else
//! `dlopen(RTLD_NOW)`, never linked, so a stub loads even where no runtime is (and then says why its calls fail).
//!
//! One obvious place for the three things every library model needs: time a GEMM on a stream's GPU
//! ([`gemm_ns`]), put timed work on a stream ([`enqueue`]), and log a line the way the stubs do ([`log`]).

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
