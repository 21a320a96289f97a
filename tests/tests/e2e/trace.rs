//! `phantom run --trace` (docs/trace.md).
//!
//! - 8 ranks of tests/programs/nccl_bench.cu run two timed 1 MB all-reduces (no warm-up) on the `dgx-h100`
//!   preset in deterministic host time; the merged trace must be valid JSON with one named process per rank,
//!   named stream threads, and exactly the two all-reduces per rank, each lasting what the benchmark measures
//!   per iteration less the first launch's share, the second starting when the first ends.
//!   Each rank's host thread has one `ncclAllReduce` API span per all-reduce.
//! - The acceptance for traces: 16 ranks on two nodes run all-reduces of 64 KB to 16 MB; the run
//!   prints the same with and without `--trace`, and the trace holds every rank, stream and link track, one
//!   arrow per other rank for each operation, as many collective spans as the report's operations × ranks,
//!   and link counters that integrate to the bytes the simulator says its links carried.
//! - Host API calls, device memory and stream waits: tests/programs/trace_host.cu on one GPU (times derived
//!   in `trace_of_host_calls_memory_and_a_stream_wait`).

use phantom_tests::{compile, phantom_bin, run_with_timeout};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The trace process of the link counters (`phantom-cli/src/trace.rs`, `NETWORK_PID`).
const NETWORK_PID: u64 = 0x7fff_0000;


#[test]
fn trace_of_eight_ranks_running_two_all_reduces() {
    let phantom = phantom_bin();
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
        // The streams, and the main thread's host API track.
        assert!(threads.iter().any(|t| t.starts_with("stream ")), "{threads:?}");
        assert!(
            threads.iter().all(|t| t.starts_with("stream ") || *t == format!("host thread {pid} (main)")),
            "{threads:?}"
        );
        // One `ncclAllReduce` call per timed all-reduce; the calls made through NCCL are there too.
        let calls: Vec<&str> = events
            .iter()
            .filter(|e| e["cat"] == "api" && e["pid"].as_u64() == Some(*pid))
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(calls.iter().filter(|c| **c == "ncclAllReduce").count(), 2, "{calls:?}");
        for c in ["ncclCommInitRank", "cudaMalloc", "cudaStreamSynchronize", "cudaEventRecord"] {
            assert!(calls.contains(&c), "{c}: {calls:?}");
        }
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
    let mut cmd = Command::new(phantom_bin());
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
        assert!(threads.iter().any(|t| t.starts_with("stream ")), "{threads:?}");
        assert!(threads.iter().all(|t| t.starts_with("stream ") || t.starts_with("host thread ")), "{threads:?}");
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
    for e in events.iter().filter(|e| (e["ph"] == "s" || e["ph"] == "f") && e["cat"] == "nccl") {
        assert!(inside(e), "{e}");
        flow_ids.entry(e["id"].as_u64().unwrap()).or_default().push(e["ph"].as_str().unwrap());
    }
    assert_eq!(flow_ids.len() as u64, operations * 15, "15 arrows per operation");
    assert!(flow_ids.values().all(|v| v == &["s", "f"]));

    // Link counters: a track for every link that carried traffic (the report's list), the NVLinks of all 16
    // GPUs and the NIC ports of both nodes among them, each ending at 0, never above the link's capacity.
    let links: BTreeMap<&str, &Value> =
        report["links"].as_array().unwrap().iter().map(|l| (l["name"].as_str().unwrap(), l)).collect();
    let mut tracks: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "C" && e["cat"] == "network") {
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

/// Runs tests/programs/trace_host.cu under `phantom run -n 1` (deterministic host time, its kernel table),
/// with `--trace` when `trace` is given, and with `env` in phantom's environment.
fn host_run(dir: &Path, trace: Option<&Path>, env: &[(&str, &str)]) -> phantom_tests::Output {
    let mut cmd = Command::new(phantom_bin());
    cmd.current_dir(dir)
        .envs(env.iter().copied())
        .args(["run", "-n", "1", "--cluster", "dgx-h100", "--host-time", "deterministic", "--kernel-table"])
        .arg(phantom_tests::workspace_root().join("tests/programs/trace_host.table"));
    if let Some(t) = trace {
        cmd.arg("--trace").arg(t);
    }
    cmd.arg("--").arg(compile("trace_host.cu"));
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.value("done"), "1", "{}", out.describe());
    out
}

