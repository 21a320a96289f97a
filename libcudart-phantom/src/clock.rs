//! Virtual host clocks (DESIGN.md decision 4; the model is described in docs/time.md).
//!
//! Every host thread owns a virtual clock in simulated nanoseconds since process start. It advances by
//! - the application's own CPU time (measured mode only, scaled by `cpu_scale`),
//! - the modelled cost of each runtime API call (`api_exit`),
//! - blocking calls that complete at a simulated time (`advance_to`), and sleeps (`advance_by`).
//!
//! Contract used by the rest of the library:
//! - `api_enter()` at the start of every runtime API call: accrues the application's CPU time since the
//!   previous call (measured mode) and returns the calling thread's virtual time.
//! - `api_exit(cost)` at the end: discards the CPU time Phantom itself used and charges the modelled cost.
//! - `advance_to(t)`: a blocking call returns at simulated time `t` (never moves the clock back).
//! - `now()`: the calling thread's virtual time (what the interposed `clock_gettime` reports).
//!
//! A process that executes on the real GPU (profiling mode) in measured host time charges what NVIDIA's code
//! took instead of modelled costs (docs/time.md, "Executing processes"): `nvidia_time(ns)` adds the host time of
//! a call of NVIDIA's driver made for the current runtime API call, which `api_exit` then charges (plus
//! `api_call_ns` for the runtime's own part) in place of the call's cost; and `library_enter()` …
//! `library_exit(nvidia_ns)` bracket an exported function of a library stub (cuBLAS, cuDNN, …), whose own CPU
//! time is discarded and whose NVIDIA host time is charged.
//!
//! Nothing here may call a libc time function through the dynamic symbol table: the interposed
//! `clock_gettime` calls `now()`, so thread CPU time is read with the raw system call, thread-locals are
//! const-initialised `Cell`s (no lazy allocation), and the lazily read mode uses `getenv` (no allocation).

use sim_core::config::{HostConfig, HostTimeMode, SleepMode};
use sim_core::{SimDuration, SimTime};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

const MODE_UNSET: u8 = 0;
const MODE_RESOLVING: u8 = 1;
const MODE_MEASURED: u8 = 2;
const MODE_DETERMINISTIC: u8 = 3;

/// The host-time mode; `MODE_UNSET` until `configure` or the first clock use (which reads
/// `PHANTOM_HOST_TIME` itself, so the interposed libc functions work before the runtime is initialised).
static MODE: AtomicU8 = AtomicU8::new(MODE_UNSET);
/// `cpu_scale` as `f64` bits (1.0 until configured).
static CPU_SCALE: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);
static API_CALL_NS: AtomicU64 = AtomicU64::new(0);
static LAUNCH_CALL_NS: AtomicU64 = AtomicU64::new(0);
/// `host.sleeps == real` (the default): sleeps and timed waits also take real time.
static REAL_SLEEPS: AtomicBool = AtomicBool::new(true);
/// This process executes on the real GPU (profiling mode): NVIDIA's measured host time replaces modelled costs
/// in measured host time.
static EXECUTING: AtomicBool = AtomicBool::new(false);
/// Following process: the host time an executing process measured per library export (0: not known yet),
/// charged for each of this process's exports in place of the stub's own CPU time.
static FOLLOW_LIBRARY_NS: AtomicU64 = AtomicU64::new(0);
/// Executing process: NVIDIA's host time over all outermost library exports but one-offs
/// ([`LIBRARY_ONE_OFF_NS`]), and how many there were.
static LIBRARY_SUM_NS: AtomicU64 = AtomicU64::new(0);
static LIBRARY_CALLS: AtomicU64 = AtomicU64::new(0);
/// Where the host time charged to this process's threads went, summed over threads (docs/time.md, "Where host
/// time goes"): the application's own CPU time (scaled), modelled call costs, NVIDIA's driver's host time in
/// runtime calls and NVIDIA's libraries' in library calls (executing processes), and the CPU time Phantom used
/// inside calls, which is not charged; and, also not charged, the CPU time an executing process's threads spent
/// inside NVIDIA's synchronising calls waiting for the real GPU (NVIDIA spins by default).
pub struct Tally {
    pub application_ns: AtomicU64,
    pub call_cost_ns: AtomicU64,
    pub driver_ns: AtomicU64,
    pub library_ns: AtomicU64,
    pub phantom_ns: AtomicU64,
    pub real_wait_ns: AtomicU64,
}

pub static TALLY: Tally = Tally {
    application_ns: AtomicU64::new(0),
    call_cost_ns: AtomicU64::new(0),
    driver_ns: AtomicU64::new(0),
    library_ns: AtomicU64::new(0),
    phantom_ns: AtomicU64::new(0),
    real_wait_ns: AtomicU64::new(0),
};

/// A [`Tally`] read at one moment: `[application, call costs, driver, library, phantom, real GPU wait]` in ns.
pub type TallySnapshot = [u64; 6];

