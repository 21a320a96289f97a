//! Kernel-time tables from a PyTorch profile (docs/kernel-table.md, "Tables from a PyTorch profile"):
//! `phantom table from-torch-profile` converts tests/data/gpt2-h100-profile-excerpt.json, and PyTorch on
//! Phantom then runs the kernels it lists for exactly the durations the real H100 measured.
//!
//! The excerpt is cut from calibration/torch/h100-sxm-80gb/gpt2-124m-profile.json.gz (torch.profiler, three
//! steps of tests/programs/torch/gpt2.py on an H100): the first three events of each launch configuration of
//! five PyTorch kernels (layer norm forward, LayerNorm's GammaBeta backward, GELU, an `add` through
//! `gpu_kernel_impl_nocast`, the random-number kernel of `torch.randint`) and of two library kernels (a cuBLAS
//! `nvjet` GEMM, cuDNN's SDPA forward), the `cudaLaunchKernel` / `cuLaunchKernelEx` events with the same
//! correlation ids, one memset, and the trace's `deviceProperties`. Three of the five names are spelt
//! differently by the profiler's demangler and by Phantom's (`32u` / `(unsigned int)32`, `2ul`, a nested
//! `void`), so the run also checks that the names are matched.

use phantom_tests::{phantom_bin, run_with_timeout, workspace_root, Output};
use sim_core::ktable::{KernelKey, KernelTable};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(600);


