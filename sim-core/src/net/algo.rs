//! NCCL's algorithms as flows (docs/network.md, "Algorithms").
//!
//! Each algorithm turns a collective into a few flows. A flow is described per byte of the collective's
//! `bytes` (the NCCL call's count × type size): how many bytes cross each link. Pipelined parts that NCCL
//! runs together (a ring's edges, a tree's reduce and broadcast, NVLS's reduce-scatter and all-gather) are
//! one flow, so they advance together; parts that NCCL runs independently (channels on different rails) are
//! separate flows.

use super::topology::{IdMap, LinkId, LinkKind, Nic, Topology};
use super::{Algo, CollOp, GpuId};

/// A communicator's GPUs grouped by node.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// The GPUs in rank order.
    pub gpus: Vec<GpuId>,
    /// One group per node, in the order the nodes first appear in rank order.
    pub groups: Vec<Group>,
    /// Most GPUs of the communicator in one node.
    pub ppn: usize,
    /// NICs the communicator uses in a node (those of its GPUs in the first node): NCCL's rings and trees
    /// use one channel group per NIC.
    pub rails: usize,
}

/// The communicator's GPUs in one node.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// In local-index order.
    pub gpus: Vec<GpuId>,
    /// The distinct NICs of those GPUs, ascending.
    pub nics: Vec<Nic>,
}

impl Layout {
    pub(crate) fn new(topo: &Topology, gpus: &[GpuId]) -> Layout {
        let mut nodes: Vec<u32> = vec![];
        let mut groups: Vec<Group> = vec![];
        for &g in gpus {
            let node = topo.node_of(g);
            let i = match nodes.iter().position(|&n| n == node) {
                Some(i) => i,
                None => {
                    nodes.push(node);
                    groups.push(Group { gpus: vec![], nics: vec![] });
                    groups.len() - 1
                }
            };
            groups[i].gpus.push(g);
        }
        for grp in &mut groups {
            grp.gpus.sort_unstable();
            grp.gpus.dedup();
            grp.nics = grp.gpus.iter().map(|&g| topo.nic_of(g)).collect();
            grp.nics.sort_unstable();
            grp.nics.dedup();
        }
        let ppn = groups.iter().map(|g| g.gpus.len()).max().unwrap_or(0);
        let rails = groups.first().map_or(1, |g| g.nics.len().max(1));
        Layout { gpus: gpus.to_vec(), groups, ppn, rails }
    }

    pub(crate) fn n_nodes(&self) -> usize {
        self.groups.len()
    }

    /// Rail `r` of group `i`: its NIC and the first of the group's GPUs attached to it (the head).
    fn rail(&self, topo: &Topology, i: usize, r: usize) -> (GpuId, Nic) {
        let grp = &self.groups[i];
        let nic = grp.nics[r % grp.nics.len()];
        let head = grp.gpus.iter().copied().find(|&g| topo.nic_of(g) == nic).unwrap_or(grp.gpus[0]);
        (head, nic)
    }

    /// Group `i`'s GPUs in cyclic order starting at `head`.
    fn cyclic_from(&self, i: usize, head: GpuId) -> impl Iterator<Item = GpuId> + '_ {
        let gpus = &self.groups[i].gpus;
        let start = gpus.iter().position(|&g| g == head).unwrap_or(0);
        (0..gpus.len()).map(move |k| gpus[(start + k) % gpus.len()])
    }

    /// Most switches a path between two of the communicator's NICs on one rail crosses (1 or 3).
    pub(crate) fn switches(&self, topo: &Topology) -> u32 {
        let mut most = 1;
        for r in 0..self.rails {
            let first = self.rail(topo, 0, r).1;
            for i in 1..self.n_nodes() {
                most = most.max(topo.switches_between(first, self.rail(topo, i, r).1));
            }
        }
        most
    }
}

/// One flow of a collective, per byte of the collective's `bytes`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FlowShape {
    /// Links and load coefficients, normalised so that the flow's bottleneck link (in isolation) has 1.
    pub uses: Vec<(LinkId, f64)>,
    /// Bytes the flow moves on its bottleneck link (its rate unit), per byte of the collective.
    pub unit: f64,
    /// Bytes the flow puts on all links together, per byte of the collective.
    pub wire: f64,
    /// Per entry of `uses`: bytes crossing the link per byte of the flow's rate unit (the coefficient times
    /// the efficiency the traffic uses the link with: equal to it except for NVLS).
    pub data: Vec<f64>,
}

