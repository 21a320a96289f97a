//! "Call every export": the generated tables (`cargo xtask fuzzgen`) of every export of each golden list, each
//! callable with all-zero or "garbage" arguments, and the hand-kept lists of exports the test must not call.
//! `src/bin/phantom-call-all.rs` walks a table in a child process; `tests/e2e/call_all.rs` checks the result.

use std::ffi::c_void;

/// Which arguments a call passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// `std::mem::zeroed()` for every argument: null pointers, zero handles and integers, zeroed structs.
    Zero,
    /// Integers, floats, enums and integer handles all-ones; pointers, pointer handles, callbacks and
    /// by-value structs zeroed, except NCCL's own opaque handles (`ncclComm_t`, `ncclWindow_t`,
    /// `ncclParamHandle_t`), which are all-ones too: a handle the library never handed out.
    Garbage,
}

impl std::str::FromStr for Args {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zero" => Ok(Args::Zero),
            "garbage" => Ok(Args::Garbage),
            other => Err(format!("unknown argument mode `{other}` (zero|garbage)")),
        }
    }
}

/// What a call returned, as far as the test looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The library's status type (`cudaError_t`, `ncclResult_t`), or the `int` of an export without a C
    /// declaration.
    Status(u32),
    /// A pointer (e.g. `const char*` of `ncclGetErrorString`), as an address.
    Pointer(usize),
    /// Nothing (`void`).
    Nothing,
    /// Another type (an `int`, a struct by value).
    Other,
}

impl std::fmt::Display for Returned {
    /// How the child prints it after `RET <name> `: `status <n>`, `ptr <0x…>`, `void`, `-`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Returned::Status(code) => write!(f, "status {code}"),
            Returned::Pointer(p) => write!(f, "ptr {p:#x}"),
            Returned::Nothing => write!(f, "void"),
            Returned::Other => write!(f, "-"),
        }
    }
}

/// One export: its name and a function that calls the symbol's address with its exact C signature.
pub struct Export {
    pub name: &'static str,
    pub call: unsafe fn(*mut c_void, Args) -> Returned,
}

/// A value with every bit set.
///
/// # Safety
/// All-ones must be a valid `T` (integers, floats, enum newtypes, raw pointers used as handles); the generator
/// only uses it for those.
pub unsafe fn ones<T>() -> T {
    let mut v = std::mem::MaybeUninit::<T>::uninit();
    unsafe {
        std::ptr::write_bytes(v.as_mut_ptr(), 0xff, 1);
        v.assume_init()
    }
}

/// A library the test calls every export of.
pub struct Table {
    /// The name `phantom-call-all` takes (`cudart`, `nccl`).
    pub name: &'static str,
    /// The staged file (NVIDIA's SONAME).
    pub soname: &'static str,
    pub exports: &'static [Export],
    /// Exports the test does not call, with the reason.
    pub excluded: &'static [(&'static str, &'static str)],
}

/// `libcudart.so.13`. Nothing excluded: nothing in the runtime API may block forever or end the process on bad
/// arguments, so every export is called.
pub const CUDART: Table = Table { name: "cudart", soname: "libcudart.so.13", exports: &EXPORTS, excluded: EXCLUDED };

/// `libnccl.so.2`. Nothing excluded: a call with no valid communicator must fail, never block or crash.
pub const NCCL: Table = Table { name: "nccl", soname: "libnccl.so.2", exports: &nccl::EXPORTS, excluded: &[] };

pub const TABLES: &[Table] = &[CUDART, NCCL];

/// Exports of `libcudart.so.13` the test does not call (see [`CUDART`]).
pub const EXCLUDED: &[(&str, &str)] = &[];

#[rustfmt::skip]
#[path = "generated/call_all.rs"]
mod generated;
pub use generated::EXPORTS;

/// The `libnccl.so.2` table.
#[rustfmt::skip]
#[path = "generated/call_all_nccl.rs"]
pub mod nccl;
