//! The rank side of the run summary and `phantom run --report` (docs/launcher.md, "What the ranks add"):
//! when `PHANTOM_STATS_DIR` is set (`phantom run` always sets it), this process keeps a few counters and
//! small maps of what its GPUs did and writes them as one JSON object to `<dir>/<pid>.json` at exit (a libc
//! `atexit` handler). The launcher merges the files.
//!
//! What is kept, all in simulated time and copied from decisions the runtime already made (collecting
//! changes no simulated time):
//! - per kernel (host stub and time source) and per library work name: launches and total time; the total
//!   per time source (`table`, `model`, `profiled`, `library`);
//! - per GPU: the union of the spans of its kernels and library work (*busy*), the union of the spans of its
//!   NCCL operations as its streams see them (*NCCL time*), and the part of the NCCL time no kernel covers
//!   (*exposed*), see [`GpuTime`] and [`NcclBook`];
//! - per device: the peak of the charged device memory (`memory::DeviceMemory::peak`);
//! - top-level NVTX push/pop ranges of the default domain, grouped by name apart from trailing digits
//!   (the launcher picks the steps among the groups), see [`Steps`].
//!
//! Everything is bounded: interval sets are folded into totals past [`FOLD_AT`] intervals, the NCCL book
//! tracks at most [`MAX_QUEUED`] operations and remembers [`MAX_ENDS`] completions, library names past
//! [`MAX_LIBRARY_NAMES`] are pooled, range groups past [`MAX_GROUPS`] are dropped and each group lists at most
//! [`MAX_LISTED`] ranges (its counts and statistics include all). With `PHANTOM_STATS_DIR` unset every hook
//! costs one relaxed atomic load.

use crate::trace::NameId;
use sim_core::engine::proto::{OpId, OpKind, Ready};
use sim_core::ktable::TimeSource;
use sim_core::net::CollOp;
use sim_core::SimTime;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable `phantom run` sets to the directory the files go to.
pub const STATS_DIR_ENV: &str = "PHANTOM_STATS_DIR";

/// Intervals (kernel plus NCCL) kept per GPU before the older half is folded into totals.
pub const FOLD_AT: usize = 1 << 14;
/// NCCL operations waiting for their completion that are tracked at once; further ones are counted only.
pub const MAX_QUEUED: usize = 1 << 16;
/// Completion times remembered for the operations a later one waits for.
pub const MAX_ENDS: usize = 4096;
/// Distinct library work names kept; further names are pooled under [`OTHER_LIBRARY_WORK`].
pub const MAX_LIBRARY_NAMES: usize = 4096;
/// The name library work is pooled under past [`MAX_LIBRARY_NAMES`].
pub const OTHER_LIBRARY_WORK: &str = "(other library work)";
/// Groups of top-level NVTX ranges kept.
pub const MAX_GROUPS: usize = 64;
/// Ranges listed per group.
pub const MAX_LISTED: usize = 1000;
/// Devices whose memory peak is kept (by ordinal).
const MAX_DEVICES: usize = 64;

static STATE: crate::flag::LazyFlag = crate::flag::LazyFlag::new();
static COLLECTOR: OnceLock<Option<Collector>> = OnceLock::new();
static PEAKS: [AtomicU64; MAX_DEVICES] = [const { AtomicU64::new(0) }; MAX_DEVICES];

struct Collector {
    path: std::path::PathBuf,
    /// The process that set the collector up: a forked child inherits the counters and must not write them.
    pid: u32,
    acc: Mutex<Acc>,
}

/// Whether statistics are collected. After the first call: one relaxed load.
#[inline]
pub fn on() -> bool {
    STATE.get(init)
}

fn init() -> bool {
    let c = COLLECTOR.get_or_init(|| {
        let dir = std::env::var_os(STATS_DIR_ENV).filter(|d| !d.is_empty())?;
        let pid = std::process::id();
        // SAFETY: `write_at_exit` is a plain `extern "C" fn()` that never unwinds.
        unsafe { libc::atexit(write_at_exit) };
        Some(Collector { path: std::path::Path::new(&dir).join(format!("{pid}.json")), pid, acc: Mutex::new(Acc::default()) })
    });
    c.is_some()
}

