//! Wall-clock cost of the network model: `cargo run --release -p sim-core --example net_bench`.
//!
//! Prints figures, asserts nothing (docs/benchmarks.md). Scenarios: one 1024-rank data-parallel all-reduce
//! communicator plus a tensor-parallel all-reduce in each of the 128 nodes, repeated; and a 1024-rank
//! alltoall (first call builds and caches its flow shape).

use sim_core::config::ClusterConfig;
use sim_core::net::{CollOp, Collective, GpuId, Network, Tuning};
use sim_core::SimTime;
use std::time::Instant;

fn coll(op: CollOp, bytes: u64, gpus: impl Iterator<Item = u32>) -> Collective {
    Collective { op, bytes, gpus: gpus.map(GpuId).collect(), root: 0 }
}

fn main() {
    let mut cfg = ClusterConfig::preset("dgx-h100").unwrap();
    cfg.nodes = 128;
    let mut net = Network::new(&cfg).unwrap();
    let t = Tuning::default();
    let dp = coll(CollOp::AllReduce, 256 << 20, 0..1024);
    let tp: Vec<Collective> = (0..128).map(|n| coll(CollOp::AllReduce, 64 << 20, n * 8..n * 8 + 8)).collect();

    let steps = 20;
    // Each step: the TP all-reduces of every node and the DP all-reduce run together.
    let run_steps = |net: &mut Network, mut at: SimTime| {
        let mut started = 0;
        for _ in 0..steps {
            for c in &tp {
                net.start(at, c, &t);
            }
            net.start(at, &dp, &t);
            started += tp.len() + 1;
            while let Some(next) = net.next_event() {
                for (_, end) in net.advance(next) {
                    at = at.max(end);
                }
            }
        }
        (at, started)
    };
    let wall = Instant::now();
    let (mut at, started) = run_steps(&mut net, SimTime::ZERO);
    let s = net.stats();
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "1024 ranks, {steps} steps of 128 TP + 1 DP all-reduces: {started} collectives, {} events in {:.3} s \
         ({:.1} us per collective); simulated {}",
        s.events,
        secs,
        secs * 1e6 / started as f64,
        at - SimTime::ZERO
    );
    // The same with every link's rate recorded (`phantom run --trace`), on a fresh network.
    let mut traced = Network::new(&cfg).unwrap();
    traced.record_links();
    let wall = Instant::now();
    run_steps(&mut traced, SimTime::ZERO);
    let secs = wall.elapsed().as_secs_f64();
    let links = traced.link_usage();
    let samples: usize = links.iter().map(|l| l.samples.len()).sum();
    println!(
        "  the same recording link rates: {:.1} us per collective; {} links, {samples} samples",
        secs * 1e6 / started as f64,
        links.len()
    );

    let a2a = coll(CollOp::AllToAll, 1 << 20, 0..1024);
    for round in 0..3 {
        let wall = Instant::now();
        let p = net.plan(&a2a, &t);
        let secs = wall.elapsed().as_secs_f64();
        println!("1024-rank alltoall plan #{round}: {} {} {} in {secs:.3} s", p.algo, p.proto, p.isolated);
    }
    let wall = Instant::now();
    let big = coll(CollOp::AllReduce, 1 << 30, 0..1024);
    for _ in 0..10 {
        net.start(at, &big, &t);
        while let Some(next) = net.next_event() {
            for (_, end) in net.advance(next) {
                at = at.max(end);
            }
        }
    }
    println!("1024-rank 1 GiB all-reduce, start to finish: {:.3} ms each", wall.elapsed().as_secs_f64() * 100.0);
    let wall = Instant::now();
    for _ in 0..10 {
        net.plan(&big, &t);
    }
    println!("1024-rank 1 GiB all-reduce, plan: {:.3} ms each", wall.elapsed().as_secs_f64() * 100.0);
    let wall = Instant::now();
    let small = coll(CollOp::AllReduce, 8, 0..1024);
    for _ in 0..100 {
        net.start(at, &small, &t);
        while let Some(next) = net.next_event() {
            for (_, end) in net.advance(next) {
                at = at.max(end);
            }
        }
    }
    println!("1024-rank 8 B all-reduce, start to finish: {:.3} ms each", wall.elapsed().as_secs_f64() * 10.0);
}
