//! Phantom's `libnvidia-ml.so.1` (docs/abi.md, "Implemented exports (libnvidia-ml.so.1)"), queried by
//! `tests/programs/nvml_query.c` through `dlopen`, as torch, NCCL and pynvml use it: the node of the cluster
//! configuration, described as the runtime describes it.

use phantom_cuda_sys::CUDART_VERSION;
use phantom_tests::{compile, phantom_env, run_program, run_with_timeout, workspace_root, Output, PROGRAM_TIMEOUT};
use sim_core::gpu::gpu_preset;
use std::collections::BTreeSet;
use std::process::Command;

fn run_with(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(compile("nvml_query.c"));
    phantom_env(&mut cmd);
    cmd.envs(env.iter().copied());
    run_with_timeout(cmd, PROGRAM_TIMEOUT)
}

#[test]
fn nvml_sees_the_dgx_h100_node() {
    let out = run_program(&compile("nvml_query.c"), &[]);
    out.assert_clean_success();
    let v = |k: &str| out.value(k);

    // Before nvmlInit every call is NVML_ERROR_UNINITIALIZED; the error strings are NVIDIA's.
    assert_eq!(v("uninit_count"), "1", "NVML_ERROR_UNINITIALIZED");
    assert_eq!(v("uninit_shutdown"), "1", "NVML_ERROR_UNINITIALIZED");
    assert_eq!(v("string_0"), "Success");
    assert_eq!(v("string_1"), "Uninitialized");
    assert_eq!(v("string_2"), "Invalid Argument");
    assert_eq!(v("string_3"), "Not Supported");
    assert_eq!(v("string_999"), "Unknown Error");
    assert_eq!(v("string_12345"), "Unknown Error");
    assert_eq!(v("init"), "0");

    // The devices: 8 × H100 SXM 80 GB, each with its own UUID and PCI bus, in index order.
    let h100 = gpu_preset("h100-sxm-80gb").unwrap();
    assert_eq!(v("device_count"), "8");
    assert_eq!(v("device_count_v1"), "8");
    for i in 0..8 {
        assert_eq!(v(&format!("name_{i}")), "NVIDIA H100 80GB HBM3");
        assert_eq!(v(&format!("uuid_{i}")), format!("GPU-50484e54-0000-4000-8000-00000000000{i}"));
    }
    assert_eq!(v("distinct_uuids"), "8");
    assert_eq!(v("distinct_bus_ids"), "8");
    assert_eq!(v("indexes_ok"), "1");
    let buses = ["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"];
    for (i, bus) in buses.iter().enumerate() {
        assert_eq!(v(&format!("bus_id_{i}")), format!("00000000:{bus}:00.0"));
    }
    assert_eq!(v("bus_id_legacy_0"), "0000:18:00.0");
    assert_eq!(v("pci_device_id_0"), "0x233010de");
    assert_eq!(v("pci_subsystem_id_0"), "0x16c110de");

    // The same GPUs as the runtime's, bus ids and UUIDs alike.
    assert_eq!(v("runtime_device_count"), "8");
    for i in 0..8 {
        assert_eq!(v(&format!("runtime_bus_id_{i}")), v(&format!("bus_id_{i}")));
        assert_eq!(v(&format!("runtime_uuid_{i}")), v(&format!("uuid_{i}")));
    }

    // Handles: stable, found by index (v1 and v2), PCI bus id (any form, any case) and UUID; bad ones rejected.
    assert_eq!(v("handle_v1_same"), "1");
    assert_eq!(v("handle_index_out_of_range"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    assert_eq!(v("handle_null_out"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    assert_eq!(v("by_bus_id_same"), "1");
    assert_eq!(v("by_bus_id_legacy_same"), "1");
    assert_eq!(v("by_bus_id_absent"), "6", "NVML_ERROR_NOT_FOUND");
    assert_eq!(v("by_bus_id_malformed"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    assert_eq!(v("by_uuid_same"), "1");
    assert_eq!(v("by_uuid_absent"), "6", "NVML_ERROR_NOT_FOUND");
    assert_eq!(v("bad_handle"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    assert_eq!(v("uuid_small_buffer"), "7", "NVML_ERROR_INSUFFICIENT_SIZE");

    // Device 0: the GPU model's figures; memory is all free (NVML sees no allocation).
    assert_eq!(v("cc"), "9.0");
    let total = h100.memory_bytes.to_string();
    assert_eq!(v("memory_total"), total);
    assert_eq!(v("memory_free"), total);
    assert_eq!(v("memory_used"), "0");
    assert_eq!(v("memory_v2_bad_version"), "25", "NVML_ERROR_ARGUMENT_VERSION_MISMATCH");
    assert_eq!(v("memory_v2_total"), total);
    assert_eq!(v("memory_v2_reserved"), "0");
    assert_eq!(v("memory_v2_used"), "0");
    assert_eq!(v("processes"), "0");
    assert_eq!(v("utilization_gpu"), "0");
    assert_eq!(v("utilization_memory"), "0");
    assert_eq!(v("temperature"), "30");
    assert_eq!(v("power_mw"), "70000");
    assert_eq!(v("sm_clock_mhz"), (h100.clock_rate_khz / 1000).to_string());
    assert_eq!(v("mem_clock_mhz"), (h100.memory_clock_rate_khz / 1000).to_string());

    // The system: the runtime's CUDA driver version; confidential computing off.
    assert_eq!(v("cuda_driver_version"), CUDART_VERSION.to_string());
    assert_eq!(v("driver_version"), "580.159.04");
    assert_eq!(v("cc_feature"), "0");
    assert_eq!(v("cc_multi_gpu_mode"), "0");

    // Topology: GPUs 0-3 on one socket, 4-7 on the other; 18 NVLinks per GPU, each to an NVSwitch.
    assert_eq!(v("topology_same"), "0", "NVML_TOPOLOGY_INTERNAL");
    assert_eq!(v("topology_socket"), "40", "NVML_TOPOLOGY_NODE");
    assert_eq!(v("topology_system"), "50", "NVML_TOPOLOGY_SYSTEM");
    assert_eq!(v("p2p_read"), "0", "NVML_P2P_STATUS_OK");
    assert_eq!(v("p2p_nvlink"), "0", "NVML_P2P_STATUS_OK");
    assert_eq!(v("p2p_bad_index"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    assert_eq!(v("nvlinks"), "18");
    assert_eq!(v("switch_links"), "18", "NVML_NVLINK_DEVICE_TYPE_SWITCH");
    assert_eq!(v("nvlink_active"), "1");
    assert_eq!(v("nvlink_can_p2p"), "1");
    assert_eq!(v("nvlink_sysmem"), "0");
    assert_eq!(v("nvlink_state_past_last"), "2", "NVML_ERROR_INVALID_ARGUMENT");
    // NCCL lower-cases the legacy id and takes `fffffff:ffff:ff` for an NVSwitch.
    assert_eq!(v("remote_bus_id_v1"), "FFFFFFF:FFFF:FF");
    assert_eq!(v("remote_bus_id_v2"), "0FFFFFFF:FFFF:FF.0");
    // Field values: `status:value`; 450 GB/s over 18 links is 25000 MB/s per link.
    assert_eq!(v("field_link_count"), "0:18");
    assert_eq!(v("field_link_speed"), "0:25000");
    assert_eq!(v("field_link_state"), "0:1");
    assert_eq!(v("field_c2c_count"), "0:0");
    assert_eq!(v("field_other"), "3", "NVML_ERROR_NOT_SUPPORTED");
    assert_eq!(v("fabric_state"), "0", "NVML_GPU_FABRIC_STATE_NOT_SUPPORTED: no multi-node NVLink");
    assert_eq!(v("fabric_status"), "0");
    assert_eq!(v("fabric_bad_version"), "25", "NVML_ERROR_ARGUMENT_VERSION_MISMATCH");
    assert_eq!(v("platform_info"), "3", "NVML_ERROR_NOT_SUPPORTED");

    // Reference counting: uninitialised after as many shutdowns as inits; the same handles after a new init.
    assert_eq!(v("count_after_one_shutdown"), "0");
    assert_eq!(v("count_after_shutdown"), "1", "NVML_ERROR_UNINITIALIZED");
    assert_eq!(v("index_after_shutdown"), "1", "NVML_ERROR_UNINITIALIZED");
    assert_eq!(v("shutdown_3"), "1", "NVML_ERROR_UNINITIALIZED");
    assert_eq!(v("reinit_same_handle"), "1");
}

/// NVML sees every GPU of the node whatever `CUDA_VISIBLE_DEVICES` says, the preset's GPU model and NVLink
/// generation, and the node of the process in the UUIDs.
#[test]
fn nvml_follows_the_cluster_not_cuda_visible_devices() {
    let out = run_with(&[("PHANTOM_CLUSTER", "dgx-a100"), ("CUDA_VISIBLE_DEVICES", "1,2"), ("PHANTOM_NODE", "3")]);
    out.assert_clean_success();
    let a100 = gpu_preset("a100-sxm-80gb").unwrap();
    assert_eq!(out.value("device_count"), "8");
    assert_eq!(out.value("name_0"), "NVIDIA A100-SXM4-80GB");
    assert_eq!(out.value("cc"), "8.0");
    assert_eq!(out.value("memory_total"), a100.memory_bytes.to_string());
    assert_eq!(out.value("nvlinks"), "12");
    assert_eq!(out.value("field_link_speed"), "0:25000");
    assert_eq!(out.value("uuid_1"), "GPU-50484e54-0000-4000-8000-000300000001");
    let uuids: BTreeSet<String> = (0..8).map(|i| out.value(&format!("uuid_{i}"))).collect();
    assert_eq!(uuids.len(), 8);
    // The runtime sees GPUs 1 and 2 as its devices 0 and 1: their buses are NVML's GPUs 1 and 2.
    assert_eq!(out.value("runtime_device_count"), "2");
    assert_eq!(out.value("runtime_bus_id_0"), out.value("bus_id_1"));
    assert_eq!(out.value("runtime_bus_id_1"), out.value("bus_id_2"));
}

/// A cluster configuration that cannot be used: `nvmlInit` returns `NVML_ERROR_UNKNOWN` (torch then warns and
/// counts devices with `cudaGetDeviceCount`, which fails the same way), with one log line naming the problem.
#[test]
fn nvml_init_fails_cleanly_on_a_bad_cluster_file() {
    let bad = workspace_root().join("tests/programs/bad_cluster.toml");
    let out = run_with(&[("PHANTOM_CLUSTER", bad.to_str().unwrap())]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.value("uninit_count"), "1");
    assert_eq!(out.value("init"), "999", "NVML_ERROR_UNKNOWN");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one log line: {}", out.describe());
    assert!(lines[0].contains("libnvidia-ml.so.1") && lines[0].contains("gpus_per_nod"), "{}", out.describe());
}
