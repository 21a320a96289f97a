//! `phantom run --report PATH`: the run as JSON, for scripts that sweep configurations and compare runs
//! (docs/launcher.md, "The JSON report", documents the schema; `SCHEMA_VERSION` changes when a field's meaning
//! does, never when a field is added).

use crate::summary::Summary;
use serde_json::{json, Value};
use std::path::Path;

/// Version of the report's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The report of a finished run.
pub fn report(s: &Summary) -> Value {
    let c = s.cluster;
    let m = s.memory;
    let ops: serde_json::Map<String, Value> = s
        .sim
        .by_kind
        .iter()
        .map(|(k, t)| (k.clone(), json!({ "count": t.count, "bytes": t.bytes })))
        .collect();
    let links: Vec<Value> = crate::summary::hottest_links(s.sim)
        .into_iter()
        .map(|l| {
            json!({
                "name": l.name,
                "capacity_bytes_per_s": l.capacity,
                "bytes": l.bytes,
                "busy_ns": l.busy.as_nanos(),
                "utilisation": crate::summary::utilisation(l, s.sim),
            })
        })
        .collect();
    let mut r = json!({
        "schema_version": SCHEMA_VERSION,
        "cluster": {
            "name": c.name,
            "nodes": c.nodes,
            "gpus_per_node": c.gpus_per_node,
            "gpu": c.gpu.key,
        },
        "ranks": s.layout.map(|l| json!({ "world": l.world, "per_node": l.per_node })),
        "processes": {
            "exited_0": s.succeeded,
            "failed": s.failed,
            "exit_code": s.exit_code,
            "peak_rss_mib": {
                "mean": if m.processes > 0 { m.total_kib as f64 / m.processes as f64 / 1024.0 } else { 0.0 },
                "max": m.max_kib as f64 / 1024.0,
            },
        },
        "simulator": {
            "processes_connected": s.sim.clients,
            "communicators": s.sim.communicators,
            "operations": s.sim.operations,
            "bytes_on_links": s.sim.bytes_on_links,
            "events": s.sim.events,
            "simulated_end_ns": s.sim.simulated_end.as_nanos(),
            "failures": s.sim.failures,
        },
        "nccl_operations": ops,
        "links": links,
        "simulated_time_ns": crate::summary::simulated_time_ns(s),
        "wall_time_s": s.wall.as_secs_f64(),
    });
    if let Value::Object(m) = &mut r {
        m.extend(s.stats.report());
    }
    r
}

/// Writes the report to `path` (pretty-printed).
pub fn write(path: &Path, s: &Summary) -> Result<(), String> {
    let text = serde_json::to_string_pretty(&report(s)).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write the report {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Layout;
    use crate::summary::Memory;
    use sim_core::config::ClusterConfig;
    use sim_core::engine::core::KindTotals;
    use sim_core::engine::server::RunSummary;
    use sim_core::net::LinkUsage;
    use std::time::Duration;

    #[test]
    fn report_fields() {
        let cluster = ClusterConfig::try_preset("dgx-h100").unwrap();
        let sim = RunSummary {
            clients: 2,
            operations: 3,
            by_kind: [("AllReduce".to_string(), KindTotals { count: 3, bytes: 1_000 })].into(),
            simulated_end: sim_core::SimTime::from_nanos(1_000_000),
            links: vec![
                LinkUsage { name: "node0 gpu0 → nvswitch".into(), capacity: 100e9, bytes: 10_000_000, ..LinkUsage::default() },
                LinkUsage {
                    name: "node0 nic0 → leaf0".into(),
                    capacity: 50e9,
                    bytes: 25_000_000,
                    busy: sim_core::SimDuration::from_nanos(600_000),
                    samples: Vec::new(),
                },
            ],
            ..RunSummary::default()
        };
        let s = Summary {
            cluster: &cluster,
            layout: Some(Layout { world: 2, per_node: 8 }),
            sim: &sim,
            wall: Duration::from_millis(1500),
            succeeded: 2,
            failed: 0,
            exit_code: 0,
            memory: Memory { processes: 2, total_kib: 4096, max_kib: 3072 },
            stats: &crate::stats::RunStats::default(),
        };
        let r = report(&s);
        assert_eq!(r["schema_version"], 1);
        assert_eq!(r["cluster"]["gpu"], "h100-sxm-80gb");
        assert_eq!(r["ranks"]["world"], 2);
        assert_eq!(r["processes"]["peak_rss_mib"]["mean"], 2.0);
        assert_eq!(r["nccl_operations"]["AllReduce"]["bytes"], 1000);
        assert_eq!(r["simulator"]["processes_connected"], 2);
        assert_eq!(r["wall_time_s"], 1.5);
        // The ranks' statistics (crate::stats) are top-level fields too.
        assert_eq!(r["steps"], Value::Null);
        assert_eq!(r["per_rank"], json!([]));
        assert_eq!(r["gpu_time"]["kernel_busy_ns"], 0);
        // Hottest first.
        assert_eq!(
            r["links"],
            json!([
                {"name": "node0 nic0 → leaf0", "capacity_bytes_per_s": 50e9, "bytes": 25_000_000, "busy_ns": 600_000, "utilisation": 0.5},
                {"name": "node0 gpu0 → nvswitch", "capacity_bytes_per_s": 100e9, "bytes": 10_000_000, "busy_ns": 0, "utilisation": 0.1},
            ])
        );
    }
}
