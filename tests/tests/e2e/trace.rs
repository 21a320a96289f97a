//! `phantom run --trace` (docs/trace.md).
//!
//! - 8 ranks of tests/programs/nccl_bench.cu run two timed 1 MB all-reduces (no warm-up) on the `dgx-h100`
//!   preset in deterministic host time; the merged trace must be valid JSON with one named process per rank,
//!   named stream threads, and exactly the two all-reduces per rank, each lasting what the benchmark measures
//!   per iteration less the first launch's share, the second starting when the first ends.
//! - The acceptance for traces: 16 ranks on two nodes run all-reduces of 64 KB to 16 MB; the run
//!   prints the same with and without `--trace`, and the trace holds every rank, stream and link track, one
//!   arrow per other rank for each operation, as many collective spans as the report's operations × ranks,
//!   and link counters that integrate to the bytes the simulator says its links carried.

use phantom_tests::{compile, lib_dir, run_with_timeout};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The trace process of the link counters (`phantom-cli/src/trace.rs`, `NETWORK_PID`).
const NETWORK_PID: u64 = 0x7fff_0000;

fn phantom() -> PathBuf {
    lib_dir().parent().expect("target/phantom").join("bin/phantom")
}

#[test]
fn trace_of_eight_ranks_running_two_all_reduces() {
    let phantom = phantom();
    let dir = std::env::temp_dir().join(format!("phantom-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.json");
    let mut cmd = Command::new(phantom);
    cmd.current_dir(&dir)
        .args([
            "run",
            "-n",
            "8",
            "--cluster",
            "dgx-h100",
            "--host-time",
            "deterministic",
            "--trace",
        ])
        .arg(&path)
        .arg("--")
        .arg(compile("nccl_bench.cu"))
        .args([
            "-o",
            "allreduce",
            "-b",
            "1M",
            "-e",
            "1M",
            "-w",
            "0",
            "-n",
            "2",
        ]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("phantom: trace: {}", path.display())),
        "{}",
        out.describe()
    );

    // The benchmark's one result line: size count type redop root time_us algbw busbw.
    let row: Vec<String> = out
        .stdout
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a result line")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(row[0], "1048576", "{}", out.stdout);
    let time_us: f64 = row[5].parse().unwrap();

    let trace: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the trace is JSON");
    assert_eq!(trace["displayTimeUnit"], "ns");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let meta = |name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == name)
            .collect()
    };

    // One process per rank, named after its rank, node and GPU (one GPU per rank, 8 per node), and the
    // network's.
    let mut names: Vec<String> = meta("process_name")
        .iter()
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..8)
        .map(|r| format!("rank {r} (node 0, GPU {r})"))
        .collect();
    want.insert(0, "network".into());
    assert_eq!(names, want);
    let pids: Vec<u64> = meta("process_name")
        .iter()
        .map(|e| e["pid"].as_u64().unwrap())
        .filter(|&pid| pid != NETWORK_PID)
        .collect();
    for pid in &pids {
        let threads: Vec<&str> = meta("thread_name")
            .iter()
            .filter(|e| e["pid"].as_u64() == Some(*pid))
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert!(
            !threads.is_empty() && threads.iter().all(|t| t.starts_with("stream ")),
            "{threads:?}"
        );
    }

    // Exactly the two timed all-reduces per rank, on one stream, all of the same length.
    let mut per_rank: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "nccl")
    {
        assert_eq!(e["name"], "AllReduce", "{e}");
        assert_eq!(e["args"]["bytes"], 1 << 20, "{e}");
        assert!(e["args"]["algorithm"].is_string(), "{e}");
        per_rank
            .entry(e["pid"].as_u64().unwrap())
            .or_default()
            .push(e);
    }
    assert_eq!(per_rank.len(), 8);
    let dur = per_rank.values().next().unwrap()[0]["dur"]
        .as_f64()
        .unwrap();
    for spans in per_rank.values() {
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(spans[0]["tid"], spans[1]["tid"]);
        for s in spans {
            assert_eq!(s["dur"].as_f64(), Some(dur), "{s}");
        }
        // Back to back: the second starts when the first ends.
        let (a, b) = (
            spans[0]["ts"].as_f64().unwrap(),
            spans[1]["ts"].as_f64().unwrap(),
        );
        assert!(((a.min(b) + dur) - a.max(b)).abs() < 1e-6, "{spans:?}");
    }
    // The benchmark's clock starts before its start-event record; the first all-reduce starts after that
    // record (0.1 µs API call), the launch call (2 µs) and the launch latency (2 µs). So its time per
    // iteration is the collective's own time plus half of 4.1 µs; it prints 3 decimals.
    assert!(
        (time_us - (dur + 2.05)).abs() <= 0.0005 + 1e-9,
        "printed {time_us} µs, spans of {dur} µs"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `phantom run -n 16` on two dgx-h100 nodes of nccl_bench's all-reduces (64 KB to 16 MB, ×4, one warm-up
/// and two timed iterations each), with `--report` and, if `trace` is given, `--trace`; returns the output
/// and the report.
fn two_node_run(dir: &Path, report: &str, trace: Option<&Path>) -> (phantom_tests::Output, Value) {
    let report = dir.join(report);
    let mut cmd = Command::new(phantom());
    cmd.current_dir(dir)
        .args(["run", "-n", "16", "--cluster", "dgx-h100", "--nodes", "2", "--host-time", "deterministic", "--report"])
        .arg(&report);
    if let Some(t) = trace {
        cmd.arg("--trace").arg(t);
    }
    cmd.arg("--")
        .arg(compile("nccl_bench.cu"))
        .args(["-o", "allreduce", "-b", "64K", "-e", "16M", "-f", "4", "-w", "1", "-n", "2"]);
    let out = run_with_timeout(cmd, Duration::from_secs(240));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).expect("the report is JSON");
    (out, report)
}

