//! The cluster's links and the routes between GPUs (docs/network.md, "Topology" and "Routing").
//!
//! Every link is directed and has one capacity. Per GPU: NVLink to the NVSwitch and back (the NVSwitch
//! itself is non-blocking), PCIe to its PCIe switch and back. Per NIC: the port to its leaf switch and
//! back. Per leaf and spine: one uplink and one downlink. Leaf switches are non-blocking inside.

use super::GpuId;
use crate::config::{ClusterConfig, Fabric, Routing};
use crate::time::SimDuration;
use std::hash::{BuildHasherDefault, Hasher};

/// The kinds of link; a [`LinkId`] packs the kind with an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// GPU to NVSwitch (index: GPU).
    NvlUp = 0,
    /// NVSwitch to GPU (index: GPU).
    NvlDown = 1,
    /// GPU to its PCIe switch (index: GPU).
    PcieUp = 2,
    /// PCIe switch to GPU (index: GPU).
    PcieDown = 3,
    /// NIC to leaf (index: global NIC).
    NicTx = 4,
    /// Leaf to NIC (index: global NIC).
    NicRx = 5,
    /// Leaf to spine (index: leaf * uplinks + spine).
    LeafUp = 6,
    /// Spine to leaf (index: leaf * uplinks + spine).
    SpineDown = 7,
}

const KINDS: [LinkKind; 8] = [
    LinkKind::NvlUp,
    LinkKind::NvlDown,
    LinkKind::PcieUp,
    LinkKind::PcieDown,
    LinkKind::NicTx,
    LinkKind::NicRx,
    LinkKind::LeafUp,
    LinkKind::SpineDown,
];

/// One directed link of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LinkId(u64);

impl LinkId {
    pub(crate) fn new(kind: LinkKind, index: u64) -> LinkId {
        LinkId((kind as u64) << 56 | index)
    }
    pub(crate) fn kind(self) -> LinkKind {
        KINDS[(self.0 >> 56) as usize]
    }
    pub(crate) fn index(self) -> u64 {
        self.0 & ((1 << 56) - 1)
    }
}

/// A hasher for small integer keys (link ids); deterministic, so maps iterate the same way every run.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by link ids (or other integers) with [`IdHasher`].
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A global NIC index: `node * nics_per_node + k`.
pub(crate) type Nic = u32;

/// The class of a hop, as NCCL's latency table distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    NvLink = 0,
    Pcie = 1,
    Net = 2,
}

/// The cluster's links and how traffic is routed over them.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    gpus_per_node: u32,
    nics_per_node: u32,
    /// Usable NVLink bandwidth per GPU and direction (bytes/s); `None` without NVLink.
    nvlink: Option<f64>,
    pcie: f64,
    nic: f64,
    uplink: f64,
    fabric: Fabric,
    nics_per_leaf: u32,
    /// Uplinks of a leaf, one to each spine.
    uplinks: u32,
    routing: Routing,
    /// Leaves per rail (rail-optimised) or in total (leaf-spine).
    leaves_per_plane: u32,
    nvlink_latency: SimDuration,
    pcie_latency: SimDuration,
    nic_latency: SimDuration,
    switch_latency: SimDuration,
}

impl Topology {
    pub(crate) fn new(cfg: &ClusterConfig) -> Topology {
        let n = &cfg.network;
        let nvlink = (n.nvlink_bytes_per_s > 0.0).then_some(n.nvlink_bytes_per_s * n.nvlink_efficiency);
        let nic = n.nic_bytes_per_s * n.nic_efficiency;
        let uplinks = (f64::from(n.nics_per_leaf) / n.oversubscription).round().max(1.0) as u32;
        let ports = match n.fabric {
            Fabric::RailOptimized => cfg.nodes,
            Fabric::LeafSpine => cfg.nodes * n.nics_per_node,
        };
        Topology {
            gpus_per_node: cfg.gpus_per_node,
            nics_per_node: n.nics_per_node,
            nvlink,
            pcie: n.pcie_bytes_per_s * n.pcie_efficiency,
            nic,
            uplink: f64::from(n.nics_per_leaf) * nic / (n.oversubscription * f64::from(uplinks)),
            fabric: n.fabric,
            nics_per_leaf: n.nics_per_leaf,
            uplinks,
            routing: n.routing,
            leaves_per_plane: ports.div_ceil(n.nics_per_leaf),
            nvlink_latency: SimDuration::from_nanos(n.nvlink_latency_ns),
            pcie_latency: SimDuration::from_nanos(n.pcie_latency_ns),
            nic_latency: SimDuration::from_nanos(n.nic_latency_ns),
            switch_latency: SimDuration::from_nanos(n.switch_latency_ns),
        }
    }

