//! The network model against published NCCL figures (docs/network.md, "Validation").
//!
//! Every expected figure is derived in a comment from the preset's parameters. `dgx-h100`:
//! - NVLink: 450 GB/s per GPU and direction x `nvlink_efficiency` 20.6/25 = **370.8 GB/s**;
//! - NVLS: `nvls_efficiency` **0.85** on top of that;
//! - NIC: 50 GB/s (400 Gb/s) x `nic_efficiency` 0.96 = **48 GB/s**; PCIe: 63 GB/s x 53/63 = 53 GB/s;
//! - latencies: NCCL's tuning table (docs/network.md), which the default link latencies reproduce.
//!
//! Bus bandwidth follows nccl-tests: busbw = algbw x factor, algbw = size / time; factor 2(n-1)/n for
//! all-reduce and (n-1)/n for all-gather, reduce-scatter and alltoall, whose "size" is the whole receive
//! buffer (bytes x n).

use sim_core::config::{ClusterConfig, Fabric, Routing};
use sim_core::net::{Algo, CollOp, Collective, GpuId, Network, Plan, Proto, TransferId, Tuning};
use sim_core::{SimDuration, SimTime};

const GIB: u64 = 1 << 30;
const GB: f64 = 1e9;

fn cluster(preset: &str, nodes: u32) -> ClusterConfig {
    let mut c = ClusterConfig::preset(preset).unwrap();
    c.nodes = nodes;
    c
}

fn network(preset: &str, nodes: u32) -> Network {
    Network::new(&cluster(preset, nodes)).unwrap()
}

fn tuning(algo: Option<&str>, proto: Option<&str>) -> Tuning {
    Tuning::from_env_values(algo, proto).unwrap()
}

fn coll(op: CollOp, bytes: u64, gpus: impl IntoIterator<Item = u32>) -> Collective {
    Collective { op, bytes, gpus: gpus.into_iter().map(GpuId).collect(), root: 0 }
}

/// nccl-tests bus bandwidth (GB/s) of `c` taking `t`.
fn busbw(c: &Collective, t: SimDuration) -> f64 {
    let n = c.gpus.len() as f64;
    let bytes = c.bytes as f64;
    let bus = match c.op {
        CollOp::AllReduce => 2.0 * (n - 1.0) / n * bytes,
        CollOp::AllGather | CollOp::ReduceScatter | CollOp::AllToAll => (n - 1.0) / n * bytes * n,
        _ => bytes,
    };
    bus / t.as_secs_f64() / GB
}

#[track_caller]
fn assert_within(got: f64, want: f64, tolerance: f64) {
    let off = (got - want).abs() / want;
    let (tol, off) = (tolerance * 100.0, off * 100.0);
    assert!(off <= tol, "got {got:.2}, want {want:.2} within {tol:.1}% (off by {off:.2}%)");
}

fn us(t: SimDuration) -> f64 {
    t.as_nanos() as f64 / 1e3
}

/// Runs the network until idle, one event at a time; returns every completion.
fn drain(net: &mut Network) -> Vec<(TransferId, SimTime)> {
    let mut done = vec![];
    while let Some(t) = net.next_event() {
        done.extend(net.advance(t));
    }
    done
}

mod one_node {
    use super::*;

    #[test]
    fn ring_allreduce_of_1_gib_reaches_360_gb_s() {
        // NCCL_ALGO=Ring at 1 GiB: Simple. Every GPU sends and receives 2(n-1)/n = 1.75 x 1 GiB over its
        // NVLink: 1.879e9 B / 370.8 GB/s = 5.0676 ms. Latency: NCCL's Simple ring, 8.4 us + 14 steps x
        // 3.4 us = 56.0 us. busbw = 1.879e9 B / 5.1236 ms = 366.7 GB/s (published: 360-370).
        let net = network("dgx-h100", 1);
        let c = coll(CollOp::AllReduce, GIB, 0..8);
        let p = net.plan(&c, &tuning(Some("Ring"), None));
        assert_eq!((p.algo, p.proto), (Algo::Ring, Proto::Simple));
        assert_within(busbw(&c, p.isolated), 366.7, 0.001);
        assert_within(busbw(&c, p.isolated), 360.0, 0.05);
    }

