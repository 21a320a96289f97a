//! `phantom run --trace` (docs/trace.md): 8 ranks of tests/programs/nccl_bench.cu run two timed 1 MB
//! all-reduces (no warm-up) on the `dgx-h100` preset in deterministic host time; the merged trace must be
//! valid JSON with one named process per rank, named stream threads, and exactly the two all-reduces per
//! rank, each lasting what the benchmark measures per iteration less the first launch's share, the second
//! starting when the first ends.

use phantom_tests::{compile, lib_dir, run_with_timeout};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

#[test]
fn trace_of_eight_ranks_running_two_all_reduces() {
    let phantom = lib_dir()
        .parent()
        .expect("target/phantom")
        .join("bin/phantom");
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

    // One process per rank, named after its rank, node and GPU (one GPU per rank, 8 per node).
    let mut names: Vec<String> = meta("process_name")
        .iter()
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let want: Vec<String> = (0..8)
        .map(|r| format!("rank {r} (node 0, GPU {r})"))
        .collect();
    assert_eq!(names, want);
    let pids: Vec<u64> = meta("process_name")
        .iter()
        .map(|e| e["pid"].as_u64().unwrap())
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
