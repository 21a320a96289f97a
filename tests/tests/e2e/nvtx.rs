//! NVTX ranges (docs/trace.md, "NVTX ranges"): tests/programs/nvtx_ranges.cu, built with NVIDIA's NVTX v3
//! headers, marks two steps with push/pop ranges, a start/end range around both, a mark, a wide-character
//! range and a range in a named domain with a registered-string name. `phantom run` points
//! `NVTX_INJECTION64_PATH` at the staged `libcudart.so.13`, which records them in simulated time.
//!
//! Expected times, from the `dgx-h100` preset in deterministic host time (docs/time.md, docs/gpu-model.md):
//! an API call costs the host `api_call_ns` = 100 ns, a launch `launch_call_ns` = 2 µs, a kernel starts
//! `launch_latency_ns` = 2 µs after its launch call returns; a synchronising call returns `api_call_ns` after
//! the work it waits for; NVTX calls and clock reads cost nothing. Kernel times come from
//! tests/programs/nvtx_ranges.table: `step_kernel` 1 ms, `small_kernel` 250 µs. With P the start of step 0:
//! - step 0: launches return at P + 2, 4, 6 µs; the kernels run back to back from P + 4 µs to
//!   P + 3004 µs; `cudaDeviceSynchronize` returns at P + 3004.1 µs. Step 0 lasts 3 004 100 ns; the nested
//!   `sync` range opens at P + 6 µs and lasts 2 998 100 ns.
//! - step 1 (from S = P + 3004.1 µs): the launch returns at S + 2 µs (the mark and the empty `wide ü` range
//!   are there, and the `wait` range opens); the kernel runs from S + 4 to S + 254 µs;
//!   `cudaStreamSynchronize` returns at S + 254.1 µs. Step 1 lasts 254 100 ns, `wait` 252 100 ns.
//! - `epoch` (start/end) spans both: 3 258 200 ns.

use phantom_tests::{compile, phantom_bin, run_with_timeout, workspace_root, Output};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const STEP0_NS: i64 = 3_004_100;
const SYNC_NS: i64 = 2_998_100;
const SYNC_OFFSET_NS: i64 = 6_000;
const STEP1_NS: i64 = 254_100;
const MARK_OFFSET_NS: i64 = 2_000;
const WAIT_NS: i64 = 252_100;
const EPOCH_NS: i64 = STEP0_NS + STEP1_NS;

/// Runs the program under `phantom run -n 1` with `extra` options (and `env` in phantom's environment).
fn run(extra: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let phantom = phantom_bin();
    let mut cmd = Command::new(phantom);
    cmd.current_dir(dir)
        .env_remove("NVTX_INJECTION64_PATH")
        .envs(env.iter().copied())
        .args([
            "run",
            "-n",
            "1",
            "--cluster",
            "dgx-h100",
            "--host-time",
            "deterministic",
        ])
        .arg("--kernel-table")
        .arg(workspace_root().join("tests/programs/nvtx_ranges.table"))
        .args(extra)
        .arg("--")
        .arg(compile("nvtx_ranges.cu"));
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.value("done"), "1", "{}", out.describe());
    out
}

