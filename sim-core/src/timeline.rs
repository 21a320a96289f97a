//! When work queued on one simulated GPU starts and ends.
//!
//! The GPU model (documented in docs/gpu-model.md):
//! - **Compute.** A kernel occupies `sms` streaming multiprocessors for its whole duration. It starts at the
//!   earliest moment, no earlier than its stream allows, at which that many SMs are free for its entire
//!   duration. Kernels that together need no more SMs than the GPU has therefore overlap completely; a kernel
//!   that fills the GPU runs alone. Placement is decided once, when the kernel is queued, and never revised
//!   (DESIGN.md decision 5), so a later kernel can fill a gap left before an earlier one (list scheduling).
//! - **Copies.** Each copy engine (host-to-device, device-to-host, device-to-device/peer) executes one copy at a
//!   time, in queue order, independently of the SMs.

use crate::time::{SimDuration, SimTime};

/// The copy engine a transfer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyEngine {
    HostToDevice = 0,
    DeviceToHost = 1,
    DeviceToDevice = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Busy {
    start: SimTime,
    end: SimTime,
    sms: u32,
}

/// Occupancy of one simulated GPU's execution resources over simulated time.
#[derive(Debug)]
pub struct GpuTimeline {
    sm_count: u32,
    /// Kernels placed so far (pruned to the most recent `MAX_KEPT` by end time), unordered.
    busy: Vec<Busy>,
    copy_free_at: [SimTime; 3],
}

/// How many placed kernels are remembered; older ones can no longer delay new work in practice.
const MAX_KEPT: usize = 512;

impl GpuTimeline {
    pub fn new(sm_count: u32) -> Self {
        GpuTimeline { sm_count: sm_count.max(1), busy: Vec::new(), copy_free_at: [SimTime::ZERO; 3] }
    }

    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// SMs in use at instant `t` by kernels placed so far.
    fn usage_at(&self, t: SimTime) -> u32 {
        self.busy.iter().filter(|b| b.start <= t && t < b.end).map(|b| b.sms).sum()
    }

    /// Whether `sms` more SMs are free during all of `[start, start + duration)`.
    fn fits(&self, start: SimTime, duration: SimDuration, sms: u32) -> bool {
        let end = start + duration;
        // Usage only rises at a kernel's start, so checking `start` and every start inside the window suffices.
        std::iter::once(start)
            .chain(self.busy.iter().map(|b| b.start).filter(|&s| s > start && s < end))
            .all(|t| self.usage_at(t) + sms <= self.sm_count)
    }

    /// Places a kernel needing `sms` SMs (clamped to the GPU's count) for `duration`, starting no earlier than
    /// `earliest`. Returns its (start, end).
    pub fn place_kernel(&mut self, earliest: SimTime, duration: SimDuration, sms: u32) -> (SimTime, SimTime) {
        let sms = sms.clamp(1, self.sm_count);
        let mut candidates: Vec<SimTime> =
            std::iter::once(earliest).chain(self.busy.iter().map(|b| b.end).filter(|&e| e > earliest)).collect();
        candidates.sort_unstable();
        let start = candidates
            .into_iter()
            .find(|&t| self.fits(t, duration, sms))
            .expect("the latest end time always fits: every SM is free after it");
        let end = start + duration;
        if duration > SimDuration::ZERO {
            self.busy.push(Busy { start, end, sms });
            if self.busy.len() > MAX_KEPT {
                self.busy.sort_unstable_by_key(|b| std::cmp::Reverse(b.end));
                self.busy.truncate(MAX_KEPT / 2);
            }
        }
        (start, end)
    }

    /// Places a transfer on a copy engine; returns its (start, end).
    pub fn place_copy(&mut self, engine: CopyEngine, earliest: SimTime, duration: SimDuration) -> (SimTime, SimTime) {
        let free = &mut self.copy_free_at[engine as usize];
        let start = earliest.max(*free);
        let end = start + duration;
        *free = end;
        (start, end)
    }
}

/// SMs a launch of `blocks` blocks keeps busy when `resident_per_sm` of its blocks fit on one SM.
pub fn sms_needed(blocks: u64, resident_per_sm: u32, sm_count: u32) -> u32 {
    let per_sm = resident_per_sm.max(1) as u64;
    blocks.div_ceil(per_sm).clamp(1, sm_count.max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }
    fn d(ns: u64) -> SimDuration {
        SimDuration::from_nanos(ns)
    }

    #[test]
    fn small_kernels_overlap_and_full_kernels_serialise() {
        let mut g = GpuTimeline::new(132);
        assert_eq!(g.place_kernel(t(0), d(1000), 60), (t(0), t(1000)));
        assert_eq!(g.place_kernel(t(0), d(1000), 60), (t(0), t(1000)));
        // 120 of 132 SMs busy until 1000: a full-GPU kernel waits.
        assert_eq!(g.place_kernel(t(0), d(500), 132), (t(1000), t(1500)));
        // A 12-SM kernel fits beside the first two but must not overlap the full one.
        assert_eq!(g.place_kernel(t(100), d(400), 12), (t(100), t(500)));
        assert_eq!(g.place_kernel(t(600), d(500), 12), (t(1500), t(2000)));
    }

    #[test]
    fn later_kernels_fill_earlier_gaps() {
        let mut g = GpuTimeline::new(10);
        assert_eq!(g.place_kernel(t(1000), d(1000), 10), (t(1000), t(2000)));
        assert_eq!(g.place_kernel(t(0), d(1000), 10), (t(0), t(1000)));
        assert_eq!(g.place_kernel(t(0), d(1001), 10), (t(2000), t(3001)));
    }

    #[test]
    fn copy_engines_are_independent_fifos() {
        let mut g = GpuTimeline::new(10);
        assert_eq!(g.place_copy(CopyEngine::HostToDevice, t(0), d(100)), (t(0), t(100)));
        assert_eq!(g.place_copy(CopyEngine::HostToDevice, t(50), d(100)), (t(100), t(200)));
        assert_eq!(g.place_copy(CopyEngine::DeviceToHost, t(50), d(100)), (t(50), t(150)));
    }

    #[test]
    fn sms_needed_rounds_up_and_clamps() {
        assert_eq!(sms_needed(1, 8, 132), 1);
        assert_eq!(sms_needed(17, 8, 132), 3);
        assert_eq!(sms_needed(100_000, 8, 132), 132);
        assert_eq!(sms_needed(0, 0, 132), 1);
    }
}
