//! Stock PyTorch on Phantom (issue: "Stock PyTorch runs unmodified"): torch 2.11.0 installed by
//! `scripts/install-torch.sh` (pinned wheels, `--no-deps`, into `.deps/torch`) runs the GPT-2-style training
//! program `tests/programs/torch/gpt2.py` under the staged `phantom run` on the `dgx-h100` preset, in
//! deterministic host time.
//!
//! What the real H100 did with the same program is committed in `calibration/torch/h100-sxm-80gb/`
//! (measured with `calibration/torch/measure-gpt2.sh`); the memory tests compare against those files.

use phantom_tests::{phantom_bin, run_with_timeout, workspace_root, Output};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Eight Python processes on a 2-core machine import torch for several seconds each.
const TIMEOUT: Duration = Duration::from_secs(600);

fn torch_dir() -> PathBuf {
    let dir = workspace_root().join(".deps/torch");
    assert!(dir.join("torch/__init__.py").is_file(), "no torch in {}: run `bash scripts/install-torch.sh`", dir.display());
    dir
}

/// What a run left behind: the program's output, phantom's JSON report, and its trace when one was asked for.
struct Run {
    out: Output,
    report: Option<serde_json::Value>,
    trace: Option<serde_json::Value>,
}

/// `phantom run --report … <phantom_args> -- python3 gpt2.py <args>` in deterministic host time, in a fresh
/// directory; with `--trace` among `phantom_args`, its file name (relative to that directory) is `trace.json`.
fn run(phantom_args: &[&str], args: &[&str]) -> Run {
    let phantom = phantom_bin();
    // One directory per run: tests that run the same program arguments at once must not share one.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("phantom-torch-{}-{n}-{}", std::process::id(), args.join("_").replace(['-', '/'], "")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let mut cmd = Command::new(phantom);
    cmd.current_dir(&dir)
        .args(["run", "--cluster", "dgx-h100", "--host-time", "deterministic", "--report"])
        .arg(&report)
        .args(phantom_args)
        .args(["--", "python3"])
        .arg(workspace_root().join("tests/programs/torch/gpt2.py"))
        .args(args)
        .env("PYTHONPATH", torch_dir())
        .env("PHANTOM_LOG", "error");
    for var in ["PHANTOM_CLUSTER", "PHANTOM_NODES", "PHANTOM_KERNEL_TABLE", "PHANTOM_LOG_FILE", "PHANTOM_SLEEPS", "CUDA_VISIBLE_DEVICES"] {
        cmd.env_remove(var);
    }
    let out = run_with_timeout(cmd, TIMEOUT);
    let json = |p: PathBuf| std::fs::read_to_string(&p).ok().map(|t| serde_json::from_str(&t).expect("JSON"));
    let (report, trace) = (json(report), json(dir.join("trace.json")));
    let _ = std::fs::remove_dir_all(&dir);
    Run { out, report, trace }
}

/// `rank R step S time_ms T loss L` lines: (rank, step, time in ms).
fn steps(out: &Output) -> Vec<(u32, u32, f64)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["rank", r, "step", s, "time_ms", t, ..] => Some((r.parse().ok()?, s.parse().ok()?, t.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// The number after `key` in `text` (`max_memory_allocated 8706176512`, `model: 124475904 parameters`).
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no `{key}` in:\n{text}")) + key.len();
    text[at..].split_whitespace().next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("no number after `{key}`"))
}