    /// Usable bandwidth of `link` (bytes/s).
    pub(crate) fn capacity(&self, link: LinkId) -> f64 {
        match link.kind() {
            LinkKind::NvlUp | LinkKind::NvlDown => self.nvlink.unwrap_or(self.pcie),
            LinkKind::PcieUp | LinkKind::PcieDown => self.pcie,
            LinkKind::NicTx | LinkKind::NicRx => self.nic,
            LinkKind::LeafUp | LinkKind::SpineDown => self.uplink,
        }
    }

    /// The link's name in traces and summaries (docs/network.md, "Link names"): `node0 gpu3 → nvswitch`,
    /// `node0 nvswitch → gpu3`, `node0 gpu3 → pcie`, `node0 pcie → gpu3`, `node1 nic2 → leaf2`,
    /// `leaf2 → node1 nic2`, `leaf2 → spine0`, `spine0 → leaf2`. GPUs and NICs are numbered inside their
    /// node, leaves and spines across the fabric.
    pub(crate) fn link_name(&self, link: LinkId) -> String {
        let i = link.index();
        let gpu = || (i / u64::from(self.gpus_per_node), i % u64::from(self.gpus_per_node));
        let nic = || (i / u64::from(self.nics_per_node), i % u64::from(self.nics_per_node));
        let leaf = || self.leaf_of(i as Nic);
        let up = u64::from(self.uplinks);
        match link.kind() {
            LinkKind::NvlUp => format!("node{} gpu{} → nvswitch", gpu().0, gpu().1),
            LinkKind::NvlDown => format!("node{} nvswitch → gpu{}", gpu().0, gpu().1),
            LinkKind::PcieUp => format!("node{} gpu{} → pcie", gpu().0, gpu().1),
            LinkKind::PcieDown => format!("node{} pcie → gpu{}", gpu().0, gpu().1),
            LinkKind::NicTx => format!("node{} nic{} → leaf{}", nic().0, nic().1, leaf()),
            LinkKind::NicRx => format!("leaf{} → node{} nic{}", leaf(), nic().0, nic().1),
            LinkKind::LeafUp => format!("leaf{} → spine{}", i / up, i % up),
            LinkKind::SpineDown => format!("spine{} → leaf{}", i % up, i / up),
        }
    }

    pub(crate) fn has_nvlink(&self) -> bool {
        self.nvlink.is_some()
    }
    /// Usable bandwidth between a GPU and the other GPUs of its node (bytes/s).
    pub(crate) fn intra_bandwidth(&self) -> f64 {
        self.nvlink.unwrap_or(self.pcie)
    }
    /// Usable bandwidth of one NIC (bytes/s).
    pub(crate) fn nic_bandwidth(&self) -> f64 {
        self.nic
    }
    pub(crate) fn node_of(&self, g: GpuId) -> u32 {
        g.0 / self.gpus_per_node
    }
    fn local_of(&self, g: GpuId) -> u32 {
        g.0 % self.gpus_per_node
    }
    /// The NIC GPU `g` is attached to.
    pub(crate) fn nic_of(&self, g: GpuId) -> Nic {
        let k = self.local_of(g) * self.nics_per_node / self.gpus_per_node;
        self.node_of(g) * self.nics_per_node + k
    }
    /// The first GPU attached to `nic` (the proxy GPU of PXN).
    fn nic_owner(&self, nic: Nic) -> GpuId {
        let (node, k) = (nic / self.nics_per_node, nic % self.nics_per_node);
        let local = (k * self.gpus_per_node).div_ceil(self.nics_per_node);
        GpuId(node * self.gpus_per_node + local)
    }
    /// NIC `rail` of `node`.
    fn nic_at(&self, node: u32, rail: u32) -> Nic {
        node * self.nics_per_node + rail % self.nics_per_node
    }
    fn leaf_of(&self, nic: Nic) -> u32 {
        match self.fabric {
            Fabric::RailOptimized => {
                let (node, rail) = (nic / self.nics_per_node, nic % self.nics_per_node);
                rail * self.leaves_per_plane + node / self.nics_per_leaf
            }
            Fabric::LeafSpine => nic / self.nics_per_leaf,
        }
    }
    /// Whether a sender reaches a NIC of another rail through NVLink and that rail's GPU (NCCL's PXN, on by
    /// default) rather than through its own NIC.
    fn pxn(&self) -> bool {
        self.fabric == Fabric::RailOptimized && self.has_nvlink()
    }
    /// The NIC a GPU on `src_node` sends through to reach GPU `dst` (PXN: the one on `dst`'s rail).
    pub(crate) fn send_nic(&self, src: GpuId, dst: GpuId) -> Nic {
        if self.pxn() {
            self.nic_at(self.node_of(src), self.nic_of(dst) % self.nics_per_node)
        } else {
            self.nic_of(src)
        }
    }