/// Link loads of one flow under construction.
#[derive(Default)]
struct Loads {
    /// Per link: capacity used (bytes / efficiency) and bytes.
    map: IdMap<LinkId, (f64, f64)>,
    wire: f64,
}

impl Loads {
    /// `bytes` more cross `link`, which this traffic uses with `efficiency` (NVLS: below 1).
    fn add(&mut self, link: LinkId, bytes: f64, efficiency: f64) {
        let e = self.map.entry(link).or_insert((0.0, 0.0));
        e.0 += bytes / efficiency;
        e.1 += bytes;
        self.wire += bytes;
    }

    fn route(&mut self, topo: &Topology, src: GpuId, dst: GpuId, salt: u64, bytes: f64) {
        topo.route(src, dst, salt, &mut |l, f| self.add(l, bytes * f, 1.0));
    }

    fn route_net(&mut self, topo: &Topology, (src, a): (GpuId, Nic), (dst, b): (GpuId, Nic), salt: u64, bytes: f64) {
        topo.route_net(src, a, b, dst, salt, &mut |l, f| self.add(l, bytes * f, 1.0));
    }

    fn finish(self, topo: &Topology) -> Option<FlowShape> {
        let mut loads: Vec<(LinkId, (f64, f64))> = self.map.into_iter().filter(|&(_, b)| b.0 > 0.0).collect();
        loads.sort_unstable_by_key(|&(l, _)| l);
        let bottleneck = loads.iter().map(|&(l, b)| (b.0 / topo.capacity(l), b.0)).max_by(|x, y| x.0.total_cmp(&y.0))?;
        let unit = bottleneck.1;
        let uses = loads.iter().map(|&(l, b)| (l, b.0 / unit)).collect();
        let data = loads.iter().map(|&(_, b)| b.1 / unit).collect();
        Some(FlowShape { uses, unit, wire: self.wire, data })
    }
}

/// What a collective needs to know about the run to become flows.
pub(crate) struct Ctx<'a> {
    pub topo: &'a Topology,
    pub layout: &'a Layout,
    /// `network.nvls_efficiency`.
    pub nvls_efficiency: f64,
}

/// The flows of `op` (rooted at the GPU of rank `root`) with algorithm `algo`.
pub(crate) fn shape(ctx: &Ctx, op: CollOp, root: usize, algo: Algo) -> Vec<FlowShape> {
    let n = ctx.layout.gpus.len();
    if n < 2 {
        return vec![];
    }
    let flows = match algo {
        Algo::Ring => ring(ctx, op, root),
        Algo::Tree => tree(ctx, false),
        Algo::NvlsTree => tree(ctx, true),
        Algo::Nvls => vec![nvls(ctx, op)],
        Algo::Pat => vec![pat(ctx, op)],
        Algo::P2p => vec![p2p(ctx, op, root)],
    };
    flows.into_iter().filter_map(|l| l.finish(ctx.topo)).collect()
}

/// Bytes each ring edge carries per byte of the collective (a chain for rooted operations).
fn ring_edge_bytes(op: CollOp, n: usize) -> f64 {
    let n = n as f64;
    match op {
        CollOp::AllReduce => 2.0 * (n - 1.0) / n,
        CollOp::AllGather | CollOp::ReduceScatter => n - 1.0,
        _ => 1.0,
    }
}