fn ns(out: &Output, key: &str) -> i64 {
    out.value(key)
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The program's own clock deltas around each range.
fn assert_printed_times(out: &Output) {
    for (key, want) in [
        ("step0_ns", STEP0_NS),
        ("sync_ns", SYNC_NS),
        ("sync_offset_ns", SYNC_OFFSET_NS),
        ("step1_ns", STEP1_NS),
        ("mark_offset_ns", MARK_OFFSET_NS),
        ("wait_ns", WAIT_NS),
        ("epoch_ns", EPOCH_NS),
    ] {
        assert_eq!(ns(out, key), want, "{key}: {}", out.describe());
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("phantom-nvtx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A trace time (µs, float) in nanoseconds.
fn t_ns(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 1000.0).round() as i64
}

#[test]
fn nvtx_ranges_in_the_trace_match_the_programs_clock() {
    let dir = scratch("trace");
    let path = dir.join("t.json");
    let out = run(&["--trace", path.to_str().unwrap()], &[], &dir);
    // Phantom itself says nothing beyond its own `phantom:` lines (no warnings or internal errors).
    for line in out.stderr.lines() {
        assert!(
            line.starts_with("phantom: ") && !line.contains("warning"),
            "{}",
            out.describe()
        );
    }
    // Push returns the new range's level, pop the level of the range it ends; the domain has its own stack;
    // a pop with nothing open is an error (negative).
    assert_eq!(out.value("levels"), "0,1,1,0,0,1,1,0,0,0");
    assert_eq!(out.value("pop_empty"), "-1");
    assert_eq!(out.value("epoch_id_nonzero"), "1");
    assert_printed_times(&out);

    let pid: u64 = out.value("pid").parse().unwrap();
    let tid: u64 = out.value("tid").parse().unwrap();
    let trace: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the trace is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert!(events.iter().all(|e| e["pid"] == pid), "one process");

    // Host-thread tracks: one for the default domain, one for `phantom.test`, named after the thread
    // (nvtxNameOsThreadA), sorted before the stream.
    let thread = |tid_in_trace: &Value| -> String {
        events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == *tid_in_trace)
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let nvtx: Vec<&Value> = events.iter().filter(|e| e["cat"] == "nvtx").collect();
    let one = |ph: &str, name: &str| -> &Value {
        let found: Vec<&&Value> = nvtx
            .iter()
            .filter(|e| e["ph"] == ph && e["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "{ph} {name}: {nvtx:#?}");
        found[0]
    };
    let main_track = format!("host thread {tid} (trainer)");

    let step0 = one("X", "step 0");
    let sync = one("X", "sync");
    let step1 = one("X", "step 1");
    let wide = one("X", "wide ü");
    let wait = one("X", "wait");
    let mark = one("i", "launched");
    for (e, level) in [(step0, 0), (sync, 1), (step1, 0), (wide, 1)] {
        assert_eq!(thread(&e["tid"]), main_track, "{e}");
        assert_eq!(e["args"]["level"], level, "{e}");
    }
    assert_eq!(thread(&mark["tid"]), main_track);
    assert_eq!(
        thread(&wait["tid"]),
        format!("{main_track}, NVTX domain phantom.test")
    );
    assert_eq!(wait["args"]["domain"], "phantom.test");
    assert_eq!(wait["args"]["level"], 0);
    let sort = |e: &Value| -> u64 {
        events
            .iter()
            .find(|m| m["ph"] == "M" && m["name"] == "thread_sort_index" && m["tid"] == e["tid"])
            .and_then(|m| m["args"]["sort_index"].as_u64())
            .unwrap()
    };
    let kernels: Vec<&Value> = events.iter().filter(|e| e["cat"] == "kernel").collect();
    assert_eq!(kernels.len(), 4, "{kernels:#?}");
    assert!(sort(step0) < sort(wait) && sort(wait) < sort(kernels[0]));

    // Durations: as derived above, and as the program measured them.
    let p = t_ns(&step0["ts"]);
    assert_eq!(t_ns(&step0["dur"]), ns(&out, "step0_ns"));
    assert_eq!(t_ns(&step0["dur"]), STEP0_NS);
    assert_eq!(t_ns(&sync["ts"]) - p, ns(&out, "sync_offset_ns"));
    assert_eq!(t_ns(&sync["dur"]), ns(&out, "sync_ns"));
    assert_eq!(
        t_ns(&step1["ts"]),
        p + STEP0_NS,
        "step 1 starts as step 0 ends"
    );
    assert_eq!(t_ns(&step1["dur"]), ns(&out, "step1_ns"));
    assert_eq!(
        t_ns(&mark["ts"]) - t_ns(&step1["ts"]),
        ns(&out, "mark_offset_ns")
    );
    assert_eq!(mark["s"], "t");
    assert_eq!(
        (t_ns(&wide["ts"]), t_ns(&wide["dur"])),
        (t_ns(&mark["ts"]), 0)
    );
    assert_eq!(t_ns(&wait["ts"]), t_ns(&mark["ts"]));
    assert_eq!(t_ns(&wait["dur"]), ns(&out, "wait_ns"));

    // The ranges agree with the GPU work: the sync range ends one API call after the last step kernel.
    let last_step_kernel = kernels
        .iter()
        .filter(|k| k["name"] == "step_kernel(float*)")
        .map(|k| t_ns(&k["ts"]) + t_ns(&k["dur"]))
        .max()
        .unwrap();
    assert_eq!(
        t_ns(&sync["ts"]) + t_ns(&sync["dur"]),
        last_step_kernel + 100
    );

    // The start/end range: an async pair with the range id, from step 0's start to step 1's end.
    let (b, e) = (one("b", "epoch"), one("e", "epoch"));
    assert_eq!(b["id"], e["id"]);
    assert_eq!(t_ns(&b["ts"]), p);
    assert_eq!(t_ns(&e["ts"]) - p, ns(&out, "epoch_ns"));
    assert_eq!(nvtx.len(), 8, "{nvtx:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Without `--trace` the levels and the program's times are the same (recording changes no time).
#[test]
fn nvtx_without_a_trace_changes_nothing() {
    let dir = scratch("notrace");
    let out = run(&[], &[], &dir);
    assert_eq!(out.value("levels"), "0,1,1,0,0,1,1,0,0,0");
    assert_eq!(out.value("pop_empty"), "-1");
    assert_printed_times(&out);
    let _ = std::fs::remove_dir_all(dir);
}

/// A user's own `NVTX_INJECTION64_PATH` is left in place (with one warning); here it names no library, so
/// NVTX turns every call into a no-op that reports no push/pop tracking (`NVTX_NO_PUSH_POP_TRACKING`, -2).
#[test]
fn a_users_nvtx_injection_is_kept() {
    let dir = scratch("user");
    let out = run(
        &[],
        &[("NVTX_INJECTION64_PATH", "/nonexistent/libinjection.so")],
        &dir,
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("NVTX_INJECTION64_PATH"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.describe());
    assert!(
        warnings[0].starts_with("phantom: warning:")
            && warnings[0].contains("/nonexistent/libinjection.so"),
        "{}",
        warnings[0]
    );
    assert_eq!(out.value("levels"), "-2,-2,-2,-2,-2,-2,-2,-2,-2,-2");
    assert_printed_times(&out);
    let _ = std::fs::remove_dir_all(dir);
}