impl Tally {
    pub fn snapshot(&self) -> TallySnapshot {
        [&self.application_ns, &self.call_cost_ns, &self.driver_ns, &self.library_ns, &self.phantom_ns, &self.real_wait_ns]
            .map(|a| a.load(Ordering::Relaxed))
    }
}

fn add(counter: &AtomicU64, ns: u64) {
    if ns > 0 {
        counter.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The latest virtual time any thread of this process has reached; a thread seen for the first time
/// starts here, so it never observes a time earlier than what another thread already reported.
static WATERMARK: AtomicU64 = AtomicU64::new(0);

/// One thread's clock. Only `Cell`s, no destructor: readable from any context, including during thread
/// teardown and from inside the interposed libc functions.
struct ThreadClock {
    started: Cell<bool>,
    /// Virtual time in simulated nanoseconds.
    virt: Cell<u64>,
    /// Thread CPU time (ns) already accounted for (measured mode).
    cpu_base: Cell<u64>,
    /// Between `api_enter` and `api_exit`: the CPU being used is Phantom's, not the application's.
    in_api: Cell<bool>,
    /// How many library calls (`library_enter` … `library_exit`) the thread is inside (executing processes).
    lib_depth: Cell<u32>,
    /// Host time (ns) NVIDIA's code took in the current runtime API call or outermost library call.
    nvidia: Cell<u64>,
    /// CPU time (ns) the current runtime API call spent waiting for the real GPU (executing processes).
    waited: Cell<u64>,
}

thread_local! {
    static CLOCK: ThreadClock = const {
        ThreadClock {
            started: Cell::new(false),
            virt: Cell::new(0),
            cpu_base: Cell::new(0),
            in_api: Cell::new(false),
            lib_depth: Cell::new(0),
            nvidia: Cell::new(0),
            waited: Cell::new(0),
        }
    };
}

/// How application CPU time is charged.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Policy {
    deterministic: bool,
    cpu_scale: f64,
}

impl ThreadClock {
    /// First use on this thread: start at the process watermark. In measured mode the CPU baseline is the
    /// thread's current CPU time, except on the main thread, whose CPU time since exec is part of the run
    /// (simulated time 0 is process start).
    fn start_if_needed(
        &self,
        policy: Policy,
        watermark: u64,
        cpu_now: impl FnOnce() -> Option<u64>,
    ) {
        if self.started.get() {
            return;
        }
        self.started.set(true);
        self.virt.set(self.virt.get().max(watermark));
        if !policy.deterministic {
            self.cpu_base.set(if is_main_thread() {
                0
            } else {
                cpu_now().unwrap_or(0)
            });
        }
    }

    /// Measured mode: charges the CPU time used since the baseline and moves the baseline.
    fn accrue(&self, policy: Policy, cpu_now: Option<u64>) {
        if policy.deterministic {
            return;
        }
        let Some(cpu) = cpu_now else { return };
        let used = cpu.saturating_sub(self.cpu_base.get());
        self.cpu_base.set(cpu.max(self.cpu_base.get()));
        let charged = scale(used, policy.cpu_scale);
        add(&TALLY.application_ns, charged);
        self.virt.set(self.virt.get().saturating_add(charged));
    }

    /// Forgets the CPU time used since the baseline (it was Phantom's own, and NVIDIA's `nvidia_ns` of it, which
    /// the caller charges or not).
    fn discard(&self, policy: Policy, cpu_now: Option<u64>, nvidia_ns: u64) {
        if let (false, Some(cpu)) = (policy.deterministic, cpu_now) {
            add(&TALLY.phantom_ns, cpu.saturating_sub(self.cpu_base.get()).saturating_sub(nvidia_ns));
            self.cpu_base.set(cpu);
        }
    }

    /// Start of a runtime API call: the application's CPU time so far is charged, unless the call is made
    /// from inside a library call (whose CPU time is not the application's).
    fn enter_api(&self, policy: Policy, cpu_now: Option<u64>) {
        if self.lib_depth.get() == 0 {
            self.accrue(policy, cpu_now);
        }
        self.in_api.set(true);
    }

    /// End of a runtime API call: Phantom's CPU time is dropped and `cost` charged, or, in measured host time
    /// when NVIDIA's driver did the call's work, the driver's host time plus `runtime_ns` (the runtime's own
    /// part). Inside a library call nothing is charged: the library call's end charges NVIDIA's time.
    fn exit_api(&self, policy: Policy, cpu_now: Option<u64>, cost: u64, runtime_ns: u64) {
        if self.lib_depth.get() > 0 {
            return;
        }
        let nvidia = self.close_call(policy, cpu_now);
        let charge = if nvidia > 0 && !policy.deterministic {
            add(&TALLY.driver_ns, nvidia);
            add(&TALLY.call_cost_ns, runtime_ns);
            nvidia.saturating_add(runtime_ns)
        } else {
            add(&TALLY.call_cost_ns, cost);
            cost
        };
        self.virt.set(self.virt.get().saturating_add(charge));
    }

    /// The end of a runtime call or outermost library call: the call's CPU time is dropped (NVIDIA's part, its
    /// waits for the real GPU, and Phantom's own, tallied apart) and NVIDIA's host time returned for the caller
    /// to charge.
    fn close_call(&self, policy: Policy, cpu_now: Option<u64>) -> u64 {
        let nvidia = self.nvidia.replace(0);
        let waited = self.waited.replace(0);
        add(&TALLY.real_wait_ns, waited);
        self.discard(policy, cpu_now, nvidia.saturating_add(waited));
        self.in_api.set(false);
        nvidia
    }

    /// A call answered without clock readings ([`charge_call`]).
    fn charge_call(&self, cost: u64) {
        if self.lib_depth.get() == 0 {
            add(&TALLY.call_cost_ns, cost);
            self.virt.set(self.virt.get().saturating_add(cost));
        }
    }

    /// The thread enters a library's exported function: the outermost charges the application's CPU time.
    fn enter_library(&self, policy: Policy, cpu_now: Option<u64>) {
        if self.lib_depth.get() == 0 {
            self.accrue(policy, cpu_now);
            self.in_api.set(true);
        }
        self.lib_depth.set(self.lib_depth.get().saturating_add(1));
    }

    /// The thread leaves it; `nvidia_ns` is NVIDIA's host time inside. The outermost drops the call's CPU time
    /// and charges NVIDIA's (in deterministic host time, nothing).
    fn exit_library(&self, policy: Policy, cpu_now: Option<u64>, nvidia_ns: u64) {
        if self.lib_depth.get() == 0 {
            return;
        }
        self.nvidia.set(self.nvidia.get().saturating_add(nvidia_ns));
        self.lib_depth.set(self.lib_depth.get() - 1);
        if self.lib_depth.get() == 0 {
            let nvidia = self.close_call(policy, cpu_now);
            if !policy.deterministic {
                add(&TALLY.library_ns, nvidia);
                self.virt.set(self.virt.get().saturating_add(nvidia));
            }
        }
    }
}

fn scale(ns: u64, factor: f64) -> u64 {
    if factor == 1.0 {
        ns
    } else {
        // `as` saturates; a non-finite or negative factor is rejected by `configure`.
        (ns as f64 * factor).round() as u64
    }
}

fn is_main_thread() -> bool {
    // SAFETY: plain system calls without arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t == libc::getpid() }
}

/// The calling thread's CPU time, read with the raw system call (never through the interposed symbol).
fn thread_cpu_ns() -> Option<u64> {
    crate::interpose::real_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Reading the thread's CPU clock is a system call (about 0.5 µs on a VM), and measured mode needs a reading at
/// the start and the end of every API call. Between two readings less than `SHORT_WINDOW_NS` of real time apart,
/// a running thread's CPU time advances as the wall clock does (a preemption lasts a scheduling slice,
/// milliseconds), so such a reading is *estimated* from the real monotonic clock (libc's vDSO, tens of ns):
/// the previous estimate plus the wall time since. A longer gap (a blocking call, a preemption, a long stretch
/// of application code), or `RESYNC_NS` since the last real reading, reads the CPU clock itself. An estimate
/// can only run ahead of the real clock (by the length of preemptions shorter than the window); the next real
/// reading then goes backwards, which `ThreadClock::accrue` treats as "charge nothing until it catches up".
const SHORT_WINDOW_NS: u64 = 20_000;
const RESYNC_NS: u64 = 1_000_000;

/// Per-thread state of [`cpu_estimate`].
struct CpuMeter {
    init: Cell<bool>,
    prev_wall: Cell<u64>,
    prev_est: Cell<u64>,
    last_real_wall: Cell<u64>,
}

thread_local! {
    static METER: CpuMeter = const {
        CpuMeter { init: Cell::new(false), prev_wall: Cell::new(0), prev_est: Cell::new(0), last_real_wall: Cell::new(0) }
    };
}

impl CpuMeter {
    /// The thread's CPU time at wall time `wall`: estimated when close to the previous reading, else read by
    /// `real()`.
    fn sample(&self, wall: u64, real: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let short = self.init.get()
            && wall.saturating_sub(self.prev_wall.get()) < SHORT_WINDOW_NS
            && wall.saturating_sub(self.last_real_wall.get()) < RESYNC_NS;
        let est = if short {
            self.prev_est.get() + wall.saturating_sub(self.prev_wall.get())
        } else {
            let cpu = real()?;
            self.last_real_wall.set(wall);
            cpu
        };
        self.init.set(true);
        self.prev_wall.set(wall);
        self.prev_est.set(est);
        Some(est)
    }
}

/// The calling thread's CPU time for accounting (see [`SHORT_WINDOW_NS`]).
fn cpu_estimate() -> Option<u64> {
    let Some(wall) = crate::interpose::real_monotonic_ns() else { return thread_cpu_ns() };
    METER.with(|m| m.sample(wall, thread_cpu_ns))
}

/// Sets the host-time model from the cluster configuration (called once at runtime initialisation).
pub fn configure(host: &HostConfig) {
    let scale = if host.cpu_scale.is_finite() && host.cpu_scale >= 0.0 {
        host.cpu_scale
    } else {
        1.0
    };
    CPU_SCALE.store(scale.to_bits(), Ordering::Relaxed);
    API_CALL_NS.store(host.api_call_ns, Ordering::Relaxed);
    LAUNCH_CALL_NS.store(host.launch_call_ns, Ordering::Relaxed);
    REAL_SLEEPS.store(host.sleeps == SleepMode::Real, Ordering::Relaxed);
    let mode = match host.mode {
        HostTimeMode::Measured => MODE_MEASURED,
        HostTimeMode::Deterministic => MODE_DETERMINISTIC,
    };
    MODE.store(mode, Ordering::Release);
}

/// The host-time mode in force (before `configure`: `PHANTOM_HOST_TIME`, default measured).
pub fn mode() -> HostTimeMode {
    if policy().deterministic {
        HostTimeMode::Deterministic
    } else {
        HostTimeMode::Measured
    }
}

/// Whether sleeps and timed waits also take real time (`host.sleeps`, docs/time.md).
pub fn real_sleeps() -> bool {
    REAL_SLEEPS.load(Ordering::Relaxed)
}

/// Host time charged for an ordinary runtime API call (zero until `configure`).
pub fn api_call_cost() -> SimDuration {
    SimDuration::from_nanos(API_CALL_NS.load(Ordering::Relaxed))
}

/// Host time charged for a kernel launch call (zero until `configure`).
pub fn launch_call_cost() -> SimDuration {
    SimDuration::from_nanos(LAUNCH_CALL_NS.load(Ordering::Relaxed))
}

fn policy() -> Policy {
    let mut mode = MODE.load(Ordering::Acquire);
    if mode == MODE_UNSET {
        mode = mode_from_env();
    }
    Policy {
        deterministic: mode == MODE_DETERMINISTIC,
        cpu_scale: f64::from_bits(CPU_SCALE.load(Ordering::Relaxed)),
    }
}

/// Reads `PHANTOM_HOST_TIME` once, without allocating (this can run inside an interposed `clock_gettime`
/// called by an allocator). `configure` wins over it if both race.
#[cold]
fn mode_from_env() -> u8 {
    if MODE
        .compare_exchange(
            MODE_UNSET,
            MODE_RESOLVING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        let seen = MODE.load(Ordering::Acquire);
        return if seen == MODE_RESOLVING {
            MODE_MEASURED
        } else {
            seen
        };
    }
    // SAFETY: getenv with a NUL-terminated name; the result is only read while we hold no other state.
    let deterministic = unsafe {
        let v = libc::getenv(c"PHANTOM_HOST_TIME".as_ptr());
        !v.is_null() && std::ffi::CStr::from_ptr(v).to_bytes() == b"deterministic"
    };
    let mode = if deterministic {
        MODE_DETERMINISTIC
    } else {
        MODE_MEASURED
    };
    match MODE.compare_exchange(MODE_RESOLVING, mode, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => mode,
        Err(configured) => configured,
    }
}

fn publish(virt: u64) {
    if virt > WATERMARK.load(Ordering::Relaxed) {
        WATERMARK.fetch_max(virt, Ordering::Relaxed);
    }
}

/// Runs `f` on the calling thread's clock (started if this is its first use) and publishes the result.
fn with_clock<R>(f: impl FnOnce(&ThreadClock, Policy) -> R) -> R {
    let policy = policy();
    CLOCK.with(|c| {
        c.start_if_needed(policy, WATERMARK.load(Ordering::Relaxed), thread_cpu_ns);
        let r = f(c, policy);
        publish(c.virt.get());
        r
    })
}

fn cpu_now(policy: Policy) -> Option<u64> {
    if policy.deterministic {
        None
    } else {
        cpu_estimate()
    }
}

/// The calling thread's virtual time. In measured mode the application CPU time used since the last
/// accounting is charged first (inside an API call the CPU is Phantom's and is not charged).
pub fn now() -> SimTime {
    with_clock(|c, p| {
        if !c.in_api.get() {
            c.accrue(p, cpu_now(p));
        }
        SimTime::from_nanos(c.virt.get())
    })
}

/// [`now`] for a thread whose clock has started; `None` for one that has never used it (which would start at
/// the process watermark: not a time this thread has lived through).
pub fn now_if_started() -> Option<SimTime> {
    CLOCK.try_with(|c| c.started.get()).ok()?.then(now)
}

/// Start of a runtime API call: charges the application's CPU time since the previous call.
pub fn api_enter() -> SimTime {
    with_clock(|c, p| {
        c.enter_api(p, cpu_now(p));
        SimTime::from_nanos(c.virt.get())
    })
}

/// End of a runtime API call: drops the CPU time Phantom used during the call and charges `cost` instead (or,
/// in an executing process, what NVIDIA's driver took: [`nvidia_time`]).
pub fn api_exit(cost: SimDuration) {
    with_clock(|c, p| c.exit_api(p, cpu_now(p), cost.as_nanos(), API_CALL_NS.load(Ordering::Relaxed)))
}

/// Executing process in measured host time: runs `wait`, a call of NVIDIA's that waits for the real GPU
/// (`cuCtxSynchronize`, `cuStreamSynchronize`, …), and keeps the CPU time it took (NVIDIA spins while it waits)
/// apart from Phantom's own: neither is charged, the simulated GPU decides how long the simulated host waits.
/// The CPU time is read as the accounting reads it ([`cpu_estimate`]: a wait shorter than 20 µs costs no system
/// call).
pub fn real_gpu_wait<T>(wait: impl FnOnce() -> T) -> T {
    if policy().deterministic {
        return wait();
    }
    let before = cpu_estimate();
    let r = wait();
    if let (Some(a), Some(b)) = (before, cpu_estimate()) {
        real_gpu_waited(b.saturating_sub(a));
    }
    r
}

/// Executing process: the current runtime call spent `ns` waiting for the real GPU in a call of NVIDIA's that
/// is timed by the wall clock (a launch that found the driver's queue full: its time beyond the mean launch).
/// Not charged, and not counted as Phantom's own.
pub fn real_gpu_waited(ns: u64) {
    let _ = CLOCK.try_with(|c| c.waited.set(c.waited.get().saturating_add(ns)));
}

/// A runtime call answered without reading the clocks (`runtime::query`): adds `cost` as [`api_exit`] would,
/// and, like it, nothing inside a library call (whose end charges the time). The call's own CPU time is not
/// separated from the application's.
pub fn charge_call(cost: SimDuration) {
    with_clock(|c, _| c.charge_call(cost.as_nanos()))
}

/// Executing process: NVIDIA's driver took `ns` of host time doing the current runtime API call's work (queuing
/// a kernel, a copy, an event). Charged by `api_exit` in measured host time.
pub fn nvidia_time(ns: u64) {
    CLOCK.with(|c| c.nvidia.set(c.nvidia.get().saturating_add(ns)));
}

/// This process executes on the real GPU: library calls are bracketed (`library_enter`) from now on.
pub fn set_executing() {
    EXECUTING.store(true, Ordering::Relaxed);
}

/// Whether library calls are bracketed: an executing process in measured host time, or a following one that
/// knows what an export costs ([`set_follower_library_cost`]).
fn brackets_libraries(p: Policy) -> bool {
    !p.deterministic && (EXECUTING.load(Ordering::Relaxed) || FOLLOW_LIBRARY_NS.load(Ordering::Relaxed) > 0)
}

/// Following process: each library export costs the host `ns` (what an executing process measured per export).
pub fn set_follower_library_cost(ns: u64) {
    FOLLOW_LIBRARY_NS.store(ns, Ordering::Relaxed);
}

/// Executing process: NVIDIA's host time over the library exports so far, and their number, one-offs left out
/// ([`LIBRARY_ONE_OFF_NS`]).
pub fn library_totals() -> (u64, u64) {
    (LIBRARY_SUM_NS.load(Ordering::Relaxed), LIBRARY_CALLS.load(Ordering::Relaxed))
}

/// The thread enters an exported function of a library stub (runtime table version 5). Elsewhere than in an
/// executing process in measured host time this does nothing, and the stub's CPU time counts as the
/// application's (standing for the library's own host time).
pub fn library_enter() {
    if brackets_libraries(policy()) {
        with_clock(|c, p| c.enter_library(p, cpu_now(p)));
    }
}

/// The thread leaves it; NVIDIA's library took `nvidia_ns` of host time inside (executing process). A following
/// process charges the executing process's figure per export instead.
pub fn library_exit(nvidia_ns: u64) {
    if !brackets_libraries(policy()) {
        return;
    }
    let executing = EXECUTING.load(Ordering::Relaxed);
    let ns = export_charge(executing, nvidia_ns, FOLLOW_LIBRARY_NS.load(Ordering::Relaxed));
    let outermost = with_clock(|c, p| {
        let depth = c.lib_depth.get();
        c.exit_library(p, cpu_now(p), ns);
        depth == 1
    });
    if executing {
        add_to_library_totals(&LIBRARY_SUM_NS, &LIBRARY_CALLS, nvidia_ns, outermost);
    }
}

/// A library export that took NVIDIA longer than this is a one-off (the library loading its code at a
/// handle's creation or a call's first use, or waiting for the real GPU): the executing process charges it,
/// but it stays out of the mean per export that following processes charge for each of theirs
/// ([`library_totals`]), as launches that waited for the driver's queue stay out of the launch figure.
pub const LIBRARY_ONE_OFF_NS: u64 = 1_000_000;

/// Adds one export's NVIDIA time to the totals behind the published mean per export (per export as the
/// application sees it: nested exports add their time to their caller's count), unless it is a one-off.
fn add_to_library_totals(sum: &AtomicU64, calls: &AtomicU64, nvidia_ns: u64, outermost: bool) {
    if nvidia_ns > LIBRARY_ONE_OFF_NS {
        return;
    }
    if outermost {
        calls.fetch_add(1, Ordering::Relaxed);
    }
    sum.fetch_add(nvidia_ns, Ordering::Relaxed);
}

/// What a library export costs the host: NVIDIA's measured time in an executing process, the executing
/// process's mean per export in a following one.
fn export_charge(executing: bool, nvidia_ns: u64, follower_ns: u64) -> u64 {
    if executing {
        nvidia_ns
    } else {
        follower_ns
    }
}

/// Starts the calling thread's clock at `t` (the time of the thread that created it), if it has not started
/// yet: a thread begins where its creator was, not at the process watermark, which a thread that waits with
/// timeouts (a watchdog) may have pushed far ahead.
pub fn start_at(t: SimTime) {
    let policy = policy();
    CLOCK.with(|c| {
        if c.started.get() {
            return;
        }
        c.started.set(true);
        c.virt.set(t.as_nanos());
        if !policy.deterministic {
            c.cpu_base.set(thread_cpu_ns().unwrap_or(0));
        }
    });
}

/// A blocking call completes at simulated time `t`; the clock never moves backwards.
pub fn advance_to(t: SimTime) {
    with_clock(|c, _| c.virt.set(c.virt.get().max(t.as_nanos())));
}

/// The thread spends `d` without using CPU (an interposed sleep): charges its CPU time so far, then `d`.
/// Returns the new virtual time.
pub fn advance_by(d: SimDuration) -> SimTime {
    with_clock(|c, p| {
        if !c.in_api.get() {
            c.accrue(p, cpu_now(p));
        }
        c.virt.set(c.virt.get().saturating_add(d.as_nanos()));
        SimTime::from_nanos(c.virt.get())
    })
}

/// The latest virtual time any thread of this process has reached.
pub fn watermark() -> SimTime {
    SimTime::from_nanos(WATERMARK.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The process-wide mode is shared by all tests in this binary: the tests that use the public functions
    // all run in deterministic mode; measured-mode arithmetic is tested on a private `ThreadClock`.
    fn deterministic() {
        configure(&HostConfig {
            mode: HostTimeMode::Deterministic,
            cpu_scale: 1.0,
            api_call_ns: 100,
            launch_call_ns: 2_000,
            sleeps: SleepMode::Virtual,
        });
    }

    #[test]
    fn one_off_library_exports_stay_out_of_the_published_mean() {
        let (sum, calls) = (AtomicU64::new(0), AtomicU64::new(0));
        // A cublasLtCreate that loads the library's code (420 ms), then steady exports of 19 and 3 µs, one of
        // them calling another export (nested: its time counts, the export does not).
        add_to_library_totals(&sum, &calls, 420_000_000, true);
        add_to_library_totals(&sum, &calls, 19_000, true);
        add_to_library_totals(&sum, &calls, 3_000, true);
        add_to_library_totals(&sum, &calls, 2_000, false);
        add_to_library_totals(&sum, &calls, LIBRARY_ONE_OFF_NS, true);
        assert_eq!((sum.load(Ordering::Relaxed), calls.load(Ordering::Relaxed)), (1_024_000, 3));
    }

    fn fresh() -> ThreadClock {
        ThreadClock {
            started: Cell::new(false),
            virt: Cell::new(0),
            cpu_base: Cell::new(0),
            in_api: Cell::new(false),
            lib_depth: Cell::new(0),
            nvidia: Cell::new(0),
            waited: Cell::new(0),
        }
    }

    /// A started clock in measured host time (CPU scale 1), at virtual time 0 with its CPU baseline at 0.
    fn measured() -> (Policy, ThreadClock) {
        let p = Policy { deterministic: false, cpu_scale: 1.0 };
        let c = fresh();
        c.start_if_needed(p, 0, || Some(0));
        (p, c)
    }

    #[test]
    fn deterministic_sequence_gives_exact_times() {
        deterministic();
        // Each test runs on its own thread, so this clock starts at the current watermark.
        std::thread::spawn(|| {
            let t0 = api_enter().as_nanos();
            assert!(t0 <= watermark().as_nanos());
            api_exit(SimDuration::from_nanos(100));
            assert_eq!(now().as_nanos(), t0 + 100);
            assert_eq!(api_enter().as_nanos(), t0 + 100);
            api_exit(SimDuration::from_micros(2));
            assert_eq!(now().as_nanos(), t0 + 2_100);
            advance_to(SimTime::from_nanos(t0 + 50_000));
            assert_eq!(now().as_nanos(), t0 + 50_000);
            // Never backwards.
            advance_to(SimTime::from_nanos(t0 + 10));
            assert_eq!(now().as_nanos(), t0 + 50_000);
            assert_eq!(
                advance_by(SimDuration::from_millis(1)).as_nanos(),
                t0 + 1_050_000
            );
            // Busy work costs nothing in deterministic mode.
            let mut x = 0u64;
            for i in 0..100_000u64 {
                x = x.wrapping_add(std::hint::black_box(i));
            }
            std::hint::black_box(x);
            assert_eq!(now().as_nanos(), t0 + 1_050_000);
            assert!(watermark().as_nanos() >= t0 + 1_050_000);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn new_thread_starts_at_watermark() {
        deterministic();
        let target = 7_000_000_000_000u64; // later than anything the other tests reach
        std::thread::spawn(move || {
            advance_to(SimTime::from_nanos(target));
            api_enter();
            api_exit(SimDuration::from_nanos(5));
        })
        .join()
        .unwrap();
        assert!(watermark().as_nanos() >= target + 5);
        let seen = std::thread::spawn(now).join().unwrap().as_nanos();
        assert!(
            seen >= target + 5,
            "a new thread started at {seen}, before the watermark"
        );
    }

    #[test]
    fn costs_come_from_the_configuration() {
        deterministic();
        assert_eq!(mode(), HostTimeMode::Deterministic);
        assert_eq!(api_call_cost(), SimDuration::from_nanos(100));
        assert_eq!(launch_call_cost(), SimDuration::from_nanos(2_000));
    }

    #[test]
    fn measured_accrues_scaled_cpu_and_discards_phantom_cpu() {
        let p = Policy {
            deterministic: false,
            cpu_scale: 0.5,
        };
        let c = fresh();
        c.start_if_needed(p, 1_000, || Some(10_000));
        assert_eq!(c.virt.get(), 1_000);
        assert_eq!(c.cpu_base.get(), 10_000);
        // 4 µs of application CPU at half speed-up factor -> 2 µs.
        c.accrue(p, Some(14_000));
        assert_eq!(c.virt.get(), 3_000);
        // Phantom's own 6 µs are discarded.
        c.discard(p, Some(20_000), 0);
        c.accrue(p, Some(20_000));
        assert_eq!(c.virt.get(), 3_000);
        c.accrue(p, Some(21_001));
        assert_eq!(c.virt.get(), 3_501);
        // A CPU reading that goes backwards charges nothing and keeps the baseline.
        c.accrue(p, Some(5));
        assert_eq!((c.virt.get(), c.cpu_base.get()), (3_501, 21_001));
        // A failed CPU read charges nothing.
        c.accrue(p, None);
        assert_eq!(c.virt.get(), 3_501);
    }

    #[test]
    fn executing_processes_charge_nvidias_host_time() {
        let (p, c) = measured();
        // A launch whose driver call took 5 µs: 5 µs plus the runtime's 100 ns, not the 2 µs modelled cost.
        c.enter_api(p, Some(1_000));
        assert_eq!(c.virt.get(), 1_000);
        c.nvidia.set(5_000);
        c.exit_api(p, Some(9_000), 2_000, 100);
        assert_eq!(c.virt.get(), 6_100);
        // A call without driver work: its modelled cost.
        c.enter_api(p, Some(9_000));
        c.exit_api(p, Some(9_500), 60, 100);
        assert_eq!(c.virt.get(), 6_160);
        // A library call: 3 µs of application CPU before it, 20 µs of the stub's own CPU (dropped), 4 µs of
        // NVIDIA's library, and a runtime call made inside it (neither its CPU nor its cost is charged).
        c.enter_library(p, Some(12_500));
        assert_eq!(c.virt.get(), 9_160);
        c.enter_library(p, Some(13_000)); // nested: only the outermost counts
        c.enter_api(p, Some(14_000));
        c.exit_api(p, Some(15_000), 2_000, 100);
        assert!(c.in_api.get());
        c.exit_library(p, Some(20_000), 1_000);
        c.exit_library(p, Some(32_500), 3_000);
        assert_eq!(c.virt.get(), 13_160);
        assert!(!c.in_api.get());
        // The application's CPU after the call is charged from the call's end.
        c.accrue(p, Some(33_500));
        assert_eq!(c.virt.get(), 14_160);
        // An unmatched exit changes nothing.
        c.exit_library(p, Some(40_000), 7_000);
        assert_eq!((c.virt.get(), c.lib_depth.get()), (14_160, 0));
        // Deterministic host time charges the modelled cost even where the driver's time is known.
        let d = Policy { deterministic: true, cpu_scale: 1.0 };
        c.enter_api(d, None);
        c.nvidia.set(5_000);
        c.exit_api(d, None, 2_000, 100);
        assert_eq!((c.virt.get(), c.nvidia.get()), (16_160, 0));
    }

    #[test]
    fn waiting_for_the_real_gpu_is_neither_charged_nor_phantom_s() {
        let (p, c) = measured();
        // A launch whose driver call took 2 µs after waiting 50 µs for room in the queue: 2 µs + the runtime's
        // 50 ns are charged; the wait is handed over (and the call's CPU beyond both is Phantom's).
        c.enter_api(p, Some(1_000));
        c.nvidia.set(2_000);
        c.waited.set(50_000);
        c.exit_api(p, Some(60_000), 4_000, 50);
        assert_eq!((c.virt.get(), c.waited.get(), c.cpu_base.get()), (3_050, 0, 60_000));
    }

    #[test]
    fn a_query_charges_its_cost_without_moving_the_cpu_baseline() {
        let (p, c) = measured();
        // 3 µs of application CPU, a query (75 ns, no clock reading), 1 µs more: the next call charges all 4 µs.
        c.charge_call(75);
        assert_eq!((c.virt.get(), c.cpu_base.get()), (75, 0));
        c.enter_api(p, Some(4_000));
        assert_eq!(c.virt.get(), 4_075);
        c.exit_api(p, Some(4_500), 100, 60);
        assert_eq!(c.virt.get(), 4_175);
        // Inside a library call a query charges nothing: the library call's end charges NVIDIA's time.
        c.enter_library(p, Some(5_000));
        c.charge_call(75);
        c.exit_library(p, Some(9_000), 2_000);
        assert_eq!(c.virt.get(), 4_675 + 2_000);
    }

    #[test]
    fn a_following_process_charges_the_executing_process_s_cost_per_export() {
        let (p, c) = measured();
        // 2 µs of application CPU, then an export whose stub used 30 µs of CPU: the executing process measured
        // 2.5 µs per export, which is what the export costs here.
        c.enter_library(p, Some(2_000));
        c.exit_library(p, Some(32_000), export_charge(false, 0, 2_500));
        assert_eq!(c.virt.get(), 4_500);
        assert_eq!(export_charge(true, 7_000, 2_500), 7_000);
    }

    #[test]
    fn deterministic_policy_ignores_cpu() {
        let p = Policy {
            deterministic: true,
            cpu_scale: 1.0,
        };
        let c = fresh();
        c.start_if_needed(p, 42, || {
            panic!("deterministic mode must not read the CPU clock")
        });
        c.accrue(p, Some(1_000_000));
        assert_eq!(c.virt.get(), 42);
    }

    #[test]
    fn cpu_meter_estimates_short_gaps_and_reads_long_ones() {
        let m = CpuMeter { init: Cell::new(false), prev_wall: Cell::new(0), prev_est: Cell::new(0), last_real_wall: Cell::new(0) };
        let reads = Cell::new(0);
        let real = |v: u64| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                Some(v)
            }
        };
        // First reading: real.
        assert_eq!(m.sample(1_000_000, real(500)), Some(500));
        // 3 µs later: estimated as 3 µs of CPU, no system call.
        assert_eq!(m.sample(1_003_000, real(9)), Some(3_500));
        assert_eq!(reads.get(), 1);
        // A 50 µs gap (a blocking call, a preemption): read for real.
        assert_eq!(m.sample(1_053_000, real(40_000)), Some(40_000));
        assert_eq!(reads.get(), 2);
        // Short gaps, but 1 ms since the last real reading: read for real again.
        let mut wall = 1_053_000;
        let mut est = 40_000;
        while wall < 2_053_000 - 10_000 {
            wall += 10_000;
            est += 10_000;
            assert_eq!(m.sample(wall, real(0)), Some(est));
        }
        assert_eq!(reads.get(), 2);
        assert_eq!(m.sample(wall + 10_000, real(123_456)), Some(123_456));
        assert_eq!(reads.get(), 3);
        // A failed real read gives nothing and keeps the previous state.
        assert_eq!(m.sample(wall + 100_000, || None), None);
    }

    #[test]
    fn scaling_rounds_to_nanoseconds() {
        assert_eq!(scale(1_000, 1.0), 1_000);
        assert_eq!(scale(1_000, 2.5), 2_500);
        assert_eq!(scale(3, 0.5), 2);
        assert_eq!(scale(u64::MAX, 4.0), u64::MAX);
    }

    #[test]
    fn thread_cpu_time_is_readable() {
        assert!(thread_cpu_ns().is_some());
    }
}
