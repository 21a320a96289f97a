//! Logging: `tracing` to stderr (or the file named by `PHANTOM_LOG_FILE`), filtered by `PHANTOM_LOG`
//! (default `warn`). Installed lazily; never writes to stdout, which belongs to the application.
//! (The same as libcudart-phantom's: each cdylib has its own copy of `tracing`'s global subscriber.)

use once_cell::sync::Lazy;
use std::collections::HashSet;
use std::sync::Mutex;

static INIT: std::sync::Once = std::sync::Once::new();

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

/// Whether this is the first report about `name` (each unsupported function is logged once per process).
pub fn first_report(name: &'static str) -> bool {
    REPORTED.lock().map(|mut s| s.insert(name)).unwrap_or(false)
}

/// Logs, once per function, that the application called something Phantom does not implement.
pub fn unsupported_once(name: &'static str) {
    init();
    if first_report(name) {
        tracing::warn!("phantom: {name} is not supported by Phantom yet; returning ncclInvalidUsage");
    }
}
