//! Host time of library calls in a process that executes on the real GPU (profiling mode; docs/time.md,
//! "Executing processes"). There, each call of a stub runs NVIDIA's library beside the stub's own bookkeeping
//! (mirrored descriptors, keys), which a real program does not do. So every exported function of a library stub
//! is bracketed for the runtime's clock ([`guard`], [`guard_value`]: what the generated exports call), every call
//! of NVIDIA's library inside it is timed ([`nvidia`], [`nvidia_queue`]), and the runtime charges the
//! application NVIDIA's host time in place of the CPU time the call used.
//!
//! A following process brackets its exports too, and charges what an executing process measured per export
//! (docs/profiling.md, "Host time of following ranks"). In every other process, and with a runtime older than
//! table version 5, this costs one cached check per call and changes nothing: the stub's CPU time counts as the
//! application's.

use crate::table;
use phantom_stub_common::Status;
use sim_core::shim_abi::RuntimeTable;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

thread_local! {
    /// NVIDIA's host time (ns) inside the calling thread's current outermost library call of this stub.
    static NVIDIA_NS: Cell<u64> = const { Cell::new(0) };
}

/// The runtime table when this process profiles (executes on the real GPU, or follows one that does): the
/// runtime brackets its library calls. A following process charges the executing one's cost per export.
fn bracketing() -> Option<&'static RuntimeTable> {
    static T: OnceLock<Option<usize>> = OnceLock::new();
    let t = T.get_or_init(|| {
        let t = table().filter(|t| t.version >= 5 && t.size >= std::mem::size_of::<RuntimeTable>())?;
        (crate::profile_mode() != crate::Profile::Off).then_some(t as *const RuntimeTable as usize)
    });
    t.map(|p| unsafe { &*(p as *const RuntimeTable) })
}

/// The runtime table when this process executes on the real GPU: NVIDIA's calls are timed.
fn timing() -> Option<&'static RuntimeTable> {
    static EXECUTING: OnceLock<bool> = OnceLock::new();
    bracketing().filter(|_| *EXECUTING.get_or_init(|| crate::profile_mode() == crate::Profile::Execute))
}

/// Runs an implemented export that returns a status (`phantom_stub_common::guard`) inside a library-call
/// bracket.
pub fn guard(name: &str, note: &str, fallback: u64, body: impl FnOnce() -> Status) -> u64 {
    bracket(|| phantom_stub_common::guard(name, note, fallback, body))
}

/// Runs an implemented export that returns a value (`phantom_stub_common::guard_value`) inside a library-call
/// bracket.
pub fn guard_value<T: Default>(name: &str, note: &str, body: impl FnOnce() -> T) -> T {
    bracket(|| phantom_stub_common::guard_value(name, note, body))
}

fn bracket<R>(call: impl FnOnce() -> R) -> R {
    let Some(t) = bracketing() else { return call() };
    unsafe { (t.library_enter)() };
    // A nested export hands its own NVIDIA time to the runtime; the outer one keeps what it had.
    let outer = NVIDIA_NS.with(|n| n.replace(0));
    let r = call();
    let ns = NVIDIA_NS.with(|n| n.replace(outer));
    unsafe { (t.library_exit)(ns) };
    r
}

/// Calls NVIDIA's library (`call`), timing it as part of the current library call's host time.
pub fn nvidia<T>(call: impl FnOnce() -> T) -> T {
    let Some(t) = timing() else { return call() };
    let (r, ns) = timed(t, call);
    charge(ns);
    r
}

/// Runs `call` with the real time it took (the runtime's clock: the application's clocks are virtual).
fn timed<T>(t: &RuntimeTable, call: impl FnOnce() -> T) -> (T, u64) {
    let t0 = unsafe { (t.host_clock_ns)() };
    let r = call();
    (r, unsafe { (t.host_clock_ns)() }.saturating_sub(t0))
}

/// Adds `ns` of NVIDIA's host time to the current library call's.
fn charge(ns: u64) {
    NVIDIA_NS.with(|n| n.set(n.get().saturating_add(ns)));
}

/// A call of NVIDIA's library that queues GPU work (`cublasLtMatmul`, `cudnnBackendExecute`) and may wait for
/// room in the driver's queue: a call over [`QUEUE_WAIT_NS`] counts as the mean of this library's calls
/// that did not wait (the simulated GPU, not the real one, decides when the simulated host waits).
pub fn nvidia_queue<T>(call: impl FnOnce() -> T) -> T {
    static SUM: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(t) = timing() else { return call() };
    let (r, ns) = timed(t, call);
    let charged = if ns > QUEUE_WAIT_NS {
        SUM.load(Ordering::Relaxed) / COUNT.load(Ordering::Relaxed).max(1)
    } else {
        SUM.fetch_add(ns, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        ns
    };
    charge(charged);
    r
}

/// A call that queues GPU work and takes the host longer than this waited for the driver's queue (the runtime's
/// `BLOCKED_LAUNCH_NS` for kernel launches).
pub const QUEUE_WAIT_NS: u64 = 50_000;
