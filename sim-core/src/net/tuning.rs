//! NCCL's choice of algorithm, protocol and channel count (docs/network.md, "Tuning").
//!
//! NCCL predicts the time of every (algorithm, protocol) pair as `latency + bytes / bandwidth` from a table
//! of constants and the bandwidths its topology search found, and takes the fastest pair that `NCCL_ALGO` /
//! `NCCL_PROTO` allow (src/graph/tuning.cc, src/enqueue.cc). This module re-implements that prediction with
//! the same constants; the bandwidths come from Phantom's topology instead of NCCL's search. The prediction
//! only *chooses*; the time a collective takes comes from the flow model, plus the latency predicted here.

use super::algo::Layout;
use super::topology::{Hop, Topology};
use super::{Algo, CollOp, Proto};
use crate::time::SimDuration;

/// NCCL's algorithm names in NCCL's order: what `NCCL_ALGO` accepts (case-insensitive).
const ALGO_NAMES: [&str; 7] = ["Tree", "Ring", "CollNetDirect", "CollNetChain", "NVLS", "NVLSTree", "PAT"];
/// NCCL's protocol names in NCCL's order: what `NCCL_PROTO` accepts.
const PROTO_NAMES: [&str; 3] = ["LL", "LL128", "Simple"];
/// NCCL's collective names: the `function:` prefixes of `NCCL_ALGO` / `NCCL_PROTO` entries.
const FUNC_NAMES: [&str; 5] = ["Broadcast", "Reduce", "AllGather", "ReduceScatter", "AllReduce"];

const BROADCAST: usize = 0;
const REDUCE: usize = 1;
const ALL_GATHER: usize = 2;
const REDUCE_SCATTER: usize = 3;
const ALL_REDUCE: usize = 4;

/// The algorithms Phantom models, in NCCL's order (ties go to the earlier), with their NCCL index.
/// CollNet needs in-network reduction (SHARP) switches, which Phantom's fabric does not have.
const MODELLED: [(Algo, usize); 5] =
    [(Algo::Tree, 0), (Algo::Ring, 1), (Algo::Nvls, 4), (Algo::NvlsTree, 5), (Algo::Pat, 6)];
const PROTOS: [Proto; 3] = [Proto::Ll, Proto::Ll128, Proto::Simple];

// ---- NCCL's tuner constants (src/graph/tuning.cc), indexed [algorithm][protocol] in NCCL's orders. ----
// Latencies in microseconds, bandwidths in GB/s. Rows for algorithms Phantom never picks (CollNet) are zero.

/// Fixed latency of one collective call.
const BASE_LATENCY_US: [[f64; 3]; 7] = [
    [6.8, 14.0, 8.4], // Tree
    [6.6, 14.0, 8.4], // Ring
    [0.0; 3],         // CollNetDirect
    [0.0; 3],         // CollNetChain
    [0.0; 3],         // NVLS
    [0.0; 3],         // NVLSTree
    [8.0, 8.0, 8.0],  // PAT
];

/// Latency of one pipeline step over one hop, by hop class (NVLink, PCIe, network).
const HOP_LATENCY_US: [[[f64; 3]; 7]; 3] = [
    [[0.6, 1.25, 4.0], [0.6, 1.9, 3.4], [0.0, 0.0, 3.7], [0.0, 0.0, 2.8], [0.0, 0.0, 25.0], [0.0, 0.0, 25.0], [0.0, 0.0, 4.0]],
    [[1.0, 1.9, 4.0], [1.0, 2.5, 5.7], [0.0, 0.0, 3.7], [0.0, 0.0, 2.8], [0.0; 3], [0.0; 3], [0.0, 0.0, 4.0]],
    [[5.0, 8.5, 14.0], [2.7, 4.0, 14.0], [0.0, 0.0, 31.0], [0.0, 0.0, 30.0], [0.0, 0.0, 18.0], [0.0, 0.0, 20.9], [0.0, 0.0, 14.0]],
];

/// The LL ring hop latency `HOP_LATENCY_US` assumes per hop class. The configured latencies
/// (`nvlink_latency_ns`, `pcie_latency_ns`, `nic_latency_ns` + switches) replace it: every entry of the
/// class moves by the difference, so the defaults reproduce NCCL's table exactly.
const REFERENCE_HOP_US: [f64; 3] = [0.6, 1.0, 2.7];

