//! cuDNN's backend (graph) API on the staged `libcudnn.so.9` (stubs/cudnn/src/, docs/cudnn.md): PyTorch's SDPA
//! graphs go through heuristics, plans and execution with the engines, knobs and workspace NVIDIA's cuDNN 9.19
//! reported on an H100, and execute in the model's time on the handle's stream (every figure is derived in
//! tests/programs/cudnn_sdpa.c), measured with CUDA events; descriptors and handles are validated. Executions
//! take a kernel-time table's `call` times by their keys, and in profiling mode run in "NVIDIA's" library (a
//! stand-in, on the stand-in driver) and take its measured times (docs/cudnn.md, "Keys and profiling").

use phantom_tests::{compile, compile_shared, phantom_env, phantom_run_profiled, run_program, run_with_timeout, Output, PROGRAM_TIMEOUT};
use sim_core::ktable::KernelTable;
use sim_core::time::SimDuration;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cudnnStatus_t` values.
const NOT_INITIALIZED: &str = "1001";
const BAD_PARAM: &str = "2000";
const BAD_PARAM_NOT_FINALIZED: &str = "2004";
const BAD_PARAM_ATTRIBUTE_TYPE: &str = "2010";
const NOT_SUPPORTED: &str = "3000";

/// `CUDNN_KNOB_TYPE_KERNEL_CFG` and `CUDNN_KNOB_TYPE_STAGES`.
const KERNEL_CFG: i32 = 24;
const STAGES: i32 = 14;

#[test]
fn cudnn_sdpa_graphs_take_the_model_time() {
    let out = run_program(&compile("cudnn_sdpa.c"), &[]);
    out.assert_clean_success();
    assert_eq!(out.value("version"), "91900");
    assert_eq!(out.value("property"), "9.19.0");
    assert_eq!(out.value("stream_same"), "1");

    // Forward: the four engine configurations cuDNN 9.19 offered torch on an H100, eng2 (kernel cfg 7) first,
    // and the 16-byte workspace of the Hopper forward kernels.
    assert_eq!(out.value("fwd_configs"), "4");
    assert_eq!(out.value("fwd_engine"), "2");
    assert_eq!(out.value("fwd_knobs"), format!("{KERNEL_CFG}:7"));
    assert_eq!(out.value("fwd_tensor_core"), "1");
    assert_eq!(out.value("fwd_workspace"), "16");
    assert_eq!(out.value("fwd_causal_ms"), "0.047360");
    assert_eq!(out.value("fwd_full_engine"), "2");
    assert_eq!(out.value("fwd_full_ms"), "0.091719");

    // Backward: eng6 (stages -1, kernel cfg 26) of three, no workspace of its own.
    assert_eq!(out.value("bwd_configs"), "3");
    assert_eq!(out.value("bwd_engine"), "6");
    assert_eq!(out.value("bwd_knobs"), format!("{STAGES}:-1,{KERNEL_CFG}:26"));
    assert_eq!(out.value("bwd_workspace"), "0");
    assert_eq!(out.value("bwd_causal_ms"), "0.156698");

    // Any other graph: a plain matmul is a GEMM, as cuBLAS's (tests/programs/cublas_gemm.c).
    assert_eq!(out.value("matmul_configs"), "1");
    assert_eq!(out.value("matmul_engine"), "0");
    assert_eq!(out.value("matmul_knobs"), "");
    assert_eq!(out.value("matmul_workspace"), "0");
    assert_eq!(out.value("matmul_bf16_ms"), "0.188216");

    assert_eq!(out.value("set_unknown_descriptor"), BAD_PARAM);
    assert!(
        out.value("last_error").starts_with("cudnnBackendSetAttribute: CUDNN_STATUS_BAD_PARAM (2000): 0x1234"),
        "{}",
        out.describe()
    );
    assert_eq!(out.value("error_string"), "CUDNN_STATUS_BAD_PARAM");
    assert_eq!(out.value("set_wrong_type"), BAD_PARAM_ATTRIBUTE_TYPE);
    assert_eq!(out.value("finalize_incomplete"), BAD_PARAM);
    assert_eq!(out.value("execute_unfinalized"), BAD_PARAM_NOT_FINALIZED);
    assert_eq!(out.value("execute_missing_uid"), BAD_PARAM);
    assert_eq!(out.value("execute_no_workspace"), BAD_PARAM);
    assert_eq!(out.value("destroy_again"), BAD_PARAM);
    assert_eq!(out.value("execute_destroyed_handle"), NOT_INITIALIZED);
}

/// The library-call keys of cudnn_sdpa.c's executions, as stubs/cudnn/src/graph.rs writes them (docs/cudnn.md,
/// "Keys and profiling"): the forward graphs (Q, K, V, O of 8·12·1024·64 bf16 and fp32 softmax stats:
/// 50 724 864 bytes; d_v = 25 769 803 776 FLOP / (2·8·12·1024²) − 64 = 64), the backward graph (eight bf16
/// tensors: 100 663 296 bytes), each with the digest of its operations, and the plain matmul's operation list.
const FWD_CAUSAL_KEY: &str = "cudnn sdpa fwd b=8 h=12 sq=1024 skv=1024 d=64 dv=64 dtype=bf16 causal=1 dropout=0 \
                              bytes=50724864 graph=164f9fc9da30c6b1";
const BWD_CAUSAL_KEY: &str = "cudnn sdpa bwd b=8 h=12 sq=1024 skv=1024 d=64 dv=64 dtype=bf16 causal=1 dropout=0 \
                              bytes=100663296 graph=e27f7b7b186a43fe";
const MATMUL_KEY: &str = "cudnn graph matmul comp=fp32 a=t0:bf16[1,1,4096,4096]/[16777216,16777216,4096,1] \
                          b=t1:bf16[1,1,4096,4096]/[16777216,16777216,4096,1] \
                          c=t2:bf16[1,1,4096,4096]/[16777216,16777216,4096,1]";

/// A fresh empty directory under the system's temporary directory.
fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phantom-cudnn-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// cudnn_sdpa.c with `other-times` (times printed, not compared with the model's) and `env`.
fn run_sdpa(env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(compile("cudnn_sdpa.c"));
    cmd.arg("other-times");
    phantom_env(&mut cmd);
    cmd.env_remove("PHANTOM_KERNEL_TABLE").env_remove("PHANTOM_PROFILE").env_remove("PHANTOM_PROFILE_TABLE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, PROGRAM_TIMEOUT)
}

/// A kernel-time table (docs/kernel-table.md) of `call` records (key, duration in ns as written), in a fresh
/// directory.
fn call_table(calls: &[(&str, &str)]) -> PathBuf {
    let dir = tempdir("calls");
    let mut text = String::from("# phantom kernel-time table v1\n# source: tests/tests/e2e/cudnn.rs\n");
    for (key, ns) in calls {
        text.push_str(&format!("call\t{key}\t{ns}\n"));
    }
    let path = dir.join("cudnn.table");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// What profiling recorded replays on a machine without a GPU: a table's `call` records time the executions
/// whose keys they list, exactly (123 456 ns forward instead of the model's 47 360; 234 567.5 ns backward,
/// rounded half up to 234 568, instead of 156 698; 100 000 ns for the matmul instead of 188 216). The
/// non-causal forward graph, which no record lists, keeps the model's time: lookup is by the exact key, and its
/// key says `causal=0`.
#[test]
fn cudnn_executions_take_a_tables_call_times() {
    let table = call_table(&[(FWD_CAUSAL_KEY, "123456"), (BWD_CAUSAL_KEY, "234567.5"), (MATMUL_KEY, "100000")]);
    let out = run_sdpa(&[("PHANTOM_KERNEL_TABLE", &table)]);
    out.assert_clean_success();
    assert_eq!(out.value("fwd_causal_ms"), "0.123456");
    assert_eq!(out.value("bwd_causal_ms"), "0.234568");
    assert_eq!(out.value("matmul_bf16_ms"), "0.100000");
    assert_eq!(out.value("fwd_full_ms"), "0.091719");
    // What the application sees of plans is unchanged: Phantom's heuristics and workspace sizes.
    assert_eq!(out.value("fwd_engine"), "2");
    assert_eq!(out.value("fwd_workspace"), "16");
    let _ = std::fs::remove_dir_all(table.parent().unwrap());
}

/// `name N` lines of the one `<prefix>-<pid>.txt` file in `dir` (the stand-ins' counters at exit).
fn counters(dir: &Path, prefix: &str) -> BTreeMap<String, u64> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(files.len(), 1, "one process wrote {prefix}-*.txt in {}: {files:?}", dir.display());
    let text = std::fs::read_to_string(&files[0]).unwrap();
    text.lines()
        .map(|l| {
            let (k, n) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{}: `{l}`", files[0].display()));
            (k.to_string(), n.parse().unwrap_or_else(|e| panic!("{}: `{l}`: {e}", files[0].display())))
        })
        .collect()
}

/// Profiling mode (docs/profiling.md) on a stand-in GPU: with `PHANTOM_PROFILE=execute` the stub mirrors every
/// handle and descriptor into "NVIDIA's" libcudnn.so.9 — here stubs/cudnn/testing/fake_cudnn.c, found through
/// `PHANTOM_REAL_LIBS` — and runs each execution there, on the real stream of tests/programs/fake_cuda_driver.c
/// (`PHANTOM_REAL_DRIVER`), whose clock times it: the fake launches one kernel of grid 10·(operations) and block
/// 256, which the fake driver times at 10000·ops + 256 ns (14, 10, 13 and 1 operations: 140 256, 100 256,
/// 130 256 and 10 256 ns). The application sees the fake's heuristics and workspace sizes (engines 41 and 42,
/// knob 24 = 99, 4096 bytes for a two-matmul graph), and its refusals with its statuses and one log line each;
/// the fake checks that no stub handle or descriptor reaches it (`foreign 0`). The profile table written at
/// exit holds each key once with its measured time, and replaying it without a GPU gives the same times.
#[test]
fn cudnn_executions_run_in_nvidias_library_when_profiling() {
    let dir = tempdir("execute");
    let (libs, stats, table) = (dir.join("nvidia"), dir.join("stats"), dir.join("profile.table"));
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::create_dir_all(&stats).unwrap();
    std::os::unix::fs::symlink(compile_shared("stubs/cudnn/testing/fake_cudnn.c"), libs.join("libcudnn.so.9")).unwrap();
    let driver = compile_shared("fake_cuda_driver.c");
    let out = run_sdpa(&[
        ("PHANTOM_PROFILE", Path::new("execute")),
        ("PHANTOM_REAL_DRIVER", &driver),
        ("PHANTOM_REAL_LIBS", &libs),
        ("PHANTOM_PROFILE_TABLE", &table),
        ("FAKE_CUDA_STATS", &stats),
        ("FAKE_CUDNN_STATS", &stats),
    ]);
    assert!(out.success(), "{}", out.describe());

    // NVIDIA's (the fake's) answers, not Phantom's.
    for (key, value) in [
        ("fwd_configs", "2"),
        ("fwd_engine", "41"),
        ("fwd_knobs", "24:99"),
        ("fwd_tensor_core", "1"),
        ("fwd_workspace", "4096"),
        ("fwd_full_workspace", "4096"),
        ("bwd_workspace", "0"),
        ("matmul_workspace", "0"),
        // The measured times.
        ("fwd_causal_ms", "0.140256"),
        ("fwd_full_ms", "0.100256"),
        ("bwd_causal_ms", "0.130256"),
        ("matmul_bf16_ms", "0.010256"),
        // What NVIDIA's library refuses (a tensor without dimensions, a variant pack missing a tensor or the
        // workspace) with its status; what the stub refuses before (unknown, unfinalized or destroyed
        // descriptors and handles), as without profiling.
        ("finalize_incomplete", BAD_PARAM),
        ("execute_missing_uid", BAD_PARAM),
        ("execute_no_workspace", BAD_PARAM),
        ("set_unknown_descriptor", BAD_PARAM),
        ("set_wrong_type", BAD_PARAM_ATTRIBUTE_TYPE),
        ("execute_unfinalized", BAD_PARAM_NOT_FINALIZED),
        ("destroy_again", BAD_PARAM),
        ("execute_destroyed_handle", NOT_INITIALIZED),
    ] {
        assert_eq!(out.value(key), value, "{key}: {}", out.describe());
    }
    // One line per refusal of NVIDIA's library, with its message; the runtime may add its own report of a
    // library call that failed.
    let ours: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("phantom: libcudnn.so.9: ")).collect();
    let expected = [
        "cudnnBackendFinalize: CUDNN_STATUS_BAD_PARAM (2000): fake_cudnn: tensor without data type",
        "cudnnBackendExecute: CUDNN_STATUS_BAD_PARAM (2000): fake_cudnn: the variant pack does not bind every tensor",
        "cudnnBackendExecute: CUDNN_STATUS_BAD_PARAM (2000): fake_cudnn: the plan needs a workspace",
    ];
    assert_eq!(ours.len(), expected.len(), "{}", out.describe());
    for (line, want) in ours.iter().zip(expected) {
        assert!(line.starts_with(&format!("phantom: libcudnn.so.9: NVIDIA's cuDNN: {want}")), "{line}");
    }
    for line in out.stderr.lines().filter(|l| !l.starts_with("phantom: libcudnn.so.9: ")) {
        assert!(line.contains("status 2000"), "unexpected stderr line `{line}`: {}", out.describe());
    }

    // The fake saw only its own handles and descriptors, ran the 12 timed executions (4 cases × 3), and the
    // handle was destroyed; the fake driver launched its kernel 12 times.
    let cudnn = counters(&stats, "fake-cudnn-");
    assert_eq!((cudnn["foreign"], cudnn["executions"], cudnn["handles"], cudnn["live_handles"]), (0, 12, 1, 0));
    assert_eq!(counters(&stats, "fake-cuda-")["kernel fake_cudnn_engine"], 12);

    // The profile table: each execution's key once, with its measured time.
    let text = std::fs::read_to_string(&table).unwrap_or_else(|e| panic!("no profile table: {e}\n{}", out.describe()));
    let recorded = KernelTable::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(recorded.call_count(), 4, "{text}");
    for (key, ns) in [(FWD_CAUSAL_KEY, 140_256), (BWD_CAUSAL_KEY, 130_256), (MATMUL_KEY, 10_256)] {
        assert_eq!(recorded.lookup_call(key), Some(SimDuration::from_nanos(ns)), "{key}\n{text}");
    }

    // Replayed on a machine without a GPU: the same times; the plans are Phantom's again (16-byte workspace).
    let replay = run_sdpa(&[("PHANTOM_KERNEL_TABLE", &table)]);
    replay.assert_clean_success();
    for key in ["fwd_causal_ms", "fwd_full_ms", "bwd_causal_ms", "matmul_bf16_ms"] {
        assert_eq!(replay.value(key), out.value(key), "{key}");
    }
    assert_eq!(replay.value("fwd_workspace"), "16");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A graph Phantom cannot time is refused at finalization with `CUDNN_STATUS_NOT_SUPPORTED` and one log line
/// naming the operation.
#[test]
fn cudnn_unmodeled_graph_is_not_supported() {
    let out = run_program(&compile("cudnn_sdpa.c"), &["unsupported"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.value("unsupported_graph"), NOT_SUPPORTED);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.describe());
    assert!(
        lines[0].starts_with("phantom: libcudnn.so.9: cudnnBackendFinalize: CUDNN_STATUS_NOT_SUPPORTED (3000)")
            && lines[0].contains("OPERATION_NORM_FORWARD_DESCRIPTOR"),
        "{}",
        out.describe()
    );
}

/// Following ranks charge NVIDIA's host time per library export as the executing rank measured it
/// (docs/profiling.md, "Host time of following ranks"): `phantom run -n 2 --profile` of the SDPA program in
/// measured host time, rank 0 on the fake driver and "NVIDIA's" fake libcudnn.so.9, rank 1 following. Rank 0
/// publishes its mean per export after 4 exports; rank 1, which runs no NVIDIA code, then charges that mean for
/// its own exports, so its report shows NVIDIA's library time too (none without the figure).
#[test]
fn following_ranks_charge_the_library_cost_the_executing_rank_measured() {
    let host = two_ranks_in_measured_host_time("follow-libraries", &[("PHANTOM_PROFILE_HOST_SAMPLES", "4")]);
    assert!(host[0]["nvidia_libraries"].as_u64() > Some(0), "rank 0 timed NVIDIA's library: {}", host[0]);
    assert!(host[1]["nvidia_libraries"].as_u64() > Some(0), "rank 1 charged rank 0's figure: {}", host[1]);
    assert_eq!(host[1]["nvidia_driver"].as_u64(), Some(0), "rank 1 ran no NVIDIA code");
}

/// `phantom run -n 2 --profile` of the SDPA program in measured host time with `env`: rank 0 on the fake driver
/// and "NVIDIA's" fake libcudnn.so.9, rank 1 following. Returns each rank's `host_ns` from the report.
fn two_ranks_in_measured_host_time(tag: &str, env: &[(&str, &str)]) -> [serde_json::Value; 2] {
    let dir = tempdir(tag);
    let (libs, report) = (dir.join("nvidia"), dir.join("report.json"));
    std::fs::create_dir_all(&libs).unwrap();
    std::os::unix::fs::symlink(compile_shared("stubs/cudnn/testing/fake_cudnn.c"), libs.join("libcudnn.so.9")).unwrap();
    let mut cmd = phantom_run_profiled(&dir, &compile_shared("fake_cuda_driver.c"), 2, "measured");
    cmd.env("PHANTOM_REAL_LIBS", &libs).envs(env.iter().copied());
    cmd.arg("--report").arg(&report).arg("--").arg(compile("cudnn_sdpa.c")).arg("other-times");
    let out = run_with_timeout(cmd, std::time::Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    let r: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");
    let _ = std::fs::remove_dir_all(&dir);
    [0, 1].map(|rank| r["per_rank"][rank]["host_ns"].clone())
}

/// In measured host time a following rank charges, for each of its cuDNN exports, the executing rank's mean
/// NVIDIA host time per export (docs/profiling.md, "Host time of following ranks"), with the one-offs left out
/// (`clock::LIBRARY_ONE_OFF_NS`): here the fake library's `cudnnCreate` takes 200 ms, as NVIDIA's loads its code
/// at the first handle, and rank 0 publishes its mean after 16 exports, the create among them (the fake's other
/// exports take well under a microsecond, so fewer could give a mean of 0, which publishes nothing). Rank 0
/// charges the 200 ms itself; rank 1, which made the same calls, is charged far less than one create (before the
/// one-offs were left out it paid about 12 ms for every export).
#[test]
fn following_ranks_are_not_charged_the_librarys_one_offs() {
    const CREATE_NS: u64 = 200_000_000;
    let create = CREATE_NS.to_string();
    let host = two_ranks_in_measured_host_time("one-off", &[("FAKE_CUDNN_CREATE_NS", &create), ("PHANTOM_PROFILE_HOST_SAMPLES", "16")]);
    let libraries = |rank: usize| host[rank]["nvidia_libraries"].as_u64().unwrap_or_else(|| panic!("{}", host[rank]));
    assert!(libraries(0) >= CREATE_NS, "rank 0 charges its own create: {}", host[0]);
    assert!(libraries(1) > 0, "rank 1 charges rank 0's figure: {}", host[1]);
    assert!(libraries(1) < CREATE_NS / 10, "rank 1 is not charged the one-off: {}", host[1]);
}