    #[test]
    fn nvls_allreduce_of_1_gib_reaches_480_gb_s() {
        // NVLS: each GPU reduces 1/8 of the buffer through the switch and multicasts it, so it sends and
        // receives (n+1)/n = 1.125 GiB over NVLink, at 0.85 x 370.8 = 315.2 GB/s: 3.8326 ms. Latency:
        // NCCL's NVLS hop, 25 us. busbw = 1.879e9 B / 3.8576 ms = 487.1 GB/s (published: 475-482).
        let net = network("dgx-h100", 1);
        let c = coll(CollOp::AllReduce, GIB, 0..8);
        let p = net.plan(&c, &tuning(Some("NVLS"), None));
        assert_eq!((p.algo, p.proto, p.channels), (Algo::Nvls, Proto::Simple, 16));
        assert_within(busbw(&c, p.isolated), 487.1, 0.001);
        assert_within(busbw(&c, p.isolated), 480.0, 0.05);
    }

    #[test]
    fn default_is_nvls_for_large_and_ll_for_tiny_allreduces() {
        // NCCL's model at 1 GiB: NVLS 25 us + 1 GiB / (370.8 x 0.85 x 15/16 x 2 x 8/14 = 337.7 GB/s)
        // = 3.2 ms beats Ring Simple's 56 us + 1 GiB / (370.8 x 8/14 = 211.9 GB/s) = 5.1 ms.
        let net = network("dgx-h100", 1);
        let none = Tuning::default();
        let large = net.plan(&coll(CollOp::AllReduce, GIB, 0..8), &none);
        assert_eq!((large.algo, large.proto), (Algo::Nvls, Proto::Simple));
        // At 8 B the latencies decide: Ring LL 6.6 + 14 x 0.6 = 15.0 us, Tree LL 6.8 + 2 x 7 x 0.6 =
        // 15.2 us, NVLS 25 us. NCCL drops to one channel for so few bytes.
        let tiny = net.plan(&coll(CollOp::AllReduce, 8, 0..8), &none);
        assert_eq!((tiny.algo, tiny.proto, tiny.channels), (Algo::Ring, Proto::Ll, 1));
    }

    #[test]
    fn an_8_byte_allreduce_takes_10_to_20_us() {
        // Ring LL latency 15.0 us (above) plus 8 B x 1.75 x 2 (LL flags) / 370.8 GB/s, under 1 ns
        // (rounded up to 1 ns). Published: 12-16 us.
        let p = network("dgx-h100", 1).plan(&coll(CollOp::AllReduce, 8, 0..8), &Tuning::default());
        assert!((10.0..=20.0).contains(&us(p.isolated)), "{}", p.isolated);
        assert!((us(p.isolated) - 15.0).abs() < 0.01, "{}", p.isolated);
    }

    #[test]
    fn ll_is_capped_at_nccls_ll_bandwidth() {
        // NCCL_PROTO=LL at 1 GiB: LL doubles the bytes (370.8 / 2 = 185.4 GB/s of bus bandwidth) and NCCL
        // caps LL at 141 GB/s on one Hopper node. 1.879e9 B / 141 GB/s = 13.33 ms + 15 us: busbw 140.8.
        let c = coll(CollOp::AllReduce, GIB, 0..8);
        let p = network("dgx-h100", 1).plan(&c, &tuning(Some("ring"), Some("ll")));
        assert_eq!(p.proto, Proto::Ll);
        assert_within(busbw(&c, p.isolated), 140.8, 0.002);
    }

    #[test]
    fn a100_has_no_nvls_and_b200_has() {
        // DGX A100: 12 NVLinks x 25 GB/s x 20/25 = 240 GB/s; ring Simple: 1.879e9 B / 240 GB/s = 7.829 ms
        // + 56 us: busbw 238.3 GB/s.
        let c = coll(CollOp::AllReduce, GIB, 0..8);
        let a100 = network("dgx-a100", 1).plan(&c, &Tuning::default());
        assert_eq!((a100.algo, a100.proto), (Algo::Ring, Proto::Simple));
        assert_within(busbw(&c, a100.isolated), 238.3, 0.001);
        // DGX B200: 900 GB/s x 40.1/50 = 721.8 GB/s, NVLS at 0.74: 1.125 GiB / 534.1 GB/s = 2.2616 ms
        // + 25 us: busbw 821.8 GB/s.
        let b200 = network("dgx-b200", 1).plan(&c, &Tuning::default());
        assert_eq!((b200.algo, b200.channels), (Algo::Nvls, 24));
        assert_within(busbw(&c, b200.isolated), 821.8, 0.001);
    }
}

