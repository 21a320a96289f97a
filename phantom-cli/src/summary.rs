//! The few lines `phantom run` prints to stderr at the end (never stdout: the program owns it).

use crate::env::Layout;
use sim_core::config::ClusterConfig;
use sim_core::engine::server::RunSummary;
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
            SimDuration::from_nanos(sim.simulated_end.as_nanos()),
            s.wall.as_secs_f64(),
            sim.events as f64 / s.wall.as_secs_f64().max(1e-9)
        ),
    ];
    if !sim.by_kind.is_empty() {
        let kinds: Vec<String> =
            sim.by_kind.iter().map(|(k, t)| format!("{k} {} ({})", t.count, bytes(t.bytes))).collect();
        out.push(format!("phantom: NCCL operations: {}", kinds.join(", ")));
    }
    let m = s.memory;
    if m.processes > 0 {
        out.push(format!(
            "phantom: peak memory per process: mean {:.1} MiB, max {:.1} MiB",
            m.total_kib as f64 / m.processes as f64 / 1024.0,
            m.max_kib as f64 / 1024.0
        ));
    }
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
        };
        assert_eq!(
            lines(&s),
            [
                "phantom: cluster dgx-h100: 2 nodes x 8 GPUs (h100-sxm-80gb); 16 ranks, 8 per node",
                "phantom: simulator: 16 processes connected, 2 communicators, 480 operations, 12.30 GB on links, 10234 events",
                "phantom: simulated time 12.346 ms, wall time 3.21 s (3188 simulator events/s)",
                "phantom: NCCL operations: AllReduce 470 (4.98 GB), Broadcast 10 (512 B)",
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
}