/// Most bus bandwidth the LL protocol reaches. Rows: Volta, Ampere, Hopper, Blackwell for one node; for
/// several nodes row 0 is Intel hosts and row 1 AMD hosts. Columns: 1 node, 2 nodes, more.
const LL_MAX_BW: [[f64; 3]; 4] = [[39.0, 39.0, 20.4], [87.7, 22.5, 19.0], [141.0, 45.0, 35.0], [282.0, 90.0, 70.0]];
/// Per-channel caps by GPU generation (Volta, Ampere, Hopper, Blackwell) and node count (1, 2, more).
const RING_LL128_CHANNEL_BW: [[f64; 3]; 4] = [[20.0; 3], [20.0; 3], [36.7; 3], [40.0; 3]];
const TREE_LL128_CHANNEL_BW: [[f64; 3]; 4] = [[20.0; 3], [20.0; 3], [36.7, 36.7, 29.0], [55.6, 31.67, 20.0]];
const TREE_CHANNEL_BW: [[f64; 3]; 4] = [[26.5, 18.5, 10.0], [24.0, 23.6, 17.8], [38.7, 41.4, 36.0], [70.0, 42.8, 24.0]];
const NVLS_TREE_CHANNEL_BW: [[f64; 3]; 4] = [[26.5, 18.5, 10.0], [24.0, 23.6, 17.8], [0.0, 57.7, 45.5], [0.0, 96.0, 80.0]];

/// Tree AllReduce bandwidth correction for medium sizes, per protocol, indexed by log2(bytes / 64).
const TREE_CORRECTION: [[f64; 24]; 3] = [
    [
        1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0,
    ],
    [
        1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.8, 0.9, 0.9, 0.9, 0.9, 1.0, 1.0, 1.0,
    ],
    [
        0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.7, 0.7, 0.8, 0.9, 0.9, 0.9,
    ],
];

/// Threads per channel NCCL gives each protocol at most (LL, LL128, Simple), and the bytes per thread
/// below which it uses fewer channels.
const MAX_THREADS: [u64; 3] = [512, 640, 512];
const THREAD_THRESHOLD: [u64; 3] = [8, 8, 64];

/// NCCL's collective channel count on systems whose GPUs talk over NVLink (`NCCL_DEBUG=INFO` reports 32
/// "coll channels" on DGX H100); without NVLink, two per NIC.
const NVLINK_COLL_CHANNELS: u32 = 32;

/// Point-to-point transfers up to this size use LL (`NCCL_P2P_LL_THRESHOLD`), larger ones Simple.
const P2P_LL_THRESHOLD: u64 = 16_384;
/// Extra latency per additional peer of a grouped point-to-point operation (AllToAll, Gather, Scatter):
/// NCCL posts one send and one receive per peer. Phantom's estimate, not an NCCL constant.
const P2P_PER_PEER_US: f64 = 1.0;

// ---- NCCL_ALGO / NCCL_PROTO ----

/// One entry of an enable table: NCCL's default, or forced on/off by the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Switch {
    #[default]
    Default,
    On,
    Off,
}

/// NCCL_ALGO / NCCL_PROTO as NCCL parses them (per communicator; read from the rank's environment).
///
/// Syntax (NCCL's): a comma-separated list of names, case-insensitive, optionally starting with `^` to
/// exclude rather than select them; several such lists separated by `;`, each after the first prefixed by a
/// collective name and `:` (`NCCL_PROTO="LL,Simple;allreduce:^LL"`). A list replaces the previous setting of
/// every collective it applies to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tuning {
    /// Per collective (`FUNC_NAMES`), per NCCL algorithm (`ALGO_NAMES`).
    algo: [[Switch; 7]; 5],
    /// Per collective, per protocol (`PROTO_NAMES`).
    proto: [[Switch; 3]; 5],
}

impl Tuning {
    /// Parses the values of `NCCL_ALGO` and `NCCL_PROTO` (`None`: unset). The error names the variable and
    /// the token NCCL would reject.
    pub fn from_env_values(algo: Option<&str>, proto: Option<&str>) -> Result<Tuning, String> {
        let mut t = Tuning::default();
        if let Some(v) = algo {
            parse_list(v, "algorithm", &ALGO_NAMES, &mut t.algo).map_err(|e| format!("NCCL_ALGO=\"{v}\": {e}"))?;
        }
        if let Some(v) = proto {
            parse_list(v, "protocol", &PROTO_NAMES, &mut t.proto).map_err(|e| format!("NCCL_PROTO=\"{v}\": {e}"))?;
        }
        Ok(t)
    }

