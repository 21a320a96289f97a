//! The max-min fair flow engine (docs/network.md, "Flow model").
//!
//! A flow moves `bytes` and loads each link it uses in a fixed proportion: a flow with rate `x` puts
//! `coeff * x` bytes/s on a link it uses with coefficient `coeff`. (A collective's ring, with one entry per
//! link its edges cross, is one flow: all its edges advance together, at the pace of the slowest.) Rates are
//! max-min fair: progressive filling raises every flow's rate together until a link is full or a flow
//! reaches its cap; the flows on that link (or that flow) keep their rate, the others go on.
//!
//! Rates are recomputed whenever the set of flows changes ([`FlowEngine::settle`]), over every active flow,
//! in O(E log E) for E (flow, link) entries: a heap holds each link's fair share, updated lazily (shares
//! only grow as flows freeze, so a stale entry is a lower bound and is re-queued when popped). Time is
//! integer nanoseconds; a flow's finish time is rounded up.
//!
//! Link accounting (always on, O(1) per (flow, link) entry over a flow's life): the bytes each link carried,
//! added when a flow finishes, and the time each link was in use (from the first flow that uses it to the
//! last one leaving it). [`FlowEngine::link_rates`] gives every used link's current rate, for the trace's
//! link counters (docs/trace.md).

use super::topology::{IdMap, LinkId};
use crate::time::SimTime;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A flow to add.
#[derive(Clone, Debug)]
pub(crate) struct FlowSpec {
    /// The caller's tag, returned when the flow finishes.
    pub tag: u64,
    /// Bytes to move, in the flow's rate unit.
    pub bytes: f64,
    /// The links the flow uses and its load coefficient on each (at most one entry per link).
    pub uses: Vec<(LinkId, f64)>,
    /// Largest rate the flow may have (bytes/s); `f64::INFINITY` for none.
    pub cap: f64,
    /// Bytes the flow puts on links in total (for statistics).
    pub wire_bytes: f64,
    /// Per entry of `uses`: the bytes that cross the link per byte of `bytes`. Equal to the coefficient,
    /// except for traffic that uses its link below full efficiency (NVLS), whose coefficient (its share of
    /// the link's capacity) is larger than the bytes it moves. Sums (× `bytes`) to `wire_bytes`.
    pub data: Vec<f64>,
}

/// A flow that finished.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finished {
    pub tag: u64,
    pub at: SimTime,
    pub wire_bytes: f64,
}

#[derive(Debug)]
struct Link {
    id: LinkId,
    capacity: f64,
    /// Indices of the flows using this link.
    users: Vec<u32>,
    /// Since when the link has had users.
    since: SimTime,
}

/// What one link carried so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LinkTotal {
    /// Bytes of the flows that finished (their `data` share).
    pub bytes: f64,
    /// Time during which at least one flow used the link.
    pub busy_ns: u64,
}

#[derive(Debug)]
struct Flow {
    tag: u64,
    /// (link slot, coefficient).
    uses: Vec<(u32, f64)>,
    cap: f64,
    wire_bytes: f64,
    /// Per entry of `uses`: bytes on the link per byte of the flow (`FlowSpec::data`).
    data: Vec<f64>,
    /// The flow's bytes (`FlowSpec::bytes`).
    total: f64,
    /// Bytes left at `since`.
    remaining: f64,
    since: SimTime,
    /// Current rate (bytes/s).
    rate: f64,
    finish: SimTime,
}

/// Far enough in the future to never be reached.
const NEVER: SimTime = SimTime::from_nanos(u64::MAX);

/// Flows sharing links max-min fairly.
#[derive(Debug, Default)]
pub(crate) struct FlowEngine {
    now: SimTime,
    links: Vec<Link>,
    slot_of: IdMap<LinkId, u32>,
    free_links: Vec<u32>,
    flows: Vec<Option<Flow>>,
    free_flows: Vec<u32>,
    active: usize,
    dirty: bool,
    /// Per link ever used: what it carried.
    totals: IdMap<LinkId, LinkTotal>,
}

