//! Collectives through the whole stack: `phantom run -n N` starts the shared simulator and N rank processes of
//! tests/programs/nccl_bench.cu (the project's nccl-tests-like benchmark, compiled with NVIDIA's nvcc against
//! NVIDIA's nccl.h), each linked against the staged libcudart.so.13 and libnccl.so.2, in deterministic host
//! time on the `dgx-h100` preset.
//!
//! Every expected figure is derived from the preset's parameters as the network model uses them
//! (docs/network.md; the same derivations, per collective, are checked without processes in
//! sim-core/tests/net.rs):
//! - NVLink: 450 GB/s per GPU and direction × `nvlink_efficiency` 20.6/25 = 370.8 GB/s; NVLS at
//!   `nvls_efficiency` 0.85 of that;
//! - NIC: 400 Gb/s = 50 GB/s × `nic_efficiency` 0.96 = 48 GB/s, one per GPU (8 rails);
//! - latencies: NCCL's tuning table (base 6.6 µs LL / 8.4 µs Simple, NVLink hop 0.6 µs LL / 3.4 µs Simple,
//!   NVLS hop 25 µs).
//!
//! The benchmark times `iters` = 20 back-to-back collectives on one stream with the host clock around them
//! and the final synchronisation: each collective starts when the previous one ends, so the time per
//! iteration is the collective's own time plus 1/20 of the first one's launch (2 µs call + 2 µs launch
//! latency = 0.2 µs per iteration). busbw follows nccl-tests: algbw × 2(n−1)/n for all-reduce, × (n−1)/n for
//! alltoall whose size is the whole receive buffer.

use phantom_tests::{compile, phantom_bin, run_with_timeout, Output};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn bench() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("nccl_bench.cu"))
}

/// Runs `phantom run -n <ranks> -- nccl_bench <args>` with extra environment; returns its output.
fn run(ranks: u32, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_listening("unix", ranks, env, args)
}

/// `run` with the simulator listening on `listen` (`unix` or `tcp:HOST:PORT`).
fn run_listening(listen: &str, ranks: u32, env: &[(&str, &str)], args: &[&str]) -> Output {
    let phantom = phantom_bin();
    let dir = tempdir();
    let mut cmd = Command::new(phantom);
    cmd.current_dir(&dir)
        .args(["run", "-n", &ranks.to_string(), "--cluster", "dgx-h100", "--host-time", "deterministic"])
        .args(["--listen", listen, "--"])
        .arg(bench())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!("phantom-coll-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One result line of nccl_bench: size count type redop root time_us algbw busbw (with a leading `comm`
/// column when there are several communicators).
#[derive(Debug)]
struct Row {
    comm: Option<u32>,
    size: u64,
    time_us: f64,
    busbw: f64,
}

fn rows(out: &Output) -> Vec<Row> {
    out.stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (comm, f) = if f.len() == 9 { (Some(f[0].parse().unwrap()), &f[1..]) } else { (None, &f[..]) };
            Row { comm, size: f[0].parse().unwrap(), time_us: f[5].parse().unwrap(), busbw: f[7].parse().unwrap() }
        })
        .collect()
}

fn only(out: &Output) -> Row {
    let mut r = rows(out);
    assert_eq!(r.len(), 1, "{}", out.describe());
    r.remove(0)
}

/// `got` is within `tol` (a fraction) of `want`.
fn assert_near(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= want * tol, "{what}: got {got}, expected {want} ± {:.1} %", tol * 100.0);
}

const GIB: &str = "1G";

