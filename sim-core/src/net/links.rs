//! Link utilisation over time, for the trace's link counters (docs/trace.md, "Network links").
//!
//! When asked ([`super::Network::record_links`]), the network hands every link's rate to a [`Recorder`]
//! after each rate recomputation; the recorder keeps a sample only when a link's rate changes, and merges
//! changes that fall into the same microsecond of simulated time ([`GRID`]): such a microsecond becomes its
//! average rate, sampled at its start, and the rate at its end, sampled at its end. So a link has at most
//! two samples per microsecond in which its rate changed, and at most two per change, and the integral of
//! the samples (the bytes the link carried) is the model's own. A microsecond with a single change keeps
//! the change's exact time.

use super::topology::{IdMap, LinkId};
use crate::time::SimTime;

/// Changes of one link closer together than this (ns, on a fixed grid) are merged.
pub(crate) const GRID: u64 = 1_000;

/// Relative change below which a link's rate counts as unchanged (rates are sums of floats whose order
/// varies).
const SAME: f64 = 1e-9;

/// One link's samples and the grid cell being collected.
#[derive(Debug, Default)]
struct Track {
    /// The rate now (bytes/s).
    rate: f64,
    /// The cell (time / GRID) with changes not yet turned into samples, while `changes > 0`.
    cell: u64,
    changes: u32,
    /// The cell's first change (time, rate), kept exactly when it is the only one.
    first: (u64, f64),
    /// Bytes·ns/s (rate × time) from the cell's start to `last`.
    area: f64,
    last: u64,
    /// (time, bytes/s from then on).
    samples: Vec<(SimTime, f64)>,
}

impl Track {
    fn change(&mut self, t: u64, rate: f64) {
        let cell = t / GRID;
        if self.changes > 0 && cell != self.cell {
            self.flush();
        }
        if self.changes == 0 {
            self.cell = cell;
            self.area = 0.0;
            self.last = cell * GRID;
            self.first = (t, rate);
        }
        self.area += self.rate * (t - self.last) as f64;
        self.last = t;
        self.rate = rate;
        self.changes += 1;
    }

    /// Turns the open cell into samples.
    fn flush(&mut self) {
        match self.changes {
            0 => {}
            1 => self.push(self.first.0, self.first.1),
            _ => {
                let (start, end) = (self.cell * GRID, (self.cell + 1) * GRID);
                let area = self.area + self.rate * (end - self.last) as f64;
                self.push(start, area / GRID as f64);
                self.push(end, self.rate);
            }
        }
        self.changes = 0;
    }

    /// A sample at the time of the last one replaces it (the last one held for no time).
    fn push(&mut self, t: u64, rate: f64) {
        let t = SimTime::from_nanos(t);
        match self.samples.last_mut() {
            Some(last) if last.0 == t => last.1 = rate,
            Some(last) if last.1 == rate => {}
            _ => self.samples.push((t, rate)),
        }
    }
}

/// The rates of every link over time.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    tracks: IdMap<LinkId, Track>,
    /// Links whose rate is not zero now.
    busy: Vec<LinkId>,
}

impl Recorder {
    /// From `t` on, the links in `rates` carry these rates (bytes/s) and every other link nothing.
    pub(crate) fn observe(&mut self, t: SimTime, rates: &[(LinkId, f64)]) {
        let t = t.as_nanos();
        let mut busy = Vec::with_capacity(rates.len());
        for &(link, rate) in rates {
            let track = self.tracks.entry(link).or_default();
            if (rate - track.rate).abs() > SAME * rate.abs().max(track.rate.abs()) {
                track.change(t, rate);
            }
            if track.rate != 0.0 {
                busy.push(link);
            }
        }
        busy.sort_unstable();
        for link in std::mem::take(&mut self.busy) {
            if busy.binary_search(&link).is_err() {
                if let Some(track) = self.tracks.get_mut(&link) {
                    track.change(t, 0.0);
                }
            }
        }
        self.busy = busy;
    }

    /// Every link's samples so far (the open cells closed), in link order; starts afresh.
    pub(crate) fn take(&mut self) -> Vec<(LinkId, Vec<(SimTime, f64)>)> {
        let mut out: Vec<(LinkId, Vec<(SimTime, f64)>)> = self
            .tracks
            .iter_mut()
            .map(|(&link, track)| {
                track.flush();
                (link, std::mem::take(&mut track.samples))
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        out.sort_unstable_by_key(|(l, _)| *l);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::topology::LinkKind;

    fn l(i: u64) -> LinkId {
        LinkId::new(LinkKind::NicTx, i)
    }

    fn ns(n: u64) -> SimTime {
        SimTime::from_nanos(n)
    }

    /// ∫ rate dt in bytes (rates in bytes/s, times in ns); the last sample must be zero.
    fn integral(s: &[(SimTime, f64)]) -> f64 {
        assert_eq!(s.last().map(|x| x.1), Some(0.0));
        s.windows(2).map(|w| w[0].1 * (w[1].0 - w[0].0).as_nanos() as f64 / 1e9).sum()
    }

    #[test]
    fn changes_far_apart_are_kept_exactly_and_unchanged_rates_add_nothing() {
        let mut r = Recorder::default();
        r.observe(ns(1_500), &[(l(0), 1e9), (l(1), 2e9)]);
        r.observe(ns(4_000), &[(l(0), 1e9), (l(1), 2e9 * (1.0 + 1e-12))]);
        r.observe(ns(9_000), &[(l(1), 3e9)]);
        r.observe(ns(20_000), &[]);
        let got = r.take();
        assert_eq!(
            got,
            [
                (l(0), vec![(ns(1_500), 1e9), (ns(9_000), 0.0)]),
                (l(1), vec![(ns(1_500), 2e9), (ns(9_000), 3e9), (ns(20_000), 0.0)])
            ]
        );
        assert_eq!(integral(&got[0].1), 7_500.0);
        assert!(r.take().is_empty());
    }

    #[test]
    fn changes_in_one_microsecond_become_its_average_and_keep_the_bytes() {
        let mut r = Recorder::default();
        // 1 GB/s from 1.2 µs; 3 GB/s from 1.7 µs; 2 GB/s from 1.9 µs (same microsecond); idle from 2.4 µs.
        r.observe(ns(1_200), &[(l(0), 1e9)]);
        r.observe(ns(1_700), &[(l(0), 3e9)]);
        r.observe(ns(1_900), &[(l(0), 2e9)]);
        r.observe(ns(2_400), &[]);
        r.observe(ns(2_600), &[(l(0), 5e9)]);
        r.observe(ns(2_800), &[]);
        let got = r.take();
        // Cell [1, 2) µs: 500 + 600 + 200 bytes in 1 µs = 1.3 GB/s; then 2 GB/s from 2 µs. Cell [2, 3) µs:
        // 800 + 1000 bytes = 1.8 GB/s (replacing the sample at 2 µs); 0 from 3 µs.
        assert_eq!(got.len(), 1);
        let s = &got[0].1;
        assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), [ns(1_000), ns(2_000), ns(3_000)]);
        assert!((s[0].1 - 1.3e9).abs() < 1.0 && (s[1].1 - 1.8e9).abs() < 1.0 && s[2].1 == 0.0, "{s:?}");
        assert!((integral(s) - 3_100.0).abs() < 1e-6, "{}", integral(s));
    }
}
