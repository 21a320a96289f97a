//! The few lines `phantom run` prints to stderr at the end (never stdout: the program owns it).

use crate::env::Layout;
use sim_core::config::ClusterConfig;
use sim_core::engine::server::RunSummary;
use sim_core::net::LinkUsage;
use sim_core::SimDuration;
use std::time::Duration;

/// Everything the summary reports.
pub struct Summary<'a> {
    pub cluster: &'a ClusterConfig,
    /// `None` without `-n`.
    pub layout: Option<Layout>,
    pub sim: &'a RunSummary,
    pub wall: Duration,
    /// Processes started that exited 0, and that did not.
    pub succeeded: usize,
    pub failed: usize,
    pub exit_code: i32,
    /// Peak resident memory of the processes started.
    pub memory: Memory,
    /// What the ranks' GPUs did (their statistics files).
    pub stats: &'a crate::stats::RunStats,
}

/// Peak resident memory of the processes `phantom run` started (each process's own peak, from `wait4`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Memory {
    pub processes: u64,
    pub total_kib: u64,
    pub max_kib: u64,
}

impl Memory {
    pub fn add(&mut self, max_rss_kib: u64) {
        self.processes += 1;
        self.total_kib += max_rss_kib;
        self.max_kib = self.max_kib.max(max_rss_kib);
    }
}

/// `1 rank`, `2 ranks`.
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn plural(n: impl Into<u64>, word: &str) -> String {
    count(n, word, &format!("{word}s"))
}

/// `1.50 GB` (decimal units, like bandwidths).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// The links that carried traffic, hottest first: by utilisation over the run (bytes / capacity; ties in
/// topology order).
pub fn hottest_links(sim: &RunSummary) -> Vec<&LinkUsage> {
    let mut links: Vec<&LinkUsage> = sim.links.iter().filter(|l| l.bytes > 0).collect();
    links.sort_by(|a, b| (b.bytes as f64 / b.capacity).total_cmp(&(a.bytes as f64 / a.capacity)));
    links
}

/// A link's bytes over what it could have carried in the simulated time (0 when no time passed).
pub fn utilisation(l: &LinkUsage, sim: &RunSummary) -> f64 {
    let t = SimDuration::from_nanos(sim.simulated_end.as_nanos()).as_secs_f64();
    if t > 0.0 { l.bytes as f64 / (l.capacity * t) } else { 0.0 }
}

/// How far the run got in simulated time: the latest of the simulator's last completion and the time every
/// process reached (its clocks and GPU work, from its statistics file), so a run without collectives still
/// reports its length.
pub fn simulated_time_ns(s: &Summary) -> u64 {
    s.stats.procs.iter().map(|p| p.end_ns).max().unwrap_or(0).max(s.sim.simulated_end.as_nanos())
}

