//! The network model (DESIGN.md decision 8; `docs/network.md` describes it in full).
//!
//! A collective becomes a few flows ([`algo`]) following the NCCL algorithm and protocol NCCL's own tuning
//! model would pick ([`tuning`]); the flows share the cluster's links ([`topology`]) max-min fairly
//! ([`flow`]). A collective takes NCCL's predicted latency (charged once, before its data moves) plus the
//! time its flows need, so bus bandwidth emerges from link bandwidths, the algorithm's bytes per link and
//! the traffic of every other running collective.
//!
//! Usage: [`Network::start`] a collective once every rank has called it, ask [`Network::next_event`] when
//! something is due, and [`Network::advance`] to collect completions. [`Network::plan`] answers "what would
//! NCCL do and how long would it take alone" without changing the state.

mod algo;
mod flow;
mod links;
mod topology;
mod tuning;

pub use tuning::Tuning;

use crate::config::{ClusterConfig, ConfigError, CpuVendor};
use crate::time::{SimDuration, SimTime};
use algo::{Ctx, FlowShape, Layout};
use flow::{FlowEngine, FlowSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use topology::{IdMap, Topology};
use tuning::{CommModel, NetParams};

/// A GPU of the cluster: `node * gpus_per_node + index inside the node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuId(pub u32);

/// The communication operations NCCL offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CollOp {
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
    Reduce,
    AllToAll,
    Gather,
    Scatter,
    SendRecv,
}

/// NCCL's algorithms (CollNet is not modelled: the fabric has no in-network reduction) and the grouped
/// point-to-point operations NCCL uses for AllToAll, Gather, Scatter and Send/Recv.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algo {
    Ring,
    Tree,
    /// NVLink SHARP inside one node.
    Nvls,
    /// NVLS inside each node and a tree between nodes (what NCCL uses for NVLS on several nodes).
    NvlsTree,
    Pat,
    P2p,
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algo::Ring => "Ring",
            Algo::Tree => "Tree",
            Algo::Nvls => "NVLS",
            Algo::NvlsTree => "NVLSTree",
            Algo::Pat => "PAT",
            Algo::P2p => "P2P",
        })
    }
}

/// NCCL's protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Ll = 0,
    Ll128 = 1,
    Simple = 2,
}

impl Proto {
    /// Bytes on the wire per byte of data: LL sends 8-byte lines of 4 data and 4 flag bytes; LL128 128-byte
    /// lines of which 120 bytes are data; Simple sends the data alone.
    pub fn wire_factor(self) -> f64 {
        match self {
            Proto::Ll => 2.0,
            Proto::Ll128 => 128.0 / 120.0,
            Proto::Simple => 1.0,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Ll => "LL",
            Proto::Ll128 => "LL128",
            Proto::Simple => "Simple",
        })
    }
}

/// One operation of one communicator, as the coordinator hands it over once every rank has called it.
#[derive(Clone, Debug, PartialEq)]
pub struct Collective {
    pub op: CollOp,
    /// `count × sizeof(datatype)` exactly as passed to the NCCL call: AllReduce/Broadcast/Reduce: the buffer;
    /// AllGather: sendcount (per rank); ReduceScatter: recvcount (per rank); AllToAll/Gather/Scatter: `count`,
    /// the elements exchanged with EACH peer; SendRecv: the bytes sent.
    pub bytes: u64,
    /// The GPUs in communicator rank order. For SendRecv exactly two: [sender, receiver].
    pub gpus: Vec<GpuId>,
    /// Communicator rank of the root (Broadcast, Reduce, Gather, Scatter); 0 otherwise.
    pub root: u32,
}

/// What NCCL's tuning would pick, and the isolated (no contention) time.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub algo: Algo,
    pub proto: Proto,
    pub channels: u32,
    pub isolated: SimDuration,
}

/// A collective started on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// Counters for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Events processed: transfers whose data started moving, and flows that finished.
    pub events: u64,
    /// Bytes carried by links, summed over every link a byte crossed (protocol overhead included).
    pub bytes_on_links: u64,
    pub transfers_started: u64,
    pub transfers_completed: u64,
}

/// What one directed link of the cluster carried during the run ([`Network::link_usage`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkUsage {
    /// `node0 gpu3 → nvswitch`, `leaf2 → node1 nic2`, … (docs/network.md, "Link names").
    pub name: String,
    /// Usable bandwidth (bytes/s): the configured bandwidth times its efficiency.
    pub capacity: f64,
    /// Bytes that crossed it (protocol overhead included) in flows that finished; summed over every link,
    /// [`NetStats::bytes_on_links`] (up to rounding).
    pub bytes: u64,
    /// Simulated time during which at least one flow used it.
    pub busy: SimDuration,
    /// Its rate over time, when recorded ([`Network::record_links`]): (time, bytes/s from then on), a sample
    /// only where the rate changed, changes within one microsecond merged into their average (the bytes
    /// are kept); the last sample is zero once the link is idle. Empty when not recorded.
    pub samples: Vec<(SimTime, f64)>,
}

