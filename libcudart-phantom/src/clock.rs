//! Virtual host clocks (DESIGN.md decision 4). STUB — deterministic only; being filled in.
//!
//! Contract used by the rest of the library:
//! - `api_enter()` at the start of every runtime API call: accrues the application's CPU time since the
//!   previous call (measured mode) and returns the calling thread's virtual time.
//! - `api_exit(cost)` at the end: discards the CPU time Phantom itself used and charges the modelled cost.
//! - `advance_to(t)`: a blocking call returns at simulated time `t` (never moves the clock back).
//! - `now()`: the calling thread's virtual time (what the interposed `clock_gettime` reports).

use sim_core::config::HostConfig;
use sim_core::{SimDuration, SimTime};
use std::cell::Cell;

thread_local! {
    static VIRTUAL: Cell<u64> = const { Cell::new(0) };
}

pub fn configure(_host: &HostConfig) {}

pub fn now() -> SimTime {
    SimTime::from_nanos(VIRTUAL.with(|v| v.get()))
}

pub fn api_enter() -> SimTime {
    now()
}

pub fn api_exit(cost: SimDuration) {
    VIRTUAL.with(|v| v.set(v.get() + cost.as_nanos()));
}

pub fn advance_to(t: SimTime) {
    VIRTUAL.with(|v| v.set(v.get().max(t.as_nanos())));
}
