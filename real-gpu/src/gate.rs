//! Timing one piece of work on the real GPU.
//!
//! CUDA events bracket the work on its stream. Recorded on an idle GPU, the first event would complete at once
//! and the interval would include the host's time to submit the work (several microseconds per launch, far more
//! when a library loads code on first use), which is longer than many kernels. So a *gate* goes first: a
//! one-thread kernel that spins on the GPU's global timer for [`Gate::spin_ns`], long enough that the host has
//! queued the opening event, the work and the closing event before the GPU reaches them. The interval between
//! the events is then the work's own GPU time plus the GPU's per-command overhead, as back-to-back work on a busy
//! GPU sees it. The gate checks itself: if the opening event has already completed when the work and the
//! closing event have been queued, the spin was too short; the measurement is marked `covered: false` and later
//! gates spin twice as long (up to [`MAX_SPIN_NS`]).
//!
//! CUPTI's activity records would time kernels without a gate, but library calls launch several kernels and
//! copies and the runtime wants one figure per call, and events work with every driver. docs/profiling.md.

use crate::driver::{CUevent, CUfunction, CUmodule, CUstream, Driver, CUDA_ERROR_NOT_READY, CUDA_SUCCESS, CU_EVENT_BLOCKING_SYNC};
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The gate kernel: `phantom_spin(u64 ns)` spins one thread until the global timer has advanced by `ns`.
pub const SPIN_PTX: &str = r#"
.version 7.0
.target sm_70
.address_size 64

.visible .entry phantom_spin(.param .u64 phantom_spin_ns)
{
    .reg .pred %p;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [phantom_spin_ns];
    mov.u64 %rd2, %globaltimer;
SPIN:
    mov.u64 %rd3, %globaltimer;
    sub.u64 %rd4, %rd3, %rd2;
    setp.lt.u64 %p, %rd4, %rd1;
    @%p bra SPIN;
    ret;
}
"#;

/// The first gates spin this long.
pub const DEFAULT_SPIN_NS: u64 = 50_000;
/// Gates never spin longer than this.
pub const MAX_SPIN_NS: u64 = 20_000_000;

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    /// GPU time between the opening and closing events, less what an isolated launch pays that a launch in a
    /// busy stream does not ([`Gate::overhead_ns`]), in nanoseconds (at least 1).
    pub ns: u64,
    /// The gate was still spinning when the work had been queued (the figure excludes host time).
    pub covered: bool,
}

/// The gate kernel and the two timing events (one measurement at a time).
pub struct Gate {
    spin: CUfunction,
    events: Mutex<(CUevent, CUevent)>,
    spin_ns: AtomicU64,
    /// Measurements whose gate was too short.
    pub misses: AtomicU64,
    /// What every measurement subtracts, so that a kernel's figure is its *period* in a stream of kernels: the
    /// interval around one empty kernel behind a gate (the events, the launch reaching an idle GPU, the kernel)
    /// less the period of empty kernels queued back to back (median of [`OVERHEAD_SAMPLES`] each).
    pub overhead_ns: u64,
    /// The first of those figures: the interval around one empty kernel behind a gate (median, ns).
    pub isolated_ns: u64,
    /// The second: the period of empty kernels queued [`BATCH`] at a time back to back (median, ns).
    pub period_ns: u64,
}

/// How many samples of each figure of [`Gate::overhead_ns`] [`Gate::new`] takes.
pub const OVERHEAD_SAMPLES: usize = 7;
/// Empty kernels per back-to-back sample.
pub const BATCH: u64 = 32;

// SAFETY: driver handles are identifiers usable from any thread with the context current.
unsafe impl Send for Gate {}
unsafe impl Sync for Gate {}