/// A communicator as the model sees it.
struct Comm {
    layout: Layout,
    model: CommModel,
}

/// Key of a cached flow shape: the GPUs, the operation, the root (for rooted operations) and the algorithm.
type ShapeKey = (Vec<GpuId>, CollOp, u32, Algo);

/// Communicators and flow shapes already worked out (they repeat: every call of a communicator has the
/// same GPUs). Cleared when it grows past `CACHE_LIMIT` entries.
#[derive(Default)]
struct Cache {
    comms: HashMap<Vec<GpuId>, Arc<Comm>>,
    shapes: HashMap<ShapeKey, Arc<Vec<FlowShape>>>,
}

const CACHE_LIMIT: usize = 4096;

/// A collective made ready to run.
struct Prepared {
    algo: Algo,
    proto: Proto,
    channels: u32,
    latency: SimDuration,
    flows: Vec<FlowSpec>,
}

/// The cluster's network and the collectives running on it.
pub struct Network {
    topo: Topology,
    params: NetParams,
    engine: FlowEngine,
    /// Transfers whose data is moving → flows not yet finished.
    running: IdMap<u64, u32>,
    /// Transfers waiting out their latency, by (time their data starts moving, id).
    waiting: BTreeMap<(SimTime, u64), Vec<FlowSpec>>,
    next_id: u64,
    now: SimTime,
    stats: NetStats,
    link_bytes: f64,
    cache: Mutex<Cache>,
    /// Every link's rate over time, when [`Network::record_links`] asked for it.
    recorder: Option<links::Recorder>,
}

impl Network {
    pub fn new(cfg: &ClusterConfig) -> Result<Network, ConfigError> {
        cfg.validate()?;
        let generation = NetParams::generation_of(cfg.gpu.compute_capability);
        let params = NetParams {
            generation,
            amd: cfg.network.cpu_vendor == CpuVendor::Amd,
            nvls: cfg.network.nvls && cfg.gpu.multicast_supported && generation >= 2,
            nvls_efficiency: cfg.network.nvls_efficiency,
        };
        Ok(Network {
            topo: Topology::new(cfg),
            params,
            engine: FlowEngine::new(),
            running: IdMap::default(),
            waiting: BTreeMap::new(),
            next_id: 0,
            now: SimTime::ZERO,
            stats: NetStats::default(),
            link_bytes: 0.0,
            cache: Mutex::new(Cache::default()),
            recorder: None,
        })
    }

    /// Algorithm/protocol/channels per NCCL's tuning model (honouring `tuning`), and the contention-free time.
    /// Used for ncclGroupSimulateEnd and for tests.
    pub fn plan(&self, c: &Collective, tuning: &Tuning) -> Plan {
        let p = self.prepare(c, tuning, 0);
        let mut engine = FlowEngine::new();
        for f in p.flows {
            engine.add(f, |l| self.topo.capacity(l));
        }
        engine.settle();
        let mut end = SimTime::ZERO;
        while let Some(t) = engine.next_finish() {
            engine.advance_to(t);
            engine.settle();
            end = t;
        }
        Plan { algo: p.algo, proto: p.proto, channels: p.channels, isolated: p.latency + (end - SimTime::ZERO) }
    }

    /// Starts `c` at `at` (every rank is ready then). `at` is never earlier than the time of the last `advance`.
    pub fn start(&mut self, at: SimTime, c: &Collective, tuning: &Tuning) -> TransferId {
        self.start_choosing(at, c, tuning).0
    }

    /// Like [`Network::start`], also returning the algorithm and protocol chosen (for traces).
    pub fn start_choosing(&mut self, at: SimTime, c: &Collective, tuning: &Tuning) -> (TransferId, Algo, Proto) {
        self.next_id += 1;
        let id = self.next_id;
        let p = self.prepare(c, tuning, id);
        let begin = at.max(self.now) + p.latency;
        let (algo, proto) = (p.algo, p.proto);
        self.waiting.insert((begin, id), p.flows);
        self.stats.transfers_started += 1;
        (TransferId(id), algo, proto)
    }