pub fn lines(s: &Summary) -> Vec<String> {
    let c = s.cluster;
    let placement = match s.layout {
        Some(l) => format!("{}, {} per node", plural(l.world, "rank"), l.per_node),
        None => "1 process started (it starts its own ranks)".into(),
    };
    let sim = s.sim;
    let mut out = vec![
        format!(
            "phantom: cluster {}: {} x {} GPUs ({}); {placement}",
            c.name,
            plural(c.nodes, "node"),
            c.gpus_per_node,
            c.gpu.key
        ),
        format!(
            "phantom: simulator: {} connected, {}, {}, {} on links, {}",
            count(sim.clients as u64, "process", "processes"),
            plural(sim.communicators, "communicator"),
            plural(sim.operations, "operation"),
            bytes(sim.bytes_on_links),
            plural(sim.events, "event"),
        ),
        format!(
            "phantom: simulated time {}, wall time {:.2} s ({:.0} simulator events/s)",
            SimDuration::from_nanos(simulated_time_ns(s)),
            s.wall.as_secs_f64(),
            sim.events as f64 / s.wall.as_secs_f64().max(1e-9)
        ),
    ];
    if !sim.by_kind.is_empty() {
        let kinds: Vec<String> =
            sim.by_kind.iter().map(|(k, t)| format!("{k} {} ({})", t.count, bytes(t.bytes))).collect();
        out.push(format!("phantom: NCCL operations: {}", kinds.join(", ")));
    }
    let hot = hottest_links(sim);
    if !hot.is_empty() {
        let end = sim.simulated_end.as_nanos().max(1) as f64;
        let top: Vec<String> = hot
            .iter()
            .take(3)
            .map(|l| {
                let busy = 100.0 * l.busy.as_nanos() as f64 / end;
                format!("{} {:.1} % ({}, busy {busy:.1} %)", l.name, 100.0 * utilisation(l, sim), bytes(l.bytes))
            })
            .collect();
        out.push(format!("phantom: hottest links: {}", top.join(", ")));
    }
    let m = s.memory;
    if m.processes > 0 {
        out.push(format!(
            "phantom: peak memory per process: mean {:.1} MiB, max {:.1} MiB",
            m.total_kib as f64 / m.processes as f64 / 1024.0,
            m.max_kib as f64 / 1024.0
        ));
    }
    out.extend(s.stats.lines());
    if !sim.failures.is_empty() {
        out.push(format!(
            "phantom: the simulator diagnosed {} (printed above)",
            plural(sim.failures.len() as u64, "failure")
        ));
    }
    let total = s.succeeded + s.failed;
    out.push(match (s.failed, total) {
        (0, 1) => "phantom: the process exited 0".into(),
        (0, _) => format!("phantom: all {total} processes exited 0"),
        (f, _) => format!("phantom: {f} of {total} processes failed; exit code {}", s.exit_code),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::engine::core::KindTotals;
    use sim_core::SimTime;

    #[test]
    fn byte_units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.50 kB");
        assert_eq!(bytes(12_345_678_901), "12.35 GB");
    }

    #[test]
    fn summary_lines() {
        let mut cluster = ClusterConfig::try_preset("dgx-h100").unwrap();
        cluster.nodes = 2;
        let sim = RunSummary {
            clients: 16,
            communicators: 2,
            operations: 480,
            bytes_on_links: 12_300_000_000,
            simulated_end: SimTime::from_nanos(12_345_678),
            events: 10_234,
            failures: vec!["deadlock".into()],
            ops: Vec::new(),
            by_kind: [
                ("AllReduce".to_string(), KindTotals { count: 470, bytes: 4_980_000_000 }),
                ("Broadcast".to_string(), KindTotals { count: 10, bytes: 512 }),
            ]
            .into(),
            links: [
                ("node0 gpu0 → nvswitch", 370.8e9, 900_000_000, 5_000_000),
                ("node0 nic0 → leaf0", 48e9, 300_000_000, 7_000_000),
                ("leaf0 → node1 nic0", 48e9, 300_000_000, 6_500_000),
                ("node0 gpu1 → pcie", 53e9, 100_000_000, 2_000_000),
                ("node0 gpu2 → pcie", 53e9, 0, 0),
            ]
            .map(|(name, capacity, bytes, busy)| LinkUsage {
                name: name.into(),
                capacity,
                bytes,
                busy: SimDuration::from_nanos(busy),
                samples: Vec::new(),
            })
            .into(),
            ..RunSummary::default()
        };
        let s = Summary {
            cluster: &cluster,
            layout: Some(Layout { world: 16, per_node: 8 }),
            sim: &sim,
            wall: Duration::from_millis(3210),
            succeeded: 14,
            failed: 2,
            exit_code: 3,
            memory: {
                let mut m = Memory::default();
                m.add(10 * 1024);
                m.add(30 * 1024);
                m
            },
            stats: &crate::stats::RunStats::default(),
        };
        assert_eq!(
            lines(&s),
            [
                "phantom: cluster dgx-h100: 2 nodes x 8 GPUs (h100-sxm-80gb); 16 ranks, 8 per node",
                "phantom: simulator: 16 processes connected, 2 communicators, 480 operations, 12.30 GB on links, 10234 events",
                "phantom: simulated time 12.346 ms, wall time 3.21 s (3188 simulator events/s)",
                "phantom: NCCL operations: AllReduce 470 (4.98 GB), Broadcast 10 (512 B)",
                "phantom: hottest links: node0 nic0 → leaf0 50.6 % (300.00 MB, busy 56.7 %), \
                 leaf0 → node1 nic0 50.6 % (300.00 MB, busy 52.7 %), node0 gpu0 → nvswitch 19.7 % (900.00 MB, busy 40.5 %)",
                "phantom: peak memory per process: mean 20.0 MiB, max 30.0 MiB",
                "phantom: the simulator diagnosed 1 failure (printed above)",
                "phantom: 2 of 16 processes failed; exit code 3",
            ]
        );
        let one = Summary {
            layout: None,
            succeeded: 1,
            failed: 0,
            exit_code: 0,
            sim: &RunSummary::default(),
            memory: Memory::default(),
            ..s
        };
        let l = lines(&one);
        assert_eq!(
            l[0],
            "phantom: cluster dgx-h100: 2 nodes x 8 GPUs (h100-sxm-80gb); 1 process started (it starts its own ranks)"
        );
        assert_eq!(
            l[1],
            "phantom: simulator: 0 processes connected, 0 communicators, 0 operations, 0 B on links, 0 events"
        );
        assert_eq!(l[3], "phantom: the process exited 0");
    }

    #[test]
    fn the_ranks_statistics_follow_the_peak_memory_line() {
        use crate::stats::{Gpu, Proc, RunStats};
        let cluster = ClusterConfig::try_preset("dgx-h100").unwrap();
        let gpu = Gpu { gpu: 0, ordinal: Some(0), kernel_busy_ns: 2_000_000, peak_memory_bytes: 1_048_576, ..Gpu::default() };
        let stats = RunStats::new(vec![Proc { pid: 7, rank: Some(0), end_ns: 2_500_000, gpus: vec![gpu], ..Proc::default() }], 0);
        let mut memory = Memory::default();
        memory.add(1024);
        let s = Summary {
            cluster: &cluster,
            layout: Some(Layout { world: 1, per_node: 8 }),
            sim: &RunSummary::default(),
            wall: Duration::from_secs(1),
            succeeded: 1,
            failed: 0,
            exit_code: 0,
            memory,
            stats: &stats,
        };
        let l = lines(&s);
        let at = l.iter().position(|l| l.starts_with("phantom: peak memory per process")).unwrap();
        assert_eq!(
            l[at + 1..],
            [
                "phantom: GPU time over the run (mean of 1 GPU): kernels 2.00 ms, no NCCL",
                "phantom: peak device memory: max 1.05 MB (rank 0, GPU 0), mean 1.05 MB over 1 GPU",
                "phantom: the process exited 0",
            ]
        );
        // No collectives: the simulated time is how far the process got (2.5 ms), not the simulator's 0.
        assert_eq!(simulated_time_ns(&s), 2_500_000);
        assert!(l[2].starts_with("phantom: simulated time 2500.000 us,"), "{}", l[2]);
    }
}