    fn algo_allowed(&self, func: usize, algo: usize) -> bool {
        self.algo[func][algo] != Switch::Off
    }

    /// Whether `proto` may be used for `func`; `ll128_default` is NCCL's default for LL128 on this system.
    fn proto_allowed(&self, func: usize, proto: Proto, ll128_default: bool) -> bool {
        match self.proto[func][proto as usize] {
            Switch::Off => false,
            Switch::On => true,
            Switch::Default => proto != Proto::Ll128 || ll128_default,
        }
    }
}

fn find(names: &[&str], token: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(token))
}

fn parse_list<const N: usize>(
    text: &str,
    what: &str,
    names: &[&str; N],
    table: &mut [[Switch; N]; 5],
) -> Result<(), String> {
    for (k, entry) in text.split(';').filter(|e| !e.is_empty()).enumerate() {
        let mut parts = entry.split(':').filter(|p| !p.is_empty());
        let first = parts.next().unwrap_or("");
        let (funcs, list): (Vec<usize>, &str) = match parts.next() {
            Some(list) => {
                let f = find(&FUNC_NAMES, first).ok_or_else(|| {
                    format!("unknown collective \"{first}\" (known: {})", FUNC_NAMES.join(", "))
                })?;
                (vec![f], list)
            }
            None if k > 0 => {
                return Err(format!("\"{entry}\": every list after the first needs a `collective:` prefix"));
            }
            None => ((0..FUNC_NAMES.len()).collect(), first),
        };
        let (set, unset, list) = match list.strip_prefix('^') {
            Some(rest) => (Switch::Off, Switch::On, rest),
            None => (Switch::On, Switch::Off, list),
        };
        let elems = list
            .split(',')
            .filter(|e| !e.is_empty())
            .map(|e| find(names, e).ok_or_else(|| format!("unknown {what} \"{e}\" (known: {})", names.join(", "))))
            .collect::<Result<Vec<usize>, String>>()?;
        for f in funcs {
            table[f] = [unset; N];
            for &e in &elems {
                table[f][e] = set;
            }
        }
    }
    Ok(())
}

// ---- The model ----

/// What the run's configuration tells NCCL's model, the same for every communicator.
#[derive(Clone, Debug)]
pub(crate) struct NetParams {
    /// GPU generation index: 0 Volta, 1 Ampere, 2 Hopper, 3 Blackwell.
    pub generation: usize,
    /// AMD host CPUs.
    pub amd: bool,
    /// NVLS is possible: `network.nvls`, a multicast-capable GPU, Hopper or later.
    pub nvls: bool,
    /// `network.nvls_efficiency`.
    pub nvls_efficiency: f64,
}

impl NetParams {
    pub(crate) fn generation_of(compute_capability: [u32; 2]) -> usize {
        match compute_capability[0] {
            0..=7 => 0,
            8 => 1,
            9 => 2,
            _ => 3,
        }
    }
}

/// NCCL's view of one communicator: what its tuning model needs.
#[derive(Clone, Debug)]
pub(crate) struct CommModel {
    n_ranks: usize,
    n_nodes: usize,
    /// Most ranks in one node.
    ppn: usize,
    generation: usize,
    amd: bool,
    /// Ranks of a node talk over NVLink (NCCL's `typeIntra == NVL`).
    intra_nvlink: bool,
    /// Bandwidth of one rank to the other ranks of its node (GB/s).
    bw_intra: f64,
    /// Bandwidth of one node's NICs used by the communicator (GB/s).
    bw_inter: f64,
    coll_channels: u32,
    nvls_channels: u32,
    nvls: bool,
    pat: bool,
    ll128_default: bool,
    nvls_efficiency: f64,
    /// The configured LL hop latency per hop class (µs).
    hop_us: [f64; 3],
}

/// What NCCL would run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Choice {
    pub algo: Algo,
    pub proto: Proto,
    pub channels: u32,
    /// The latency part of NCCL's prediction: charged once per collective, before its data moves.
    pub latency: SimDuration,
    /// Most bus bandwidth the protocol reaches (bytes/s), where NCCL's model caps it (LL).
    pub bus_cap: Option<f64>,
}