impl Gate {
    pub fn new(d: &Driver) -> Result<Gate, String> {
        let ptx = CString::new(SPIN_PTX).expect("no NUL in the PTX");
        let mut module: CUmodule = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuModuleLoadData)(&mut module, ptx.as_ptr() as *const c_void) }, "loading the gate kernel")?;
        let mut spin: CUfunction = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuModuleGetFunction)(&mut spin, module, c"phantom_spin".as_ptr()) }, "cuModuleGetFunction(phantom_spin)")?;
        let mut e0: CUevent = std::ptr::null_mut();
        let mut e1: CUevent = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuEventCreate)(&mut e0, CU_EVENT_BLOCKING_SYNC) }, "cuEventCreate")?;
        d.check(unsafe { (d.f.cuEventCreate)(&mut e1, CU_EVENT_BLOCKING_SYNC) }, "cuEventCreate")?;
        let mut g = Gate {
            spin,
            events: Mutex::new((e0, e1)),
            spin_ns: AtomicU64::new(DEFAULT_SPIN_NS),
            misses: AtomicU64::new(0),
            overhead_ns: 0,
            isolated_ns: 0,
            period_ns: 0,
        };
        let s = crate::driver::CU_STREAM_LEGACY;
        let median = |mut v: Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let mut single = Vec::with_capacity(OVERHEAD_SAMPLES);
        let mut period = Vec::with_capacity(OVERHEAD_SAMPLES);
        for _ in 0..OVERHEAD_SAMPLES {
            single.push(g.interval(d, s, || g.spin(d, s, 0))?.0);
            let (raw, _) = g.interval(d, s, || (0..BATCH).try_for_each(|_| g.spin(d, s, 0)))?;
            period.push(raw / BATCH);
        }
        g.isolated_ns = median(single);
        g.period_ns = median(period);
        g.overhead_ns = g.isolated_ns.saturating_sub(g.period_ns);
        g.misses.store(0, Ordering::Relaxed);
        Ok(g)
    }

    /// How long the next gate spins.
    pub fn spin_ns(&self) -> u64 {
        self.spin_ns.load(Ordering::Relaxed)
    }

    /// Queues a spin of `ns` on `stream` (also used to wake the GPU's clocks before the first measurement).
    /// `stream` is a driver handle, passed to the driver, never dereferenced here.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn spin(&self, d: &Driver, stream: CUstream, ns: u64) -> Result<(), String> {
        let mut arg = ns;
        let mut params = [&mut arg as *mut u64 as *mut c_void];
        d.check(
            unsafe { (d.f.cuLaunchKernel)(self.spin, 1, 1, 1, 1, 1, 1, 0, stream, params.as_mut_ptr(), std::ptr::null_mut()) },
            "launching the gate kernel",
        )
    }

    /// `stream` is a driver handle, passed to the driver, never dereferenced here.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    /// Waits for all work on the GPU, then times `work` (which queues real work on `stream`) behind a gate.
    /// Returns the measurement and whatever `work` returned; an error of `work` is returned as it is, after
    /// the GPU has caught up.
    pub fn measure<T>(
        &self,
        d: &Driver,
        stream: CUstream,
        work: impl FnOnce() -> Result<T, String>,
    ) -> Result<(Measured, T), String> {
        let (raw, (covered, out)) = self.interval(d, stream, work)?;
        Ok((Measured { ns: raw.saturating_sub(self.overhead_ns).max(1), covered }, out))
    }

    /// The raw interval between the events around `work`, and whether the gate covered the host's queuing.
    fn interval<T>(&self, d: &Driver, stream: CUstream, work: impl FnOnce() -> Result<T, String>) -> Result<(u64, (bool, T)), String> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let (e0, e1) = *events;
        // Work queued earlier on any stream would otherwise overlap the measured work.
        d.check(unsafe { (d.f.cuCtxSynchronize)() }, "cuCtxSynchronize")?;
        let spin = self.spin_ns();
        self.spin(d, stream, spin)?;
        let (covered, out) = bracket(d, stream, (e0, e1), work)?;
        d.check(unsafe { (d.f.cuEventSynchronize)(e1) }, "cuEventSynchronize")?;
        let out = out?;
        let raw = elapsed_ns(d, e0, e1)?;
        if !covered {
            self.misses.fetch_add(1, Ordering::Relaxed);
            self.spin_ns.store((spin * 2).min(MAX_SPIN_NS), Ordering::Relaxed);
        }
        Ok((raw, (covered, out)))
    }
}

/// Queues `work` (which queues real work on `stream`) between the events `e0` and `e1`, and says whether the
/// interval is *covered*: the opening event had still not completed once the closing one was queued, so the GPU
/// reached the work with all of it queued and no host time is in the interval (something queued earlier, a
/// gate or the stream's own work, held it back). Returns that and whatever `work` returned; a failure of the
/// events is the error. `stream` and the events are driver handles, passed to the driver, never dereferenced
/// here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn bracket<T>(
    d: &Driver,
    stream: CUstream,
    (e0, e1): (CUevent, CUevent),
    work: impl FnOnce() -> Result<T, String>,
) -> Result<(bool, Result<T, String>), String> {
    d.check(unsafe { (d.f.cuEventRecord)(e0, stream) }, "cuEventRecord")?;
    let out = work();
    d.check(unsafe { (d.f.cuEventRecord)(e1, stream) }, "cuEventRecord")?;
    let covered = match unsafe { (d.f.cuEventQuery)(e0) } {
        CUDA_ERROR_NOT_READY => true,
        CUDA_SUCCESS => false,
        rc => return Err(d.check(rc, "cuEventQuery").unwrap_err()),
    };
    Ok((covered, out))
}

/// The interval between two completed events, in ns. The events are driver handles, passed to the driver,
/// never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn elapsed_ns(d: &Driver, e0: CUevent, e1: CUevent) -> Result<u64, String> {
    let mut ms = 0f32;
    d.check(unsafe { (d.f.cuEventElapsedTime)(&mut ms, e0, e1) }, "cuEventElapsedTime")?;
    Ok((ms as f64 * 1e6).round().max(0.0) as u64)
}