mod several_nodes {
    use super::*;

    #[test]
    fn allreduce_on_4_nodes_reaches_370_gb_s() {
        // 32 ranks, 8 x 400 Gb/s rails per node. NCCL's model picks NVLSTree: 108.6 us + 1 GiB /
        // (min(NVLS 591, NICs 8 x 48 = 384) x 32/62 = 198.2 GB/s) = 5.53 ms, ahead of Ring Simple
        // (283 us x 1.4 + 1 GiB / 191.4 GB/s = 6.0 ms) and Tree (120 us + 1 GiB / 170.6 GB/s = 6.4 ms).
        //
        // Flows: one per rail, 1/8 of the buffer each. Between nodes, a double binary tree over the rail's
        // NICs, each tree carrying half: node 2 is inner in tree 0 (children 1 and 3, parent 0) and a leaf
        // in tree 1, so its NIC receives 3 + 1 halves = 2 x (1 GiB / 8) = 268.4 MB, and sends as much:
        // 268.4 MB / 48 GB/s = 5.5924 ms. (NVLink: 9/8 GiB / 0.85 per GPU at 370.8 GB/s = 3.83 ms; PCIe:
        // 268.4 MB / 53 GB/s = 5.06 ms; neither binds.) Latency: NVLS hop 25 us + 2 x log2(4) x 20.9 us
        // (NCCL's NVLSTree network hop) = 108.6 us. busbw = 2 x 31/32 x 1 GiB / 5.7010 ms = 364.9 GB/s
        // (published: 365-390).
        let net = network("dgx-h100", 4);
        let c = coll(CollOp::AllReduce, GIB, 0..32);
        let p = net.plan(&c, &Tuning::default());
        assert_eq!((p.algo, p.proto), (Algo::NvlsTree, Proto::Simple));
        assert_within(busbw(&c, p.isolated), 364.9, 0.001);
        assert_within(busbw(&c, p.isolated), 370.0, 0.05);
    }

    #[test]
    fn ring_allreduce_on_4_nodes() {
        // NCCL_ALGO=Ring: every GPU still sends 2 x 31/32 GiB over NVLink once per ring (7 ring edges and
        // the PXN hop to the rail's GPU per node), 2.0803e9 B / 370.8 GB/s = 5.6103 ms; each NIC carries
        // 1/8 of that (5.42 ms at 48 GB/s). NCCL's latency: 8.4 + 56 x 3.4 + 6 x 14.0 = 282.8 us, x 1.4
        // (its ring plateau factor) = 395.9 us. busbw = 2.0803e9 B / 6.0062 ms = 346.4 GB/s.
        let c = coll(CollOp::AllReduce, GIB, 0..32);
        let p = network("dgx-h100", 4).plan(&c, &tuning(Some("ring"), Some("simple")));
        assert_eq!(p.algo, Algo::Ring);
        assert_within(busbw(&c, p.isolated), 346.4, 0.001);
    }

    /// AllToAll on `nodes` DGX H100s, nccl-tests size 1 GiB.
    fn alltoall(nodes: u32) -> (Collective, Plan) {
        let n = nodes * 8;
        let c = coll(CollOp::AllToAll, GIB / u64::from(n), 0..n);
        let p = network("dgx-h100", nodes).plan(&c, &Tuning::default());
        (c, p)
    }

    #[test]
    fn alltoall_reaches_n_over_n_minus_1_times_the_nic_bandwidth() {
        // n = 8N ranks, S = 1 GiB / n to each peer. With PXN, NIC k of a node carries what all 8 GPUs of
        // the node send to GPU k of the N-1 other nodes: 8(N-1) S at 48 GB/s. (NVLink: 7N S per GPU at
        // 370.8 GB/s, far less.) Latency: P2P Simple, 8.4 + 14.0 (network hop) + (n-2) x 1 us.
        // busbw = (n-1) S / t ~ (n-1)/n x N/(N-1) x 48 GB/s: the published rule N/(N-1) x NIC bandwidth
        // times nccl-tests' (n-1)/n.
        //   N = 2: S = 64 MiB, 11.1848 ms + 36.4 us; busbw 89.7 GB/s (15/16 x 2 x 48 = 90.0).
        //   N = 4: S = 32 MiB, 16.7772 ms + 52.4 us; busbw 61.8 GB/s (31/32 x 4/3 x 48 = 62.0).
        for (nodes, model) in [(2, 89.7), (4, 61.8)] {
            let (c, p) = alltoall(nodes);
            assert_eq!((p.algo, p.proto), (Algo::P2p, Proto::Simple));
            let got = busbw(&c, p.isolated);
            assert_within(got, model, 0.002);
            let n = f64::from(nodes * 8);
            let rule = f64::from(nodes) / f64::from(nodes - 1);
            assert_within(got, (n - 1.0) / n * rule * 48.0, 0.01);
            // Against the rule itself with the low end of the published 46-49 GB/s per NIC.
            assert_within(got, rule * 46.0, 0.05);
        }
    }