fn with_acc(f: impl FnOnce(&mut Acc)) {
    if let Some(Some(c)) = COLLECTOR.get() {
        f(&mut c.acc.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

// ---- hooks (each called from one or two lines elsewhere) ----

/// A kernel placed on global GPU `gpu` from `start` to `end` (a captured launch, with zero times, is ignored).
pub fn kernel(gpu: u32, host_fun: usize, source: TimeSource, start: SimTime, end: SimTime) {
    if on() && end != SimTime::ZERO {
        with_acc(|a| a.kernel(gpu, host_fun, source, start.as_nanos(), end.as_nanos()));
    }
}

/// Library work (`enqueue_work`: cuBLAS, cuDNN models) placed on global GPU `gpu`.
/// `source` is what timed it: profiling or a table's `call` record, or `None` for the library's own model.
pub fn library(gpu: u32, name: &str, source: Option<TimeSource>, start: SimTime, end: SimTime) {
    if on() && end != SimTime::ZERO {
        with_acc(|a| a.library(gpu, name, source, start.as_nanos(), end.as_nanos()));
    }
}

/// An NCCL operation queued on stream `stream` of global GPU `gpu`, ready as `ready` says.
pub fn nccl_queued(gpu: u32, stream: usize, op: OpId, kind: &OpKind, ready: &Ready) {
    if on() {
        let kind = match kind {
            OpKind::Coll { op, .. } => *op,
            OpKind::Send { .. } | OpKind::Recv { .. } => CollOp::SendRecv,
        };
        let after = ready.after.iter().map(|(o, off)| (o.0, off.as_nanos())).collect();
        with_acc(|a| a.nccl.queued(Queued { gpu, stream, op: op.0, floor: ready.floor.as_nanos(), after, kind }));
    }
}

/// The simulator's completion time of operation `op` (`net::fetch`); 0 means no time is known.
pub fn nccl_done(op: OpId, end: SimTime) {
    if on() && end != SimTime::ZERO {
        with_acc(|a| {
            if let Some((gpu, start, end)) = a.nccl.done(op.0, end.as_nanos()) {
                a.gpu(gpu).add_nccl(start, end);
            }
        });
    }
}

/// Device `ordinal`'s charged memory peaked at `peak` bytes.
pub fn memory_peak(ordinal: u32, peak: u64) {
    if on() {
        if let Some(p) = PEAKS.get(ordinal as usize) {
            p.fetch_max(peak, Ordering::Relaxed);
        }
    }
}

/// A completed NVTX record (`nvtx.rs`): top-level push/pop ranges of the default domain are kept.
pub fn nvtx(r: &crate::trace::Record) {
    if let crate::trace::Record::Nvtx { domain: None, name, kind: crate::trace::NvtxKind::Push { level: 0 }, start, end, .. } = *r {
        if on() {
            let text = crate::trace::name_text(name);
            with_acc(|a| a.range(name, &text, start.as_nanos(), end.as_nanos()));
        }
    }
}

// ---- the accumulators (pure: unit-tested without the globals) ----

/// Launches and total time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tot {
    pub count: u64,
    pub ns: u64,
}

impl Tot {
    fn add(&mut self, ns: u64) {
        self.count += 1;
        self.ns += ns;
    }
}

/// Kernel time per source, in ns (simple sums of each kernel's own duration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BySource {
    pub table: u64,
    pub model: u64,
    pub profiled: u64,
    pub library: u64,
}

#[derive(Default)]
struct Acc {
    kernels: HashMap<(usize, SourceKey), Tot>,
    library: HashMap<Box<str>, Tot>,
    by_source: BySource,
    gpus: BTreeMap<u32, GpuTime>,
    nccl: NcclBook,
    steps: Steps,
    /// The latest end of a completed top-level range: GPU spans after it are kept for the windows of ranges
    /// still open (see [`GpuTime::fold_if_full`]).
    keep_after: Option<u64>,
}

/// `TimeSource` as a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SourceKey(u8);

impl SourceKey {
    fn of(s: TimeSource) -> SourceKey {
        SourceKey(match s {
            TimeSource::Table => 0,
            TimeSource::Model => 1,
            TimeSource::Profiled => 2,
        })
    }
    fn name(self) -> &'static str {
        ["table", "model", "profiled"][self.0 as usize]
    }
}

impl Acc {
    fn gpu(&mut self, gpu: u32) -> &mut GpuTime {
        let keep = self.keep_after;
        let g = self.gpus.entry(gpu).or_default();
        g.keep_after = keep;
        g
    }

    /// A completed top-level range of the default domain, with its GPUs' time inside its window.
    fn range(&mut self, name: NameId, text: &str, start: u64, end: u64) {
        let mut window = GpuTotals::default();
        for g in self.gpus.values() {
            window += g.window(start, end);
        }
        self.steps.range(name, text, start, end, window, self.gpus.len() as u64);
        self.keep_after = Some(self.keep_after.map_or(end, |k| k.max(end)));
    }

    fn kernel(&mut self, gpu: u32, host_fun: usize, source: TimeSource, start: u64, end: u64) {
        let ns = end.saturating_sub(start);
        self.kernels.entry((host_fun, SourceKey::of(source))).or_default().add(ns);
        match source {
            TimeSource::Table => self.by_source.table += ns,
            TimeSource::Model => self.by_source.model += ns,
            TimeSource::Profiled => self.by_source.profiled += ns,
        }
        self.gpu(gpu).add_kernel(start, end);
    }

    fn library(&mut self, gpu: u32, name: &str, source: Option<TimeSource>, start: u64, end: u64) {
        let ns = end.saturating_sub(start);
        match self.library.get_mut(name) {
            Some(t) => t.add(ns),
            None => {
                let key = if self.library.len() < MAX_LIBRARY_NAMES { name } else { OTHER_LIBRARY_WORK };
                self.library.entry(key.into()).or_default().add(ns);
            }
        }
        match source {
            Some(TimeSource::Profiled) => self.by_source.profiled += ns,
            Some(TimeSource::Table) => self.by_source.table += ns,
            _ => self.by_source.library += ns,
        }
        self.gpu(gpu).add_kernel(start, end);
    }
}