#[test]
fn one_node_ring_allreduce_of_1_gib_is_360_gb_s() {
    // NCCL_ALGO=Ring, 8 ranks: Simple. Every GPU sends and receives 2(n−1)/n = 1.75 × 1 GiB = 1.879e9 B over
    // its NVLink at 370.8 GB/s = 5067.6 µs, after NCCL's Simple ring latency 8.4 + 14 × 3.4 = 56.0 µs:
    // 5123.6 µs, + 0.2 µs of launch per iteration. busbw = 1.879e9 B / 5123.8 µs = 366.7 GB/s.
    let r = only(&run(8, &[("NCCL_ALGO", "Ring")], &["-o", "allreduce", "-b", GIB, "-e", GIB]));
    assert_eq!(r.size, 1 << 30);
    assert_near("time per all-reduce (µs)", r.time_us, 5123.8, 0.001);
    assert_near("bus bandwidth vs the model", r.busbw, 366.7, 0.001);
    assert_near("bus bandwidth vs the published 360 GB/s", r.busbw, 360.0, 0.05);
}

#[test]
fn one_node_nvls_allreduce_of_1_gib_is_480_gb_s() {
    // NCCL_ALGO=NVLS: each GPU reduces 1/8 through the switch and multicasts it, sending and receiving
    // (n+1)/n = 1.125 GiB over NVLink at 0.85 × 370.8 = 315.2 GB/s: 3832.6 µs, after the NVLS hop 25 µs:
    // 3857.6 µs (+ 0.2). busbw = 1.879e9 B / 3857.8 µs = 487.1 GB/s.
    let r = only(&run(8, &[("NCCL_ALGO", "NVLS")], &["-o", "allreduce", "-b", GIB, "-e", GIB]));
    assert_near("time per all-reduce (µs)", r.time_us, 3857.8, 0.001);
    assert_near("bus bandwidth vs the model", r.busbw, 487.1, 0.001);
    assert_near("bus bandwidth vs the published 480 GB/s", r.busbw, 480.0, 0.05);
    // Without NCCL_ALGO NCCL's own model picks NVLS for 1 GiB on one node (25 µs + 1 GiB / 337.7 GB/s beats
    // the ring's 56 µs + 1 GiB / 211.9 GB/s), so the default gives the same figure.
    let d = only(&run(8, &[], &["-o", "allreduce", "-b", GIB, "-e", GIB]));
    assert_eq!(d.time_us, r.time_us);
}

#[test]
fn an_8_byte_allreduce_takes_15_us() {
    // At 8 B latency decides: Ring LL, 6.6 + 14 × 0.6 = 15.0 µs (Tree LL 15.2, NVLS 25); the data time is
    // under 1 ns. + 0.2 µs launch per iteration.
    let r = only(&run(8, &[], &["-o", "allreduce", "-b", "8", "-e", "8"]));
    assert_eq!(r.size, 8);
    assert_near("8-byte all-reduce (µs)", r.time_us, 15.2, 0.01);
    assert!((10.0..=20.0).contains(&r.time_us), "{}", r.time_us);
}

#[test]
fn the_simulator_answers_the_same_over_tcp() {
    // Same 8-byte all-reduce as above (15.2 µs), the ranks reaching the simulator over TCP on loopback.
    let r = only(&run_listening("tcp:127.0.0.1:0", 8, &[], &["-o", "allreduce", "-b", "8", "-e", "8"]));
    assert_near("8-byte all-reduce over TCP (µs)", r.time_us, 15.2, 0.01);
}

#[test]
fn four_nodes_allreduce_of_1_gib_is_370_gb_s() {
    // 32 ranks on 4 nodes, 8 × 400 Gb/s rails each. NCCL's model picks NVLSTree: one flow per rail with 1/8
    // of the buffer; between nodes a double binary tree over the rail's NICs, each tree carrying half.
    // The busiest NIC (node 2: inner in one tree, leaf in the other) sends and receives 2 × 1 GiB / 8 =
    // 268.4 MB at 48 GB/s: 5592.4 µs; latency NVLS hop 25 µs + 2 × log2(4) × 20.9 µs = 108.6 µs:
    // 5701.0 µs (+ 0.2). busbw = 2 × 31/32 × 1 GiB / 5701.2 µs = 364.9 GB/s.
    let r = only(&run(32, &[], &["-o", "allreduce", "-b", GIB, "-e", GIB]));
    assert_near("time per all-reduce (µs)", r.time_us, 5701.2, 0.001);
    assert_near("bus bandwidth vs the model", r.busbw, 364.9, 0.001);
    assert_near("bus bandwidth vs the published 370 GB/s", r.busbw, 370.0, 0.05);
}