    /// Latency of one LL-protocol hop of class `hop`; network hops cross `switches` switches.
    pub(crate) fn hop_latency(&self, hop: Hop, switches: u32) -> SimDuration {
        match hop {
            Hop::NvLink => self.nvlink_latency,
            Hop::Pcie => self.pcie_latency,
            Hop::Net => self.nic_latency + self.switch_latency.saturating_mul(u64::from(switches)),
        }
    }
    /// Switches between two NICs: 1 under one leaf, 3 through a spine.
    pub(crate) fn switches_between(&self, a: Nic, b: Nic) -> u32 {
        if self.leaf_of(a) == self.leaf_of(b) {
            1
        } else {
            3
        }
    }

    /// Calls `add` for every link from GPU `src` to GPU `dst` with the fraction of the traffic it carries
    /// (1 except over spines with adaptive routing); nothing when they are the same GPU. A path between
    /// nodes leaves through [`Topology::send_nic`] and arrives through `dst`'s NIC.
    pub(crate) fn route(&self, src: GpuId, dst: GpuId, salt: u64, add: &mut impl FnMut(LinkId, f64)) {
        if src == dst {
            return;
        }
        if self.node_of(src) == self.node_of(dst) {
            self.route_intra(src, dst, add);
        } else {
            self.route_net(src, self.send_nic(src, dst), self.nic_of(dst), dst, salt, add);
        }
    }

    /// GPU to GPU inside a node: through the NVSwitch, or through PCIe without NVLink.
    pub(crate) fn route_intra(&self, src: GpuId, dst: GpuId, add: &mut impl FnMut(LinkId, f64)) {
        let (up, down) = if self.has_nvlink() {
            (LinkKind::NvlUp, LinkKind::NvlDown)
        } else {
            (LinkKind::PcieUp, LinkKind::PcieDown)
        };
        add(LinkId::new(up, src.0.into()), 1.0);
        add(LinkId::new(down, dst.0.into()), 1.0);
    }

    /// GPU `src` to GPU `dst` on another node, leaving through `src_nic` and arriving through `dst_nic`.
    /// A sender not attached to `src_nic` first crosses NVLink to the NIC's GPU (PXN) when there is NVLink.
    pub(crate) fn route_net(
        &self,
        src: GpuId,
        src_nic: Nic,
        dst_nic: Nic,
        dst: GpuId,
        salt: u64,
        add: &mut impl FnMut(LinkId, f64),
    ) {
        let sender = if self.nic_of(src) != src_nic && self.has_nvlink() {
            let proxy = self.nic_owner(src_nic);
            add(LinkId::new(LinkKind::NvlUp, src.0.into()), 1.0);
            add(LinkId::new(LinkKind::NvlDown, proxy.0.into()), 1.0);
            proxy
        } else {
            src
        };
        add(LinkId::new(LinkKind::PcieUp, sender.0.into()), 1.0);
        add(LinkId::new(LinkKind::NicTx, src_nic.into()), 1.0);
        let (a, b) = (self.leaf_of(src_nic), self.leaf_of(dst_nic));
        if a != b {
            let uplinks = u64::from(self.uplinks);
            let mut via = |spine: u64, share: f64| {
                add(LinkId::new(LinkKind::LeafUp, u64::from(a) * uplinks + spine), share);
                add(LinkId::new(LinkKind::SpineDown, u64::from(b) * uplinks + spine), share);
            };
            match self.routing {
                Routing::Ecmp => via(u64::from(ecmp_hash(src_nic, dst_nic, salt) % self.uplinks), 1.0),
                Routing::Adaptive => (0..uplinks).for_each(|spine| via(spine, 1.0 / uplinks as f64)),
            }
        }
        add(LinkId::new(LinkKind::NicRx, dst_nic.into()), 1.0);
        add(LinkId::new(LinkKind::PcieDown, dst.0.into()), 1.0);
    }
}