impl FlowEngine {
    pub(crate) fn new() -> FlowEngine {
        FlowEngine::default()
    }

    /// Flows not yet finished.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.active
    }

    /// Adds a flow at the current time; `capacity` gives the bandwidth of links not yet in use. Call
    /// [`FlowEngine::settle`] before asking for [`FlowEngine::next_finish`].
    pub(crate) fn add(&mut self, spec: FlowSpec, capacity: impl Fn(LinkId) -> f64) {
        let idx = match self.free_flows.pop() {
            Some(i) => i,
            None => {
                self.flows.push(None);
                (self.flows.len() - 1) as u32
            }
        };
        let uses = spec.uses.iter().map(|&(link, c)| (self.attach(link, idx, &capacity), c)).collect();
        debug_assert_eq!(spec.data.len(), spec.uses.len());
        self.flows[idx as usize] = Some(Flow {
            tag: spec.tag,
            uses,
            cap: spec.cap,
            wire_bytes: spec.wire_bytes,
            data: spec.data,
            total: spec.bytes.max(0.0),
            remaining: spec.bytes.max(0.0),
            since: self.now,
            rate: 0.0,
            finish: NEVER,
        });
        self.active += 1;
        self.dirty = true;
    }

    fn attach(&mut self, id: LinkId, flow: u32, capacity: &impl Fn(LinkId) -> f64) -> u32 {
        let slot = match self.slot_of.get(&id) {
            Some(&s) => s,
            None => {
                let link = Link { id, capacity: capacity(id), users: vec![], since: self.now };
                let s = match self.free_links.pop() {
                    Some(s) => {
                        self.links[s as usize] = link;
                        s
                    }
                    None => {
                        self.links.push(link);
                        (self.links.len() - 1) as u32
                    }
                };
                self.slot_of.insert(id, s);
                s
            }
        };
        self.links[slot as usize].users.push(flow);
        slot
    }

    fn remove(&mut self, idx: u32) -> Flow {
        let flow = self.flows[idx as usize].take().expect("flow is active");
        for (k, &(slot, _)) in flow.uses.iter().enumerate() {
            let link = &mut self.links[slot as usize];
            if let Some(p) = link.users.iter().position(|&u| u == idx) {
                link.users.swap_remove(p);
            }
            let total = self.totals.entry(link.id).or_default();
            total.bytes += flow.total * flow.data.get(k).copied().unwrap_or(0.0);
            if link.users.is_empty() {
                total.busy_ns += (self.now - link.since).as_nanos();
                self.slot_of.remove(&link.id);
                self.free_links.push(slot);
            }
        }
        self.free_flows.push(idx);
        self.active -= 1;
        self.dirty = true;
        flow
    }

    /// Every link in use now and the bytes/s crossing it (the flows' rates times their `data`; rates must
    /// be settled), in no particular order.
    pub(crate) fn link_rates(&self) -> Vec<(LinkId, f64)> {
        let mut rate = vec![0.0; self.links.len()];
        for f in self.flows.iter().flatten() {
            for (&(s, _), d) in f.uses.iter().zip(&f.data) {
                rate[s as usize] += f.rate * d;
            }
        }
        self.links.iter().zip(rate).filter(|(l, _)| !l.users.is_empty()).map(|(l, r)| (l.id, r)).collect()
    }

    /// What every link used so far carried, busy time counted up to now for links still in use.
    pub(crate) fn link_totals(&self) -> IdMap<LinkId, LinkTotal> {
        let mut totals = self.totals.clone();
        for l in self.links.iter().filter(|l| !l.users.is_empty()) {
            totals.entry(l.id).or_default().busy_ns += (self.now - l.since).as_nanos();
        }
        totals
    }

    /// The earliest finish time of an active flow (rates must be settled).
    pub(crate) fn next_finish(&self) -> Option<SimTime> {
        debug_assert!(!self.dirty, "settle() after changing the flows");
        self.flows.iter().flatten().map(|f| f.finish).min()
    }

    /// Moves time to `t` (not earlier than now): every flow progresses at its rate, and the flows due by `t`
    /// are removed and returned, ordered by finish time.
    pub(crate) fn advance_to(&mut self, t: SimTime) -> Vec<Finished> {
        debug_assert!(t >= self.now);
        let mut due: Vec<(SimTime, u32)> = vec![];
        for (i, slot) in self.flows.iter_mut().enumerate() {
            let Some(f) = slot else { continue };
            if f.finish <= t {
                due.push((f.finish, i as u32));
            } else {
                f.remaining = (f.remaining - f.rate * (t - f.since).as_secs_f64()).max(0.0);
                f.since = t;
            }
        }
        due.sort_unstable();
        self.now = t;
        due.into_iter()
            .map(|(at, i)| {
                let f = self.remove(i);
                Finished { tag: f.tag, at, wire_bytes: f.wire_bytes }
            })
            .collect()
    }

    /// Recomputes the max-min fair rates (if flows were added or removed) and every flow's finish time.
    pub(crate) fn settle(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let rates = self.fair_rates();
        for (slot, rate) in self.flows.iter_mut().zip(rates) {
            let Some(f) = slot else { continue };
            f.rate = rate;
            f.finish = finish_time(f.since, f.remaining, rate);
        }
    }

    /// Progressive filling over all active flows; returns one rate per flow slot (0 for empty slots).
    fn fair_rates(&self) -> Vec<f64> {
        let mut fill = Filling::new(&self.links, &self.flows);
        while let Some(Reverse(Entry { level, what })) = fill.heap.pop() {
            match what {
                Limit::Link(s) => {
                    let s = s as usize;
                    if fill.open[s] == 0 {
                        continue;
                    }
                    // Shares only grow as flows freeze, so an entry is a lower bound of its link's share: if
                    // the share has grown, queue it again; otherwise the link is the tightest and full.
                    let share = fill.share(s);
                    if share > level.0 * (1.0 + 1e-12) {
                        fill.heap.push(Reverse(Entry { level: Level(share), what }));
                        continue;
                    }
                    for &f in &self.links[s].users {
                        fill.freeze(&self.flows, f as usize, level.0);
                    }
                }
                Limit::Cap(f) => fill.freeze(&self.flows, f as usize, level.0),
            }
        }
        fill.rate
    }
}

