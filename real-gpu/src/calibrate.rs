//! Measuring the one real GPU itself, for `phantom calibrate` (docs/calibration.md): the figures the copy model
//! and the launch model use (`GpuSpec::hbm_bytes_per_s`, `pcie_h2d_bytes_per_s`, `pcie_d2h_bytes_per_s`,
//! `pageable_bytes_per_s`, `launch_latency_ns`), and the time of bf16 GEMMs through NVIDIA's cuBLASLt ([`gemm`]).
//!
//! Every GPU-side figure is the median of several samples timed with CUDA events, behind the [`Gate`] where the
//! host's queuing must not count (docs/profiling.md, "How a kernel is measured"); a sample whose gate was too
//! short is taken again (the gate then spins longer). Pageable copies are timed with two events and no gate: the
//! driver stages them through pinned buffers while the host waits, so a gate could never cover the host's part,
//! and that part is the copy's cost. Launch latency needs the host clock; it is passed in, so that a test can
//! use a deterministic one.

use crate::driver::{
    CUdeviceptr, CUevent, CUstream, Driver, CUDA_ERROR_NOT_READY, CUDA_SUCCESS, CU_EVENT_BLOCKING_SYNC,
    CU_STREAM_NON_BLOCKING,
};
use crate::gate::Gate;
use std::ffi::c_void;

pub mod gemm;

const MIB: usize = 1 << 20;

/// What to measure, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of the device-to-device copy (and of the memset); two device buffers of this size are allocated.
    pub d2d_bytes: usize,
    /// Bytes of each host copy (pinned and pageable, both directions); at most `d2d_bytes`.
    pub host_bytes: usize,
    /// Timed samples of each copy (the median is kept), after one untimed warm-up.
    pub samples: usize,
    /// Timed launches for the launch latency (the median is kept).
    pub launch_samples: usize,
}

/// 256 MiB device-to-device (512 MiB of memory traffic, 5× an H100's L2, 2× a B200's), 64 MiB host copies
/// (over a millisecond each at PCIe Gen5 speed), 5 samples, 51 launches.
pub const DEFAULT_PLAN: Plan = Plan { d2d_bytes: 256 * MIB, host_bytes: 64 * MIB, samples: 5, launch_samples: 51 };

/// How long the GPU spins before the first measurement, so that its clocks are up (as profiling mode does).
pub const WAKE_SPIN_NS: u64 = 100_000_000;

/// How many times a gated sample is taken again when its gate was too short.
const GATE_RETRIES: usize = 8;

/// One timed operation: its bytes and its duration (median, fastest and slowest sample), in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timed {
    pub bytes: u64,
    pub ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Timed {
    /// From the samples (at least one): the median (the upper one of an even count), fastest and slowest.
    pub fn from_samples(bytes: u64, mut samples: Vec<u64>) -> Timed {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        Timed { bytes, ns: samples[samples.len() / 2], min_ns: samples[0], max_ns: samples[samples.len() - 1] }
    }

    /// `bytes` per second of the median.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 * 1e9 / self.ns.max(1) as f64
    }
}

/// The copy and memset measurements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copies {
    /// One `cuMemcpyAsync` between two device buffers.
    pub d2d: Timed,
    /// One `cuMemsetD8Async` of a device buffer.
    pub memset: Timed,
    /// Host to device from `cuMemHostAlloc` memory, and back.
    pub h2d_pinned: Timed,
    pub d2h_pinned: Timed,
    /// Host to device from `malloc`ed (pageable) memory, and back.
    pub h2d_pageable: Timed,
    pub d2h_pageable: Timed,
}

impl Copies {
    /// `GpuSpec::hbm_bytes_per_s`: the copy model times a device-to-device copy of B bytes as
    /// `2 × B / hbm_bytes_per_s` (every byte is read and written), so this is `2 × B / t` of the measured copy.
    pub fn hbm_bytes_per_s(&self) -> f64 {
        2.0 * self.d2d.bytes_per_s()
    }

    /// `GpuSpec::pageable_bytes_per_s`, one figure for both directions: the bytes of both measured copies over
    /// their summed times, so that equal traffic each way takes as long in the model as it did here.
    pub fn pageable_bytes_per_s(&self) -> f64 {
        let (a, b) = (self.h2d_pageable, self.d2h_pageable);
        (a.bytes + b.bytes) as f64 * 1e9 / (a.ns + b.ns).max(1) as f64
    }
}

