//! The shared cluster simulator: one instance per run owns simulated time for the network (DESIGN.md
//! decisions 3 and 5). Rank processes reach it through a [`client`] over a Unix or TCP socket (the
//! [`server`]), or embed it when no launcher started one.
//!
//! - [`proto`]: the messages between a rank process and the simulator.
//! - [`core`]: the conservative coordinator (no I/O): communicators, matching, lower bounds, failures.
//! - [`measure`]: kernel measurements shared between rank processes (profiling mode).
//! - [`server`]: the socket server `phantom run` starts.
//! - [`client`]: what a rank process uses (socket or embedded).

pub mod client;
pub mod core;
pub mod measure;
pub mod payload;
pub mod proto;
pub mod server;

/// Locks `m`, going on with the data of a thread that panicked while holding it (the state is plain data,
/// consistent between operations).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