    /// Earliest time at which something is due (a flow finishing, a phase starting), if anything is running.
    pub fn next_event(&self) -> Option<SimTime> {
        let waiting = self.waiting.keys().next().map(|k| k.0);
        match (waiting, self.engine.next_finish()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes every event with time <= `until` and returns the transfers that completed, with their
    /// completion times (ascending). Flows sharing a link share its bandwidth max-min fairly; a transfer
    /// started later slows transfers already running from that moment on.
    pub fn advance(&mut self, until: SimTime) -> Vec<(TransferId, SimTime)> {
        let mut done = vec![];
        while let Some(t) = self.next_event().filter(|&t| t <= until) {
            self.process(t, &mut done);
        }
        if until > self.now {
            let finished = self.engine.advance_to(until);
            debug_assert!(finished.is_empty());
            self.now = until;
        }
        done.sort_unstable_by_key(|&(id, t)| (t, id));
        done
    }

    /// Counters for the run summary.
    pub fn stats(&self) -> NetStats {
        NetStats { bytes_on_links: self.link_bytes.round() as u64, ..self.stats }
    }

    /// From now on, keep every link's rate over time for [`LinkUsage::samples`] (for traces: costs a pass
    /// over the links in use at every rate change, and memory). Changes no simulated time.
    pub fn record_links(&mut self) {
        self.recorder.get_or_insert_with(links::Recorder::default);
    }

    /// Every link that carried traffic so far, in topology order (per GPU NVLink and PCIe, NIC ports, leaf
    /// uplinks, spine downlinks); takes the samples recorded so far.
    pub fn link_usage(&mut self) -> Vec<LinkUsage> {
        let mut samples: IdMap<topology::LinkId, Vec<(SimTime, f64)>> =
            self.recorder.as_mut().map(|r| r.take().into_iter().collect()).unwrap_or_default();
        let mut links: Vec<_> = self.engine.link_totals().into_iter().collect();
        links.sort_unstable_by_key(|(l, _)| *l);
        links
            .into_iter()
            .map(|(l, t)| LinkUsage {
                name: self.topo.link_name(l),
                capacity: self.topo.capacity(l),
                bytes: t.bytes.round() as u64,
                busy: SimDuration::from_nanos(t.busy_ns),
                samples: samples.remove(&l).unwrap_or_default(),
            })
            .collect()
    }

    /// Handles everything due at `t`: finished flows, then transfers whose data starts moving.
    fn process(&mut self, t: SimTime, done: &mut Vec<(TransferId, SimTime)>) {
        for f in self.engine.advance_to(t) {
            self.stats.events += 1;
            self.link_bytes += f.wire_bytes;
            let left = self.running.get_mut(&f.tag).expect("a finished flow belongs to a running transfer");
            *left -= 1;
            if *left == 0 {
                self.running.remove(&f.tag);
                self.complete(TransferId(f.tag), f.at, done);
            }
        }
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let ((_, id), flows) = entry.remove_entry();
            self.stats.events += 1;
            if flows.is_empty() {
                self.complete(TransferId(id), t, done);
                continue;
            }
            self.running.insert(id, flows.len() as u32);
            for f in flows {
                self.engine.add(f, |l| self.topo.capacity(l));
            }
        }
        self.engine.settle();
        self.now = t;
        if let Some(r) = self.recorder.as_mut() {
            r.observe(t, &self.engine.link_rates());
        }
    }

    fn complete(&mut self, id: TransferId, at: SimTime, done: &mut Vec<(TransferId, SimTime)>) {
        self.stats.transfers_completed += 1;
        done.push((id, at));
    }

    /// Chooses algorithm and protocol, and turns `c` into flows tagged `tag`.
    fn prepare(&self, c: &Collective, tuning: &Tuning, tag: u64) -> Prepared {
        let comm = self.comm(&c.gpus);
        let choice = comm.model.choose(c.op, c.bytes, tuning);
        let mut p = Prepared {
            algo: choice.algo,
            proto: choice.proto,
            channels: choice.channels,
            latency: choice.latency,
            flows: vec![],
        };
        if c.bytes == 0 {
            p.latency = SimDuration::ZERO;
            return p;
        }
        let shapes = self.shapes(&comm, c, choice.algo);
        let data = c.bytes as f64;
        let wire = choice.proto.wire_factor();
        let bus = bus_bytes(c.op, data, c.gpus.len());
        p.flows = shapes
            .iter()
            .map(|s| {
                let bytes = data * s.unit * wire;
                FlowSpec {
                    tag,
                    bytes,
                    uses: s.uses.clone(),
                    // A bus-bandwidth cap becomes a rate cap on every flow in proportion to its bytes.
                    cap: choice.bus_cap.map_or(f64::INFINITY, |cap| bytes * cap / bus),
                    wire_bytes: data * s.wire * wire,
                    data: s.data.clone(),
                }
            })
            .collect();
        p
    }

    fn comm(&self, gpus: &[GpuId]) -> Arc<Comm> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.comms.get(gpus) {
            return c.clone();
        }
        let layout = Layout::new(&self.topo, gpus);
        let model = CommModel::new(&self.topo, &layout, &self.params);
        let comm = Arc::new(Comm { layout, model });
        if cache.comms.len() >= CACHE_LIMIT {
            cache.comms.clear();
        }
        cache.comms.insert(gpus.to_vec(), comm.clone());
        comm
    }