fn log2i(n: u64) -> i32 {
    if n == 0 {
        -1
    } else {
        63 - n.leading_zeros() as i32
    }
}

fn func_index(op: CollOp) -> Option<usize> {
    match op {
        CollOp::Broadcast => Some(BROADCAST),
        CollOp::Reduce => Some(REDUCE),
        CollOp::AllGather => Some(ALL_GATHER),
        CollOp::ReduceScatter => Some(REDUCE_SCATTER),
        CollOp::AllReduce => Some(ALL_REDUCE),
        CollOp::AllToAll | CollOp::Gather | CollOp::Scatter | CollOp::SendRecv => None,
    }
}

impl CommModel {
    pub(crate) fn new(topo: &Topology, layout: &Layout, p: &NetParams) -> CommModel {
        let n_nodes = layout.n_nodes().max(1);
        let ppn = layout.ppn.max(1);
        let intra_nvlink = topo.has_nvlink() && ppn >= 2;
        let nvls_channels = match p.generation {
            2 => 16,
            3 if n_nodes > 1 => 32,
            3 => 24,
            _ => 0,
        };
        let coll_channels =
            if intra_nvlink { NVLINK_COLL_CHANNELS } else { (2 * layout.rails as u32).max(2) };
        let switches = layout.switches(topo);
        let hop_us = [Hop::NvLink, Hop::Pcie, Hop::Net].map(|h| topo.hop_latency(h, switches).as_nanos() as f64 / 1e3);
        CommModel {
            n_ranks: layout.gpus.len(),
            n_nodes,
            ppn,
            generation: p.generation,
            amd: p.amd,
            intra_nvlink,
            bw_intra: topo.intra_bandwidth() / 1e9,
            bw_inter: layout.rails as f64 * topo.nic_bandwidth() / 1e9,
            coll_channels,
            nvls_channels,
            nvls: p.nvls && ppn >= 2 && nvls_channels >= 2,
            // PAT: one rank per node only.
            pat: ppn == 1 && n_nodes == layout.gpus.len(),
            // NCCL enables LL128 by default only where the path between the ranks of a node is NVLink
            // (through at most one switch), or there is one rank per node.
            ll128_default: intra_nvlink || ppn == 1,
            nvls_efficiency: p.nvls_efficiency,
            hop_us,
        }
    }

    /// Algorithm, protocol, channels and latency NCCL would use for `op` on `bytes` (the call's count ×
    /// type size), honouring `tuning`. When `tuning` leaves nothing possible (NCCL fails the call), the
    /// protocol restriction and then the algorithm restriction are dropped.
    pub(crate) fn choose(&self, op: CollOp, bytes: u64, tuning: &Tuning) -> Choice {
        let Some(func) = func_index(op) else { return self.p2p(op, bytes) };
        if self.n_ranks <= 1 {
            let latency = SimDuration::ZERO;
            return Choice { algo: Algo::Ring, proto: Proto::Simple, channels: 1, latency, bus_cap: None };
        }
        let n_bytes = if func == ALL_GATHER || func == REDUCE_SCATTER { bytes * self.n_ranks as u64 } else { bytes };
        let relaxed = Tuning { proto: Default::default(), ..tuning.clone() };
        let best = [tuning, &relaxed, &Tuning::default()].into_iter().find_map(|t| self.fastest(func, n_bytes, t));
        let (algo, proto) = best.unwrap_or((Algo::Ring, Proto::Simple));
        let ll = proto == Proto::Ll && matches!(algo, Algo::Ring | Algo::Tree);
        Choice {
            algo,
            proto,
            channels: self.channels(algo, proto, n_bytes),
            latency: SimDuration::from_secs_f64(self.latency(func, algo, proto, n_bytes) * 1e-6),
            bus_cap: ll.then(|| self.ll_max_bw() * 1e9),
        }
    }

    fn fastest(&self, func: usize, n_bytes: u64, tuning: &Tuning) -> Option<(Algo, Proto)> {
        let mut best: Option<(f64, Algo, Proto)> = None;
        for (algo, index) in MODELLED {
            if !tuning.algo_allowed(func, index) {
                continue;
            }
            for proto in PROTOS {
                if !tuning.proto_allowed(func, proto, self.ll128_default) {
                    continue;
                }
                if let Some(t) = self.predicted_us(func, algo, proto, n_bytes) {
                    if best.is_none_or(|b| t < b.0) {
                        best = Some((t, algo, proto));
                    }
                }
            }
        }
        best.map(|b| (b.1, b.2))
    }

