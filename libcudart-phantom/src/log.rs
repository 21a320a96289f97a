//! Logging (the shared `phantom-log` crate): `PHANTOM_LOG`, `PHANTOM_LOG_FILE`, stderr, never stdout.

pub use phantom_log::init;

/// Logs, once per function, that the application called something Phantom does not implement.
pub fn unsupported_once(name: &'static str) {
    init();
    if phantom_log::first_report(name) {
        tracing::warn!("{name} is not supported by Phantom; returning cudaErrorNotSupported");
    }
}