/// A trace time (µs, float) in nanoseconds.
fn t_ns(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1000.0).round() as i64
}

/// The program's `key=value` lines.
fn program_lines(out: &phantom_tests::Output) -> BTreeMap<String, String> {
    out.values()
}

/// tests/programs/trace_host.cu on one H100 of the `dgx-h100` preset in deterministic host time: an API call
/// costs `api_call_ns` = 100 ns, a launch `launch_call_ns` = 2 µs, a kernel starts `launch_latency_ns` = 2 µs
/// after its launch call returns (docs/gpu-model.md); `producer` takes 1 ms, `consumer` 250 µs
/// (tests/programs/trace_host.table). With T the first `cudaMalloc`'s entry:
/// - calls on the main thread: cudaMalloc (1 MiB) T..T+0.1 µs, two stream creations, an event creation to
///   T+0.4, the producer's launch to T+2.4 (the kernel runs T+4.4..T+1004.4 µs), cudaMalloc (3000 bytes,
///   charged 3072) to T+2.5, cudaEventRecord to T+2.6, cudaStreamWaitEvent to T+2.7, the consumer's launch to
///   T+4.7: the consumer starts when the event completes, T+1004.4, and ends at T+1254.4 µs;
///   cudaStreamSynchronize from T+4.7 returns one API call after that: 1 249 800 ns, what the program's
///   clock measures around it. cudaFree (3072 bytes) T+1254.5..T+1254.6 µs (nothing left to wait for), a
///   10 µs sleep, 1000 × (cudaMalloc, cudaFree) of 1 MiB, 200 ns a pair, cudaFree (1 MiB), cudaMemGetInfo.
/// - memory (bytes in use from each sample on): 1 MiB at T, + 3072 at T+2.4 µs, 1 MiB at T+1254.5 µs; the
///   loop's 2000 changes, merged per microsecond from its start L: 2 MiB at L + k µs and 1 MiB at
///   L + k µs + 900 ns for k = 0..199; 0 at L + 200 µs, the last free.
/// - one arrow, from the producer's span on s1 to the consumer's on s2.
#[test]
fn trace_of_host_calls_memory_and_a_stream_wait() {
    let dir = std::env::temp_dir().join(format!("phantom-trace-host-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.json");
    let plain = host_run(&dir, None, &[]);
    let out = host_run(&dir, Some(&path), &[]);
    // Tracing changes no simulated result.
    assert_eq!(program_lines(&out), program_lines(&plain));
    assert_eq!(out.value("sync_ns"), "1249800", "{}", out.describe());
    assert_eq!(out.value("loop_ns"), "200000", "{}", out.describe());
    const MIB: i64 = 1 << 20;

    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the trace is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let pid = events.iter().find(|e| e["ph"] == "M" && e["name"] == "process_name").unwrap()["pid"].as_u64().unwrap();
    assert!(events.iter().all(|e| e["pid"] == pid), "one process");
    let thread = |tid: &Value| -> String {
        events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == *tid)
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };

    // The API track: one span per call, in call order, on the main thread's track.
    let api: Vec<&Value> = events.iter().filter(|e| e["cat"] == "api").collect();
    let names: Vec<&str> = api.iter().map(|e| e["name"].as_str().unwrap()).collect();
    let launch = names[4];
    assert!(launch == "cudaLaunchKernel" || launch == "__cudaLaunchKernel", "{names:?}");
    let mut want = vec![
        "cudaMalloc",
        "cudaStreamCreateWithFlags",
        "cudaStreamCreateWithFlags",
        "cudaEventCreateWithFlags",
        launch,
        "cudaMalloc",
        "cudaEventRecord",
        "cudaStreamWaitEvent",
        launch,
        "cudaStreamSynchronize",
        "cudaFree",
    ];
    for _ in 0..1000 {
        want.extend(["cudaMalloc", "cudaFree"]);
    }
    want.extend(["cudaFree", "cudaMemGetInfo"]);
    assert_eq!(names, want);
    assert!(api.iter().all(|e| e["ph"] == "X" && e["tid"] == api[0]["tid"]));
    assert_eq!(thread(&api[0]["tid"]), format!("host thread {pid} (main)"));
    let t = t_ns(&api[0]["ts"]);
    let span = |i: usize| (t_ns(&api[i]["ts"]) - t, t_ns(&api[i]["dur"]));
    assert_eq!(
        (0..11).map(span).collect::<Vec<_>>(),
        [
            (0, 100),
            (100, 100),
            (200, 100),
            (300, 100),
            (400, 2_000),
            (2_400, 100),
            (2_500, 100),
            (2_600, 100),
            (2_700, 2_000),
            (4_700, 1_249_800),
            (1_254_500, 100),
        ]
    );
    // The blocking call lasts what the program measured around it.
    assert_eq!(span(9).1.to_string(), out.value("sync_ns"));
    let loop_start = 1_264_600;
    assert_eq!(span(11), (loop_start, 100));
    assert_eq!(span(2011), (loop_start + 200_000, 100), "the last free");

    // The memory counter: exact values at exact times, the loop merged per microsecond.
    let memory: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e["ph"] == "C" && e["cat"] == "memory")
        .map(|e| {
            assert_eq!(e["name"], "GPU 0 memory", "{e}");
            (t_ns(&e["ts"]) - t, (e["args"]["MB"].as_f64().unwrap() * 1e6).round() as i64)
        })
        .collect();
    let mut want = vec![(0, MIB), (2_400, MIB + 3072), (1_254_500, MIB)];
    for k in 0..200 {
        want.extend([(loop_start + k * 1000, 2 * MIB), (loop_start + k * 1000 + 900, MIB)]);
    }
    want.push((loop_start + 200_000, 0));
    assert_eq!(memory, want);

    // The stream wait: one arrow from the producer (s1) to the consumer (s2), which starts as it ends.
    let kernel = |name: &str| -> &Value {
        events.iter().find(|e| e["cat"] == "kernel" && e["name"] == name).unwrap_or_else(|| panic!("no {name}"))
    };
    let (producer, consumer) = (kernel("producer(float*)"), kernel("consumer(float*)"));
    assert_eq!((t_ns(&producer["ts"]) - t, t_ns(&producer["dur"])), (4_400, 1_000_000));
    assert_eq!((t_ns(&consumer["ts"]) - t, t_ns(&consumer["dur"])), (1_004_400, 250_000));
    assert_ne!(producer["tid"], consumer["tid"]);
    assert!(thread(&producer["tid"]).starts_with("stream 0x") && thread(&consumer["tid"]).starts_with("stream 0x"));
    let flows: Vec<&Value> = events.iter().filter(|e| e["ph"] == "s" || e["ph"] == "f").collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    let (s, f) = (flows[0], flows[1]);
    assert_eq!((&s["ph"], &f["ph"], &f["bp"]), (&json_str("s"), &json_str("f"), &json_str("e")));
    assert_eq!(s["id"], f["id"]);
    assert!(s["cat"] == "stream_wait" && f["cat"] == "stream_wait" && s["name"] == "cudaStreamWaitEvent");
    assert_eq!((&s["tid"], t_ns(&s["ts"]) - t), (&producer["tid"], 4_400 + 500_000));
    assert_eq!((&f["tid"], t_ns(&f["ts"]) - t), (&consumer["tid"], 1_004_400 + 125_000));

    // PHANTOM_TRACE_API=0: no API track, the rest as before.
    let quiet = host_run(&dir, Some(&path), &[("PHANTOM_TRACE_API", "0")]);
    assert_eq!(program_lines(&quiet), program_lines(&plain));
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the trace is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert!(!events.iter().any(|e| e["cat"] == "api" || (e["ph"] == "M" && e["args"]["name"].as_str().is_some_and(|n| n.starts_with("host thread")))));
    assert_eq!(events.iter().filter(|e| e["cat"] == "memory").count(), memory.len());
    assert_eq!(events.iter().filter(|e| e["cat"] == "stream_wait").count(), 2);
    eprintln!(
        "host trace: {} API spans, {} memory samples for 2003 allocations and frees",
        api.len(),
        memory.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn json_str(s: &str) -> Value {
    Value::String(s.into())
}
