//! Shared by the generated stub libraries in `stubs/<name>/` (docs/abi.md, "Stub libraries"): the export macros
//! and the log-once "not supported" message. No dependencies, so every stub stays a small cdylib.
//!
//! Logging follows `libcudart-phantom`'s convention without its `tracing` stack: a stub writes one line per
//! function per process, `phantom: <name> is not supported by Phantom yet (...)`, to stderr (or appended to the
//! file named by `PHANTOM_LOG_FILE`), unless `PHANTOM_LOG` is `off` or `error` (the levels at which the runtime's
//! `warn` lines are hidden too). Never to stdout, which belongs to the application; never a panic.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `PHANTOM_LOG` lets warnings through (it does unless it is exactly `off` or `error`).
fn enabled() -> bool {
    match std::env::var("PHANTOM_LOG") {
        Ok(level) => !matches!(level.trim().to_ascii_lowercase().as_str(), "off" | "error"),
        Err(_) => true,
    }
}

/// Logs, once per function (`logged` is the function's own flag), that the application called `name`, which the
/// stub does not implement. `note` says which library and which status it returns.
pub fn unsupported(name: &str, note: &str, logged: &AtomicBool) {
    if logged.swap(true, Ordering::Relaxed) || !enabled() {
        return;
    }
    let line = format!("phantom: {name} is not supported by Phantom yet ({note})\n");
    let file = std::env::var_os("PHANTOM_LOG_FILE")
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let _ = match file {
        Some(mut f) => f.write_all(line.as_bytes()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// What an implemented export of a stub library returns (`xtask/src/stubs.rs`, `Overrides`): `Ok(())` is 0 on
/// the wire, an error its status.
pub type Status = Result<(), std::num::NonZeroU32>;

/// Runs an implemented export's body: its status, zero-extended as the stubs' are, or `fallback` (the library's
/// "not supported") after logging if the body panicked; a panic never unwinds into C.
pub fn guard(name: &str, note: &str, fallback: u64, body: impl FnOnce() -> Status) -> u64 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(status)) => u64::from(status.get()),
        Err(_) => {
            if enabled() {
                let _ = std::io::stderr().write_all(format!("phantom: {name} panicked ({note})\n").as_bytes());
            }
            fallback
        }
    }
}

/// Runs the body of an implemented export that returns a value rather than a status (`cudnnGetVersion`,
/// `nvmlErrorString`, ...): its value, or `T::default()` after logging if the body panicked.
pub fn guard_value<T: Default>(name: &str, note: &str, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            if enabled() {
                let _ = std::io::stderr().write_all(format!("phantom: {name} panicked ({note})\n").as_bytes());
            }
            T::default()
        }
    }
}

/// A `const char *` to a static, NUL-terminated string, as C functions like `cudnnGetErrorString` return; the
/// default is NULL.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticStr(pub *const std::ffi::c_char);

impl StaticStr {
    pub const fn new(s: &'static std::ffi::CStr) -> Self {
        Self(s.as_ptr())
    }
}

impl Default for StaticStr {
    fn default() -> Self {
        Self(std::ptr::null())
    }
}

/// A zero-filled, writable data export of exactly `N` bytes (`.bss`), standing in for a data symbol of
/// NVIDIA's library whose contents Phantom does not model.
#[repr(transparent)]
pub struct Zeroed<const N: usize>(std::cell::UnsafeCell<[u8; N]>);

// SAFETY: Rust code never reads or writes the bytes; they exist for the application, as NVIDIA's do.
unsafe impl<const N: usize> Sync for Zeroed<N> {}

impl<const N: usize> Zeroed<N> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(std::cell::UnsafeCell::new([0; N]))
    }
}

/// One `#[no_mangle] extern "C"` function per name, taking no arguments (the C calling convention lets a
/// callee ignore its arguments) and returning `$status` (zero-extended to 64 bits, so that a C function returning
/// `int`, an enum, or an 8-byte struct whose first field is the status all read it) after logging once.
#[macro_export]
macro_rules! functions {
    (status = $status:expr, note = $note:expr; $($name:ident)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name() -> u64 {
            static LOGGED: ::core::sync::atomic::AtomicBool = ::core::sync::atomic::AtomicBool::new(false);
            $crate::unsupported(stringify!($name), $note, &LOGGED);
            $status
        }
    )*};
}

/// One zero-filled `#[no_mangle]` data export per `name: size`.
#[macro_export]
macro_rules! objects {
    ($($name:ident: $size:literal)*) => {$(
        #[no_mangle]
        pub static $name: $crate::Zeroed<$size> = $crate::Zeroed::new();
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_function() {
        let flag = AtomicBool::new(false);
        unsupported("f", "test", &flag);
        assert!(flag.load(Ordering::Relaxed));
        unsupported("f", "test", &flag); // second call: nothing, no panic
    }

    #[test]
    fn zeroed_has_exact_size() {
        assert_eq!(std::mem::size_of::<Zeroed<40>>(), 40);
        assert_eq!(std::mem::size_of::<Zeroed<0>>(), 0);
    }
}