/// Disjoint, non-touching half-open intervals `[start, end)` in ns, merged as they are added.
#[derive(Clone, Debug, Default)]
pub struct Intervals {
    map: BTreeMap<u64, u64>,
}

impl Intervals {
    pub fn add(&mut self, mut s: u64, mut e: u64) {
        if e <= s {
            return;
        }
        // Fast path: work queued back to back extends the last span.
        if let Some((&ls, le)) = self.map.iter_mut().next_back() {
            if ls <= s && s <= *le {
                *le = (*le).max(e);
                return;
            }
        }
        if let Some((&ps, &pe)) = self.map.range(..=s).next_back() {
            if pe >= s {
                if pe >= e {
                    return;
                }
                self.map.remove(&ps);
                s = ps;
            }
        }
        while let Some((&ns, &ne)) = self.map.range(s..).next() {
            if ns > e {
                break;
            }
            self.map.remove(&ns);
            e = e.max(ne);
        }
        self.map.insert(s, e);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    pub fn spans(&self) -> Vec<(u64, u64)> {
        self.map.iter().map(|(&s, &e)| (s, e)).collect()
    }

    /// Removes everything before `t` (an interval across `t` is split) and returns it, in order.
    fn cut(&mut self, t: u64) -> Vec<(u64, u64)> {
        let rest = self.map.split_off(&t);
        let mut before: Vec<(u64, u64)> = std::mem::replace(&mut self.map, rest).into_iter().collect();
        if let Some(last) = before.last_mut() {
            if last.1 > t {
                self.map.insert(t, last.1);
                last.1 = t;
            }
        }
        before
    }
}

/// Total length of `a` not covered by `b` (both sorted and disjoint).
pub fn uncovered(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let mut out = 0;
    let mut j = 0;
    for &(s, e) in a {
        let mut cur = s;
        while j < b.len() && b[j].1 <= cur {
            j += 1;
        }
        let mut k = j;
        while cur < e {
            match b.get(k) {
                Some(&(bs, be)) if bs < e => {
                    if bs > cur {
                        out += bs - cur;
                    }
                    cur = cur.max(be);
                    k += 1;
                }
                _ => {
                    out += e - cur;
                    cur = e;
                }
            }
        }
    }
    out
}

/// A GPU's busy, NCCL and exposed NCCL time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuTotals {
    /// Union of the spans of kernels and library work.
    pub busy_ns: u64,
    /// Union of the spans of NCCL operations as the GPU's streams see them.
    pub nccl_ns: u64,
    /// NCCL time during which no kernel ran on the GPU.
    pub exposed_ns: u64,
}

impl std::ops::AddAssign for GpuTotals {
    fn add_assign(&mut self, o: GpuTotals) {
        self.busy_ns += o.busy_ns;
        self.nccl_ns += o.nccl_ns;
        self.exposed_ns += o.exposed_ns;
    }
}

fn totals_of(kernels: &[(u64, u64)], nccl: &[(u64, u64)]) -> GpuTotals {
    GpuTotals {
        busy_ns: kernels.iter().map(|(s, e)| e - s).sum(),
        nccl_ns: nccl.iter().map(|(s, e)| e - s).sum(),
        exposed_ns: uncovered(nccl, kernels),
    }
}

/// One GPU's kernel and NCCL spans. When more than [`FOLD_AT`] intervals are kept, everything before the
/// middle one is folded into `folded` and later spans are clipped to start at `floor` (exact unless work is
/// placed that far in the past, which stream ordering makes rare).
#[derive(Clone, Debug, Default)]
pub struct GpuTime {
    kernels: Intervals,
    nccl: Intervals,
    floor: u64,
    folded: GpuTotals,
    /// Spans after this time (the end of the last completed top-level NVTX range) are kept unfolded when
    /// that still folds a quarter of them, so that the window of a range still open can be measured.
    keep_after: Option<u64>,
}

impl GpuTime {
    pub fn add_kernel(&mut self, start: u64, end: u64) {
        self.kernels.add(start.max(self.floor), end);
        self.fold_if_full();
    }

    pub fn add_nccl(&mut self, start: u64, end: u64) {
        self.nccl.add(start.max(self.floor), end);
        self.fold_if_full();
    }

    fn fold_if_full(&mut self) {
        if self.kernels.len() + self.nccl.len() <= FOLD_AT {
            return;
        }
        let larger = if self.kernels.len() >= self.nccl.len() { &self.kernels } else { &self.nccl };
        let Some(&mid) = larger.map.keys().nth(larger.len() / 2) else { return };
        let t = match self.keep_after {
            Some(k) if k < mid && larger.map.range(..k).count() >= larger.len() / 4 => k,
            _ => mid,
        };
        self.fold(t);
    }