/// ECMP: the spine a connection between two NICs is hashed onto (deterministic; `salt` tells connections
/// between the same NICs apart).
fn ecmp_hash(a: Nic, b: Nic, salt: u64) -> u32 {
    let mut x = (u64::from(a) << 32 | u64::from(b)) ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;

    fn topo(edit: impl FnOnce(&mut ClusterConfig)) -> Topology {
        let mut cfg = ClusterConfig::preset("dgx-h100").unwrap();
        edit(&mut cfg);
        Topology::new(&cfg)
    }

    fn path(t: &Topology, a: u32, b: u32) -> Vec<(LinkKind, u64)> {
        let mut v = vec![];
        t.route(GpuId(a), GpuId(b), 0, &mut |l, f| {
            assert_eq!(f, 1.0);
            v.push((l.kind(), l.index()))
        });
        v
    }

    #[test]
    fn intra_node_paths_use_nvlink() {
        let t = topo(|_| {});
        assert_eq!(path(&t, 1, 6), vec![(LinkKind::NvlUp, 1), (LinkKind::NvlDown, 6)]);
        assert!(path(&t, 3, 3).is_empty());
        let t = topo(|c| c.network.nvlink_bytes_per_s = 0.0);
        assert_eq!(path(&t, 1, 6), vec![(LinkKind::PcieUp, 1), (LinkKind::PcieDown, 6)]);
    }

    #[test]
    fn rail_optimised_paths_stay_on_the_destination_rail() {
        let t = topo(|c| c.nodes = 4);
        use LinkKind::*;
        // Same rail: GPU 2 of node 0 to GPU 2 of node 1, one leaf.
        assert_eq!(path(&t, 2, 10), vec![(PcieUp, 2), (NicTx, 2), (NicRx, 10), (PcieDown, 10)]);
        // Other rail: PXN over NVLink to GPU 5 of node 0, then rail 5.
        assert_eq!(
            path(&t, 2, 13),
            vec![(NvlUp, 2), (NvlDown, 5), (PcieUp, 5), (NicTx, 5), (NicRx, 13), (PcieDown, 13)]
        );
    }

    #[test]
    fn shared_nics_and_spines() {
        // 2 GPUs per NIC; 1 node per leaf so every inter-node path crosses a spine.
        let t = topo(|c| {
            c.nodes = 2;
            c.network.nics_per_node = 4;
            c.network.nics_per_leaf = 1;
            c.network.fabric = Fabric::LeafSpine;
        });
        assert_eq!((t.nic_of(GpuId(0)), t.nic_of(GpuId(1)), t.nic_of(GpuId(7)), t.nic_of(GpuId(9))), (0, 0, 3, 4));
        assert_eq!(t.nic_owner(3), GpuId(6));
        let p = path(&t, 1, 9);
        let kinds: Vec<LinkKind> = p.iter().map(|x| x.0).collect();
        use LinkKind::*;
        assert_eq!(kinds, vec![PcieUp, NicTx, LeafUp, SpineDown, NicRx, PcieDown]);
        assert_eq!(t.switches_between(0, 4), 3);
        assert_eq!(t.switches_between(0, 1), 3);
        // One NIC port per leaf, so one uplink (one spine) of the port's 48 GB/s.
        assert_eq!(t.uplinks, 1);
        assert_eq!(t.capacity(LinkId::new(LeafUp, 0)), t.nic_bandwidth());
        let t = topo(|c| {
            c.network.nics_per_leaf = 12;
            c.network.oversubscription = 5.0;
        });
        // 12 / 5 rounds to 2 uplinks sharing 12 x 48 / 5 GB/s.
        assert_eq!(t.uplinks, 2);
        assert!((t.capacity(LinkId::new(LeafUp, 0)) - 12.0 * t.nic_bandwidth() / 10.0).abs() < 1.0);
    }

    #[test]
    fn link_names() {
        let t = topo(|c| c.nodes = 4);
        let names: Vec<String> = path(&t, 2, 13).into_iter().map(|(k, i)| t.link_name(LinkId::new(k, i))).collect();
        assert_eq!(
            names,
            [
                "node0 gpu2 → nvswitch",
                "node0 nvswitch → gpu5",
                "node0 gpu5 → pcie",
                "node0 nic5 → leaf5",
                "leaf5 → node1 nic5",
                "node1 pcie → gpu5"
            ]
        );
        assert_eq!(t.link_name(LinkId::new(LinkKind::LeafUp, 5 * u64::from(t.uplinks) + 1)), "leaf5 → spine1");
        assert_eq!(t.link_name(LinkId::new(LinkKind::SpineDown, 5 * u64::from(t.uplinks) + 1)), "spine1 → leaf5");
    }

    #[test]
    fn ecmp_picks_one_spine_adaptive_routing_spreads_over_all() {
        let spines = |routing| {
            let t = topo(|c| {
                c.nodes = 2;
                c.network.nics_per_leaf = 4;
                c.network.oversubscription = 2.0;
                c.network.fabric = Fabric::LeafSpine;
                c.network.routing = routing;
            });
            let mut v = vec![];
            t.route(GpuId(0), GpuId(8), 7, &mut |l, f| {
                if l.kind() == LinkKind::LeafUp {
                    v.push(f)
                }
            });
            v
        };
        assert_eq!(spines(Routing::Ecmp), vec![1.0]);
        assert_eq!(spines(Routing::Adaptive), vec![0.5, 0.5]);
    }
}
