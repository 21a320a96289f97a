//! libc time functions that report virtual time (DESIGN.md decision 4; policy in docs/time.md).
//!
//! The exported functions take effect only where this library precedes libc in the global lookup scope: as
//! a DT_NEEDED of the executable, or through `LD_PRELOAD`. When the library is merely `dlopen`ed, libc
//! still answers every call and nothing here runs.
//!
//! Until the process first uses CUDA (`engage`, at runtime initialisation) every export is libc's own.
//!
//! - Clock reads (`clock_gettime`, `gettimeofday`, `time`, `timespec_get`): for the wall and monotonic
//!   clocks, an origin (set by `engage` so the reading continues from the real one) plus the calling thread's
//!   virtual time (`clock::now`). CPU-time clocks and unknown clock ids go to libc.
//! - Sleeps (`nanosleep`, `clock_nanosleep`, `usleep`, `sleep`) advance the thread's virtual clock by the
//!   requested amount (or to the absolute deadline) and return at once after `sched_yield`.
//! - Timed waits (`pthread_cond_timedwait`, `pthread_cond_clockwait`, `sem_timedwait`, `sem_clockwait`) wait
//!   for real for at most `REAL_WAIT_CAP_NS`; a real timeout means the virtual deadline passed.
//! - Hand-offs between threads (`pthread_create`, `pthread_join`, `pthread_cond_signal`/`_broadcast` and the
//!   condition waits): the thread that continues after another's signal, end or creation continues no earlier
//!   than that other thread's virtual time (`handoff`).
//!
//! The real functions are reached with `dlvsym(RTLD_NEXT, …)` (or the raw system call); nothing here calls
//! a function that could come back into these exports. Any failure falls back to libc with the caller's
//! original arguments. Exports exist only outside `cfg(test)`, so unit-test binaries keep libc's clocks.

#![cfg_attr(test, allow(dead_code))]

use crate::clock;
use sim_core::{SimDuration, SimTime};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The longest a timed wait blocks for real before its virtual deadline is declared reached.
pub const REAL_WAIT_CAP_NS: u64 = 2_000_000;

const NS_PER_SEC: u64 = 1_000_000_000;

/// A clock whose value is virtualised, named by the real clock its origin is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtual {
    Realtime,
    Monotonic,
    MonotonicRaw,
    Boottime,
    Tai,
}

impl Virtual {
    const ALL: [Virtual; 5] = [
        Virtual::Realtime,
        Virtual::Monotonic,
        Virtual::MonotonicRaw,
        Virtual::Boottime,
        Virtual::Tai,
    ];

    /// The virtual clock that answers `clock`, or `None` when libc answers it (CPU-time clocks, alarms,
    /// per-process/thread clock ids, invalid ids).
    pub fn of(clock: libc::clockid_t) -> Option<Virtual> {
        match clock {
            libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE => Some(Virtual::Realtime),
            libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_COARSE => Some(Virtual::Monotonic),
            libc::CLOCK_MONOTONIC_RAW => Some(Virtual::MonotonicRaw),
            libc::CLOCK_BOOTTIME => Some(Virtual::Boottime),
            libc::CLOCK_TAI => Some(Virtual::Tai),
            _ => None,
        }
    }

    fn real_id(self) -> libc::clockid_t {
        match self {
            Virtual::Realtime => libc::CLOCK_REALTIME,
            Virtual::Monotonic => libc::CLOCK_MONOTONIC,
            Virtual::MonotonicRaw => libc::CLOCK_MONOTONIC_RAW,
            Virtual::Boottime => libc::CLOCK_BOOTTIME,
            Virtual::Tai => libc::CLOCK_TAI,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// What this clock reads at simulated time 0: set by `engage` so that the clock goes on from its real
    /// reading at that moment (or, should it be needed earlier, the real value at first use).
    fn origin(self) -> Option<u64> {
        let slot = &ORIGINS[self.index()];
        match slot.load(Ordering::Acquire) {
            0 => {
                let real = real_clock_ns(self.real_id())?.max(1);
                Some(
                    match slot.compare_exchange(0, real, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => real,
                        Err(first) => first,
                    },
                )
            }
            t => Some(t),
        }
    }

    /// This clock's virtual reading for the calling thread (ns).
    fn now_ns(self) -> Option<u64> {
        Some(self.origin()?.saturating_add(clock::now().as_nanos()))
    }

    /// Simulated time of an absolute reading of this clock (earlier than the origin → 0).
    fn to_sim(self, reading_ns: u64) -> Option<SimTime> {
        Some(SimTime::from_nanos(
            reading_ns.saturating_sub(self.origin()?),
        ))
    }
}

/// The real monotonic clock through libc's own `clock_gettime` (the vDSO: tens of nanoseconds, no system
/// call), never through the exported one; the raw system call where libc's cannot be found.
pub fn real_monotonic_ns() -> Option<u64> {
    let Some(f) = real_clock_gettime() else { return real_clock_ns(libc::CLOCK_MONOTONIC) };
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: libc's clock_gettime with a valid out-pointer.
    if unsafe { f(libc::CLOCK_MONOTONIC, &mut ts) } == 0 {
        timespec_ns(&ts)
    } else {
        None
    }
}

/// Reads a real clock with the raw system call (never through the exported `clock_gettime`).
pub fn real_clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clock_gettime,
            clock,
            &mut ts as *mut libc::timespec,
        )
    };
    if rc == 0 {
        timespec_ns(&ts)
    } else {
        None
    }
}