    /// This GPU's busy, NCCL and exposed time inside `[start, end)` (spans already folded are not seen).
    pub fn window(&self, start: u64, end: u64) -> GpuTotals {
        let start = start.max(self.floor);
        if end <= start {
            return GpuTotals::default();
        }
        let clip = |set: &Intervals| -> Vec<(u64, u64)> {
            let first = set.map.range(..start).next_back().filter(|(_, &e)| e > start);
            first
                .into_iter()
                .chain(set.map.range(start..end))
                .map(|(&s, &e)| (s.max(start), e.min(end)))
                .collect()
        };
        totals_of(&clip(&self.kernels), &clip(&self.nccl))
    }

    fn fold(&mut self, t: u64) {
        let k = self.kernels.cut(t);
        let n = self.nccl.cut(t);
        self.folded += totals_of(&k, &n);
        self.floor = self.floor.max(t);
    }

    pub fn totals(&self) -> GpuTotals {
        let mut t = self.folded;
        t += totals_of(&self.kernels.spans(), &self.nccl.spans());
        t
    }
}

/// An NCCL operation waiting for its completion time.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub gpu: u32,
    pub stream: usize,
    pub op: u64,
    /// The earliest the stream reaches the operation, from its own local work (`Ready::floor`).
    pub floor: u64,
    /// Operations the stream also waits for first, with the local work queued after each (`Ready::after`).
    pub after: Vec<(u64, u64)>,
    pub kind: CollOp,
}

/// Turns NCCL completions into spans on the GPU's streams.
///
/// An operation's span runs from when its stream reaches it — the later of its `floor` and the completions
/// (plus the local work after them) of the operations its stream waited for, as far as this process has
/// learnt them — to its completion. A rank learns a completion only when something needs it
/// (`net::settle`): an operation whose completion it never learns but a later operation on the same stream
/// does is folded into that later one (its span starts where the earlier one's would: exact when the
/// stream ran them back to back); one that nothing after it on its stream settles is left out
/// ([`NcclBook::unsettled`]).
#[derive(Debug, Default)]
pub struct NcclBook {
    queued: BTreeMap<(u32, usize, u64), Queued>,
    lane_of: HashMap<u64, (u32, usize)>,
    ends: HashMap<u64, u64>,
    ends_order: VecDeque<u64>,
    /// Operations queued while [`MAX_QUEUED`] were already waiting.
    pub untracked: u64,
    /// Per kind: operations and the total of their spans.
    pub by_kind: BTreeMap<String, Tot>,
}

impl NcclBook {
    pub fn queued(&mut self, q: Queued) {
        if self.queued.len() >= MAX_QUEUED {
            self.untracked += 1;
            return;
        }
        self.lane_of.insert(q.op, (q.gpu, q.stream));
        self.queued.insert((q.gpu, q.stream, q.op), q);
    }

    fn reach(&self, q: &Queued) -> u64 {
        q.after.iter().filter_map(|(op, off)| self.ends.get(op).map(|e| e + off)).fold(q.floor, u64::max)
    }

    /// `op` completed at `end`: its GPU and span, when it was tracked.
    pub fn done(&mut self, op: u64, end: u64) -> Option<(u32, u64, u64)> {
        self.remember(op, end);
        let (gpu, stream) = self.lane_of.remove(&op)?;
        let q = self.queued.remove(&(gpu, stream, op))?;
        let mut start = self.reach(&q);
        // Earlier operations on the same stream whose completion this process never learnt.
        let earlier: Vec<(u32, usize, u64)> = self.queued.range((gpu, stream, 0)..(gpu, stream, op)).map(|(k, _)| *k).collect();
        let mut kinds = vec![q.kind];
        for k in earlier {
            if let Some(e) = self.queued.remove(&k) {
                self.lane_of.remove(&e.op);
                start = start.min(self.reach(&e));
                kinds.push(e.kind);
            }
        }
        let start = start.min(end);
        // The span goes to this operation's kind; folded ones count as operations of theirs.
        self.by_kind.entry(format!("{:?}", q.kind)).or_default().add(end - start);
        for k in &kinds[1..] {
            self.by_kind.entry(format!("{k:?}")).or_default().count += 1;
        }
        Some((gpu, start, end))
    }

    fn remember(&mut self, op: u64, end: u64) {
        if self.ends.insert(op, end).is_none() {
            self.ends_order.push_back(op);
            if self.ends_order.len() > MAX_ENDS {
                if let Some(old) = self.ends_order.pop_front() {
                    self.ends.remove(&old);
                }
            }
        }
    }

    /// Operations whose completion this process never learnt (nor that of a later one on their stream).
    pub fn unsettled(&self) -> u64 {
        self.queued.len() as u64 + self.untracked
    }
}

/// Statistics of a set of range durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agg {
    pub count: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Agg {
    fn add(&mut self, ns: u64) {
        self.min_ns = if self.count == 0 { ns } else { self.min_ns.min(ns) };
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.total_ns += ns;
    }
}

/// Top-level ranges whose names are the same apart from trailing digits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// The name with its trailing digits replaced by `N` (`step N`), or the name itself.
    pub pattern: String,
    pub count: u64,
    pub first_start: u64,
    /// The first [`MAX_LISTED`] ranges: name, start, end.
    pub listed: Vec<(NameId, u64, u64)>,
    /// Every range after the first to complete.
    pub steady: Agg,
    /// The GPU time inside the windows of those ranges, summed over the ranges and the process's GPUs.
    pub steady_gpu: GpuTotals,
    /// How many (range, GPU) windows `steady_gpu` sums.
    pub steady_windows: u64,
}