/// One ring per rail (one in a single node), each carrying an equal share. A ring visits the nodes in order;
/// inside a node it enters at the rail's GPU, visits the node's other GPUs and leaves from the last one
/// through the same rail's NIC (PXN). AllReduce, AllGather and ReduceScatter use every edge; Broadcast a
/// chain from the root, Reduce a chain to it.
fn ring(ctx: &Ctx, op: CollOp, root: usize) -> Vec<Loads> {
    let (topo, layout) = (ctx.topo, ctx.layout);
    let rings = if layout.n_nodes() == 1 { 1 } else { layout.rails };
    let per_edge = ring_edge_bytes(op, layout.gpus.len()) / rings as f64;
    let root_gpu = layout.gpus[root.min(layout.gpus.len() - 1)];
    (0..rings)
        .map(|r| {
            let mut seq: Vec<(GpuId, Nic)> = vec![];
            for i in 0..layout.n_nodes() {
                let (head, nic) = layout.rail(topo, i, r);
                seq.extend(layout.cyclic_from(i, head).map(|g| (g, nic)));
            }
            let n = seq.len();
            let at_root = seq.iter().position(|&(g, _)| g == root_gpu).unwrap_or(0);
            let skipped = match op {
                CollOp::Broadcast => Some((at_root + n - 1) % n),
                CollOp::Reduce => Some(at_root),
                _ => None,
            };
            let mut loads = Loads::default();
            for e in (0..n).filter(|&e| Some(e) != skipped) {
                let (a, b) = (seq[e], seq[(e + 1) % n]);
                if a.0 == b.0 {
                    continue;
                }
                if topo.node_of(a.0) == topo.node_of(b.0) {
                    topo.route_intra(a.0, b.0, &mut |l, f| loads.add(l, per_edge * f, 1.0));
                } else {
                    loads.route_net(topo, a, b, r as u64, per_edge);
                }
            }
            loads
        })
        .collect()
}

/// NCCL's tree AllReduce (`nvls == false`) and NVLSTree (`nvls == true`), one flow per rail, each carrying
/// an equal share. Between nodes: a double binary tree over the rail's NICs, each tree carrying half, every
/// edge crossed once up (reduce) and once down (broadcast). Inside a node: Tree uses a chain from the rail's
/// GPU through the others (up and down); NVLSTree reduces the share onto the rail's GPU through the
/// NVSwitch and multicasts the result back (see [`nvls`]).
fn tree(ctx: &Ctx, nvls: bool) -> Vec<Loads> {
    let (topo, layout) = (ctx.topo, ctx.layout);
    let rails = layout.rails;
    let share = 1.0 / rails as f64;
    let nodes = layout.n_nodes();
    (0..rails)
        .map(|r| {
            let mut loads = Loads::default();
            for i in 0..nodes {
                let (head, _) = layout.rail(topo, i, r);
                if nvls {
                    nvls_through(ctx, &mut loads, i, head, share);
                } else {
                    let chain: Vec<GpuId> = layout.cyclic_from(i, head).collect();
                    for w in chain.windows(2) {
                        topo.route_intra(w[0], w[1], &mut |l, f| loads.add(l, share * f, 1.0));
                        topo.route_intra(w[1], w[0], &mut |l, f| loads.add(l, share * f, 1.0));
                    }
                }
            }
            for (t, parents) in double_binary_tree(nodes).iter().enumerate() {
                for (child, parent) in parents.iter().enumerate() {
                    let Some(parent) = *parent else { continue };
                    let (c, p) = (layout.rail(topo, child, r), layout.rail(topo, parent, r));
                    let salt = (r * 2 + t) as u64;
                    loads.route_net(topo, c, p, salt, share / 2.0);
                    loads.route_net(topo, p, c, salt, share / 2.0);
                }
            }
            loads
        })
        .collect()
}

/// NVLS inside group `i` for `share` of the data held by `head`: every GPU's part is pulled through the
/// switch (multimem reduce) to `head`, and `head` multicasts the result to every GPU (itself included).
fn nvls_through(ctx: &Ctx, loads: &mut Loads, i: usize, head: GpuId, share: f64) {
    let eff = ctx.nvls_efficiency;
    for &g in &ctx.layout.groups[i].gpus {
        loads.add(LinkId::new(LinkKind::NvlUp, g.0.into()), share, eff);
        loads.add(LinkId::new(LinkKind::NvlDown, g.0.into()), share, eff);
    }
    loads.add(LinkId::new(LinkKind::NvlUp, head.0.into()), share, eff);
    loads.add(LinkId::new(LinkKind::NvlDown, head.0.into()), share, eff);
}

