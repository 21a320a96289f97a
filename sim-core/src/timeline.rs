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
use std::collections::BTreeMap;

/// The copy engine a transfer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyEngine {
    HostToDevice = 0,
    DeviceToHost = 1,
    DeviceToDevice = 2,
}

/// Occupancy of one simulated GPU's execution resources over simulated time.
///
/// SM usage is kept as a step function (a "skyline"): each key starts a segment that lasts until the next
/// key, with the SMs in use during it; adjacent equal segments are merged, so a stream of back-to-back kernels
/// costs O(1) segments and placing a kernel is logarithmic in the number of segments.
#[derive(Debug)]
pub struct GpuTimeline {
    sm_count: u32,
    /// Segment start (ns) → SMs in use until the next key. Always holds a last segment with usage 0.
    usage: BTreeMap<u64, u32>,
    copy_free_at: [SimTime; 3],
}

/// Beyond this many segments the oldest are forgotten (they lie far in the past of every stream).
const MAX_SEGMENTS: usize = 4096;

impl GpuTimeline {
    pub fn new(sm_count: u32) -> Self {
        GpuTimeline { sm_count: sm_count.max(1), usage: BTreeMap::from([(0, 0)]), copy_free_at: [SimTime::ZERO; 3] }
    }

    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// SMs in use at instant `t`.
    fn usage_at(&self, t: u64) -> u32 {
        self.usage.range(..=t).next_back().map(|(_, &u)| u).unwrap_or(0)
    }

    /// The first instant at or after `from` at which `sms` more SMs are free for `duration` without a break.
    fn earliest_fit(&self, from: u64, duration: u64, sms: u32) -> u64 {
        let mut start = from;
        'search: loop {
            let end = start.saturating_add(duration.max(1));
            // The segment containing `start`, then every segment beginning before `end`.
            let first = self.usage.range(..=start).next_back().map(|(&k, _)| k).unwrap_or(0);
            for (&k, &u) in self.usage.range(first..end) {
                if u + sms > self.sm_count {
                    // Too busy: try again where this segment ends.
                    start = self.usage.range(k + 1..).next().map(|(&n, _)| n).unwrap_or(k).max(start);
                    continue 'search;
                }
            }
            return start;
        }
    }

    /// Splits the segment containing `t` so that a key starts at `t`.
    fn split_at(&mut self, t: u64) {
        if !self.usage.contains_key(&t) {
            let u = self.usage_at(t);
            self.usage.insert(t, u);
        }
    }

    fn occupy(&mut self, start: u64, end: u64, sms: u32) {
        self.split_at(start);
        self.split_at(end);
        for (_, u) in self.usage.range_mut(start..end) {
            *u += sms;
        }
        // Merge equal neighbours around the changed range.
        let keys: Vec<u64> = self.usage.range(..=end).rev().take_while(|(&k, _)| k >= start).map(|(&k, _)| k).collect();
        for k in keys.into_iter().chain(std::iter::once(start)) {
            let Some(&u) = self.usage.get(&k) else { continue };
            if let Some((_, &prev)) = self.usage.range(..k).next_back() {
                if prev == u {
                    self.usage.remove(&k);
                }
            }
        }
        while self.usage.len() > MAX_SEGMENTS {
            let first = *self.usage.keys().next().expect("non-empty");
            self.usage.remove(&first);
        }
    }

    /// Places a kernel needing `sms` SMs (clamped to the GPU's count) for `duration`, starting no earlier than
    /// `earliest`. Returns its (start, end).
    pub fn place_kernel(&mut self, earliest: SimTime, duration: SimDuration, sms: u32) -> (SimTime, SimTime) {
        let sms = sms.clamp(1, self.sm_count);
        let start = self.earliest_fit(earliest.as_nanos(), duration.as_nanos(), sms);
        let end = start + duration.as_nanos();
        if end > start {
            self.occupy(start, end, sms);
        }
        (SimTime::from_nanos(start), SimTime::from_nanos(end))
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
    fn back_to_back_kernels_keep_the_skyline_small() {
        let mut g = GpuTimeline::new(132);
        let mut t0 = t(0);
        for _ in 0..10_000 {
            t0 = g.place_kernel(t0, d(10), 132).1;
        }
        assert_eq!(t0, t(100_000));
        // One busy segment plus the idle tail.
        assert_eq!(g.usage.len(), 2);
        // Two alternating streams of small kernels overlap pairwise and stay compact too.
        let mut g = GpuTimeline::new(132);
        let (mut a, mut b) = (t(0), t(0));
        for _ in 0..1000 {
            a = g.place_kernel(a, d(10), 1).1;
            b = g.place_kernel(b, d(10), 1).1;
        }
        assert_eq!((a, b), (t(10_000), t(10_000)));
        assert_eq!(g.usage.len(), 2);
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