/// The key and display pattern of a range name: `step 12` → (`step `, `step N`); `train_step` →
/// (`train_step`, `train_step`).
pub fn pattern_of(name: &str) -> (&str, String) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == name.len() {
        (stem, name.to_string())
    } else {
        (stem, format!("{stem}N"))
    }
}

/// Top-level ranges of NVTX's default domain, grouped by [`pattern_of`].
#[derive(Debug, Default)]
pub struct Steps {
    pub groups: Vec<Group>,
    by_stem: HashMap<String, usize>,
    by_name: HashMap<NameId, Option<usize>>,
    /// Ranges of groups past [`MAX_GROUPS`].
    pub dropped: u64,
}

impl Steps {
    /// A completed range, with the GPU time inside its window summed over `gpus` GPUs.
    pub fn range(&mut self, name: NameId, text: &str, start: u64, end: u64, window: GpuTotals, gpus: u64) {
        let g = match self.by_name.get(&name) {
            Some(g) => *g,
            None => {
                let (stem, pattern) = pattern_of(text);
                let numbered = stem.len() < text.len();
                let g = match self.by_stem.get(stem) {
                    Some(&g) => Some(g),
                    None if self.groups.len() < MAX_GROUPS => {
                        self.groups.push(Group { pattern: pattern.clone(), first_start: start, ..Group::default() });
                        self.by_stem.insert(stem.to_string(), self.groups.len() - 1);
                        Some(self.groups.len() - 1)
                    }
                    None => None,
                };
                // A stem first seen without digits (`step`) shows as `step N` once a numbered one appears.
                if let (Some(g), true) = (g, numbered) {
                    self.groups[g].pattern = pattern;
                }
                self.by_name.insert(name, g);
                g
            }
        };
        let Some(g) = g else {
            self.dropped += 1;
            return;
        };
        let grp = &mut self.groups[g];
        let ns = end.saturating_sub(start);
        if grp.count > 0 {
            grp.steady.add(ns);
            grp.steady_gpu += window;
            grp.steady_windows += gpus;
        }
        grp.count += 1;
        grp.first_start = grp.first_start.min(start);
        if grp.listed.len() < MAX_LISTED {
            grp.listed.push((name, start, end));
        }
    }
}

// ---- the file ----

extern "C" fn write_at_exit() {
    let _ = std::panic::catch_unwind(write);
}

/// Writes the file (at exit). A collector still locked by another thread after a short wait is skipped
/// rather than waited for: exit must not hang.
fn write() {
    let Some(Some(c)) = COLLECTOR.get() else { return };
    if c.pid != std::process::id() {
        return;
    }
    let mut guard = None;
    for _ in 0..1000 {
        match c.acc.try_lock() {
            Ok(g) => guard = Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => guard = Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                // SAFETY: no arguments.
                unsafe { libc::sched_yield() };
                continue;
            }
        }
        break;
    }
    let Some(acc) = guard else {
        tracing::warn!("phantom: statistics not written: another thread held them at exit");
        return;
    };
    let text = render(&acc, &who(), &peaks(), &|h| kernel_name(h), &crate::trace::name_text);
    drop(acc);
    let tmp = c.path.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &c.path)) {
        tracing::error!("phantom: cannot write the statistics file {}: {e}", c.path.display());
    }
}

fn kernel_name(host_fun: usize) -> String {
    crate::launch::KERNELS.get(&host_fun).map(|k| k.name.clone()).unwrap_or_else(|| format!("kernel {host_fun:#x}"))
}

/// Who this process is (pid, `RANK`, `LOCAL_RANK`, node) and the simulated time it reached: the latest of its
/// threads' clocks and of the work it placed on its GPUs (`end_ns`).
struct Who {
    pid: u32,
    rank: Option<u32>,
    local_rank: Option<u32>,
    node: u32,
    end_ns: u64,
    /// Profiling mode, executing process: what ran on the real GPU (`crate::profile::stats_json`).
    real_gpu: Option<String>,
    /// Host time charged to the process's threads, by kind (`crate::clock::Tally::snapshot`).
    host: crate::clock::TallySnapshot,
}

fn who() -> Who {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u32>().ok());
    let gpu_end = crate::runtime::rt()
        .map(|rt| rt.devices.iter().map(|d| d.sched().max_end.as_nanos()).max().unwrap_or(0))
        .unwrap_or(0);
    Who {
        pid: std::process::id(),
        rank: var("RANK"),
        local_rank: var("LOCAL_RANK"),
        node: crate::net::node(),
        end_ns: crate::clock::watermark().as_nanos().max(gpu_end),
        real_gpu: crate::profile::stats_json(),
        host: crate::clock::TALLY.snapshot(),
    }
}

