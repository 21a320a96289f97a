//! "Call every export": the generated table (`cargo xtask fuzzgen`) of every export of the golden list, each
//! callable with all-zero or "garbage" arguments, and the hand-kept list of exports the test must not call.
//! `src/bin/phantom-call-all.rs` walks the table in a child process; `tests/e2e/call_all.rs` checks the result.

use std::ffi::c_void;

/// Which arguments a call passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// `std::mem::zeroed()` for every argument: null pointers, zero handles and integers, zeroed structs.
    Zero,
    /// Integers, floats, enums and integer handles all-ones; pointers, pointer handles, callbacks and
    /// by-value structs zeroed.
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

/// One export: its name and a function that calls the symbol's address with its exact C signature.
pub struct Export {
    pub name: &'static str,
    /// Returns the `cudaError_t` the call returned, `None` for exports returning something else.
    pub call: unsafe fn(*mut c_void, Args) -> Option<u32>,
}

/// A value with every bit set.
///
/// # Safety
/// All-ones must be a valid `T` (integers, floats, enum newtypes); the generator only uses it for those.
pub unsafe fn ones<T>() -> T {
    let mut v = std::mem::MaybeUninit::<T>::uninit();
    unsafe {
        std::ptr::write_bytes(v.as_mut_ptr(), 0xff, 1);
        v.assume_init()
    }
}

/// Exports the test does not call, with the reason. Empty: nothing in the runtime API may block forever or end
/// the process on bad arguments, so every export is called.
pub const EXCLUDED: &[(&str, &str)] = &[];

#[rustfmt::skip]
#[path = "generated/call_all.rs"]
mod generated;
pub use generated::EXPORTS;