#[test]
fn alltoall_runs_at_n_over_n_minus_1_times_the_nic_bandwidth() {
    // n = 8N ranks, nccl-tests size 1 GiB, so S = 1 GiB / n to each peer. With PXN, NIC k of a node carries
    // what the node's 8 GPUs send to GPU k of the N−1 other nodes: 8(N−1) S at 48 GB/s; NVLink carries less
    // (7 S per GPU at 370.8 GB/s). Latency: point-to-point Simple, 8.4 + 14.0 + (n−2) × 1 µs.
    // busbw = (n−1) S / t = (n−1)/n × N/(N−1) × 48 GB/s, i.e. the rule N/(N−1) × NIC bandwidth with
    // nccl-tests' (n−1)/n:
    //   N = 2: 8 S = 536.9 MB / 48 GB/s = 11184.8 µs + 36.4 µs = 11221.2 µs (+ 0.2): busbw 89.7 GB/s
    //          (15/16 × 2 × 48 = 90.0 without the latency);
    //   N = 4: 24 S = 805.3 MB / 48 GB/s = 16777.2 µs + 52.4 µs = 16829.6 µs (+ 0.2): busbw 61.8 GB/s
    //          (31/32 × 4/3 × 48 = 62.0).
    for (nodes, time_us, busbw) in [(2u32, 11221.4, 89.7), (4, 16829.8, 61.8)] {
        let r = only(&run(8 * nodes, &[], &["-o", "alltoall", "-b", GIB, "-e", GIB]));
        assert_near(&format!("alltoall on {nodes} nodes (µs)"), r.time_us, time_us, 0.001);
        assert_near(&format!("alltoall busbw on {nodes} nodes"), r.busbw, busbw, 0.001);
        let n = f64::from(8 * nodes);
        let rule = f64::from(nodes) / f64::from(nodes - 1) * 48.0 * (n - 1.0) / n;
        assert_near(&format!("alltoall on {nodes} nodes vs N/(N-1) x 48 GB/s x (n-1)/n"), r.busbw, rule, 0.01);
    }
}

#[test]
fn two_communicators_sharing_the_nics_each_get_half() {
    // 16 ranks on 2 nodes. Alone, NVLSTree: per rail 1/8 of the buffer; each NIC sends and receives 1/8 GiB
    // (one tree up, the other down: 2796 µs at 48 GB/s), while NVLS moves 9/8 GiB per GPU at 0.85 × 370.8
    // GB/s = 3832.6 µs, which binds; latency 25 + 2 × log2(2) × 20.9 = 66.8 µs: 3899.4 µs (+ 0.2).
    // With -c 2 the benchmark runs the same all-reduce on two communicators over the same GPUs at once, each
    // on its own stream (timed with its own events). They share every link, so each moves its data at half
    // the rate and only the latency is not doubled: about 66.8 + 2 × 3832.6 µs ≈ 7.73 ms each, twice as long.
    let alone = only(&run(16, &[], &["-o", "allreduce", "-b", GIB, "-e", GIB]));
    let both = rows(&run(16, &[], &["-o", "allreduce", "-b", GIB, "-e", GIB, "-c", "2"]));
    assert_near("all-reduce alone on 2 nodes (µs)", alone.time_us, 3899.6, 0.001);
    assert_eq!(both.len(), 2, "{both:?}");
    let mut seen = HashMap::new();
    for r in &both {
        seen.insert(r.comm.expect("comm column"), r.busbw);
        let ratio = r.time_us / alone.time_us;
        assert_near("time with a second communicator / time alone", ratio, 2.0, 0.02);
        assert_near("bus bandwidth with a second communicator / alone", r.busbw / alone.busbw, 0.5, 0.02);
    }
    assert_eq!(seen.len(), 2);
}