/// Memory peaks: (ordinal, global GPU, bytes).
fn peaks() -> Vec<(u32, u32, u64)> {
    let raw: Vec<(u32, u64)> = PEAKS
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, p.load(Ordering::Relaxed)))
        .filter(|&(_, p)| p > 0)
        .collect();
    if raw.is_empty() {
        return Vec::new();
    }
    // A device allocated memory, so the runtime exists: this does not initialise it.
    let Ok(rt) = crate::runtime::rt() else { return Vec::new() };
    raw.into_iter()
        .filter_map(|(o, p)| {
            let dev = rt.devices.get(o as usize)?;
            Some((o, crate::net::node() * rt.config.gpus_per_node + dev.physical, p))
        })
        .collect()
}

fn opt(v: Option<u32>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

/// The file's JSON (docs/launcher.md, "What the ranks add").
fn render(
    acc: &Acc,
    who: &Who,
    peaks: &[(u32, u32, u64)],
    kernel_name: &dyn Fn(usize) -> String,
    name_text: &dyn Fn(NameId) -> String,
) -> String {
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        "{{\"version\":1,\"pid\":{},\"rank\":{},\"local_rank\":{},\"node\":{},\"end_ns\":{}",
        who.pid,
        opt(who.rank),
        opt(who.local_rank),
        who.node,
        who.end_ns
    );
    let _ = write!(o, ",\"real_gpu\":{}", who.real_gpu.as_deref().unwrap_or("null"));
    let [application, costs, driver, libraries, phantom, real_wait] = who.host;
    let _ = write!(
        o,
        ",\"host_ns\":{{\"application\":{application},\"call_costs\":{costs},\"nvidia_driver\":{driver},\"nvidia_libraries\":{libraries},\"phantom\":{phantom},\"real_gpu_wait\":{real_wait}}}"
    );
    // GPUs: time accounting and memory, by global index.
    let mut gpus: BTreeMap<u32, (Option<u32>, GpuTotals, u64)> = BTreeMap::new();
    for (g, t) in &acc.gpus {
        gpus.entry(*g).or_default().1 = t.totals();
    }
    for &(ordinal, g, p) in peaks {
        let e = gpus.entry(g).or_default();
        e.0 = Some(ordinal);
        e.2 = p;
    }
    o.push_str(",\"gpus\":[");
    for (i, (g, (ordinal, t, peak))) in gpus.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"gpu\":{g},\"ordinal\":{},\"kernel_busy_ns\":{},\"nccl_ns\":{},\"exposed_nccl_ns\":{},\"peak_memory_bytes\":{peak}}}",
            if i > 0 { "," } else { "" },
            opt(*ordinal),
            t.busy_ns,
            t.nccl_ns,
            t.exposed_ns
        );
    }
    let s = acc.by_source;
    let _ = write!(
        o,
        "],\"kernel_ns_by_source\":{{\"table\":{},\"model\":{},\"library\":{},\"profiled\":{}}}",
        s.table, s.model, s.library, s.profiled
    );
    // Kernels: one entry per (name, source).
    let mut kernels: BTreeMap<(String, &'static str), Tot> = BTreeMap::new();
    for ((h, src), t) in &acc.kernels {
        let e = kernels.entry((kernel_name(*h), src.name())).or_default();
        e.count += t.count;
        e.ns += t.ns;
    }
    for (n, t) in &acc.library {
        let e = kernels.entry((n.to_string(), "library")).or_default();
        e.count += t.count;
        e.ns += t.ns;
    }
    o.push_str(",\"kernels\":[");
    for (i, ((name, src), t)) in kernels.iter().enumerate() {
        o.push_str(if i > 0 { ",{\"name\":" } else { "{\"name\":" });
        crate::trace::json_str(&mut o, name);
        let _ = write!(o, ",\"source\":\"{src}\",\"count\":{},\"total_ns\":{}}}", t.count, t.ns);
    }
    o.push_str("],\"nccl\":{\"by_kind\":{");
    for (i, (k, t)) in acc.nccl.by_kind.iter().enumerate() {
        let _ = write!(o, "{}\"{k}\":{{\"count\":{},\"time_ns\":{}}}", if i > 0 { "," } else { "" }, t.count, t.ns);
    }
    let _ = write!(o, "}},\"unsettled\":{}}}", acc.nccl.unsettled());
    o.push_str(",\"nvtx_top_level\":[");
    for (i, g) in acc.steps.groups.iter().enumerate() {
        o.push_str(if i > 0 { ",{\"pattern\":" } else { "{\"pattern\":" });
        crate::trace::json_str(&mut o, &g.pattern);
        let (a, w) = (g.steady, g.steady_gpu);
        let _ = write!(
            o,
            ",\"count\":{},\"first_start\":{},\"steady\":{{\"count\":{},\"total_ns\":{},\"min_ns\":{},\"max_ns\":{}}},\
             \"steady_gpu\":{{\"windows\":{},\"kernel_busy_ns\":{},\"nccl_ns\":{},\"exposed_nccl_ns\":{}}},\"ranges\":[",
            g.count, g.first_start, a.count, a.total_ns, a.min_ns, a.max_ns, g.steady_windows, w.busy_ns, w.nccl_ns, w.exposed_ns
        );
        for (j, (n, s, e)) in g.listed.iter().enumerate() {
            o.push_str(if j > 0 { ",{\"name\":" } else { "{\"name\":" });
            crate::trace::json_str(&mut o, &name_text(*n));
            let _ = write!(o, ",\"start\":{s},\"end\":{e}}}");
        }
        o.push_str("]}");
    }
    let _ = writeln!(o, "],\"nvtx_dropped\":{}}}", acc.steps.dropped);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(i: &Intervals) -> Vec<(u64, u64)> {
        i.spans()
    }

    #[test]
    fn intervals_merge_overlapping_and_touching_spans() {
        let mut i = Intervals::default();
        i.add(10, 20);
        i.add(30, 40);
        i.add(20, 25); // touches the first
        assert_eq!(spans(&i), [(10, 25), (30, 40)]);
        i.add(5, 35); // swallows both
        assert_eq!(spans(&i), [(5, 40)]);
        i.add(6, 7); // inside
        i.add(50, 50); // empty
        assert_eq!(spans(&i), [(5, 40)]);
        i.add(45, 60);
        i.add(0, 1);
        assert_eq!(spans(&i), [(0, 1), (5, 40), (45, 60)]);
        assert_eq!(i.total(), 1 + 35 + 15);
        let before = i.cut(10);
        assert_eq!(before, [(0, 1), (5, 10)]);
        assert_eq!(spans(&i), [(10, 40), (45, 60)]);
    }

    #[test]
    fn uncovered_length() {
        assert_eq!(uncovered(&[(0, 100)], &[]), 100);
        assert_eq!(uncovered(&[(0, 100)], &[(10, 20), (30, 40)]), 80);
        assert_eq!(uncovered(&[(0, 100)], &[(0, 100)]), 0);
        assert_eq!(uncovered(&[(0, 10), (20, 30), (40, 50)], &[(5, 25), (45, 100)]), 5 + 5 + 5);
        assert_eq!(uncovered(&[(10, 20)], &[(0, 5), (25, 30)]), 10);
    }

    #[test]
    fn gpu_totals_and_folding_agree() {
        // Kernels every 100 ns lasting 60 ns; an NCCL span across several of them.
        let mut g = GpuTime::default();
        for k in 0..10u64 {
            g.add_kernel(k * 100, k * 100 + 60);
        }
        g.add_nccl(250, 650);
        let want = GpuTotals { busy_ns: 600, nccl_ns: 400, exposed_ns: 4 * 40 };
        assert_eq!(g.totals(), want);
        // Inside a window: 250..260, 300..360, 400..460, 500..560, 600..650 of kernels.
        assert_eq!(g.window(250, 650), GpuTotals { busy_ns: 240, nccl_ns: 400, exposed_ns: 160 });
        assert_eq!(g.window(2000, 3000), GpuTotals::default());
        let mut folded = g.clone();
        folded.fold(420);
        assert_eq!(folded.totals(), want, "folding keeps the totals");
        // After the fold, a span before the floor is clipped: only 460..480 is new.
        folded.add_kernel(300, 480);
        assert_eq!(folded.totals().busy_ns, 600 + 20);
        // Automatic folding keeps the set bounded and the totals exact for spans placed in time order.
        let mut big = GpuTime::default();
        for k in 0..(3 * FOLD_AT as u64) {
            big.add_kernel(k * 10, k * 10 + 5);
        }
        assert!(big.kernels.len() <= FOLD_AT);
        assert_eq!(big.totals().busy_ns, 3 * FOLD_AT as u64 * 5);
        // Spans after the end of the last completed top-level range stay unfolded (when that still folds a
        // quarter of them), so the window of the range still open sees them all.
        let keep = 10 * (FOLD_AT as u64 / 3);
        let mut open = GpuTime { keep_after: Some(keep), ..GpuTime::default() };
        for k in 0..=(FOLD_AT as u64) {
            open.add_kernel(k * 10, k * 10 + 5);
        }
        assert_eq!(open.floor, keep);
        assert_eq!(open.window(keep, u64::MAX).busy_ns, (FOLD_AT as u64 + 1 - FOLD_AT as u64 / 3) * 5);
        assert_eq!(open.totals().busy_ns, (FOLD_AT as u64 + 1) * 5);
    }

    fn q(op: u64, stream: usize, floor: u64, after: &[(u64, u64)]) -> Queued {
        Queued { gpu: 3, stream, op, floor, after: after.to_vec(), kind: CollOp::AllReduce }
    }

    #[test]
    fn nccl_spans_start_where_the_stream_reaches_them() {
        let mut b = NcclBook::default();
        // Op 1 from its floor; op 2 queued behind it on the same stream: starts at op 1's end plus 5 ns of
        // local work.
        b.queued(q(1, 7, 100, &[]));
        b.queued(q(2, 7, 150, &[(1, 5)]));
        assert_eq!(b.done(1, 300), Some((3, 100, 300)));
        assert_eq!(b.done(2, 400), Some((3, 305, 400)));
        // Ops 3 and 4 back to back; only 4's completion is learnt: 3 is folded into 4's span.
        b.queued(q(3, 7, 500, &[]));
        b.queued(q(4, 7, 510, &[(3, 0)]));
        b.queued(q(5, 8, 520, &[])); // another stream: untouched
        assert_eq!(b.done(4, 900), Some((3, 500, 900)));
        assert_eq!(b.done(3, 700), None, "already folded");
        assert_eq!(b.by_kind["AllReduce"], Tot { count: 4, ns: 200 + 95 + 400 });
        assert_eq!(b.unsettled(), 1);
        assert_eq!(b.done(99, 5), None, "never queued");
    }

    #[test]
    fn patterns() {
        assert_eq!(pattern_of("step 12"), ("step ", "step N".to_string()));
        assert_eq!(pattern_of("train_step"), ("train_step", "train_step".to_string()));
        assert_eq!(pattern_of("iter7"), ("iter", "iterN".to_string()));
        assert_eq!(pattern_of("epoch 1 step 3"), ("epoch 1 step ", "epoch 1 step N".to_string()));
    }

    #[test]
    fn steps_group_by_pattern_and_skip_the_first() {
        let mut s = Steps::default();
        let n = |i| NameId(i);
        let w = GpuTotals { busy_ns: 10, nccl_ns: 5, exposed_ns: 1 };
        s.range(n(9), "init", 0, 50, w, 1);
        for (i, (a, b)) in [(100, 400), (400, 600), (600, 820), (820, 1000)].into_iter().enumerate() {
            s.range(n(i as u32), &format!("step {i}"), a, b, w, 2);
        }
        assert_eq!(s.groups.len(), 2);
        let g = &s.groups[1];
        assert_eq!(g.pattern, "step N");
        assert_eq!(g.count, 4);
        assert_eq!(g.first_start, 100);
        assert_eq!(g.steady, Agg { count: 3, total_ns: 200 + 220 + 180, min_ns: 180, max_ns: 220 });
        assert_eq!((g.steady_gpu, g.steady_windows), (GpuTotals { busy_ns: 30, nccl_ns: 15, exposed_ns: 3 }, 6));
        assert_eq!(g.listed[0], (n(0), 100, 400));
        assert_eq!(s.groups[0].steady.count, 0);
    }

    #[test]
    fn the_file() {
        let mut a = Acc::default();
        a.kernel(1, 0x10, TimeSource::Table, 100, 1100);
        a.kernel(1, 0x10, TimeSource::Table, 1100, 2100);
        a.kernel(1, 0x20, TimeSource::Model, 2100, 2200);
        a.library(1, "cublasGemmEx", None, 500, 800);
        a.nccl.queued(q(1, 7, 1500, &[]));
        if let Some((g, s, e)) = a.nccl.done(1, 3000) {
            a.gpu(g).add_nccl(s, e);
        }
        a.range(NameId(0), "step 0", 0, 3000);
        a.range(NameId(1), "step 1", 1000, 2000);
        let who = Who { pid: 42, rank: Some(1), local_rank: Some(1), node: 0, end_ns: 0, real_gpu: None, host: [6, 5, 4, 3, 2, 1] };
        let text = render(&a, &who, &[(0, 1, 4096)], &|h| format!("k{h:x}"), &|n| format!("step {}", n.0));
        assert_eq!(
            text,
            "{\"version\":1,\"pid\":42,\"rank\":1,\"local_rank\":1,\"node\":0,\"end_ns\":0,\"real_gpu\":null,\
             \"host_ns\":{\"application\":6,\"call_costs\":5,\"nvidia_driver\":4,\"nvidia_libraries\":3,\"phantom\":2,\"real_gpu_wait\":1},\
             \"gpus\":[{\"gpu\":1,\"ordinal\":0,\"kernel_busy_ns\":2100,\"nccl_ns\":0,\"exposed_nccl_ns\":0,\"peak_memory_bytes\":4096},\
             {\"gpu\":3,\"ordinal\":null,\"kernel_busy_ns\":0,\"nccl_ns\":1500,\"exposed_nccl_ns\":1500,\"peak_memory_bytes\":0}],\
             \"kernel_ns_by_source\":{\"table\":2000,\"model\":100,\"library\":300,\"profiled\":0},\
             \"kernels\":[{\"name\":\"cublasGemmEx\",\"source\":\"library\",\"count\":1,\"total_ns\":300},\
             {\"name\":\"k10\",\"source\":\"table\",\"count\":2,\"total_ns\":2000},\
             {\"name\":\"k20\",\"source\":\"model\",\"count\":1,\"total_ns\":100}],\
             \"nccl\":{\"by_kind\":{\"AllReduce\":{\"count\":1,\"time_ns\":1500}},\"unsettled\":0},\
             \"nvtx_top_level\":[{\"pattern\":\"step N\",\"count\":2,\"first_start\":0,\"steady\":{\"count\":1,\"total_ns\":1000,\"min_ns\":1000,\"max_ns\":1000},\
             \"steady_gpu\":{\"windows\":2,\"kernel_busy_ns\":1000,\"nccl_ns\":500,\"exposed_nccl_ns\":500},\
             \"ranges\":[{\"name\":\"step 0\",\"start\":0,\"end\":3000},{\"name\":\"step 1\",\"start\":1000,\"end\":2000}]}],\"nvtx_dropped\":0}\n"
        );
    }
}