static ORIGINS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Whether this process's clocks are virtual yet (see `engage`).
static ENGAGED: AtomicBool = AtomicBool::new(false);

/// Makes this process's clocks virtual from now on: called when the runtime initialises, i.e. at the process's
/// first use of CUDA. Until then every interposed function is libc's, so a process that merely has the library
/// preloaded (a launcher, a shell, torchrun's agent) keeps real clocks and real sleeps. Each clock's origin is
/// set so that its reading goes on from the real one: origin = real reading − the calling thread's virtual time.
/// Simulated time itself is unaffected (0 is still process start); only what the clocks print is shifted.
pub fn engage() {
    let virt = clock::now().as_nanos();
    for v in Virtual::ALL {
        if let Some(real) = real_clock_ns(v.real_id()) {
            ORIGINS[v.index()].store(real.saturating_sub(virt).max(1), Ordering::Release);
        }
    }
    ENGAGED.store(true, Ordering::Release);
}

/// Whether `engage` has run.
pub fn engaged() -> bool {
    ENGAGED.load(Ordering::Acquire)
}

/// A valid, non-negative `timespec` in nanoseconds (saturating); `None` when `tv_nsec` is out of range or
/// the time is negative.
fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(
        (ts.tv_sec as u64)
            .saturating_mul(NS_PER_SEC)
            .saturating_add(ts.tv_nsec as u64),
    )
}

fn ns_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / NS_PER_SEC).min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: (ns % NS_PER_SEC) as _,
    }
}

/// Where a timed wait's deadline lies relative to the calling thread's virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPlan {
    /// The deadline in simulated time.
    pub deadline: SimTime,
    /// How long to wait for real: `min(remaining, REAL_WAIT_CAP_NS)`.
    pub real_wait_ns: u64,
}

/// Plans a wait until `deadline` for a thread whose virtual time is `now`: with real sleeps the whole
/// remaining time, else at most `REAL_WAIT_CAP_NS`.
pub fn plan_wait(now: SimTime, deadline: SimTime, real_sleeps: bool) -> WaitPlan {
    let remaining = (deadline - now).as_nanos();
    WaitPlan {
        deadline,
        real_wait_ns: if real_sleeps { remaining } else { remaining.min(REAL_WAIT_CAP_NS) },
    }
}

/// The clock a `pthread_cond_timedwait` deadline is on. The condition variable's clock attribute is opaque,
/// so this picks whichever virtual clock reads closest to the deadline: wall-clock and monotonic readings
/// differ by decades, so only a timeout of decades could be misread.
fn guess_cond_clock(deadline_ns: u64) -> Virtual {
    let dist = |v: Virtual| v.now_ns().map_or(u64::MAX, |n| n.abs_diff(deadline_ns));
    if dist(Virtual::Monotonic) < dist(Virtual::Realtime) {
        Virtual::Monotonic
    } else {
        Virtual::Realtime
    }
}

/// Whether the exports should virtualise time: not when this code was linked statically into an
/// executable (an integration test linking the rlib), where every libc call of the program would land here.
fn active() -> bool {
    static STATE: crate::flag::LazyFlag = crate::flag::LazyFlag::new();
    STATE.get(|| !linked_into_executable())
}

fn linked_into_executable() -> bool {
    // SAFETY: dladdr only reads loader data; AT_PHDR points into the executable's first loaded segment.
    unsafe {
        let mut me: libc::Dl_info = std::mem::zeroed();
        let mut exe: libc::Dl_info = std::mem::zeroed();
        let phdr = libc::getauxval(libc::AT_PHDR) as *const libc::c_void;
        if libc::dladdr(active as *const libc::c_void, &mut me) == 0
            || phdr.is_null()
            || libc::dladdr(phdr, &mut exe) == 0
        {
            return false;
        }
        me.dli_fbase == exe.dli_fbase
    }
}

/// Resolves the next definition of `name` after this object, preferring symbol version `versions[i]` in
/// order. Cached by the caller.
fn resolve_next(name: &std::ffi::CStr, versions: &[&std::ffi::CStr]) -> usize {
    // SAFETY: dlvsym/dlsym with NUL-terminated strings; RTLD_NEXT is valid from a loaded object.
    unsafe {
        for v in versions {
            let p = libc::dlvsym(libc::RTLD_NEXT, name.as_ptr(), v.as_ptr());
            if !p.is_null() {
                return p as usize;
            }
        }
        libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize
    }
}