    #[test]
    fn any_number_of_nodes() {
        // 64 nodes: two leaves per rail, so trees between the halves cross spines (1:1, ECMP). The result
        // stays NIC-bound near the 4-node figure (364.9 GB/s; deeper trees add latency).
        let c = coll(CollOp::AllReduce, GIB, 0..512);
        let p = network("dgx-h100", 64).plan(&c, &Tuning::default());
        assert_eq!(p.algo, Algo::NvlsTree);
        assert_within(busbw(&c, p.isolated), 364.9, 0.03);
        // PHANTOM_NODES sizes the fabric.
        let cfg = ClusterConfig::from_env_with(|k| (k == "PHANTOM_NODES").then(|| "3".to_string())).unwrap();
        let p = Network::new(&cfg).unwrap().plan(&coll(CollOp::AllGather, 1 << 20, 0..24), &Tuning::default());
        assert!(p.isolated > SimDuration::ZERO);
    }
}

mod contention {
    use super::*;

    /// Starts every collective at time 0 on a fresh network of `cfg`; returns each one's time.
    fn together(cfg: &ClusterConfig, colls: &[Collective], t: &Tuning) -> Vec<SimDuration> {
        let mut net = Network::new(cfg).unwrap();
        let ids: Vec<TransferId> = colls.iter().map(|c| net.start(SimTime::ZERO, c, t)).collect();
        let done = drain(&mut net);
        ids.iter().map(|id| done.iter().find(|d| d.0 == *id).unwrap().1 - SimTime::ZERO).collect()
    }

    fn ratio(a: SimDuration, b: SimDuration) -> f64 {
        a.as_nanos() as f64 / b.as_nanos() as f64
    }