    /// NCCL's predicted time (µs), or `None` where the pair is not available.
    pub(crate) fn predicted_us(&self, func: usize, algo: Algo, proto: Proto, n_bytes: u64) -> Option<f64> {
        let mut bw = self.bandwidth(func, algo, proto);
        if bw <= 0.0 {
            return None;
        }
        let log_size = log2i(n_bytes >> 6);
        if algo == Algo::Tree && func == ALL_REDUCE && (0..23).contains(&log_size) {
            bw *= TREE_CORRECTION[proto as usize][log_size as usize];
        }
        Some(self.latency(func, algo, proto, n_bytes) + n_bytes as f64 / (1000.0 * bw))
    }

    fn nodes_index(&self) -> usize {
        self.n_nodes.min(3) - 1
    }

    fn ll_max_bw(&self) -> f64 {
        let row = if self.n_nodes == 1 { self.generation } else { usize::from(self.amd) };
        LL_MAX_BW[row][self.nodes_index()]
    }

    fn available(&self, func: usize, algo: Algo, proto: Proto) -> bool {
        let simple = proto == Proto::Simple;
        match algo {
            Algo::Ring => true,
            Algo::Tree => func == ALL_REDUCE,
            Algo::Nvls => {
                self.nvls && simple && self.n_nodes == 1 && [ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER].contains(&func)
            }
            Algo::NvlsTree => self.nvls && simple && self.n_nodes > 1 && func == ALL_REDUCE,
            Algo::Pat => self.pat && simple && (func == ALL_GATHER || func == REDUCE_SCATTER),
            Algo::P2p => false,
        }
    }

    /// NCCL's bandwidth (GB/s of algorithm bandwidth, 0 where unavailable) for the pair.
    fn bandwidth(&self, func: usize, algo: Algo, proto: Proto) -> f64 {
        if !self.available(func, algo, proto) {
            return 0.0;
        }
        let (g, ni) = (self.generation, self.nodes_index());
        let ll_max = self.ll_max_bw();
        let graph = if self.n_nodes == 1 {
            self.bw_intra
        } else if self.ppn >= 2 {
            self.bw_intra.min(self.bw_inter)
        } else {
            self.bw_inter
        };
        let (nch, nvls_ch) = (f64::from(self.coll_channels), f64::from(self.nvls_channels));
        let mut bus = match algo {
            Algo::Nvls | Algo::NvlsTree => {
                let ppn = self.ppn as f64;
                let per_op = if func == ALL_REDUCE { 2.0 } else { (ppn - 1.0) / ppn };
                let intra = self.bw_intra * self.nvls_efficiency * (nvls_ch - 1.0) / nvls_ch * per_op;
                if algo == Algo::Nvls {
                    intra
                } else {
                    let inter = self.bw_inter * if self.n_nodes <= 2 { 2.0 } else { 1.0 };
                    intra.min(inter).min(nvls_ch * NVLS_TREE_CHANNEL_BW[g][ni])
                }
            }
            _ => graph,
        };
        match (algo, proto) {
            (Algo::Ring, Proto::Ll) => bus = ll_max.min(bus * 0.5),
            (Algo::Ring, Proto::Ll128) => bus = (bus * 0.92).min(nch * RING_LL128_CHANNEL_BW[g][ni]),
            (Algo::Tree, _) => {
                bus = (bus * 0.92).min(nch * TREE_CHANNEL_BW[g][ni]);
                match proto {
                    Proto::Ll => bus = (bus / 3.8).min(ll_max),
                    Proto::Ll128 => {
                        let f = if self.n_nodes == 1 { 7.0 / 9.0 } else { 120.0 / 128.0 };
                        bus = (bus * f).min(nch * TREE_LL128_CHANNEL_BW[g][ni]);
                    }
                    Proto::Simple => {}
                }
            }
            (Algo::Pat, _) => bus *= 0.75,
            _ => {}
        }
        // Bus bandwidth to algorithm bandwidth (NCCL leaves non-ring AllGather/ReduceScatter as they are).
        let gather_like = func == ALL_GATHER || func == REDUCE_SCATTER;
        if algo == Algo::Ring || !gather_like {
            bus *= match algo {
                Algo::Ring | Algo::Nvls | Algo::NvlsTree => self.n_ranks as f64 / self.steps(func) as f64,
                _ => 0.5,
            };
        }
        bus
    }