    fn shapes(&self, comm: &Comm, c: &Collective, algo: Algo) -> Arc<Vec<FlowShape>> {
        let rooted = matches!(c.op, CollOp::Broadcast | CollOp::Reduce | CollOp::Gather | CollOp::Scatter);
        let key: ShapeKey = (c.gpus.clone(), c.op, if rooted { c.root } else { 0 }, algo);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.shapes.get(&key) {
            return s.clone();
        }
        let ctx = Ctx { topo: &self.topo, layout: &comm.layout, nvls_efficiency: self.params.nvls_efficiency };
        let shapes = Arc::new(algo::shape(&ctx, c.op, c.root as usize, algo));
        if cache.shapes.len() >= CACHE_LIMIT {
            cache.shapes.clear();
        }
        cache.shapes.insert(key, shapes.clone());
        shapes
    }
}

/// The bytes nccl-tests divides by the time to get bus bandwidth: `bytes` times its bus-bandwidth factor
/// and, for operations whose "size" is the whole buffer, times the rank count.
fn bus_bytes(op: CollOp, bytes: f64, n: usize) -> f64 {
    let n = n.max(2) as f64;
    match op {
        CollOp::AllReduce => 2.0 * (n - 1.0) / n * bytes,
        CollOp::AllGather | CollOp::ReduceScatter | CollOp::AllToAll | CollOp::Gather | CollOp::Scatter => {
            (n - 1.0) * bytes
        }
        CollOp::Broadcast | CollOp::Reduce | CollOp::SendRecv => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> SimTime {
        SimTime::from_nanos(n * 1_000)
    }

    fn net(nodes: u32) -> Network {
        let mut cfg = ClusterConfig::preset("dgx-h100").unwrap();
        cfg.nodes = nodes;
        Network::new(&cfg).unwrap()
    }

    fn coll(op: CollOp, bytes: u64, gpus: std::ops::Range<u32>) -> Collective {
        Collective { op, bytes, gpus: gpus.map(GpuId).collect(), root: 0 }
    }

    #[test]
    fn names_are_nccls() {
        let algos = [Algo::Ring, Algo::Tree, Algo::Nvls, Algo::NvlsTree, Algo::Pat, Algo::P2p].map(|a| a.to_string());
        assert_eq!(algos, ["Ring", "Tree", "NVLS", "NVLSTree", "PAT", "P2P"]);
        assert_eq!([Proto::Ll, Proto::Ll128, Proto::Simple].map(|p| p.to_string()), ["LL", "LL128", "Simple"]);
    }

    #[test]
    fn latency_is_charged_once_before_the_data() {
        let mut n = net(1);
        let c = coll(CollOp::SendRecv, 450_000, 0..2);
        let plan = n.plan(&c, &Tuning::default());
        // 450 kB over one NVLink at 450 GB/s x 20.6/25 = 370.8 GB/s: 1213.6 ns -> 1214 ns, after NCCL's
        // Simple base latency (8.4 us) and one NVLink Simple hop (3.4 us).
        assert_eq!((plan.algo, plan.proto), (Algo::P2p, Proto::Simple));
        assert_eq!(plan.isolated, SimDuration::from_nanos(8_400 + 3_400 + 1_214));
        let id = n.start(us(5), &c, &Tuning::default());
        assert_eq!(n.next_event(), Some(SimTime::from_nanos(5_000 + 11_800)));
        assert_eq!(n.advance(us(10)), vec![]);
        let end = us(5) + plan.isolated;
        assert_eq!(n.next_event(), Some(SimTime::from_nanos(5_000 + 11_800)));
        assert_eq!(n.advance(SimTime::from_nanos(1_000_000_000)), vec![(id, end)]);
        assert_eq!(n.next_event(), None);
        let s = n.stats();
        assert_eq!((s.transfers_started, s.transfers_completed, s.events, s.bytes_on_links), (1, 1, 2, 900_000));
    }

    #[test]
    fn empty_and_single_rank_collectives_finish_at_once() {
        let mut n = net(1);
        let t = Tuning::default();
        let a = n.start(us(1), &coll(CollOp::AllReduce, 0, 0..8), &t);
        let b = n.start(us(2), &coll(CollOp::AllReduce, 1 << 20, 3..4), &t);
        assert_eq!(n.advance(us(3)), vec![(a, us(1)), (b, us(2))]);
    }

    /// ∫ rate dt of a link's samples (bytes).
    fn integral(s: &[(SimTime, f64)]) -> f64 {
        s.windows(2).map(|w| w[0].1 * (w[1].0 - w[0].0).as_secs_f64()).sum()
    }

    #[test]
    fn link_usage_adds_up_to_the_bytes_on_links_and_recording_changes_nothing() {
        // NVLS in one node (NVLink used at 85 % efficiency), NVLSTree and AllToAll over two nodes; a second,
        // smaller collective on node 0 overlaps the first.
        for (nodes, op, bytes) in [(1, CollOp::AllReduce, 1 << 30), (2, CollOp::AllReduce, 1 << 28), (2, CollOp::AllToAll, 1 << 22)] {
            let run = |record: bool| {
                let mut n = net(nodes);
                if record {
                    n.record_links();
                }
                let t = Tuning::default();
                n.start(SimTime::ZERO, &coll(op, bytes, 0..8 * nodes), &t);
                n.start(us(30), &coll(CollOp::AllReduce, 1 << 24, 0..8), &t);
                let done = n.advance(SimTime::from_nanos(u64::MAX / 2));
                (done, n.stats(), n.link_usage())
            };
            let (done, stats, plain) = run(false);
            let (recorded_done, recorded_stats, links) = run(true);
            assert_eq!((&done, stats), (&recorded_done, recorded_stats));
            assert!(plain.iter().all(|l| l.samples.is_empty()));
            let totals = |ls: &[LinkUsage]| ls.iter().map(|l| (l.name.clone(), l.bytes, l.busy)).collect::<Vec<_>>();
            assert_eq!(totals(&plain), totals(&links));
            let sum: u64 = links.iter().map(|l| l.bytes).sum();
            assert!(sum.abs_diff(stats.bytes_on_links) <= links.len() as u64, "{sum} vs {}", stats.bytes_on_links);
            let end = done.last().unwrap().1 - SimTime::ZERO;
            for l in &links {
                assert!(l.bytes > 0 && l.busy > SimDuration::ZERO && l.busy <= end, "{l:?}");
                assert_eq!(l.samples.last().map(|s| s.1), Some(0.0), "{}", l.name);
                assert!(l.samples.iter().all(|s| s.1 <= l.capacity * (1.0 + 1e-9)), "{l:?}");
                // Each flow's finish is rounded up to a whole nanosecond: at most a nanosecond at full rate
                // more per flow (2 collectives here, at most 8 flows each).
                let got = integral(&l.samples);
                assert!((got - l.bytes as f64).abs() <= 16.0 * l.capacity * 1e-9 + 1.0, "{}: {got} vs {}", l.name, l.bytes);
            }
            if nodes == 1 {
                // NVLS moves 85 bytes per 100 bytes of NVLink capacity it takes.
                let peak = links.iter().flat_map(|l| l.samples.iter().map(move |s| s.1 / l.capacity)).fold(0.0, f64::max);
                assert!((peak - 0.85).abs() < 1e-6, "{peak}");
            } else {
                assert!(links.iter().any(|l| l.name == "node1 nic3 → leaf3"), "{links:?}");
            }
        }
    }

    #[test]
    fn later_collectives_slow_running_ones() {
        let t = Tuning::from_env_values(Some("ring"), Some("simple")).unwrap();
        let mut n = net(1);
        let c = coll(CollOp::AllReduce, 1 << 30, 0..8);
        let alone = n.plan(&c, &t).isolated;
        let first = n.start(SimTime::ZERO, &c, &t);
        let half = SimTime::ZERO + SimDuration::from_nanos(alone.as_nanos() / 2);
        assert!(n.advance(half).is_empty());
        let second = n.start(half, &c, &t);
        let done = n.advance(SimTime::from_nanos(u64::MAX / 2));
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![first, second]);
        // The first ran alone for half its data, then shared NVLink: about 1.5x as long in all.
        let r = done[0].1.as_nanos() as f64 / alone.as_nanos() as f64;
        assert!((1.45..1.55).contains(&r), "{r}");
    }
}
