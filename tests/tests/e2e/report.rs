//! What `phantom run` says about the ranks' GPUs (docs/launcher.md, "What the ranks add"): the summary lines
//! and the JSON report's steps, GPU time, top kernels, kernel time by source and peak device memory, checked
//! against what tests/programs/report_steps.cu prints (its own clock around each NVTX step range, and event
//! timings of every kernel and all-reduce span; see the program's header) on 2 ranks in deterministic host
//! time.

use phantom_tests::{compile, phantom_bin, run_with_timeout, workspace_root, Output};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const RANKS: u64 = 2;
const STEPS: u64 = 4;
const PRE_NS: u64 = 10_000;
const COMPUTE_NS: u64 = 1_000_000;
/// docs/gpu-model.md: a device allocation is charged its size rounded up to 512 bytes.
const GRANULE: u64 = 512;

fn run() -> (Output, Value) {
    let dir = std::env::temp_dir().join(format!("phantom-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("r.json");
    let phantom = phantom_bin();
    let mut cmd = Command::new(phantom);
    cmd.current_dir(&dir)
        .env_remove("NVTX_INJECTION64_PATH")
        .env_remove("PHANTOM_KERNEL_TABLE")
        .args(["run", "-n", "2", "--cluster", "dgx-h100", "--host-time", "deterministic", "--report"])
        .arg(&report)
        .arg("--kernel-table")
        .arg(workspace_root().join("tests/programs/report_steps.table"))
        .arg("--")
        .arg(compile("report_steps.cu"));
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("a report")).expect("JSON");
    let _ = std::fs::remove_dir_all(&dir);
    (out, r)
}

fn num(out: &Output, key: &str) -> u64 {
    out.value(key).parse().unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn charged(bytes: u64) -> u64 {
    bytes.next_multiple_of(GRANULE)
}

#[test]
fn the_report_matches_what_the_ranks_measured() {
    let (out, r) = run();
    for rank in 0..RANKS {
        assert_eq!(out.value(&format!("r{rank}_done")), "1", "{}", out.describe());
    }
    // Phantom writes only its own `phantom:` lines.
    assert!(out.stderr.lines().all(|l| l.starts_with("phantom: ") && !l.contains("warning")), "{}", out.describe());

    // Steps: the `step N` ranges, not the `init` range (one per rank) nor the nested `all-reduce` ones.
    assert_eq!(r["steps"]["pattern"], "step N", "{r:#}");
    assert_eq!(r["steps"]["processes"], RANKS);
    assert_eq!(r["steps"]["per_process"], json!({ "min": STEPS, "max": STEPS }));
    let per_rank = r["per_rank"].as_array().expect("per_rank");
    assert_eq!(per_rank.len() as u64, RANKS, "{r:#}");
    let mut all_steady = Vec::new();
    let (mut model_total, mut nccl_total, mut busy_total, mut exposed_total) = (0, 0, 0, 0);
    for (rank, p) in per_rank.iter().enumerate() {
        let key = |k: &str| format!("r{rank}_{k}");
        assert_eq!(p["rank"], rank as u64);
        assert_eq!(p["local_rank"], rank as u64);
        assert_eq!(p["node"], 0);
        let steps = &p["steps"];
        assert_eq!(steps["count"], STEPS);
        let printed: Vec<u64> = (0..STEPS).map(|s| num(&out, &key(&format!("step{s}_ns")))).collect();
        let durations: Vec<(String, u64)> = steps["durations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), d["ns"].as_u64().unwrap()))
            .collect();
        let want: Vec<(String, u64)> = printed.iter().enumerate().map(|(s, &ns)| (format!("step {s}"), ns)).collect();
        assert_eq!(durations, want, "rank {rank}");
        let steady = &printed[1..];
        assert_eq!(steps["steady"]["count"], STEPS - 1);
        assert_eq!(steps["steady"]["min_ns"], *steady.iter().min().unwrap());
        assert_eq!(steps["steady"]["max_ns"], *steady.iter().max().unwrap());
        assert_eq!(steps["steady"]["mean_ns"], steady.iter().sum::<u64>() as f64 / steady.len() as f64);
        all_steady.extend_from_slice(steady);
        // GPU time inside the steady steps' ranges: everything each step queued.
        let per_step = |k: &str| -> f64 { (1..STEPS).map(|s| num(&out, &key(&format!("step{s}_{k}")))).sum::<u64>() as f64 / (STEPS - 1) as f64 };
        assert_eq!(
            steps["steady"]["gpu_time_per_step"],
            json!({ "kernel_busy_ns": per_step("busy_ns"), "nccl_ns": per_step("allreduce_ns"), "exposed_nccl_ns": per_step("exposed_ns") }),
            "rank {rank}"
        );

        // GPU time of the rank's one GPU (global index = rank: one node, LOCAL_RANK = rank).
        let gpus = p["gpus"].as_array().unwrap();
        assert_eq!(gpus.len(), 1, "{p:#}");
        let g = &gpus[0];
        assert_eq!(g["gpu"], rank as u64);
        assert_eq!(g["ordinal"], rank as u64);
        assert_eq!(g["kernel_busy_ns"], num(&out, &key("busy_ns")), "{p:#}");
        assert_eq!(g["nccl_ns"], num(&out, &key("nccl_ns")), "{p:#}");
        assert_eq!(g["exposed_nccl_ns"], num(&out, &key("exposed_ns")), "{p:#}");
        let allreduces: u64 = (0..STEPS).map(|s| num(&out, &key(&format!("step{s}_allreduce_ns")))).sum();
        assert_eq!(num(&out, &key("nccl_ns")), allreduces);
        // Odd steps expose their all-reduce (the compute waits for it), even steps hide it under the compute.
        let odd: u64 = (0..STEPS).filter(|s| s % 2 == 1).map(|s| num(&out, &key(&format!("step{s}_allreduce_ns")))).sum();
        assert_eq!(num(&out, &key("exposed_ns")), odd, "{}", out.stdout);
        assert!(odd > 0);

        // Peak memory: both allocations, each rounded up, although the first was freed.
        let sizes: Vec<u64> = out.value(&key("allocated")).split(',').map(|s| s.parse().unwrap()).collect();
        assert_eq!(g["peak_memory_bytes"], sizes.iter().map(|&b| charged(b)).sum::<u64>());
        assert_eq!(g["peak_memory_bytes"], 1_048_576 + 3_000_320);

        // Kernel time by source: the table's kernels exactly, the model kernel as the events measured it.
        let model = num(&out, &key("model_ns"));
        assert!(model > 0);
        assert_eq!(p["kernel_ns_by_source"], json!({ "table": STEPS * (PRE_NS + COMPUTE_NS), "model": model, "library": 0, "profiled": 0 }));
        assert_eq!(p["unsettled_nccl_operations"], 0);
        model_total += model;
        nccl_total += num(&out, &key("nccl_ns"));
        busy_total += num(&out, &key("busy_ns"));
        exposed_total += num(&out, &key("exposed_ns"));
    }
    let steady = &r["steps"]["steady"];
    assert_eq!(steady["count"], all_steady.len() as u64);
    assert_eq!(steady["min_ns"], *all_steady.iter().min().unwrap());
    assert_eq!(steady["max_ns"], *all_steady.iter().max().unwrap());

    // Over the run.
    assert_eq!(
        r["gpu_time"],
        json!({ "gpus": RANKS, "kernel_busy_ns": busy_total, "nccl_ns": nccl_total, "exposed_nccl_ns": exposed_total, "unsettled_nccl_operations": 0 })
    );
    let table = RANKS * STEPS * (PRE_NS + COMPUTE_NS);
    assert_eq!(r["kernel_time_by_source"]["table"]["ns"], table);
    assert_eq!(r["kernel_time_by_source"]["model"]["ns"], model_total);
    assert_eq!(r["kernel_time_by_source"]["library"]["ns"], 0);
    let pct = r["kernel_time_by_source"]["table"]["percent"].as_f64().unwrap();
    assert!((pct - 100.0 * table as f64 / (table + model_total) as f64).abs() < 1e-9, "{pct}");
    let n = RANKS * STEPS;
    let mut top = [
        ("compute_kernel(float*)", "table", n * COMPUTE_NS),
        ("pre_kernel(float*)", "table", n * PRE_NS),
        ("model_kernel(float*)", "model", model_total),
    ];
    top.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let top: Vec<Value> = top.iter().map(|(name, source, ns)| json!({ "name": name, "source": source, "count": n, "total_ns": ns })).collect();
    assert_eq!(r["top_kernels"], Value::Array(top), "longest first");
    assert_eq!(r["nccl_time_by_kind"], json!({ "AllReduce": { "parts": n, "time_ns": nccl_total } }));
    assert_eq!(r["peak_device_memory"], json!({ "gpus": RANKS, "max_bytes": 4_048_896, "mean_bytes": 4_048_896.0 }));
    assert_eq!(r["statistics_files"], json!({ "read": RANKS, "unreadable": 0 }));
    assert_eq!(r["nccl_operations"]["AllReduce"]["count"], STEPS, "the simulator counts each operation once");

    // The summary says the same in a few lines.
    let line = |prefix: &str| -> String {
        out.stderr.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line: {}", out.stderr)).to_string()
    };
    assert!(line("phantom: steps (NVTX \"step N\"): 4 per rank; steady step mean ").ends_with(" across ranks)"));
    assert!(line("phantom: GPU time over the run (mean of 2 GPUs): kernels ").contains(", exposed NCCL "));
    assert!(line("phantom: GPU time per steady step (mean per GPU): kernels ").contains(", exposed NCCL "));
    let top = line("phantom: top kernels: compute_kernel(float*) 8.00 ms (table, 8 launches), ");
    assert!(top.contains("pre_kernel(float*) 80.00 µs (table, 8 launches)") && top.contains("(model, 8 launches)"), "{top}");
    assert!(line("phantom: kernel time by source: table 8.08 ms (").contains("), model "));
    assert_eq!(line("phantom: peak device memory:"), "phantom: peak device memory: max 4.05 MB (rank 0, GPU 0), mean 4.05 MB over 2 GPUs");
}