fn excerpt() -> PathBuf {
    workspace_root().join("tests/data/gpt2-h100-profile-excerpt.json")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phantom-ktable-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `phantom table from-torch-profile TRACE -o OUT`.
fn convert(trace: &Path, out: &Path) -> Output {
    let mut cmd = Command::new(phantom_bin());
    cmd.args(["table", "from-torch-profile"]).arg(trace).arg("-o").arg(out);
    run_with_timeout(cmd, TIMEOUT)
}

/// (a part of the name both demanglers spell alike, grid, block, median ns, samples) of the entries the excerpt
/// gives.
const ENTRIES: [(&str, &str, &str, u64, u32); 5] = [
    ("GammaBetaBackwardCUDAKernelTemplate<", "24,1,1", "32,32,1", 45_601, 3),
    ("distribution_elementwise_grid_stride_kernel<", "32,1,1", "256,1,1", 1_728, 3),
    ("vectorized_layer_norm_kernel<", "8192,1,1", "32,4,1", 27_745, 3),
    ("void at::native::elementwise_kernel<128, 2, ", "24576,1,1", "128,1,1", 22_944, 3),
    ("GeluCUDAKernelImpl(", "24576,1,1", "128,1,1", 35_841, 3),
];

#[test]
fn the_excerpt_becomes_a_table_without_library_kernels() {
    let dir = scratch("convert");
    let table = dir.join("excerpt.table");
    let out = convert(&excerpt(), &table);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.describe());
    let text = std::fs::read_to_string(&table).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# phantom kernel-time table v1"));
    assert_eq!(lines.next(), Some("# gpu: h100-sxm-80gb"), "from the trace's device name");
    let records: Vec<Vec<&str>> = text.lines().filter(|l| l.starts_with("kernel\t")).map(|l| l.split('\t').collect()).collect();
    assert_eq!(records.len(), ENTRIES.len(), "{text}");
    for (fragment, grid, block, ns, samples) in ENTRIES {
        let r = records.iter().find(|r| r[1].contains(fragment)).unwrap_or_else(|| panic!("no entry for {fragment}:\n{text}"));
        // Shared memory `*`: the profile's figure includes static shared memory, Phantom's key does not.
        assert_eq!(r[2..], [grid, block, "*", &ns.to_string(), &samples.to_string()], "{fragment}");
    }
    // The profiler's spelling is kept.
    assert!(text.contains("GammaBetaBackwardCUDAKernelTemplate<float, float, 32u, 32u, 256u, false, true, false>"), "{text}");
    assert!(text.contains("std::array<char*, 2ul>"), "{text}");
    assert!(!text.contains("nvjet") && !text.contains("cudnn"), "{text}");
    assert_eq!(
        out.stderr.lines().next(),
        Some(format!("phantom table: {}: 21 kernel events; in the table: 15 events of 5 kernels (402.19 µs), 5 configurations", excerpt().display()).as_str())
    );
    assert!(
        out.stderr.contains(
            "left out: 6 events of 2 library kernels (902.61 µs) that cuBLAS/cuDNN launch (Phantom times their calls with its \
             library models): nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT 761.39 µs (3), cudnn_generated_fort_native_sdpa_sm90_flash_fprop… 141.22 µs (3)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_file_that_is_not_a_trace_is_an_error() {
    let dir = scratch("error");
    let out = convert(&workspace_root().join("tests/programs/runtime_timing.table"), &dir.join("t.table"));
    let written = dir.join("t.table").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.starts_with("phantom table: error: ") && out.stderr.contains("runtime_timing.table: not a Chrome trace (JSON): "), "{}", out.stderr);
    assert!(!written);
}

/// GPT-2 with one layer, two steps, in deterministic host time with the converted table: every launch the table
/// times takes exactly its entry's duration, and each of the five kernels is among them.
#[test]
fn torch_kernels_take_the_durations_the_h100_measured() {
    let torch = workspace_root().join(".deps/torch");
    assert!(torch.join("torch/__init__.py").is_file(), "no torch in {}: run `bash scripts/install-torch.sh`", torch.display());
    let dir = scratch("torch");
    let table_path = dir.join("excerpt.table");
    let conv = convert(&excerpt(), &table_path);
    assert!(conv.success(), "{}", conv.describe());
    let mut cmd = Command::new(phantom_bin());
    cmd.current_dir(&dir)
        .args(["run", "-n", "1", "--cluster", "dgx-h100", "--host-time", "deterministic", "--kernel-table"])
        .arg(&table_path)
        .args(["--trace", "trace.json", "--report", "report.json", "--", "python3"])
        .arg(workspace_root().join("tests/programs/torch/gpt2.py"))
        .args(["--layers", "1", "--steps", "2"])
        .env("PYTHONPATH", &torch)
        .env("PHANTOM_LOG", "error");
    for var in ["PHANTOM_CLUSTER", "PHANTOM_NODES", "PHANTOM_KERNEL_TABLE", "PHANTOM_LOG_FILE", "PHANTOM_SLEEPS", "CUDA_VISIBLE_DEVICES"] {
        cmd.env_remove(var);
    }
    let out = run_with_timeout(cmd, TIMEOUT);
    let json = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{}", out.describe()));
        serde_json::from_str(&text).expect("JSON")
    };
    let (trace, report) = (json("trace.json"), json("report.json"));
    let table = KernelTable::load(&table_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.success(), "{}", out.describe());

    let dims = |v: &serde_json::Value| -> [u32; 3] {
        let a = v.as_array().expect("[x, y, z]");
        [0, 1, 2].map(|i| a[i].as_u64().unwrap() as u32)
    };
    let mut table_ns = 0u64;
    let mut timed = [0usize; ENTRIES.len()];
    for e in trace["traceEvents"].as_array().expect("traceEvents").iter().filter(|e| e["cat"] == "kernel") {
        let args = &e["args"];
        if args["source"] != "table" {
            continue;
        }
        let name = e["name"].as_str().unwrap();
        let key = KernelKey { name: name.into(), grid: dims(&args["grid"]), block: dims(&args["block"]), shared_mem_bytes: args["shared"].as_u64().unwrap() as u32 };
        let expected = table.lookup(&key).unwrap_or_else(|| panic!("timed by the table but not in it: {key:?}")).as_nanos();
        let ns = (e["dur"].as_f64().unwrap() * 1e3).round() as u64;
        assert_eq!(ns, expected, "{name}");
        table_ns += ns;
        let i = ENTRIES.iter().position(|entry| name.contains(entry.0)).unwrap_or_else(|| panic!("not one of the five: {name}"));
        assert_eq!(ns, ENTRIES[i].3, "{name}");
        timed[i] += 1;
    }
    assert!(timed.iter().all(|&n| n > 0), "launches timed by the table, per entry: {timed:?}");
    assert_eq!(report["kernel_time_by_source"]["table"]["ns"].as_u64(), Some(table_ns), "{report}");
}