    #[test]
    fn two_allreduces_on_the_same_nics_each_take_twice_as_long() {
        // Two communicators over the same 16 GPUs of 2 nodes, 1 GiB each, started together: they share every
        // link, so each moves its data at half the rate; only the latency (66.8 us of ~3.9 ms) is not
        // doubled.
        let cfg = cluster("dgx-h100", 2);
        let net = Network::new(&cfg).unwrap();
        let c = coll(CollOp::AllReduce, GIB, 0..16);
        let alone = net.plan(&c, &Tuning::default()).isolated;
        let times = together(&cfg, &[c.clone(), c], &Tuning::default());
        for t in times {
            let r = ratio(t, alone);
            assert!((1.95..=2.0).contains(&r), "{r}");
        }
        // The same with rings.
        let ring = tuning(Some("ring"), Some("simple"));
        let c = coll(CollOp::AllReduce, GIB, 0..16);
        let alone = net.plan(&c, &ring).isolated;
        for t in together(&cfg, &[c.clone(), c], &ring) {
            let r = ratio(t, alone);
            assert!((1.9..=2.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn two_alltoalls_on_the_same_nics_each_take_twice_as_long() {
        let cfg = cluster("dgx-h100", 2);
        let c = coll(CollOp::AllToAll, GIB / 16, 0..16);
        let alone = Network::new(&cfg).unwrap().plan(&c, &Tuning::default()).isolated;
        for t in together(&cfg, &[c.clone(), c], &Tuning::default()) {
            let r = ratio(t, alone);
            assert!((1.99..=2.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn gpus_sharing_a_nic_share_its_bandwidth() {
        // 4 NICs per node: GPUs 0 and 1 share NIC 0. Two 2-rank all-reduces, GPU 0 of both nodes and GPU 1
        // of both nodes, each bound by the NIC (48 GB/s; PCIe gives 53): together each gets half of it.
        let mut cfg = cluster("dgx-h100", 2);
        cfg.network.nics_per_node = 4;
        let (a, b) = (coll(CollOp::AllReduce, GIB, [0, 8]), coll(CollOp::AllReduce, GIB, [1, 9]));
        let alone = Network::new(&cfg).unwrap().plan(&a, &Tuning::default()).isolated;
        for t in together(&cfg, &[a.clone(), b.clone()], &Tuning::default()) {
            let r = ratio(t, alone);
            assert!((1.99..=2.0).contains(&r), "{r}");
        }
        // With a NIC per GPU they do not meet.
        for t in together(&cluster("dgx-h100", 2), &[a, b], &Tuning::default()) {
            assert_eq!(t, alone);
        }
    }

    #[test]
    fn a_later_collective_slows_a_running_one_from_its_start() {
        // B (same GPUs) starts when A has moved half its data; B's data starts moving after its latency L,
        // during which A still runs alone. From then on they share every link, so A's remaining
        // data/2 - L takes twice as long: A ends at L + data/2 + L + 2 (data/2 - L) = 1.5 x data.
        let mut net = network("dgx-h100", 2);
        let t = Tuning::default();
        let c = coll(CollOp::AllToAll, GIB / 16, 0..16);
        let alone = net.plan(&c, &t).isolated;
        let latency = SimDuration::from_nanos(36_400); // P2P Simple: 8.4 + 14.0 + 14 x 1 us
        let data = alone.as_nanos() - latency.as_nanos();
        let a = net.start(SimTime::ZERO, &c, &t);
        let half = SimTime::ZERO + latency + SimDuration::from_nanos(data / 2);
        assert!(net.advance(half).is_empty());
        assert!(net.next_event().is_some());
        let b = net.start(half, &c, &t);
        let done = drain(&mut net);
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![a, b]);
        let want_a = 1.5 * data as f64;
        assert_within((done[0].1 - SimTime::ZERO).as_nanos() as f64, want_a, 0.001);
        assert!(done[0].1 <= done[1].1);
        assert_eq!(net.next_event(), None);
    }
}

mod fabric {
    use super::*;

    /// AllToAll of 1 GiB on 4 nodes, one node per leaf of a plain leaf-spine fabric.
    fn leaf_spine_alltoall(oversubscription: f64, routing: Routing) -> f64 {
        let mut cfg = cluster("dgx-h100", 4);
        cfg.network.fabric = Fabric::LeafSpine;
        cfg.network.nics_per_leaf = 8;
        cfg.network.oversubscription = oversubscription;
        cfg.network.routing = routing;
        let c = coll(CollOp::AllToAll, GIB / 32, 0..32);
        busbw(&c, Network::new(&cfg).unwrap().plan(&c, &Tuning::default()).isolated)
    }

    #[test]
    fn oversubscription_divides_cross_leaf_bandwidth() {
        // All of a node's traffic to other nodes leaves its leaf: 8 GPUs x 24 S = 192 S over uplinks of
        // 8 x 48 GB/s / oversubscription; each NIC sends 24 S at 48 GB/s. At 1:1 both take 24 S / 48 GB/s,
        // as on the rail-optimised fabric (61.8 GB/s); at 1:2 and 1:4 the uplinks take 2x and 4x longer.
        let full = leaf_spine_alltoall(1.0, Routing::Adaptive);
        assert_within(full, 61.8, 0.002);
        assert_within(leaf_spine_alltoall(2.0, Routing::Adaptive), full / 2.0, 0.01);
        assert_within(leaf_spine_alltoall(4.0, Routing::Adaptive), full / 4.0, 0.01);
        // ECMP hashes each connection onto one uplink: collisions make it slower, never faster.
        for os in [1.0, 2.0, 4.0] {
            assert!(leaf_spine_alltoall(os, Routing::Ecmp) <= leaf_spine_alltoall(os, Routing::Adaptive) * 1.0001);
        }
    }

    #[test]
    fn pcie_only_nodes() {
        // Without NVLink, GPUs of a node talk over PCIe (53 GB/s); no NVLS. Ring Simple over PCIe: 1.879e9 B
        // / 53 GB/s = 35.45 ms; latency 8.4 + 14 x 5.7 us (PCIe Simple hop) = 88.2 us: busbw 52.9 GB/s.
        let mut cfg = cluster("dgx-h100", 1);
        cfg.network.nvlink_bytes_per_s = 0.0;
        cfg.network.nvls = false;
        let c = coll(CollOp::AllReduce, GIB, 0..8);
        let p = Network::new(&cfg).unwrap().plan(&c, &Tuning::default());
        assert_eq!((p.algo, p.proto), (Algo::Ring, Proto::Simple));
        assert_within(busbw(&c, p.isolated), 52.9, 0.002);
    }
}

mod tuning_env {
    use super::*;

    #[test]
    fn nccl_algo_and_proto_are_honoured() {
        let one = network("dgx-h100", 1);
        let four = network("dgx-h100", 4);
        let ar = |n: u32, bytes| coll(CollOp::AllReduce, bytes, 0..n);
        let pick = |net: &Network, c: &Collective, a: Option<&str>, p: Option<&str>| {
            let plan = net.plan(c, &tuning(a, p));
            (plan.algo, plan.proto)
        };
        // Excluding NVLS leaves NCCL's next best for 1 GiB on one node: Ring (211.9 GB/s of algorithm
        // bandwidth against Tree's 0.5 x 0.92 x 370.8 = 170.6).
        assert_eq!(pick(&one, &ar(8, GIB), Some("^nvls"), None), (Algo::Ring, Proto::Simple));
        assert_eq!(pick(&one, &ar(8, GIB), Some("tree"), Some("LL128")), (Algo::Tree, Proto::Ll128));
        assert_eq!(pick(&four, &ar(32, GIB), Some("Tree"), None), (Algo::Tree, Proto::Simple));
        // Per collective: all-gather on ring, all-reduce on tree.
        let t = Some("ring;allreduce:tree");
        assert_eq!(pick(&four, &ar(32, 8), t, None).0, Algo::Tree);
        assert_eq!(pick(&four, &coll(CollOp::AllGather, 8, 0..32), t, None).0, Algo::Ring);
        // NVLS cannot span nodes without CollNet (NCCL would fail the call): the restriction is dropped.
        assert_eq!(pick(&four, &ar(32, GIB), Some("nvls"), None), (Algo::NvlsTree, Proto::Simple));
        // Broadcast and reduce only have rings.
        assert_eq!(pick(&four, &coll(CollOp::Broadcast, GIB, 0..32), Some("tree"), None).0, Algo::Ring);
        // AllToAll is point to point whatever NCCL_ALGO says.
        assert_eq!(pick(&four, &coll(CollOp::AllToAll, 8, 0..32), Some("ring"), None), (Algo::P2p, Proto::Ll));
    }

    #[test]
    fn pat_for_one_gpu_per_node() {
        // 8 nodes of 1 GPU: NCCL's PAT (8.0 + log2(8) x 14.0 / 3.5 + 8 x 2.8 = 42.4 us) beats the ring
        // (8.4 + 7 x 14.0 = 106.4 us) for a small all-gather.
        let mut cfg = cluster("dgx-h100", 8);
        cfg.gpus_per_node = 1;
        cfg.network.nics_per_node = 1;
        let net = Network::new(&cfg).unwrap();
        let p = net.plan(&coll(CollOp::AllGather, 4096, 0..8), &tuning(None, Some("simple")));
        assert_eq!(p.algo, Algo::Pat);
    }
}

mod accounting {
    use super::*;

    #[test]
    fn bytes_on_links_follow_the_algorithm() {
        // Ring Simple on one node, 1 MiB: 8 GPUs each send 1.75 MiB, crossing their NVLink up and the next
        // GPU's NVLink down: 8 x 1.75 x 2 = 28 MiB on links.
        let mut net = network("dgx-h100", 1);
        let c = coll(CollOp::AllReduce, 1 << 20, 0..8);
        net.start(SimTime::ZERO, &c, &tuning(Some("ring"), Some("simple")));
        assert_eq!(drain(&mut net).len(), 1);
        let s = net.stats();
        assert_eq!((s.bytes_on_links, s.transfers_started, s.transfers_completed, s.events), (28 << 20, 1, 1, 2));
    }

    #[test]
    fn completions_come_in_time_order_and_only_when_due() {
        let mut net = network("dgx-h100", 2);
        let t = Tuning::default();
        let big = net.start(SimTime::ZERO, &coll(CollOp::AllReduce, GIB, 0..16), &t);
        let small = net.start(SimTime::from_nanos(1_000), &coll(CollOp::AllReduce, 8, 0..8), &t);
        let p2p = net.start(SimTime::from_nanos(2_000), &coll(CollOp::SendRecv, 1 << 20, [3, 12]), &t);
        let first = net.next_event().unwrap();
        assert!(net.advance(SimTime::from_nanos(first.as_nanos() - 1)).is_empty());
        let done = drain(&mut net);
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![small, p2p, big]);
        assert!(done.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