fn finish_time(since: SimTime, remaining: f64, rate: f64) -> SimTime {
    if remaining <= 0.0 {
        return since;
    }
    if !(rate > 0.0 && rate.is_finite()) {
        return NEVER;
    }
    let ns = (remaining / rate * 1e9).ceil();
    if ns >= 1.8e19 {
        NEVER
    } else {
        SimTime::from_nanos(since.as_nanos().saturating_add(ns as u64))
    }
}

/// An `f64` ordered totally (rates are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Level(f64);
impl Eq for Level {}
impl PartialOrd for Level {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Level {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// What limits a group of flows: a link (slot) or one flow's cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Limit {
    Link(u32),
    Cap(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    level: Level,
    what: Limit,
}

/// The state of one progressive filling.
struct Filling {
    /// Capacity not yet given to frozen flows, per link slot.
    residual: Vec<f64>,
    /// Sum of the coefficients of unfrozen flows, per link slot.
    weight: Vec<f64>,
    /// Unfrozen flows, per link slot.
    open: Vec<u32>,
    /// Links by fair share and flow caps; a link's entry may be lower than its current share.
    heap: BinaryHeap<Reverse<Entry>>,
    frozen: Vec<bool>,
    rate: Vec<f64>,
    /// The fill level reached so far (shares only grow; guards against rounding).
    level: f64,
}

impl Filling {
    fn new(links: &[Link], flows: &[Option<Flow>]) -> Filling {
        let n = links.len();
        let mut fill = Filling {
            residual: links.iter().map(|l| l.capacity).collect(),
            weight: vec![0.0; n],
            open: vec![0; n],
            heap: BinaryHeap::new(),
            frozen: vec![false; flows.len()],
            rate: vec![0.0; flows.len()],
            level: 0.0,
        };
        let mut entries = vec![];
        for (i, f) in flows.iter().enumerate() {
            let Some(f) = f else { continue };
            for &(s, c) in &f.uses {
                fill.weight[s as usize] += c;
                fill.open[s as usize] += 1;
            }
            if f.cap.is_finite() {
                entries.push(Reverse(Entry { level: Level(f.cap), what: Limit::Cap(i as u32) }));
            }
        }
        for s in 0..n {
            if fill.open[s] > 0 {
                entries.push(Reverse(Entry { level: Level(fill.share(s)), what: Limit::Link(s as u32) }));
            }
        }
        fill.heap = BinaryHeap::from(entries);
        fill
    }