/// The launch-latency measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Median host time from the return of `cuLaunchKernel` of an empty kernel on an idle GPU until
    /// `cuStreamQuery` first reports the stream complete (ns).
    pub round_trip_ns: u64,
    /// `GpuSpec::launch_latency_ns`: the round trip less the empty kernel's own time in a stream of kernels
    /// (the gate's back-to-back period, [`Gate::period_ns`]), so that the model, which starts a command
    /// `launch_latency_ns` after its submission and runs it for its measured period, finishes it when the host
    /// saw it finish.
    pub launch_latency_ns: u64,
    pub samples: usize,
}

/// A device allocation (`cuMemAlloc_v2`), freed on drop.
pub struct DeviceBuffer<'d> {
    d: &'d Driver,
    pub ptr: CUdeviceptr,
    pub bytes: usize,
}

impl<'d> DeviceBuffer<'d> {
    pub fn new(d: &'d Driver, bytes: usize) -> Result<DeviceBuffer<'d>, String> {
        let alloc = d.need(d.opt.cuMemAlloc, "cuMemAlloc_v2")?;
        d.need(d.opt.cuMemFree, "cuMemFree_v2")?;
        let mut ptr: CUdeviceptr = 0;
        d.check(unsafe { alloc(&mut ptr, bytes) }, &format!("cuMemAlloc_v2({bytes} bytes)"))?;
        Ok(DeviceBuffer { d, ptr, bytes })
    }
}

impl Drop for DeviceBuffer<'_> {
    fn drop(&mut self) {
        if let Some(free) = self.d.opt.cuMemFree {
            // Work on the buffer must end first (cuMemFree does not wait for other streams' work).
            let _ = unsafe { (self.d.f.cuCtxSynchronize)() };
            let _ = unsafe { free(self.ptr) };
        }
    }
}

/// Page-locked host memory (`cuMemHostAlloc`), freed on drop.
pub struct PinnedBuffer<'d> {
    d: &'d Driver,
    pub ptr: *mut c_void,
    pub bytes: usize,
}

impl<'d> PinnedBuffer<'d> {
    pub fn new(d: &'d Driver, bytes: usize) -> Result<PinnedBuffer<'d>, String> {
        let alloc = d.need(d.opt.cuMemHostAlloc, "cuMemHostAlloc")?;
        d.need(d.opt.cuMemFreeHost, "cuMemFreeHost")?;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        d.check(unsafe { alloc(&mut ptr, bytes, 0) }, &format!("cuMemHostAlloc({bytes} bytes)"))?;
        // Touch every page, so that no first-touch cost lands in a measurement.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, 0x5a, bytes) };
        Ok(PinnedBuffer { d, ptr, bytes })
    }

    /// The buffer's address as the driver's unified address space sees it.
    pub fn addr(&self) -> CUdeviceptr {
        self.ptr as CUdeviceptr
    }
}

impl Drop for PinnedBuffer<'_> {
    fn drop(&mut self) {
        if let Some(free) = self.d.opt.cuMemFreeHost {
            let _ = unsafe { (self.d.f.cuCtxSynchronize)() };
            let _ = unsafe { free(self.ptr) };
        }
    }
}

/// A stream of its own (non-blocking, so the legacy stream's implicit synchronisation stays out), destroyed on
/// drop. The measurements take it rather than a raw `CUstream`, so the handle they use is always a live one.
pub struct Stream<'d> {
    d: &'d Driver,
    /// The driver's handle, live as long as this value; read-only outside this crate ([`Stream::handle`]).
    pub(crate) handle: CUstream,
}

impl<'d> Stream<'d> {
    pub fn new(d: &'d Driver) -> Result<Stream<'d>, String> {
        let mut handle: CUstream = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuStreamCreate)(&mut handle, CU_STREAM_NON_BLOCKING) }, "cuStreamCreate")?;
        Ok(Stream { d, handle })
    }

    /// The driver's handle, for calls of its own (a library's stream argument).
    pub fn handle(&self) -> CUstream {
        self.handle
    }

    /// Waits for everything queued on the stream.
    pub fn synchronize(&self) -> Result<(), String> {
        self.d.check(unsafe { (self.d.f.cuStreamSynchronize)(self.handle) }, "cuStreamSynchronize")
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        let _ = unsafe { (self.d.f.cuStreamSynchronize)(self.handle) };
        let _ = unsafe { (self.d.f.cuStreamDestroy)(self.handle) };
    }
}