/// `real!("name", ["VERSION", …], fn type)`: the next definition of a libc function, or `None`.
macro_rules! real {
    ($name:literal, [$($ver:literal),*], $ty:ty) => {{
        static ADDR: AtomicUsize = AtomicUsize::new(0);
        let mut addr = ADDR.load(Ordering::Relaxed);
        if addr == 0 {
            addr = resolve_next($name, &[$($ver),*]);
            ADDR.store(addr, Ordering::Relaxed);
        }
        // SAFETY: the symbol named has this C signature in libc.
        (addr != 0).then(|| unsafe { std::mem::transmute::<usize, $ty>(addr) })
    }};
}

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;
type Gettimeofday = unsafe extern "C" fn(*mut libc::timeval, *mut libc::c_void) -> libc::c_int;
type Time = unsafe extern "C" fn(*mut libc::time_t) -> libc::time_t;
type TimespecGet = unsafe extern "C" fn(*mut libc::timespec, libc::c_int) -> libc::c_int;
type Nanosleep = unsafe extern "C" fn(*const libc::timespec, *mut libc::timespec) -> libc::c_int;
type ClockNanosleep = unsafe extern "C" fn(
    libc::clockid_t,
    libc::c_int,
    *const libc::timespec,
    *mut libc::timespec,
) -> libc::c_int;
type Usleep = unsafe extern "C" fn(libc::useconds_t) -> libc::c_int;
type Sleep = unsafe extern "C" fn(libc::c_uint) -> libc::c_uint;
type CondTimedwait = unsafe extern "C" fn(
    *mut libc::pthread_cond_t,
    *mut libc::pthread_mutex_t,
    *const libc::timespec,
) -> libc::c_int;
type CondClockwait = unsafe extern "C" fn(
    *mut libc::pthread_cond_t,
    *mut libc::pthread_mutex_t,
    libc::clockid_t,
    *const libc::timespec,
) -> libc::c_int;
type SemTimedwait = unsafe extern "C" fn(*mut libc::sem_t, *const libc::timespec) -> libc::c_int;
type SemClockwait =
    unsafe extern "C" fn(*mut libc::sem_t, libc::clockid_t, *const libc::timespec) -> libc::c_int;

fn real_clock_gettime() -> Option<ClockGettime> {
    real!(
        c"clock_gettime",
        [c"GLIBC_2.17", c"GLIBC_2.2.5"],
        ClockGettime
    )
}
fn real_gettimeofday() -> Option<Gettimeofday> {
    real!(c"gettimeofday", [c"GLIBC_2.2.5"], Gettimeofday)
}
fn real_time() -> Option<Time> {
    real!(c"time", [c"GLIBC_2.2.5"], Time)
}
fn real_timespec_get() -> Option<TimespecGet> {
    real!(c"timespec_get", [c"GLIBC_2.16"], TimespecGet)
}
fn real_nanosleep() -> Option<Nanosleep> {
    real!(c"nanosleep", [c"GLIBC_2.2.5"], Nanosleep)
}
fn real_clock_nanosleep() -> Option<ClockNanosleep> {
    real!(
        c"clock_nanosleep",
        [c"GLIBC_2.17", c"GLIBC_2.2.5"],
        ClockNanosleep
    )
}
fn real_usleep() -> Option<Usleep> {
    real!(c"usleep", [c"GLIBC_2.2.5"], Usleep)
}
fn real_sleep() -> Option<Sleep> {
    real!(c"sleep", [c"GLIBC_2.2.5"], Sleep)
}
fn real_cond_timedwait() -> Option<CondTimedwait> {
    // Only the current condition-variable ABI; the 2.2.5 compat symbol is never interposed.
    real!(c"pthread_cond_timedwait", [c"GLIBC_2.3.2"], CondTimedwait)
}
fn real_cond_clockwait() -> Option<CondClockwait> {
    real!(
        c"pthread_cond_clockwait",
        [c"GLIBC_2.34", c"GLIBC_2.30"],
        CondClockwait
    )
}
fn real_sem_timedwait() -> Option<SemTimedwait> {
    real!(
        c"sem_timedwait",
        [c"GLIBC_2.34", c"GLIBC_2.2.5"],
        SemTimedwait
    )
}
fn real_sem_clockwait() -> Option<SemClockwait> {
    real!(
        c"sem_clockwait",
        [c"GLIBC_2.34", c"GLIBC_2.30"],
        SemClockwait
    )
}

type StartRoutine = unsafe extern "C-unwind" fn(*mut libc::c_void) -> *mut libc::c_void;
type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut libc::c_void,
) -> libc::c_int;

type Dlopen = unsafe extern "C" fn(*const libc::c_char, libc::c_int) -> *mut libc::c_void;

/// libc's `dlopen`.
pub fn real_dlopen() -> Option<Dlopen> {
    real!(c"dlopen", [c"GLIBC_2.34", c"GLIBC_2.2.5"], Dlopen)
}

fn real_pthread_create() -> Option<PthreadCreate> {
    real!(c"pthread_create", [c"GLIBC_2.34", c"GLIBC_2.2.5"], PthreadCreate)
}

type PthreadJoin = unsafe extern "C" fn(libc::pthread_t, *mut *mut libc::c_void) -> libc::c_int;
type CondWait = unsafe extern "C" fn(*mut libc::pthread_cond_t, *mut libc::pthread_mutex_t) -> libc::c_int;
type CondSignal = unsafe extern "C" fn(*mut libc::pthread_cond_t) -> libc::c_int;

fn real_pthread_join() -> Option<PthreadJoin> {
    real!(c"pthread_join", [c"GLIBC_2.34", c"GLIBC_2.2.5"], PthreadJoin)
}
fn real_cond_wait() -> Option<CondWait> {
    real!(c"pthread_cond_wait", [c"GLIBC_2.3.2"], CondWait)
}
fn real_cond_signal() -> Option<CondSignal> {
    real!(c"pthread_cond_signal", [c"GLIBC_2.3.2"], CondSignal)
}
fn real_cond_broadcast() -> Option<CondSignal> {
    real!(c"pthread_cond_broadcast", [c"GLIBC_2.3.2"], CondSignal)
}