/// NVLS in one node. AllReduce: every GPU reduces 1/n of the buffer through the switch and multicasts it,
/// so each GPU sends and receives (n+1)/n of the buffer. AllGather: each GPU multicasts its part (sends 1,
/// receives n). ReduceScatter: each GPU pulls its reduced part (sends n, receives 1).
fn nvls(ctx: &Ctx, op: CollOp) -> Loads {
    let n = ctx.layout.gpus.len() as f64;
    let (up, down) = match op {
        CollOp::AllGather => (1.0, n),
        CollOp::ReduceScatter => (n, 1.0),
        _ => ((n + 1.0) / n, (n + 1.0) / n),
    };
    let mut loads = Loads::default();
    for grp in &ctx.layout.groups {
        for &g in &grp.gpus {
            loads.add(LinkId::new(LinkKind::NvlUp, g.0.into()), up, ctx.nvls_efficiency);
            loads.add(LinkId::new(LinkKind::NvlDown, g.0.into()), down, ctx.nvls_efficiency);
        }
    }
    loads
}

/// PAT (one GPU per node): at distance d = 1, 2, 4, ... each rank exchanges min(d, n-d) parts with the
/// rank d away (AllGather: forwards, ReduceScatter: backwards); n-1 parts in all, as in a ring.
fn pat(ctx: &Ctx, op: CollOp) -> Loads {
    let gpus = &ctx.layout.gpus;
    let n = gpus.len();
    let mut loads = Loads::default();
    let mut d = 1;
    while d < n {
        let parts = d.min(n - d) as f64;
        for (i, &g) in gpus.iter().enumerate() {
            let j = if op == CollOp::ReduceScatter { (i + n - d) % n } else { (i + d) % n };
            loads.route(ctx.topo, g, gpus[j], d as u64, parts);
        }
        d *= 2;
    }
    loads
}

/// Point-to-point operations: every pair's bytes on its own path; the pairs advance together.
fn p2p(ctx: &Ctx, op: CollOp, root: usize) -> Loads {
    let (topo, gpus) = (ctx.topo, &ctx.layout.gpus);
    let root = gpus[root.min(gpus.len() - 1)];
    let salt = |a: GpuId, b: GpuId| u64::from(a.0) << 32 | u64::from(b.0);
    let mut loads = Loads::default();
    match op {
        CollOp::AllToAll => {
            for &s in gpus {
                for &d in gpus {
                    loads.route(topo, s, d, salt(s, d), 1.0);
                }
            }
        }
        CollOp::Gather => gpus.iter().for_each(|&s| loads.route(topo, s, root, salt(s, root), 1.0)),
        CollOp::Scatter => gpus.iter().for_each(|&d| loads.route(topo, root, d, salt(root, d), 1.0)),
        _ => {
            let (s, d) = (gpus[0], gpus[gpus.len() - 1]);
            loads.route(topo, s, d, salt(s, d), 1.0);
        }
    }
    loads
}

/// NCCL's double binary tree over `n` nodes: for each of the two trees, each node's parent (`None` for the
/// root). Tree 0: node 0 is the root with one child, the largest power of two below `n`; a node whose
/// lowest set bit is `b` has children `node - b/2` and `node + b/2` (the latter brought into range), so odd
/// nodes are leaves. Tree 1 mirrors tree 0 (`n - 1 - node`) when `n` is even and shifts it by one when `n`
/// is odd, so that most nodes that are inner in one tree are leaves in the other.
pub(crate) fn double_binary_tree(n: usize) -> [Vec<Option<usize>>; 2] {
    let first: Vec<Option<usize>> = (0..n).map(|r| btree_parent(n, r)).collect();
    let second = (0..n)
        .map(|r| {
            if n & 1 == 0 {
                btree_parent(n, n - 1 - r).map(|p| n - 1 - p)
            } else {
                btree_parent(n, (r + n - 1) % n).map(|p| (p + 1) % n)
            }
        })
        .collect();
    [first, second]
}