    fn steps(&self, func: usize) -> usize {
        let n = self.n_ranks;
        match func {
            ALL_REDUCE => 2 * (n - 1),
            ALL_GATHER | REDUCE_SCATTER => n - 1,
            _ => n,
        }
    }

    /// NCCL's per-hop latency (µs) with the configured link latency in place of NCCL's reference.
    fn hop(&self, hop: Hop, algo: Algo, proto: Proto) -> f64 {
        let table = HOP_LATENCY_US[hop as usize][nccl_index(algo)][proto as usize];
        if table == 0.0 {
            return 0.0;
        }
        (table + self.hop_us[hop as usize] - REFERENCE_HOP_US[hop as usize]).max(0.0)
    }

    /// NCCL's latency (µs) of one call, with the ring plateau factor NCCL applies to large multi-node
    /// Simple ring AllReduces.
    fn latency(&self, func: usize, algo: Algo, proto: Proto, n_bytes: u64) -> f64 {
        let nn = self.n_nodes;
        let intra_hop = if self.intra_nvlink { Hop::NvLink } else { Hop::Pcie };
        let intra = self.hop(intra_hop, algo, proto);
        let inter = if self.ppn == 1 { self.hop(Hop::Net, Algo::Tree, proto) } else { self.hop(Hop::Net, algo, proto) };
        let log_nodes = f64::from(log2i(nn as u64));
        let base = BASE_LATENCY_US[nccl_index(algo)][proto as usize];
        match algo {
            Algo::Ring if func == BROADCAST || func == REDUCE => {
                base + self.hop(if nn == 1 { intra_hop } else { Hop::Net }, algo, proto)
            }
            Algo::Ring => {
                let mut overhead = 0.0;
                if nn > 1 {
                    overhead = if self.amd { 2.0 } else { 1.0 } * if proto == Proto::Simple { 3.0 } else { 1.0 };
                }
                let steps = self.steps(func);
                let inter_steps = match nn {
                    1 => 0,
                    _ if func == ALL_REDUCE => 2 * (nn - 1),
                    _ => nn - 1,
                };
                let lat = base + (steps - inter_steps) as f64 * intra.max(overhead) + inter_steps as f64 * inter;
                let plateau = func == ALL_REDUCE
                    && proto == Proto::Simple
                    && nn > 1
                    && n_bytes / (u64::from(self.coll_channels) * self.n_ranks as u64) >= 64;
                if plateau {
                    lat * if self.generation >= 1 { 1.4 } else { 1.9 }
                } else {
                    lat
                }
            }
            Algo::Tree => base + 2.0 * ((self.n_ranks / nn - 1) as f64 * intra + log_nodes * inter),
            Algo::Nvls => intra + if nn > 1 { inter } else { 0.0 },
            Algo::NvlsTree => base + intra + 2.0 * log_nodes * inter,
            Algo::Pat => base + log_nodes * inter / 3.5 + self.n_ranks as f64 * 2.8,
            Algo::P2p => base,
        }
    }

    /// Channels NCCL uses: NVLS its own count; rings and trees fewer for small sizes (NCCL drops channels
    /// while each thread would have less than its threshold of bytes).
    fn channels(&self, algo: Algo, proto: Proto, n_bytes: u64) -> u32 {
        if matches!(algo, Algo::Nvls | Algo::NvlsTree) {
            return self.nvls_channels;
        }
        let p = proto as usize;
        let mut threshold = THREAD_THRESHOLD[p];
        if algo == Algo::Ring && proto == Proto::Ll {
            threshold *= self.n_ranks as u64;
        }
        let mut nc = self.coll_channels;
        while n_bytes < u64::from(nc) * MAX_THREADS[p] * threshold && nc >= 2 {
            nc -= 1;
        }
        nc
    }