/// Two timing events, destroyed on drop.
struct Events<'d> {
    d: &'d Driver,
    start: CUevent,
    end: CUevent,
}

impl<'d> Events<'d> {
    fn new(d: &'d Driver) -> Result<Events<'d>, String> {
        let mut e = Events { d, start: std::ptr::null_mut(), end: std::ptr::null_mut() };
        d.check(unsafe { (d.f.cuEventCreate)(&mut e.start, CU_EVENT_BLOCKING_SYNC) }, "cuEventCreate")?;
        d.check(unsafe { (d.f.cuEventCreate)(&mut e.end, CU_EVENT_BLOCKING_SYNC) }, "cuEventCreate")?;
        Ok(e)
    }

    /// The GPU time (ns) between an event recorded before `work` and one after it, on `stream`, no gate.
    fn time(&self, stream: &Stream, work: impl FnOnce() -> Result<(), String>) -> Result<u64, String> {
        let d = self.d;
        d.check(unsafe { (d.f.cuCtxSynchronize)() }, "cuCtxSynchronize")?;
        d.check(unsafe { (d.f.cuEventRecord)(self.start, stream.handle) }, "cuEventRecord")?;
        work()?;
        d.check(unsafe { (d.f.cuEventRecord)(self.end, stream.handle) }, "cuEventRecord")?;
        d.check(unsafe { (d.f.cuEventSynchronize)(self.end) }, "cuEventSynchronize")?;
        let mut ms = 0f32;
        d.check(unsafe { (d.f.cuEventElapsedTime)(&mut ms, self.start, self.end) }, "cuEventElapsedTime")?;
        Ok((ms as f64 * 1e6).round().max(1.0) as u64)
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        for e in [self.start, self.end] {
            if !e.is_null() {
                let _ = unsafe { (self.d.f.cuEventDestroy)(e) };
            }
        }
    }
}

/// Times `work` behind the gate (`Gate::measure`), again while the gate was too short (it spins twice as long
/// each time), and returns the figure in ns.
pub fn gated(
    d: &Driver,
    gate: &Gate,
    stream: &Stream,
    mut work: impl FnMut() -> Result<(), String>,
) -> Result<u64, String> {
    let mut last = 0;
    for _ in 0..GATE_RETRIES {
        let (m, ()) = gate.measure(d, stream.handle, &mut work)?;
        if m.covered {
            return Ok(m.ns);
        }
        last = m.ns;
    }
    Ok(last)
}

/// Queues `cuMemcpyAsync(dst, src, bytes)` on `stream`.
fn copy(d: &Driver, stream: &Stream, dst: CUdeviceptr, src: CUdeviceptr, bytes: usize) -> Result<(), String> {
    d.check(unsafe { (d.f.cuMemcpyAsync)(dst, src, bytes, stream.handle) }, "cuMemcpyAsync")
}

/// Spins the GPU for [`WAKE_SPIN_NS`] and waits, so that the measurements find its clocks up.
pub fn wake(d: &Driver, gate: &Gate, stream: &Stream) -> Result<(), String> {
    gate.spin(d, stream.handle, WAKE_SPIN_NS)?;
    stream.synchronize()
}

/// Measures the device-to-device copy, the memset and the four host copies of `plan` on `stream`.
pub fn measure_copies(d: &Driver, gate: &Gate, stream: &Stream, plan: &Plan) -> Result<Copies, String> {
    if plan.host_bytes > plan.d2d_bytes || plan.host_bytes == 0 || plan.samples == 0 {
        return Err(format!("bad measurement plan {plan:?}"));
    }
    let src = DeviceBuffer::new(d, plan.d2d_bytes)?;
    let dst = DeviceBuffer::new(d, plan.d2d_bytes)?;
    let pinned = PinnedBuffer::new(d, plan.host_bytes)?;
    let pageable = vec![0x5au8; plan.host_bytes];
    let mut pageable_back = vec![0xa5u8; plan.host_bytes];
    let events = Events::new(d)?;

    let n = plan.samples;
    let gated_samples = |bytes: usize, work: &mut dyn FnMut() -> Result<(), String>| -> Result<Timed, String> {
        // One untimed warm-up, then the samples.
        work()?;
        let v = (0..n).map(|_| gated(d, gate, stream, &mut *work)).collect::<Result<Vec<u64>, String>>()?;
        Ok(Timed::from_samples(bytes as u64, v))
    };
    let (b, h) = (plan.d2d_bytes, plan.host_bytes);
    let d2d = gated_samples(b, &mut || copy(d, stream, dst.ptr, src.ptr, b))?;
    let memset = gated_samples(b, &mut || {
        d.check(unsafe { (d.f.cuMemsetD8Async)(dst.ptr, 0, b, stream.handle) }, "cuMemsetD8Async")
    })?;
    let h2d_pinned = gated_samples(h, &mut || copy(d, stream, src.ptr, pinned.addr(), h))?;
    let d2h_pinned = gated_samples(h, &mut || copy(d, stream, pinned.addr(), src.ptr, h))?;

    let pageable_src = pageable.as_ptr() as CUdeviceptr;
    let pageable_dst = pageable_back.as_mut_ptr() as CUdeviceptr;
    let event_samples = |work: &mut dyn FnMut() -> Result<(), String>| -> Result<Timed, String> {
        work()?;
        let v = (0..n).map(|_| events.time(stream, &mut *work)).collect::<Result<Vec<u64>, String>>()?;
        Ok(Timed::from_samples(h as u64, v))
    };
    let h2d_pageable = event_samples(&mut || copy(d, stream, src.ptr, pageable_src, h))?;
    let d2h_pageable = event_samples(&mut || copy(d, stream, pageable_dst, src.ptr, h))?;
    stream.synchronize()?;
    Ok(Copies { d2d, memset, h2d_pinned, d2h_pinned, h2d_pageable, d2h_pageable })
}

/// Measures the launch latency on `stream` with `samples` launches of the gate's kernel with a zero spin (an
/// empty kernel), each on an idle GPU, reading the host clock `now` (ns) after `cuLaunchKernel` returned and
/// again once `cuStreamQuery` first reports the stream complete (polled without pause).
pub fn measure_launch(
    d: &Driver,
    gate: &Gate,
    stream: &Stream,
    samples: usize,
    now: &mut dyn FnMut() -> u64,
) -> Result<Launch, String> {
    let query = d.need(d.opt.cuStreamQuery, "cuStreamQuery")?;
    if samples == 0 {
        return Err("no launch samples".into());
    }
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        d.check(unsafe { (d.f.cuCtxSynchronize)() }, "cuCtxSynchronize")?;
        gate.spin(d, stream.handle, 0)?;
        let t0 = now();
        loop {
            match unsafe { query(stream.handle) } {
                CUDA_SUCCESS => break,
                CUDA_ERROR_NOT_READY => continue,
                rc => return Err(d.check(rc, "cuStreamQuery").unwrap_err()),
            }
        }
        v.push(now().saturating_sub(t0));
    }
    let round_trip = Timed::from_samples(0, v).ns;
    Ok(Launch { round_trip_ns: round_trip, launch_latency_ns: round_trip.saturating_sub(gate.period_ns), samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_rates() {
        let t = Timed::from_samples(1000, vec![30, 10, 20, 50, 40]);
        assert_eq!((t.ns, t.min_ns, t.max_ns), (30, 10, 50));
        assert_eq!(Timed::from_samples(0, vec![7, 5]).ns, 7);
        assert_eq!(t.bytes_per_s(), 1000.0 * 1e9 / 30.0);
        let one = |bytes, ns| Timed { bytes, ns, min_ns: ns, max_ns: ns };
        let c = Copies {
            d2d: one(100, 10),
            memset: one(100, 5),
            h2d_pinned: one(8, 2),
            d2h_pinned: one(8, 4),
            h2d_pageable: one(8, 1),
            d2h_pageable: one(8, 3),
        };
        assert_eq!(c.hbm_bytes_per_s(), 2.0 * 100.0 * 1e9 / 10.0);
        assert_eq!(c.pageable_bytes_per_s(), 16.0 * 1e9 / 4.0);
    }

    #[test]
    fn the_default_plan_is_consistent() {
        let p = DEFAULT_PLAN;
        assert!(p.host_bytes <= p.d2d_bytes && p.samples % 2 == 1 && p.launch_samples % 2 == 1);
    }
}