/// Causality between threads (docs/time.md, "Threads"): the virtual time at which a condition variable was last
/// signalled, or a thread ended, by address (condition variable) or `pthread_t`. A thread woken by the signal,
/// or joining the thread, continues no earlier. A fixed table: a key that collides with another replaces it,
/// and its waiter then keeps its own clock (the safe direction: never moved by another key's time).
mod handoff {
    use std::sync::Mutex;

    const SLOTS: usize = 1024;
    static TABLE: [Mutex<(usize, u64)>; SLOTS] = [const { Mutex::new((0, 0)) }; SLOTS];

    fn slot(key: usize) -> &'static Mutex<(usize, u64)> {
        // Fibonacci hashing of the address (condition variables are 8-aligned, pthread_t are pointers).
        &TABLE[((key as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize]
    }

    /// `key` happened at virtual time `t` (the latest event replaces the earlier).
    pub fn record(key: usize, t: u64) {
        let mut s = slot(key).lock().unwrap_or_else(|e| e.into_inner());
        *s = (key, t);
    }

    /// When `key` last happened, if the table still holds it.
    pub fn time_of(key: usize) -> Option<u64> {
        let s = slot(key).lock().unwrap_or_else(|e| e.into_inner());
        (s.0 == key).then_some(s.1)
    }
}

/// The calling thread signals `key` (a condition variable) or ends (its `pthread_t`): records its virtual time.
fn hand_off(key: usize) {
    if active() && engaged() {
        if let Ok(Some(t)) = std::panic::catch_unwind(clock::now_if_started) {
            handoff::record(key, t.as_nanos());
        }
    }
}

/// The calling thread was woken through `key`: its clock moves to the time of the hand-off, if later.
fn taken_over(key: usize) {
    if active() && engaged() {
        if let Some(t) = handoff::time_of(key) {
            let _ = std::panic::catch_unwind(|| clock::advance_to(SimTime::from_nanos(t)));
        }
    }
}

/// What a thread created under virtual clocks needs before it runs: its routine and where its creator's
/// clock was.
struct Spawn {
    start: StartRoutine,
    arg: *mut libc::c_void,
    parent: SimTime,
}

/// The new thread's first frame: starts its clock at its creator's time, then runs the routine. Nothing with
/// a destructor is alive across the call, so `pthread_exit`'s forced unwinding may pass through.
unsafe extern "C-unwind" fn spawn_trampoline(p: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `p` is the `Spawn` that `pthread_create` boxed for this thread, handed over exactly once.
    let s = unsafe { Box::from_raw(p as *mut Spawn) };
    let (start, arg, parent) = (s.start, s.arg, s.parent);
    drop(s);
    let _ = std::panic::catch_unwind(|| clock::start_at(parent));
    // SAFETY: the application's start routine with its own argument, as it asked.
    let r = unsafe { start(arg) };
    // A thread that joins this one continues no earlier than it ended.
    // SAFETY: plain libc call.
    hand_off(unsafe { libc::pthread_self() } as usize);
    r
}

fn set_errno(e: libc::c_int) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

/// Runs the virtual implementation; `None` or a panic means "let libc do it".
fn virtualised<R>(f: impl FnOnce() -> Option<R>, real: impl FnOnce() -> R) -> R {
    if !active() || !engaged() {
        return real();
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Some(r)) => r,
        _ => real(),
    }
}

/// A sleep of `d` simulated time. With real sleeps (the default) the thread also sleeps `d` for real; a signal
/// that interrupts it ends the sleep early with `EINTR` (-1), the clock advanced by the part slept and `rem`
/// (if given) holding the rest, as libc's. With virtual sleeps: the clock advances by `d`, other threads get
/// the core (`sched_yield`), and the sleep returns 0 at once.
fn sleep_for(d: SimDuration, rem: *mut libc::timespec) -> libc::c_int {
    if !clock::real_sleeps() {
        clock::advance_by(d);
        // SAFETY: plain system call.
        unsafe { libc::sched_yield() };
        return 0;
    }
    let req = ns_timespec(d.as_nanos());
    let mut left = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: raw system call with valid timespecs (never the exported `nanosleep`).
    let rc = unsafe { libc::syscall(libc::SYS_nanosleep, &req as *const libc::timespec, &mut left as *mut libc::timespec) };
    if rc == 0 {
        clock::advance_by(d);
        return 0;
    }
    let left_ns = timespec_ns(&left).unwrap_or(0).min(d.as_nanos());
    clock::advance_by(SimDuration::from_nanos(d.as_nanos() - left_ns));
    if !rem.is_null() {
        // SAFETY: the caller passed a writable timespec.
        unsafe { *rem = left };
    }
    -1
}

/// A sleep until simulated time `t` (on real sleeps, also for real until then).
fn sleep_until(t: SimTime) -> libc::c_int {
    let now = clock::now();
    if t <= now {
        return 0;
    }
    match sleep_for(t - now, std::ptr::null_mut()) {
        0 => {
            clock::advance_to(t);
            0
        }
        rc => rc,
    }
}