    /// Point-to-point operations: LL up to 16 KiB per peer, else Simple; latency of one ring step over the
    /// widest hop class involved, plus a per-peer cost for grouped operations.
    fn p2p(&self, op: CollOp, bytes: u64) -> Choice {
        let proto = if bytes <= P2P_LL_THRESHOLD { Proto::Ll } else { Proto::Simple };
        let hop = if self.n_nodes > 1 {
            Hop::Net
        } else if self.intra_nvlink {
            Hop::NvLink
        } else {
            Hop::Pcie
        };
        let peers = if op == CollOp::SendRecv { 1 } else { self.n_ranks.saturating_sub(1).max(1) };
        let us = BASE_LATENCY_US[1][proto as usize]
            + self.hop(hop, Algo::Ring, proto)
            + (peers - 1) as f64 * P2P_PER_PEER_US;
        Choice {
            algo: Algo::P2p,
            proto,
            channels: if proto == Proto::Ll { 1 } else { 2 },
            latency: SimDuration::from_secs_f64(us * 1e-6),
            bus_cap: None,
        }
    }
}

/// The index of a modelled algorithm in NCCL's tables (P2P uses the ring rows).
fn nccl_index(algo: Algo) -> usize {
    match algo {
        Algo::Tree => 0,
        Algo::Ring | Algo::P2p => 1,
        Algo::Nvls => 4,
        Algo::NvlsTree => 5,
        Algo::Pat => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(t: &Tuning, func: usize) -> (Vec<&'static str>, Vec<&'static str>) {
        let algos = (0..7).filter(|&a| t.algo_allowed(func, a)).map(|a| ALGO_NAMES[a]).collect();
        let protos = PROTOS.iter().filter(|&&p| t.proto_allowed(func, p, false)).map(|&p| PROTO_NAMES[p as usize]).collect();
        (algos, protos)
    }

    #[test]
    fn env_lists_select_or_exclude_case_insensitively() {
        let t = Tuning::from_env_values(Some("ring,nvls"), Some("^ll")).unwrap();
        assert_eq!(on(&t, ALL_REDUCE), (vec!["Ring", "NVLS"], vec!["LL128", "Simple"]));
        assert_eq!(on(&t, BROADCAST), (vec!["Ring", "NVLS"], vec!["LL128", "Simple"]));
        // Unset: every algorithm; LL128 left to NCCL's default (off in this query).
        let d = Tuning::from_env_values(None, None).unwrap();
        assert_eq!(d, Tuning::default());
        assert_eq!(on(&d, ALL_REDUCE).1, vec!["LL", "Simple"]);
        let t = Tuning::from_env_values(Some("TREE"), Some("Simple")).unwrap();
        assert_eq!(on(&t, ALL_GATHER), (vec!["Tree"], vec!["Simple"]));
    }

    #[test]
    fn env_lists_per_collective() {
        let t = Tuning::from_env_values(Some("ring,tree;allreduce:nvls,nvlstree"), Some("^LL128;allgather:LL128")).unwrap();
        assert_eq!(on(&t, ALL_REDUCE), (vec!["NVLS", "NVLSTree"], vec!["LL", "Simple"]));
        assert_eq!(on(&t, ALL_GATHER), (vec!["Tree", "Ring"], vec!["LL128"]));
        assert_eq!(on(&t, REDUCE).0, vec!["Tree", "Ring"]);
    }

    #[test]
    fn env_errors_name_the_variable_and_token() {
        let e = |a: Option<&str>, p: Option<&str>| Tuning::from_env_values(a, p).unwrap_err();
        assert_eq!(
            e(Some("ring,foo"), None),
            "NCCL_ALGO=\"ring,foo\": unknown algorithm \"foo\" (known: Tree, Ring, CollNetDirect, CollNetChain, NVLS, \
             NVLSTree, PAT)"
        );
        assert_eq!(
            e(None, Some("LL,simple;tree:LL")),
            "NCCL_PROTO=\"LL,simple;tree:LL\": unknown collective \"tree\" (known: Broadcast, Reduce, AllGather, \
             ReduceScatter, AllReduce)"
        );
        assert_eq!(
            e(Some("ring;tree"), None),
            "NCCL_ALGO=\"ring;tree\": \"tree\": every list after the first needs a `collective:` prefix"
        );
        assert!(e(None, Some(" LL")).contains("unknown protocol \" LL\""));
    }

    #[test]
    fn log2_rounds_down() {
        assert_eq!((log2i(0), log2i(1), log2i(2), log2i(3), log2i(1 << 24)), (-1, 0, 1, 1, 24));
    }
}
