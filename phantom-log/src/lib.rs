//! Logging for Phantom's shim libraries: `tracing` to stderr (or the file named by `PHANTOM_LOG_FILE`),
//! filtered by `PHANTOM_LOG` (default `warn`). Installed lazily; never writes to stdout, which belongs to the
//! application. Each shim (a cdylib) links its own copy of this crate and of `tracing`'s global subscriber,
//! so each installs its own.

use once_cell::sync::Lazy;
use std::collections::HashSet;
use std::sync::Mutex;

static INIT: std::sync::Once = std::sync::Once::new();

/// Installs the subscriber (once; later calls do nothing).
pub fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("PHANTOM_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).without_time().with_target(false);
        let file = std::env::var_os("PHANTOM_LOG_FILE")
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        let _ = match file {
            Some(f) => builder.with_writer(Mutex::new(f)).with_ansi(false).try_init(),
            None => builder.with_writer(std::io::stderr).with_ansi(false).try_init(),
        };
    });
}

static REPORTED: Lazy<Mutex<HashSet<&'static str>>> = Lazy::new(|| Mutex::new(HashSet::new()));

/// Whether this is the first report about `name` in this library (each unsupported function is logged once
/// per process).
pub fn first_report(name: &'static str) -> bool {
    REPORTED.lock().map(|mut s| s.insert(name)).unwrap_or(false)
}

/// Reports a panic caught at the FFI edge of export `name` (the program gets an error code instead of an
/// abort) and returns the panic's message.
pub fn internal_error(name: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    init();
    tracing::error!("internal error in {name}: {msg}; returning an error instead of aborting");
    msg
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_once() {
        assert!(super::first_report("phantomLogTest"));
        assert!(!super::first_report("phantomLogTest"));
    }

    #[test]
    fn panic_messages_are_recovered() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(super::internal_error("phantomTest", &*p), "boom 7");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(super::internal_error("phantomTest", &*p), "static");
    }
}