/// Outcome of one real wait.
enum Waited {
    /// The real wait timed out: the virtual deadline is taken as reached.
    TimedOut,
    /// Woken (or failed) with this return value: the clock is left alone.
    Other(libc::c_int),
}

/// The shared timed-wait policy: wait for real for at most `REAL_WAIT_CAP_NS` (absolute deadline on the
/// real monotonic clock, handed to `wait`); a real timeout moves the thread to the virtual deadline.
fn timed_wait(
    deadline: SimTime,
    wait: impl FnOnce(&libc::timespec) -> Waited,
) -> Option<Result<libc::c_int, ()>> {
    let plan = plan_wait(clock::now(), deadline, clock::real_sleeps());
    let real_deadline =
        ns_timespec(real_clock_ns(libc::CLOCK_MONOTONIC)?.saturating_add(plan.real_wait_ns));
    Some(match wait(&real_deadline) {
        Waited::TimedOut => {
            clock::advance_to(plan.deadline);
            Err(())
        }
        Waited::Other(rc) => Ok(rc),
    })
}

/// `clock_gettime` for a virtual clock; `None` for clocks libc answers.
fn virtual_clock_gettime(clk: libc::clockid_t, tp: *mut libc::timespec) -> Option<libc::c_int> {
    let v = Virtual::of(clk)?;
    if tp.is_null() {
        return None;
    }
    let ns = v.now_ns()?;
    // SAFETY: the caller passed a writable timespec.
    unsafe { *tp = ns_timespec(ns) };
    Some(0)
}

#[cfg(not(test))]
mod exports {
    //! The exported symbols. Their symbol versions are set by the `.symver` directives below and the
    //! version nodes written by build.rs; each Rust function carries the libc name itself so that rustc's
    //! export list (which matches the unversioned name) keeps every versioned alias global.
    use super::*;
    use libc::{
        c_int, c_uint, c_void, clockid_t, pthread_cond_t, pthread_mutex_t, sem_t, time_t, timespec,
        timeval,
    };