/// What the real H100 printed for a run of the program (calibration/torch/h100-sxm-80gb/<name>.txt).
fn measured(name: &str) -> String {
    let path = workspace_root().join("calibration/torch/h100-sxm-80gb").join(format!("{name}.txt"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// GPT-2 124M (12 layers, 768 wide, batch 8 × 1024, bf16 autocast, fused AdamW) trains 5 steps in one process;
/// PyTorch's caching allocator reports the peak a real H100 reported for the same program within 2 %.
#[test]
fn gpt2_124m_trains_and_peaks_where_an_h100_does() {
    let Run { out, trace, .. } = run(&["-n", "1", "--trace", "trace.json"], &["--steps", "5"]);
    assert!(out.success(), "{}", out.describe());
    let s = steps(&out);
    assert_eq!(s.len(), 5, "{}", out.describe());
    // Deterministic host time: every step after the first (which creates cuBLAS handles, workspaces and
    // cuDNN plans) takes exactly the same simulated time, and a realistic one (an H100 takes ~33 ms).
    for &(_, step, t) in &s[2..] {
        assert_eq!(t, s[1].2, "step {step}: {}", out.stdout);
    }
    assert!(s[1].2 > 10.0 && s[1].2 < 100.0, "{}", out.stdout);
    // The program's own perf_counter step time is Phantom's accounting of the step: each step is an NVTX range
    // `step N` in Phantom's trace (microseconds; the program prints milliseconds to 3 decimals), and the range
    // ends when the step's last GPU work does, plus the host cost of the calls that wait for it (< 5 µs).
    let trace = trace.expect("a trace");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let ends_of = |cat: &'static str| events.iter().filter(move |e| e["cat"] == cat);
    for &(_, step, ms) in &s {
        let range = ends_of("nvtx").find(|e| e["name"] == format!("step {step}")).unwrap_or_else(|| panic!("no range `step {step}`"));
        let (ts, dur) = (range["ts"].as_f64().unwrap(), range["dur"].as_f64().unwrap());
        assert!((dur - ms * 1e3).abs() <= 0.5, "step {step}: the program says {ms} ms, the trace {dur} µs");
        let last_gpu = ["kernel", "memcpy", "memset"]
            .iter()
            .flat_map(|&c| ends_of(c))
            .map(|e| e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap())
            .filter(|&end| end > ts && end <= ts + dur + 1e-6)
            .fold(f64::MIN, f64::max);
        let tail = ts + dur - last_gpu;
        assert!((0.0..5.0).contains(&tail), "step {step}: the range ends {tail} µs after its last GPU work");
    }
    let real = measured("gpt2-124m-b8");
    for key in ["max_memory_allocated", "max_memory_reserved"] {
        let (ours, theirs) = (number_after(&out.stdout, key) as f64, number_after(&real, key) as f64);
        assert!((ours - theirs).abs() <= 0.02 * theirs, "{key}: Phantom {ours}, H100 {theirs}");
    }
}

/// GPT-2 350M (24 layers, 1024 wide, 16 heads; batch 8 × 1024; parameters created on the GPU): the peak the
/// caching allocator reports is the real H100's within 2 %.
#[test]
fn gpt2_350m_peaks_where_an_h100_does() {
    let Run { out, .. } = run(&["-n", "1"], &["--layers", "24", "--heads", "16", "--embd", "1024", "--steps", "2", "--init-on-device"]);
    assert!(out.success(), "{}", out.describe());
    let real = measured("gpt2-350m-b8");
    for key in ["max_memory_allocated", "max_memory_reserved"] {
        let (ours, theirs) = (number_after(&out.stdout, key) as f64, number_after(&real, key) as f64);
        assert!((ours - theirs).abs() <= 0.02 * theirs, "{key}: Phantom {ours}, H100 {theirs}");
    }
}

/// Batch 96 needs more than an 80 GB H100 has: on the real GPU the first step ran and the second raised
/// `torch.OutOfMemoryError` asking for 18.42 GiB of 79.18 GiB; Phantom fails the same way.
#[test]
fn gpt2_124m_batch_96_runs_out_of_memory_like_an_h100() {
    let Run { out, .. } = run(&["-n", "1"], &["--batch", "96", "--steps", "2"]);
    let real = measured("gpt2-124m-b96");
    let oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 18.42 GiB. GPU 0 has a total capacity of 79.18 GiB";
    assert!(real.contains(oom), "the measurement changed: {real}");
    assert!(out.stderr.contains(oom), "{}", out.describe());
    assert_eq!(steps(&out).len(), 1, "{}", out.describe());
    assert_eq!(out.code, Some(1), "{}", out.describe());
}

/// A small GPT-2 (2 layers, 256 wide, 4 heads, batch 2 × 256): parameters = 50304·256 (tied embedding) +
/// 1024·256 (positions) + 2·(12·256² + 13·256) (blocks) + 2·256 (final norm) = 14 720 000.
const SMALL: &[&str] = &["--layers", "2", "--embd", "256", "--heads", "4", "--batch", "2", "--seq", "256", "--steps", "3"];
const SMALL_PARAMS: u64 = 50304 * 256 + 1024 * 256 + 2 * (12 * 256 * 256 + 13 * 256) + 2 * 256;
const SMALL_BLOCK_PARAMS: u64 = 2 * (12 * 256 * 256 + 13 * 256);
const WORLD: u64 = 8;
const STEPS: u64 = 3;

fn nccl_bytes(report: &serde_json::Value, kind: &str) -> u64 {
    report["nccl_operations"][kind]["bytes"].as_u64().unwrap_or_else(|| panic!("no {kind} in {report}"))
}

fn assert_every_rank_stepped(out: &Output) {
    assert!(out.success(), "{}", out.describe());
    let s = steps(out);
    for rank in 0..WORLD as u32 {
        let mine: Vec<f64> = s.iter().filter(|x| x.0 == rank).map(|x| x.2).collect();
        assert_eq!(mine.len(), STEPS as usize, "rank {rank}: {}", out.stdout);
        assert!(mine.iter().all(|&t| t > 0.0), "rank {rank}: {mine:?}");
    }
    assert_eq!(number_after(&out.stdout, "model:"), SMALL_PARAMS);
}

/// DDP on 8 ranks: every rank steps, and the all-reduces the simulator saw carry exactly the fp32 gradients
/// of every parameter once per step (DDP's buckets hold each gradient once).
#[test]
fn ddp_on_8_ranks_all_reduces_the_gradients() {
    let Run { out, report, .. } = run(&["-n", "8"], &[SMALL, &["--ddp"]].concat());
    assert_every_rank_stepped(&out);
    let report = report.expect("a report");
    assert_eq!(nccl_bytes(&report, "AllReduce"), STEPS * 4 * SMALL_PARAMS, "{report}");
    // The initial parameter broadcast from rank 0 carries every parameter once.
    assert!(nccl_bytes(&report, "Broadcast") >= 4 * SMALL_PARAMS, "{report}");
    // The report's steps are the ranks' NVTX `step N` ranges, and every rank's step durations, steady ones
    // (after the first) included, are the step times the rank printed (milliseconds to 3 decimals: within
    // 0.5 µs).
    assert_eq!(report["steps"]["pattern"], "step N", "{report}");
    let printed = steps(&out);
    let per_rank = report["per_rank"].as_array().expect("per_rank");
    assert_eq!(per_rank.iter().map(|p| p["rank"].as_u64()).collect::<Vec<_>>(), (0..WORLD).map(Some).collect::<Vec<_>>());
    for p in per_rank {
        let rank = p["rank"].as_u64().unwrap() as u32;
        let mine: Vec<(u32, f64)> = printed.iter().filter(|s| s.0 == rank).map(|s| (s.1, s.2)).collect();
        let durations = p["steps"]["durations"].as_array().unwrap_or_else(|| panic!("rank {rank}: {p}"));
        assert_eq!(durations.len(), mine.len(), "rank {rank}: {p}");
        for (d, &(step, ms)) in durations.iter().zip(&mine) {
            assert_eq!(d["name"], format!("step {step}"));
            let us = d["ns"].as_f64().unwrap() / 1e3;
            assert!((us - ms * 1e3).abs() <= 0.5 + 1e-6, "rank {rank} step {step}: printed {ms} ms, the report {us} µs");
        }
        let steady: Vec<f64> = mine[1..].iter().map(|s| s.1 * 1e3).collect();
        let mean_us = p["steps"]["steady"]["mean_ns"].as_f64().unwrap() / 1e3;
        assert_eq!(p["steps"]["steady"]["count"], steady.len() as u64);
        assert!((mean_us - steady.iter().sum::<f64>() / steady.len() as f64).abs() <= 0.5 + 1e-6, "rank {rank}: {p}");
        // The GPU's time: kernels and cuBLAS work, NCCL time, some of it hidden under the backward pass.
        let g = &p["gpus"][0];
        let (busy, nccl, exposed) = (g["kernel_busy_ns"].as_u64().unwrap(), g["nccl_ns"].as_u64().unwrap(), g["exposed_nccl_ns"].as_u64().unwrap());
        assert!(busy > 0 && nccl > 0 && exposed <= nccl, "rank {rank}: {p}");
        assert!(p["kernel_ns_by_source"]["library"].as_u64().unwrap() > 0, "rank {rank}: {p}");
        assert!(g["peak_memory_bytes"].as_u64().unwrap() > 4 * SMALL_PARAMS, "rank {rank}: {p}");
        // Inside a steady step the GPU computes for part of it and all-reduces the gradients.
        let w = &p["steps"]["steady"]["gpu_time_per_step"];
        let (busy, nccl, exposed) = (w["kernel_busy_ns"].as_f64().unwrap(), w["nccl_ns"].as_f64().unwrap(), w["exposed_nccl_ns"].as_f64().unwrap());
        assert!(busy > 0.0 && busy < mean_us * 1e3 && nccl > 0.0 && exposed <= nccl, "rank {rank}: {p}");
    }
}

/// FSDP2 (`fully_shard` per block and the root) on 8 ranks: every rank steps; per step the reduce-scatters
/// deliver each rank its eighth of every fp32 gradient, and the all-gathers collect every parameter for the
/// forward pass and the blocks' parameters again for the backward pass (the root stays unsharded after the
/// forward). No dimension needs padding: 50304, 1024, 768 and 256 rows are multiples of 8.
#[test]
fn fsdp2_on_8_ranks_gathers_and_scatters_the_parameters() {
    let Run { out, report, .. } = run(&["-n", "8"], &[SMALL, &["--fsdp"]].concat());
    assert_every_rank_stepped(&out);
    let report = report.expect("a report");
    // Bytes are per rank as passed to NCCL: a reduce-scatter's receive size, an all-gather's send size.
    assert_eq!(nccl_bytes(&report, "ReduceScatter") * WORLD, STEPS * 4 * SMALL_PARAMS, "{report}");
    assert_eq!(nccl_bytes(&report, "AllGather") * WORLD, STEPS * 4 * (SMALL_PARAMS + SMALL_BLOCK_PARAMS), "{report}");
}

/// Profiling mode's table replays on this CPU-only machine (docs/profiling.md): GPT-2 124M was trained under
/// `phantom run --profile --host-time deterministic` on a real H100, which measured every kernel configuration
/// and library call (`calibration/profiling/measure-models.sh`; its output and table are committed in
/// `calibration/profiling/h100-sxm-80gb/`). Replaying that table here gives every steady step the profiled
/// run's step time within 1 %, and every kernel and library call finds its time in the table. Two recordings:
/// the first session's (gated figures only), and one with running samples (2026-11-25), whose figures change
/// during the profiled run's first steps and are final in the table.
#[test]
fn gpt2_124m_replays_the_step_time_profiled_on_an_h100() {
    replays_the_profiled_step_time("models.txt", "gpt2-124m-det.table");
}

#[test]
fn gpt2_124m_replays_the_step_time_profiled_with_running_samples() {
    replays_the_profiled_step_time("gpt2-124m-det-2.txt", "gpt2-124m-det-2.table");
}

/// `log`'s `gpt2-124m profile-det` run against a replay of `table` (both in calibration/profiling/h100-sxm-80gb/).
fn replays_the_profiled_step_time(log: &str, table: &str) {
    let dir = workspace_root().join("calibration/profiling/h100-sxm-80gb");
    let log = std::fs::read_to_string(dir.join(log)).unwrap_or_else(|e| panic!("{log}: {e}"));
    let profiled = log.split("== ").find(|s| s.starts_with("gpt2-124m profile-det")).expect("the deterministic profiling run");
    let profiled: Vec<f64> = steps(&Output { code: Some(0), signal: None, timed_out: false, stdout: profiled.into(), stderr: String::new() })
        .into_iter()
        .filter(|&(_, step, _)| step >= 2)
        .map(|(_, _, t)| t)
        .collect();
    assert!(profiled.len() >= 5, "{profiled:?}");
    let want = profiled.iter().sum::<f64>() / profiled.len() as f64;

    let table = dir.join(table);
    let Run { out, report, .. } = run(&["-n", "1", "--kernel-table", table.to_str().unwrap()], &["--steps", "4"]);
    assert!(out.success(), "{}", out.describe());
    let s = steps(&out);
    assert_eq!(s.len(), 4, "{}", out.describe());
    for &(_, step, t) in &s[1..] {
        assert!((t - want).abs() <= 0.01 * want, "step {step}: replayed {t} ms, profiled on the H100 {want} ms");
    }
    let by_source = &report.expect("a report")["per_rank"][0]["kernel_ns_by_source"];
    assert_eq!((by_source["model"].as_u64(), by_source["library"].as_u64()), (Some(0), Some(0)), "{by_source}");
    assert!(by_source["table"].as_u64().unwrap() > 0, "{by_source}");
}
