//! Simulated time through the runtime API: tests/programs/runtime_timing.cu, compiled with NVIDIA's nvcc
//! (`-cudart shared`), run against the staged library in deterministic host-time mode with the kernel table
//! tests/programs/runtime_timing.table.
//!
//! The expected values follow from the documented model (docs/gpu-model.md, docs/time.md) and the `dgx-h100`
//! preset: every API call costs the host `api_call_ns` = 100 ns, a launch `launch_call_ns` = 2 µs; a command
//! reaches the GPU `launch_latency_ns` = 2 µs after the call that queued it returns; events are markers placed
//! like any other command.

use phantom_tests::{compile, phantom_env, run_with_timeout, workspace_root, Output, PROGRAM_TIMEOUT};
use std::process::Command;
use std::sync::OnceLock;

const API_NS: f64 = 100.0;
const LAUNCH_NS: f64 = 2_000.0;
const LATENCY_NS: f64 = 2_000.0;

fn output() -> &'static Output {
    static OUT: OnceLock<Output> = OnceLock::new();
    OUT.get_or_init(|| {
        let exe = compile("runtime_timing.cu");
        let mut cmd = Command::new(exe);
        phantom_env(&mut cmd);
        cmd.env("PHANTOM_CLUSTER", "dgx-h100")
            .env("PHANTOM_KERNEL_TABLE", workspace_root().join("tests/programs/runtime_timing.table"));
        let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
        out.assert_clean_success();
        assert_eq!(out.value("done"), "1", "{}", out.describe());
        out
    })
}

fn ms(key: &str) -> f64 {
    output().value(key).parse().unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Printed with 4 decimals (0.1 µs): compare at that resolution.
fn assert_ms(key: &str, expected_ns: f64) {
    let expected = (expected_ns / 1e6 * 1e4).round() / 1e4;
    assert_eq!(ms(key), expected, "{key}");
}

#[test]
fn device_properties_of_the_h100_preset() {
    let out = output();
    assert_eq!(out.value("sms"), "132");
    assert_eq!(out.value("cc"), "9.0");
    assert_eq!(out.value("name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(out.value("total_mem"), "85017493504");
    assert_eq!(out.value("mem_total"), "85017493504");
}

#[test]
fn ten_table_kernels_on_one_stream() {
    // Event a is a marker at T+100+latency; the first launch is handed over at T+100+2000 and starts one
    // latency later, so the kernels run from a + 2 µs for 10 × 1.5 ms: elapsed = 15 ms + launch_call_ns.
    assert_ms("ten_kernels_event_ms", 10.0 * 1.5e6 + LAUNCH_NS);
    // Host clock: the first kernel starts at T + api + launch + latency; cudaStreamSynchronize returns when
    // the last one ends and costs one more api call.
    assert_ms("ten_kernels_host_ms", API_NS + LAUNCH_NS + LATENCY_NS + 10.0 * 1.5e6 + API_NS);
}

#[test]
fn kernels_on_two_streams_overlap_when_they_fit() {
    // half_gpu: 66 blocks of 256 threads, 8 resident per SM → 9 SMs each: both fit and overlap. The second
    // launch starts one launch cost after the first; cudaDeviceSynchronize adds one api call.
    assert_ms("two_small_host_ms", LAUNCH_NS + LAUNCH_NS + LATENCY_NS + 1e6 + API_NS);
    // full_gpu: 2112 blocks → all 132 SMs each: the second waits for the first.
    assert_ms("two_full_host_ms", LAUNCH_NS + LATENCY_NS + 2e6 + API_NS);
}

#[test]
fn pinned_host_to_device_copy_runs_at_pcie_bandwidth() {
    let spec = sim_core::gpu::gpu_preset("h100-sxm-80gb").unwrap();
    // The copy is handed over one api call after event a: elapsed = api + 1 GiB / PCIe bandwidth.
    let copy_ns = (1u64 << 30) as f64 / spec.pcie_h2d_bytes_per_s * 1e9;
    assert_ms("h2d_1gib_ms", API_NS + copy_ns);
}

#[test]
fn device_to_host_copies_deliver_zeros() {
    assert_eq!(output().value("d2h_bytes"), "0,0");
}

#[test]
fn allocating_more_than_the_gpu_has_fails_like_cuda() {
    let out = output();
    assert_eq!(out.value("malloc_81gib"), "2", "cudaErrorMemoryAllocation");
    // cudaGetLastError returns the error once and resets it; the error is not sticky.
    assert_eq!(out.value("last_error_first"), "2");
    assert_eq!(out.value("last_error_second"), "0");
    assert_eq!(out.value("malloc_after"), "0");
}

#[test]
fn a_captured_graph_replays_in_the_captured_time() {
    assert_eq!(output().value("graph_nodes"), "100");
    // 100 × 10 µs back to back; the GPU never idles because each launch costs the host only 2 µs.
    assert_ms("direct_100_ms", 100.0 * 10_000.0 + LAUNCH_NS);
    assert_ms("graph_100_ms", 100.0 * 10_000.0 + LAUNCH_NS);
}

#[test]
fn device_variables_are_copied_through_their_symbols() {
    let out = output();
    assert_eq!(out.value("symbol_size"), "64");
    // The variable holds the 64 bytes copied to it (a small copy is remembered): the two floats read from
    // offset 4 are 2 and 3, landing in host elements 0 and 1; element 2 keeps its host value.
    assert_eq!(out.value("symbol_readback"), "2,3,3");
    // 64 bytes at offset 4 run past the 64-byte variable.
    assert_eq!(out.value("symbol_overflow"), "1", "cudaErrorInvalidValue");
}

#[test]
fn a_bad_cluster_file_fails_every_call_with_one_clear_error() {
    let exe = compile("runtime_timing.cu");
    let mut cmd = Command::new(exe);
    phantom_env(&mut cmd);
    cmd.env("PHANTOM_CLUSTER", workspace_root().join("tests/programs/bad_cluster.toml"));
    let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
    // The program's first call reports the error and the program exits 1 on its own: no crash.
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stdout.contains("cudaErrorInitializationError"), "{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one log line: {}", out.describe());
    assert!(lines[0].contains("gpus_per_nod"), "the line names the field: {}", out.describe());
}