    /// One host name per simulated node (`net::host_name`); glibc's contract otherwise: the name is
    /// NUL-terminated, and a buffer too small for it is `ENAMETOOLONG`.
    #[no_mangle]
    pub unsafe extern "C" fn gethostname(name: *mut libc::c_char, len: usize) -> c_int {
        let r = std::panic::catch_unwind(|| {
            let mut u: libc::utsname = unsafe { std::mem::zeroed() };
            if unsafe { libc::uname(&mut u) } != 0 {
                return Err(libc::EFAULT);
            }
            let real = unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) }.to_string_lossy().into_owned();
            Ok(crate::net::host_name(&real))
        });
        let host = match r {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return e_set(e),
            Err(_) => return e_set(libc::EFAULT),
        };
        if name.is_null() {
            return e_set(libc::EFAULT);
        }
        if host.len() + 1 > len {
            return e_set(libc::ENAMETOOLONG);
        }
        unsafe {
            std::ptr::copy_nonoverlapping(host.as_ptr() as *const libc::c_char, name, host.len());
            *name.add(host.len()) = 0;
        }
        0
    }

    fn e_set(e: c_int) -> c_int {
        unsafe { *libc::__errno_location() = e };
        -1
    }

    #[no_mangle]
    pub unsafe extern "C" fn clock_gettime(clk: clockid_t, tp: *mut timespec) -> c_int {
        virtualised(
            || virtual_clock_gettime(clk, tp),
            || match real_clock_gettime() {
                Some(f) => f(clk, tp),
                None => libc::syscall(libc::SYS_clock_gettime, clk, tp) as c_int,
            },
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn gettimeofday(tv: *mut timeval, tz: *mut c_void) -> c_int {
        let real = || match real_gettimeofday() {
            Some(f) => f(tv, tz),
            None => libc::syscall(libc::SYS_gettimeofday, tv, tz) as c_int,
        };
        virtualised(
            || {
                if !tz.is_null() {
                    // The obsolete time-zone argument is filled by libc; the time itself is virtual.
                    let mut scratch = timeval {
                        tv_sec: 0,
                        tv_usec: 0,
                    };
                    real_gettimeofday().map(|f| f(&mut scratch, tz))?;
                }
                if !tv.is_null() {
                    let ns = Virtual::Realtime.now_ns()?;
                    *tv = timeval {
                        tv_sec: (ns / NS_PER_SEC) as time_t,
                        tv_usec: ((ns % NS_PER_SEC) / 1_000) as _,
                    };
                }
                Some(0)
            },
            real,
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn time(tloc: *mut time_t) -> time_t {
        virtualised(
            || {
                let secs = (Virtual::Realtime.now_ns()? / NS_PER_SEC) as time_t;
                if !tloc.is_null() {
                    *tloc = secs;
                }
                Some(secs)
            },
            || match real_time() {
                Some(f) => f(tloc),
                None => libc::syscall(libc::SYS_time, tloc) as time_t,
            },
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn timespec_get(ts: *mut timespec, base: c_int) -> c_int {
        const TIME_UTC: c_int = 1;
        virtualised(
            || {
                (base == TIME_UTC)
                    .then(|| virtual_clock_gettime(libc::CLOCK_REALTIME, ts).map(|_| base))?
            },
            || real_timespec_get().map_or(0, |f| f(ts, base)),
        )
    }

    /// A thread created after the clocks became virtual starts its clock where its creator's was (docs/time.md,
    /// "Threads"); otherwise libc's `pthread_create`, untouched.
    #[no_mangle]
    pub unsafe extern "C" fn pthread_create(
        thread: *mut libc::pthread_t,
        attr: *const libc::pthread_attr_t,
        start: StartRoutine,
        arg: *mut c_void,
    ) -> c_int {
        let Some(real) = real_pthread_create() else { return libc::EAGAIN };
        if !active() || !engaged() {
            return real(thread, attr, start, arg);
        }
        let Ok(parent) = std::panic::catch_unwind(clock::now) else { return real(thread, attr, start, arg) };
        let spawn = Box::into_raw(Box::new(Spawn { start, arg, parent }));
        let rc = real(thread, attr, spawn_trampoline, spawn as *mut c_void);
        if rc != 0 {
            // SAFETY: the thread was not created, so the box is still ours.
            drop(unsafe { Box::from_raw(spawn) });
        }
        rc
    }

    /// A thread that joins another continues no earlier than the other ended (docs/time.md, "Threads").
    #[no_mangle]
    pub unsafe extern "C" fn pthread_join(thread: libc::pthread_t, retval: *mut *mut c_void) -> c_int {
        let Some(real) = real_pthread_join() else { return libc::EINVAL };
        let rc = real(thread, retval);
        if rc == 0 {
            taken_over(thread as usize);
        }
        rc
    }

    /// Signalling a condition variable records the signaller's virtual time; a thread it wakes continues no
    /// earlier (docs/time.md, "Threads").
    #[no_mangle]
    pub unsafe extern "C" fn pthread_cond_signal(cond: *mut pthread_cond_t) -> c_int {
        hand_off(cond as usize);
        real_cond_signal().map_or(libc::EINVAL, |f| f(cond))
    }

    #[no_mangle]
    pub unsafe extern "C" fn pthread_cond_broadcast(cond: *mut pthread_cond_t) -> c_int {
        hand_off(cond as usize);
        real_cond_broadcast().map_or(libc::EINVAL, |f| f(cond))
    }

    #[no_mangle]
    pub unsafe extern "C" fn pthread_cond_wait(cond: *mut pthread_cond_t, mutex: *mut pthread_mutex_t) -> c_int {
        let rc = real_cond_wait().map_or(libc::EINVAL, |f| f(cond, mutex));
        taken_over(cond as usize);
        rc
    }

    /// Profiling mode: in an executing process, which driver a `dlopen` of `libcuda.so.1` finds depends on the
    /// caller (`profile::redirect_dlopen`); every other `dlopen` is libc's, untouched. glibc searches the RUNPATH
    /// of the library that called `dlopen`, found from the return address: the call of libc's `dlopen` must stay
    /// the last thing this function does, so that it compiles to a tail jump and the return address is the
    /// application's (`profile::the_interposed_dlopen_keeps_the_callers_search_path` checks it).
    #[no_mangle]
    pub unsafe extern "C" fn dlopen(filename: *const libc::c_char, flags: c_int) -> *mut c_void {
        let Some(real) = real_dlopen() else { return std::ptr::null_mut() };
        if crate::profile::mode() == crate::profile::Mode::Execute {
            // SAFETY: `filename` is what the caller gave `dlopen`.
            if let Ok(Some(h)) = std::panic::catch_unwind(|| unsafe { crate::profile::redirect_dlopen(filename, flags) }) {
                return h;
            }
        }
        real(filename, flags)
    }

    #[no_mangle]
    pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
        virtualised(
            || {
                let ns = timespec_ns(req.as_ref()?)?;
                // -1 with errno EINTR (set by the system call) when a signal cut the real sleep short.
                Some(sleep_for(SimDuration::from_nanos(ns), rem))
            },
            || match real_nanosleep() {
                Some(f) => f(req, rem),
                None => libc::syscall(libc::SYS_nanosleep, req, rem) as c_int,
            },
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn clock_nanosleep(
        clk: clockid_t,
        flags: c_int,
        req: *const timespec,
        rem: *mut timespec,
    ) -> c_int {
        virtualised(
            || {
                let v = Virtual::of(clk)?;
                let ns = timespec_ns(req.as_ref()?)?;
                // clock_nanosleep returns the error number itself (EINTR) rather than setting errno.
                let rc = if flags & libc::TIMER_ABSTIME != 0 {
                    sleep_until(v.to_sim(ns)?)
                } else {
                    sleep_for(SimDuration::from_nanos(ns), rem)
                };
                Some(if rc == 0 { 0 } else { libc::EINTR })
            },
            || match real_clock_nanosleep() {
                Some(f) => f(clk, flags, req, rem),
                None => match libc::syscall(libc::SYS_clock_nanosleep, clk, flags, req, rem) {
                    0 => 0,
                    _ => *libc::__errno_location(),
                },
            },
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn usleep(usec: libc::useconds_t) -> c_int {
        virtualised(
            || {
                Some(sleep_for(SimDuration::from_micros(usec as u64), std::ptr::null_mut()))
            },
            || real_usleep().map_or(0, |f| f(usec)),
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn sleep(secs: c_uint) -> c_uint {
        virtualised(
            || {
                let mut rem = timespec { tv_sec: 0, tv_nsec: 0 };
                match sleep_for(SimDuration::from_nanos(secs as u64 * NS_PER_SEC), &mut rem) {
                    0 => Some(0),
                    // The seconds not slept, rounded up, as libc's `sleep`.
                    _ => Some(rem.tv_sec as c_uint + c_uint::from(rem.tv_nsec > 0)),
                }
            },
            || real_sleep().map_or(secs, |f| f(secs)),
        )
    }

    /// A condition wait until `deadline` on the virtual clock: the real wait goes through
    /// `pthread_cond_clockwait(CLOCK_MONOTONIC)`, whatever clock the condition variable was created with.
    unsafe fn cond_wait_until(
        cond: *mut pthread_cond_t,
        mutex: *mut pthread_mutex_t,
        deadline: SimTime,
    ) -> Option<c_int> {
        let wait = real_cond_clockwait()?;
        let r = timed_wait(deadline, |real| {
            match wait(cond, mutex, libc::CLOCK_MONOTONIC, real) {
                libc::ETIMEDOUT => Waited::TimedOut,
                rc => Waited::Other(rc),
            }
        })?;
        if r.is_ok() {
            taken_over(cond as usize);
        }
        Some(r.unwrap_or(libc::ETIMEDOUT))
    }

    #[no_mangle]
    pub unsafe extern "C" fn pthread_cond_timedwait(
        cond: *mut pthread_cond_t,
        mutex: *mut pthread_mutex_t,
        abstime: *const timespec,
    ) -> c_int {
        virtualised(
            || {
                let ns = timespec_ns(abstime.as_ref()?)?;
                let deadline = guess_cond_clock(ns).to_sim(ns)?;
                cond_wait_until(cond, mutex, deadline)
            },
            || real_cond_timedwait().map_or(libc::EINVAL, |f| f(cond, mutex, abstime)),
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn pthread_cond_clockwait(
        cond: *mut pthread_cond_t,
        mutex: *mut pthread_mutex_t,
        clk: clockid_t,
        abstime: *const timespec,
    ) -> c_int {
        virtualised(
            || {
                // libc accepts only these two clocks here; anything else gets its error.
                if clk != libc::CLOCK_MONOTONIC && clk != libc::CLOCK_REALTIME {
                    return None;
                }
                let deadline = Virtual::of(clk)?.to_sim(timespec_ns(abstime.as_ref()?)?)?;
                cond_wait_until(cond, mutex, deadline)
            },
            || real_cond_clockwait().map_or(libc::EINVAL, |f| f(cond, mutex, clk, abstime)),
        )
    }

    /// A semaphore wait until `deadline` on the virtual clock, with libc's `-1`/errno convention.
    unsafe fn sem_wait_until(sem: *mut sem_t, deadline: SimTime) -> Option<c_int> {
        let wait = real_sem_clockwait()?;
        let r = timed_wait(deadline, |real| {
            match wait(sem, libc::CLOCK_MONOTONIC, real) {
                -1 if *libc::__errno_location() == libc::ETIMEDOUT => Waited::TimedOut,
                rc => Waited::Other(rc),
            }
        })?;
        Some(r.unwrap_or_else(|()| {
            set_errno(libc::ETIMEDOUT);
            -1
        }))
    }

    #[no_mangle]
    pub unsafe extern "C" fn sem_timedwait(sem: *mut sem_t, abstime: *const timespec) -> c_int {
        virtualised(
            || {
                sem_wait_until(
                    sem,
                    Virtual::Realtime.to_sim(timespec_ns(abstime.as_ref()?)?)?,
                )
            },
            || real_sem_timedwait().map_or(-1, |f| f(sem, abstime)),
        )
    }

    #[no_mangle]
    pub unsafe extern "C" fn sem_clockwait(
        sem: *mut sem_t,
        clk: clockid_t,
        abstime: *const timespec,
    ) -> c_int {
        virtualised(
            || {
                if clk != libc::CLOCK_MONOTONIC && clk != libc::CLOCK_REALTIME {
                    return None;
                }
                sem_wait_until(
                    sem,
                    Virtual::of(clk)?.to_sim(timespec_ns(abstime.as_ref()?)?)?,
                )
            },
            || real_sem_clockwait().map_or(-1, |f| f(sem, clk, abstime)),
        )
    }

    // Symbol versions: the default (`@@`) is glibc's current version of each name; `@` aliases cover the
    // older versions executables may reference. The compat `pthread_cond_timedwait@GLIBC_2.2.5` (old
    // condition-variable layout) is deliberately absent, so such references keep binding to libc.
    #[cfg(target_arch = "x86_64")]
    std::arch::global_asm!(
        ".symver clock_gettime, clock_gettime@@GLIBC_2.17",
        ".symver clock_gettime, clock_gettime@GLIBC_2.2.5",
        ".symver gettimeofday, gettimeofday@@GLIBC_2.2.5",
        ".symver gethostname, gethostname@@GLIBC_2.2.5",
        ".symver time, time@@GLIBC_2.2.5",
        ".symver timespec_get, timespec_get@@GLIBC_2.16",
        ".symver nanosleep, nanosleep@@GLIBC_2.2.5",
        ".symver pthread_create, pthread_create@@GLIBC_2.34",
        ".symver pthread_create, pthread_create@GLIBC_2.2.5",
        ".symver dlopen, dlopen@@GLIBC_2.34",
        ".symver dlopen, dlopen@GLIBC_2.2.5",
        ".symver clock_nanosleep, clock_nanosleep@@GLIBC_2.17",
        ".symver clock_nanosleep, clock_nanosleep@GLIBC_2.2.5",
        ".symver usleep, usleep@@GLIBC_2.2.5",
        ".symver sleep, sleep@@GLIBC_2.2.5",
        ".symver pthread_cond_timedwait, pthread_cond_timedwait@@GLIBC_2.3.2",
        ".symver pthread_cond_wait, pthread_cond_wait@@GLIBC_2.3.2",
        ".symver pthread_cond_signal, pthread_cond_signal@@GLIBC_2.3.2",
        ".symver pthread_cond_broadcast, pthread_cond_broadcast@@GLIBC_2.3.2",
        ".symver pthread_join, pthread_join@@GLIBC_2.34",
        ".symver pthread_join, pthread_join@GLIBC_2.2.5",
        ".symver pthread_cond_clockwait, pthread_cond_clockwait@@GLIBC_2.34",
        ".symver pthread_cond_clockwait, pthread_cond_clockwait@GLIBC_2.30",
        ".symver sem_timedwait, sem_timedwait@@GLIBC_2.34",
        ".symver sem_timedwait, sem_timedwait@GLIBC_2.2.5",
        ".symver sem_clockwait, sem_clockwait@@GLIBC_2.34",
        ".symver sem_clockwait, sem_clockwait@GLIBC_2.30",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ids_map_to_virtual_clocks() {
        assert_eq!(Virtual::of(libc::CLOCK_MONOTONIC), Some(Virtual::Monotonic));
        assert_eq!(
            Virtual::of(libc::CLOCK_MONOTONIC_COARSE),
            Some(Virtual::Monotonic)
        );
        assert_eq!(
            Virtual::of(libc::CLOCK_MONOTONIC_RAW),
            Some(Virtual::MonotonicRaw)
        );
        assert_eq!(
            Virtual::of(libc::CLOCK_REALTIME_COARSE),
            Some(Virtual::Realtime)
        );
        assert_eq!(Virtual::of(libc::CLOCK_BOOTTIME), Some(Virtual::Boottime));
        assert_eq!(Virtual::of(libc::CLOCK_PROCESS_CPUTIME_ID), None);
        assert_eq!(Virtual::of(libc::CLOCK_THREAD_CPUTIME_ID), None);
        assert_eq!(Virtual::of(12345), None);
    }

    #[test]
    fn timespec_conversion_validates_and_saturates() {
        assert_eq!(
            timespec_ns(&libc::timespec {
                tv_sec: 2,
                tv_nsec: 5
            }),
            Some(2_000_000_005)
        );
        assert_eq!(
            timespec_ns(&libc::timespec {
                tv_sec: -1,
                tv_nsec: 0
            }),
            None
        );
        assert_eq!(
            timespec_ns(&libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000_000
            }),
            None
        );
        assert_eq!(
            timespec_ns(&libc::timespec {
                tv_sec: libc::time_t::MAX,
                tv_nsec: 0
            }),
            Some(u64::MAX)
        );
        let ts = ns_timespec(3_000_000_007);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (3, 7));
    }

    #[test]
    fn waits_block_for_real_at_most_the_cap() {
        let p = plan_wait(SimTime::from_nanos(1_000), SimTime::from_nanos(1_500), false);
        assert_eq!(
            p,
            WaitPlan {
                deadline: SimTime::from_nanos(1_500),
                real_wait_ns: 500
            }
        );
        let p = plan_wait(SimTime::from_nanos(0), SimTime::from_nanos(30 * NS_PER_SEC), false);
        assert_eq!(p.real_wait_ns, REAL_WAIT_CAP_NS);
        // With real sleeps the whole remaining time.
        let p = plan_wait(SimTime::from_nanos(0), SimTime::from_nanos(30 * NS_PER_SEC), true);
        assert_eq!(p.real_wait_ns, 30 * NS_PER_SEC);
        // A deadline already passed waits zero and never moves the clock back.
        let p = plan_wait(SimTime::from_nanos(9_000), SimTime::from_nanos(10), false);
        assert_eq!(p.real_wait_ns, 0);
        let p = plan_wait(SimTime::from_nanos(9_000), SimTime::from_nanos(10), true);
        assert_eq!(p.real_wait_ns, 0);
    }

    #[test]
    fn engaging_sets_origins_that_continue_the_real_clock() {
        let before = real_clock_ns(libc::CLOCK_MONOTONIC).unwrap();
        engage();
        assert!(engaged());
        let a = Virtual::Monotonic.origin().unwrap();
        let virt = clock::now().as_nanos();
        // The origin is the real reading at `engage` minus the thread's virtual time then (which only grows).
        assert!(a + virt >= before, "origin {a} + virtual {virt} < real {before}");
        assert!(a <= real_clock_ns(libc::CLOCK_MONOTONIC).unwrap());
        assert_eq!(Virtual::Monotonic.origin(), Some(a));
        assert_eq!(
            Virtual::Monotonic.to_sim(a + 1_234),
            Some(SimTime::from_nanos(1_234))
        );
        assert_eq!(Virtual::Monotonic.to_sim(a - 1), Some(SimTime::ZERO));
    }
}