#[test]
fn trace_of_a_two_node_all_reduce_run_adds_up_to_the_simulators_totals() {
    let dir = std::env::temp_dir().join(format!("phantom-trace-2n-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.json");
    let (plain, plain_report) = two_node_run(&dir, "plain.json", None);
    let (out, report) = two_node_run(&dir, "traced.json", Some(&path));

    // Writing the trace changes no simulated result: the same lines and the same simulator figures.
    let rows = |o: &phantom_tests::Output| -> Vec<String> {
        o.stdout.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(String::from).collect()
    };
    assert_eq!(rows(&out), rows(&plain));
    assert_eq!(rows(&out).len(), 5, "{}", out.stdout);
    for k in ["simulator", "nccl_operations", "links"] {
        assert_eq!(report[k], plain_report[k], "{k}");
    }

    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the trace is JSON");
    assert_eq!(trace["displayTimeUnit"], "ns");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        let ph = e["ph"].as_str().expect("every event has a phase");
        assert!(["M", "X", "C", "s", "f"].contains(&ph), "{e}");
        assert!(e["pid"].is_u64() && e["tid"].is_u64() && e["name"].is_string(), "{e}");
        if ph != "M" {
            assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "{e}");
        }
    }
    let meta = |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["ph"] == "M" && e["name"] == name).collect() };

    // A process per rank, named after its rank and node, each with its stream threads; and the network.
    let mut ranks: BTreeMap<u64, u64> = BTreeMap::new();
    for e in meta("process_name") {
        let name = e["args"]["name"].as_str().unwrap();
        let pid = e["pid"].as_u64().unwrap();
        if pid == NETWORK_PID {
            assert_eq!(name, "network");
            continue;
        }
        let rank: u64 = name.strip_prefix("rank ").and_then(|r| r.split(' ').next()).and_then(|r| r.parse().ok()).expect(name);
        assert!(name.starts_with(&format!("rank {rank} (node {}, GPU ", rank / 8)), "{name}");
        assert!(ranks.insert(rank, pid).is_none(), "{name}");
    }
    assert_eq!(ranks.keys().copied().collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
    for pid in ranks.values() {
        let threads: Vec<&str> = meta("thread_name")
            .iter()
            .filter(|e| e["pid"].as_u64() == Some(*pid))
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert!(!threads.is_empty() && threads.iter().all(|t| t.starts_with("stream ")), "{threads:?}");
    }

    // The collective spans: as many per kind as the report's operations × ranks, each rank's bytes, the
    // latest ending when the simulator's time ends.
    let spans: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "nccl").collect();
    let mut per_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in &spans {
        let k = per_kind.entry(e["name"].as_str().unwrap().to_string()).or_default();
        k.0 += 1;
        k.1 += e["args"]["bytes"].as_u64().unwrap();
    }
    let ops = report["nccl_operations"].as_object().unwrap();
    let want: BTreeMap<String, (u64, u64)> = ops
        .iter()
        .map(|(k, v)| (k.clone(), (v["count"].as_u64().unwrap() * 16, v["bytes"].as_u64().unwrap() * 16)))
        .collect();
    assert_eq!(per_kind, want);
    // Warm-up at the largest and the smallest size, then two iterations of each of the 5 sizes.
    assert_eq!(want["AllReduce"].0, 12 * 16);
    let operations = report["simulator"]["operations"].as_u64().unwrap();
    assert_eq!(operations, 12);
    let end = spans.iter().map(|e| e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap()).fold(0.0, f64::max);
    let sim_end = report["simulator"]["simulated_end_ns"].as_u64().unwrap() as f64 / 1e3;
    assert!((end - sim_end).abs() < 1e-6, "spans end at {end} µs, the simulator at {sim_end} µs");
    // Kernel spans add up, per rank, to the kernel time the rank reported (nccl_bench launches none).
    for r in report["per_rank"].as_array().expect("per-rank statistics") {
        let want: u64 = r["kernel_ns_by_source"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        let got: f64 = events
            .iter()
            .filter(|e| e["ph"] == "X" && e["cat"] == "kernel" && e["pid"] == r["pid"])
            .map(|e| e["dur"].as_f64().unwrap() * 1e3)
            .sum();
        assert!((got - want as f64).abs() < 0.5, "rank {}: kernel spans {got} ns, reported {want} ns", r["rank"]);
    }

    // One arrow from one rank's span to each other rank's span of every operation: both ends inside an
    // nccl span of their track, every flow id used once by a start and once by an end.
    let inside = |e: &Value| {
        let t = e["ts"].as_f64().unwrap();
        spans.iter().any(|s| {
            s["pid"] == e["pid"] && s["tid"] == e["tid"] && s["ts"].as_f64().unwrap() < t && t < s["ts"].as_f64().unwrap() + s["dur"].as_f64().unwrap()
        })
    };
    let mut flow_ids: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "s" || e["ph"] == "f") {
        assert!(inside(e), "{e}");
        assert_eq!(e["cat"], "nccl");
        flow_ids.entry(e["id"].as_u64().unwrap()).or_default().push(e["ph"].as_str().unwrap());
    }
    assert_eq!(flow_ids.len() as u64, operations * 15, "15 arrows per operation");
    assert!(flow_ids.values().all(|v| v == &["s", "f"]));

    // Link counters: a track for every link that carried traffic (the report's list), the NVLinks of all 16
    // GPUs and the NIC ports of both nodes among them, each ending at 0, never above the link's capacity.
    let links: BTreeMap<&str, &Value> =
        report["links"].as_array().unwrap().iter().map(|l| (l["name"].as_str().unwrap(), l)).collect();
    let mut tracks: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "C") {
        assert_eq!(e["pid"], NETWORK_PID);
        let v = e["args"]["GB/s"].as_f64().expect("a GB/s series");
        tracks.entry(e["name"].as_str().unwrap()).or_default().push((e["ts"].as_f64().unwrap(), v));
    }
    assert_eq!(tracks.keys().collect::<BTreeSet<_>>(), links.keys().collect::<BTreeSet<_>>());
    for g in 0..8 {
        for n in 0..2 {
            for name in [
                format!("node{n} gpu{g} → nvswitch"),
                format!("node{n} nvswitch → gpu{g}"),
                format!("node{n} nic{g} → leaf{g}"),
                format!("leaf{g} → node{n} nic{g}"),
            ] {
                assert!(tracks.contains_key(name.as_str()), "no track {name}: {:?}", tracks.keys());
            }
        }
    }
    // Integrated, the counters give each link's bytes and, summed, the simulator's bytes on links. The model
    // rounds each flow's finish up to a whole nanosecond, during which the flow still counts at its rate:
    // per link at most one nanosecond at full capacity per flow that crossed it (an operation has at most 8
    // flows here, one per rail), plus a byte for the report's rounding to whole bytes.
    let operations = operations as f64;
    let (mut total, mut slack) = (0.0, 0.0);
    for (name, samples) in &tracks {
        let l = links[name];
        let capacity = l["capacity_bytes_per_s"].as_f64().unwrap();
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "{name}: samples in time order");
        assert_eq!(samples.last().unwrap().1, 0.0, "{name}");
        assert!(samples.iter().all(|s| s.1 * 1e9 <= capacity * (1.0 + 1e-9)), "{name}: {samples:?}");
        // GB/s × µs = 1000 bytes.
        let bytes: f64 = samples.windows(2).map(|w| w[0].1 * (w[1].0 - w[0].0) * 1e3).sum();
        let want = l["bytes"].as_u64().unwrap() as f64;
        let bound = operations * 8.0 * capacity * 1e-9 + 1.0;
        assert!((bytes - want).abs() <= bound, "{name}: counters give {bytes} bytes, the report {want} (± {bound})");
        total += bytes;
        slack += bound;
    }
    let on_links = report["simulator"]["bytes_on_links"].as_u64().unwrap() as f64;
    assert!((total - on_links).abs() <= slack, "counters give {total} bytes on links, the simulator {on_links}");
    eprintln!(
        "two-node trace: {} events, {} link tracks, {} samples; counters {total:.0} bytes vs {on_links:.0} (relative {:.2e})",
        events.len(),
        tracks.len(),
        tracks.values().map(Vec::len).sum::<usize>(),
        (total - on_links).abs() / on_links
    );
    let _ = std::fs::remove_dir_all(dir);
}