fn btree_parent(n: usize, r: usize) -> Option<usize> {
    if r == 0 {
        return None;
    }
    let bit = 1 << r.trailing_zeros();
    let up = (r ^ bit) | (bit << 1);
    Some(if up >= n { r ^ bit } else { up })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;

    #[test]
    fn double_binary_trees() {
        // n = 4: tree 0 is 0 -> 2 -> {1, 3}; tree 1 mirrors it: 3 -> 1 -> {2, 0}.
        assert_eq!(double_binary_tree(4), [vec![None, Some(2), Some(0), Some(2)], vec![Some(1), Some(3), Some(1), None]]);
        // n = 2: each node is the other's child in one tree.
        assert_eq!(double_binary_tree(2), [vec![None, Some(0)], vec![Some(1), None]]);
        // n = 13: tree 0's inner nodes are even, tree 1 (shifted) has them odd.
        let [a, b] = double_binary_tree(13);
        assert_eq!((a[8], a[12], a[1]), (Some(0), Some(8), Some(2)));
        assert_eq!(b[1], None);
        for tree in [a, b] {
            assert_eq!(tree.iter().filter(|p| p.is_none()).count(), 1);
        }
    }

    fn ctx_for<R>(nodes: u32, gpus: &[u32], f: impl FnOnce(&Ctx) -> R) -> R {
        let mut cfg = ClusterConfig::preset("dgx-h100").unwrap();
        cfg.nodes = nodes;
        let topo = Topology::new(&cfg);
        let gpus: Vec<GpuId> = gpus.iter().map(|&g| GpuId(g)).collect();
        let layout = Layout::new(&topo, &gpus);
        f(&Ctx { topo: &topo, layout: &layout, nvls_efficiency: 0.85 })
    }

    fn load(s: &FlowShape, kind: LinkKind, index: u64) -> f64 {
        s.uses.iter().find(|u| u.0 == LinkId::new(kind, index)).map_or(0.0, |u| u.1 * s.unit)
    }

    #[test]
    fn single_node_ring_loads_every_nvlink_once() {
        let all: Vec<u32> = (0..8).collect();
        let s = ctx_for(1, &all, |c| shape(c, CollOp::AllReduce, 0, Algo::Ring));
        assert_eq!(s.len(), 1);
        for g in 0..8 {
            assert!((load(&s[0], LinkKind::NvlUp, g) - 1.75).abs() < 1e-12);
            assert!((load(&s[0], LinkKind::NvlDown, g) - 1.75).abs() < 1e-12);
        }
        assert!((s[0].wire - 16.0 * 1.75).abs() < 1e-9);
        // Broadcast from rank 3: a chain of 7 edges; nothing enters the root.
        let b = ctx_for(1, &all, |c| shape(c, CollOp::Broadcast, 3, Algo::Ring));
        assert_eq!(load(&b[0], LinkKind::NvlDown, 3), 0.0);
        assert!((b[0].wire - 14.0).abs() < 1e-12);
    }

    #[test]
    fn multi_node_rings_use_one_rail_each() {
        let all: Vec<u32> = (0..16).collect();
        let s = ctx_for(2, &all, |c| shape(c, CollOp::AllReduce, 0, Algo::Ring));
        assert_eq!(s.len(), 8);
        let per_edge = 2.0 * 15.0 / 16.0 / 8.0;
        // Ring 3 leaves node 0 through NIC 3 and enters node 1 through NIC 11.
        assert!((load(&s[3], LinkKind::NicTx, 3) - per_edge).abs() < 1e-12);
        assert!((load(&s[3], LinkKind::NicRx, 11) - per_edge).abs() < 1e-12);
        assert_eq!(load(&s[3], LinkKind::NicTx, 4), 0.0);
        // Every GPU sends once per ring over NVLink (7 ring edges and the PXN hop in each node).
        assert!((load(&s[3], LinkKind::NvlUp, 2) - per_edge).abs() < 1e-12);
    }

    #[test]
    fn alltoall_across_nodes_loads_each_nic_with_every_remote_pair_of_its_rail() {
        let all: Vec<u32> = (0..16).collect();
        let s = ctx_for(2, &all, |c| shape(c, CollOp::AllToAll, 0, Algo::P2p));
        // NIC 5 of node 0 carries the 8 GPUs of node 0 to GPU 5 of node 1.
        assert_eq!(load(&s[0], LinkKind::NicTx, 5), 8.0);
        // GPU 0 sends to 7 local peers and, through PXN, to 7 proxies.
        assert_eq!(load(&s[0], LinkKind::NvlUp, 0), 14.0);
    }
}