    /// The rate every unfrozen flow of link `s` would get if the link were the tightest.
    fn share(&self, s: usize) -> f64 {
        self.residual[s].max(0.0) / self.weight[s].max(f64::MIN_POSITIVE)
    }

    /// Gives flow `f` its final rate and takes its load off every link it uses.
    fn freeze(&mut self, flows: &[Option<Flow>], f: usize, level: f64) {
        if self.frozen[f] {
            return;
        }
        let Some(flow) = &flows[f] else { return };
        self.level = self.level.max(level);
        let rate = self.level.min(flow.cap);
        self.frozen[f] = true;
        self.rate[f] = rate;
        for &(s, c) in &flow.uses {
            let s = s as usize;
            self.residual[s] -= c * rate;
            self.weight[s] -= c;
            self.open[s] -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::topology::LinkKind;

    const GB: f64 = 1e9;

    fn link(i: u64) -> LinkId {
        LinkId::new(LinkKind::NicTx, i)
    }

    fn spec(tag: u64, bytes: f64, uses: &[(u64, f64)]) -> FlowSpec {
        FlowSpec {
            tag,
            bytes,
            uses: uses.iter().map(|&(l, c)| (link(l), c)).collect(),
            cap: f64::INFINITY,
            wire_bytes: bytes,
            data: uses.iter().map(|&(_, c)| c).collect(),
        }
    }

    /// Every link carries 1 GB/s except link 9 (10 GB/s).
    fn cap(l: LinkId) -> f64 {
        if l == link(9) {
            10.0 * GB
        } else {
            GB
        }
    }

    /// Runs until idle; returns (tag, finish ns).
    fn run(e: &mut FlowEngine) -> Vec<(u64, u64)> {
        let mut out = vec![];
        e.settle();
        while let Some(t) = e.next_finish() {
            out.extend(e.advance_to(t).into_iter().map(|f| (f.tag, f.at.as_nanos())));
            e.settle();
        }
        out
    }

    #[test]
    fn one_flow_gets_the_whole_link() {
        let mut e = FlowEngine::new();
        e.add(spec(1, 1e9, &[(0, 1.0)]), cap);
        assert_eq!(run(&mut e), vec![(1, 1_000_000_000)]);
    }

    #[test]
    fn two_flows_on_one_link_each_get_half() {
        let mut e = FlowEngine::new();
        e.add(spec(1, 1e9, &[(0, 1.0)]), cap);
        e.add(spec(2, 1e9, &[(0, 1.0), (9, 1.0)]), cap);
        assert_eq!(run(&mut e), vec![(1, 2_000_000_000), (2, 2_000_000_000)]);
    }

    #[test]
    fn a_finishing_flow_frees_bandwidth_for_the_other() {
        let mut e = FlowEngine::new();
        e.add(spec(1, 0.5e9, &[(0, 1.0)]), cap);
        e.add(spec(2, 1.5e9, &[(0, 1.0)]), cap);
        // Both at 0.5 GB/s until 1 s; then flow 2 alone at 1 GB/s for its last 1 GB.
        assert_eq!(run(&mut e), vec![(1, 1_000_000_000), (2, 2_000_000_000)]);
    }

    #[test]
    fn a_later_flow_slows_a_running_one_from_its_start() {
        let mut e = FlowEngine::new();
        e.add(spec(1, 1e9, &[(0, 1.0)]), cap);
        e.settle();
        assert_eq!(e.next_finish(), Some(SimTime::from_nanos(1_000_000_000)));
        assert!(e.advance_to(SimTime::from_nanos(500_000_000)).is_empty());
        e.add(spec(2, 0.25e9, &[(0, 1.0)]), cap);
        // From 0.5 s both get 0.5 GB/s: flow 2 ends at 1.0 s, flow 1 (0.25 GB left) at 1.25 s.
        assert_eq!(run(&mut e), vec![(2, 1_000_000_000), (1, 1_250_000_000)]);
    }

    #[test]
    fn max_min_gives_the_unbottlenecked_flow_the_rest() {
        // Flow 1 uses links 0 and 1; flow 2 only link 1; flow 3 only link 0 (with coefficient 3).
        // Link 0: x1 + 3 x3 <= 1, link 1: x1 + x2 <= 1. Filling: link 0 saturates first at 0.25 GB/s
        // (x1 = x3 = 0.25); flow 2 then takes the rest of link 1 (0.75 GB/s).
        let mut e = FlowEngine::new();
        e.add(spec(1, 0.25e9, &[(0, 1.0), (1, 1.0)]), cap);
        e.add(spec(2, 0.75e9, &[(1, 1.0)]), cap);
        e.add(spec(3, 0.25e9, &[(0, 3.0)]), cap);
        assert_eq!(run(&mut e), vec![(1, 1_000_000_000), (2, 1_000_000_000), (3, 1_000_000_000)]);
    }

    #[test]
    fn caps_limit_a_flow_and_leave_the_rest_to_others() {
        let mut e = FlowEngine::new();
        e.add(FlowSpec { cap: 0.25 * GB, ..spec(1, 0.25e9, &[(0, 1.0)]) }, cap);
        e.add(spec(2, 0.75e9, &[(0, 1.0)]), cap);
        assert_eq!(run(&mut e), vec![(1, 1_000_000_000), (2, 1_000_000_000)]);
    }

    #[test]
    fn finish_times_round_up_to_whole_nanoseconds_and_empty_flows_end_at_once() {
        let mut e = FlowEngine::new();
        e.add(spec(1, 10.0, &[(0, 1.0)]), cap); // 10 bytes at 1 GB/s: 10 ns
        e.add(spec(2, 1.0, &[(9, 3.0)]), cap); // 1 byte at 10/3 GB/s: 0.3 ns -> 1 ns
        e.add(spec(3, 0.0, &[(1, 1.0)]), cap);
        assert_eq!(run(&mut e), vec![(3, 0), (2, 1), (1, 10)]);
        assert_eq!(e.active(), 0);
        assert!(e.links.iter().all(|l| l.users.is_empty()) && e.slot_of.is_empty());
    }

    #[test]
    fn links_account_their_rates_bytes_and_busy_time() {
        let mut e = FlowEngine::new();
        // Flow 1 loads link 9 twice its rate but moves 1.5 bytes there per byte (NVLS-like efficiency).
        e.add(FlowSpec { data: vec![1.0, 1.5], ..spec(1, 0.5e9, &[(0, 1.0), (9, 2.0)]) }, cap);
        e.add(spec(2, 1.5e9, &[(0, 1.0)]), cap);
        e.settle();
        let mut rates = e.link_rates();
        rates.sort_by_key(|r| r.0);
        assert_eq!(rates, [(link(0), 1e9), (link(9), 0.75e9)]);
        assert_eq!(run(&mut e), vec![(1, 1_000_000_000), (2, 2_000_000_000)]);
        assert!(e.link_rates().is_empty());
        let totals = e.link_totals();
        assert_eq!(totals[&link(0)], LinkTotal { bytes: 2e9, busy_ns: 2_000_000_000 });
        assert_eq!(totals[&link(9)], LinkTotal { bytes: 0.75e9, busy_ns: 1_000_000_000 });
    }

    /// Load of link `l` from the flows `keep` selects, at `rate`.
    fn load(flows: &[(Vec<(usize, f64)>, f64)], rate: &[f64], l: usize, keep: impl Fn(usize) -> bool) -> f64 {
        let on_l = |f: &(Vec<(usize, f64)>, f64)| f.0.iter().filter(|u| u.0 == l).map(|u| u.1).sum::<f64>();
        flows.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(i, f)| on_l(f) * rate[i]).sum()
    }

    /// Textbook progressive filling, one level at a time.
    fn naive_rates(flows: &[(Vec<(usize, f64)>, f64)], caps: &[f64]) -> Vec<f64> {
        let mut rate = vec![0.0; flows.len()];
        let mut frozen = vec![false; flows.len()];
        let mut level = 0.0;
        while frozen.iter().any(|f| !f) {
            // The smallest increment that fills a link or reaches a cap.
            let mut step = f64::INFINITY;
            for (l, &cap) in caps.iter().enumerate() {
                let used = load(flows, &rate, l, |_| true);
                let w = load(flows, &vec![1.0; flows.len()], l, |i| !frozen[i]);
                if w > 0.0 {
                    step = step.min((cap - used) / w);
                }
            }
            for (i, f) in flows.iter().enumerate() {
                if !frozen[i] {
                    step = step.min(f.1 - level);
                }
            }
            level += step;
            for i in 0..flows.len() {
                if !frozen[i] {
                    rate[i] = level;
                }
            }
            for i in 0..flows.len() {
                let full = |&(l, _): &(usize, f64)| load(flows, &rate, l, |_| true) >= caps[l] * (1.0 - 1e-12);
                let full = flows[i].0.iter().any(full);
                if !frozen[i] && (full || level >= flows[i].1 * (1.0 - 1e-12)) {
                    frozen[i] = true;
                }
            }
        }
        rate
    }

    #[test]
    fn fair_rates_match_textbook_progressive_filling() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let caps: Vec<f64> = (0..6).map(|_| (1 + next(10)) as f64 * GB).collect();
            let mut flows: Vec<(Vec<(usize, f64)>, f64)> = vec![];
            for _ in 0..1 + next(7) {
                let mut uses = vec![];
                for l in 0..6 {
                    if next(3) == 0 {
                        uses.push((l, (1 + next(4)) as f64));
                    }
                }
                if uses.is_empty() {
                    uses.push((next(6) as usize, 1.0));
                }
                let cap = if next(4) == 0 { (1 + next(5)) as f64 * 0.1 * GB } else { f64::INFINITY };
                flows.push((uses, cap));
            }
            let mut e = FlowEngine::new();
            for (i, (uses, cap)) in flows.iter().enumerate() {
                let data = uses.iter().map(|_| 0.0).collect();
                let uses = uses.iter().map(|&(l, c)| (link(l as u64), c)).collect();
                e.add(FlowSpec { tag: i as u64, bytes: 1.0, uses, cap: *cap, wire_bytes: 0.0, data }, |l| caps[l.index() as usize]);
            }
            let got = e.fair_rates();
            let want = naive_rates(&flows, &caps);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-9 * w.max(1.0), "{got:?} vs {want:?} for {flows:?} on {caps:?}");
            }
        }
    }
}
