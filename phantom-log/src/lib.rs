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

#[cfg(test)]
mod tests {
    #[test]
    fn reports_once() {
        assert!(super::first_report("phantomLogTest"));
        assert!(!super::first_report("phantomLogTest"));
    }
}
