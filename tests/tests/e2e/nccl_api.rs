//! NCCL's API semantics in one process: tests/programs/nccl_api.cu drives all 8 GPUs of the dgx-h100 preset
//! without a launcher (the simulator is embedded in the process), through NVIDIA's nccl.h and the staged
//! libnccl.so.2, in deterministic host time. It prints `key=value` lines; a value per communicator is a
//! comma-separated list in rank order (`-` where the communicator is NULL). Statuses are numbers:
//! ncclSuccess 0, ncclInvalidArgument 4, ncclInvalidUsage 5; cudaErrorNotReady is 600.
//!
//! Timings (docs/gpu-model.md, docs/time.md, docs/network.md): the program records an event on comm 0's
//! stream, runs one NCCL group, and records a second event. The first event is placed 100 ns (`api_call_ns`)
//! plus 2 µs (`launch_latency_ns`) after its call. `ncclGroupEnd` is called 100 ns later and hands the group
//! over with one launch call (`launch_call_ns`, 2 µs); the group starts one launch latency after that
//! returns. So the events measure the group's own time plus 2 µs, and the contention-free time
//! `ncclGroupSimulateEnd` reported for the same group (in µs) is the measured time minus 2.0 µs.

use phantom_tests::{compile, phantom_env, run_with_timeout, Output, PROGRAM_TIMEOUT};
use std::process::Command;
use std::sync::OnceLock;

const SUCCESS: &str = "0";
const INVALID_ARGUMENT: &str = "4";
const INVALID_USAGE: &str = "5";

/// `launch_call_ns`: what the events measure beyond the group's own time.
const LAUNCH_US: f64 = 2.0;
/// NVLink per GPU and direction as NCCL's copies reach it: 450 GB/s × `nvlink_efficiency` 20.6/25.
const NVLINK: f64 = 450e9 * 20.6 / 25.0;
const GIB: f64 = (1u64 << 30) as f64;

fn output() -> &'static Output {
    static OUT: OnceLock<Output> = OnceLock::new();
    OUT.get_or_init(|| {
        let exe = compile("nccl_api.cu");
        let mut cmd = Command::new(exe);
        phantom_env(&mut cmd);
        cmd.env("PHANTOM_CLUSTER", "dgx-h100");
        let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
        out.assert_clean_success();
        assert_eq!(out.value("done"), "1", "{}", out.describe());
        out
    })
}

fn v(key: &str) -> String {
    output().value(key)
}

/// `value` repeated `n` times, comma-separated.
fn all(value: &str, n: usize) -> String {
    vec![value; n].join(",")
}

/// `0,1,…,n-1`.
fn seq(n: usize) -> String {
    (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// Microseconds as the program prints them (one decimal).
fn us(x: f64) -> String {
    format!("{x:.1}")
}

#[test]
fn version_and_error_strings() {
    assert_eq!(v("get_version"), SUCCESS);
    assert_eq!(v("version"), "23203");
    assert_eq!(v("string_success"), "no error");
    assert_eq!(v("string_unhandled_cuda"), "unhandled cuda error (see ncclGetLastError, or run with PHANTOM_LOG=info)");
    assert_eq!(v("string_system"), "unhandled system error (see ncclGetLastError, or run with PHANTOM_LOG=info)");
    assert_eq!(v("string_invalid_argument"), "invalid argument (see ncclGetLastError, or run with PHANTOM_LOG=warn)");
    assert_eq!(v("string_invalid_usage"), "invalid usage (see ncclGetLastError, or run with PHANTOM_LOG=warn)");
    assert_eq!(v("string_remote"), "remote process exited or there was a network error");
}

#[test]
fn comm_init_all_makes_one_communicator_over_the_8_gpus() {
    assert_eq!(v("device_count"), "8");
    assert_eq!(v("init_all"), SUCCESS);
    assert_eq!(v("init_all_count"), all("8", 8));
    assert_eq!(v("init_all_rank"), seq(8));
    assert_eq!(v("init_all_device"), seq(8));
}

#[test]
fn comm_init_rank_of_every_rank_in_one_group() {
    assert_eq!(v("unique_id"), SUCCESS);
    assert_eq!(v("unique_ids_differ"), "1");
    assert_eq!(v("init_rank_out_of_range"), INVALID_ARGUMENT);
    assert_eq!(v("init_rank_out_of_range_error"), "rank 8 is not in [0, 8)");
    assert_eq!(v("init_rank_start"), SUCCESS);
    assert_eq!(v("init_rank_calls"), all(SUCCESS, 8));
    assert_eq!(v("init_rank_end"), SUCCESS);
    assert_eq!(v("init_rank_count"), all("8", 8));
    assert_eq!(v("init_rank_rank"), seq(8));
    // Rank i called with device i current.
    assert_eq!(v("init_rank_device"), seq(8));
    assert_eq!(v("async_error_after_init"), all(SUCCESS, 8));
}

#[test]
fn groups_nest_and_an_unmatched_end_is_invalid_usage() {
    assert_eq!(v("group_end_without_start"), INVALID_USAGE);
    assert_eq!(v("group_end_without_start_error"), "ncclGroupEnd without ncclGroupStart");
    assert_eq!(v("group_simulate_end_without_start"), INVALID_USAGE);
    assert_eq!(v("nested_start"), "0,0");
    assert_eq!(v("nested_calls"), all(SUCCESS, 8));
    assert_eq!(v("nested_end_inner"), SUCCESS);
    // The inner ncclGroupEnd queues nothing: comm 0's stream is idle (cudaSuccess).
    assert_eq!(v("nested_query_after_inner_end"), "0");
    assert_eq!(v("nested_end_outer"), SUCCESS);
    // The outer one queues the all-reduce, which ends later than now: cudaErrorNotReady.
    assert_eq!(v("nested_query_after_outer_end"), "600");
    assert_eq!(v("nested_sync"), "0");
}

#[test]
fn a_1_gib_allreduce_takes_what_group_simulate_end_estimated() {
    // NCCL's model picks NVLS for 1 GiB on one node (tests/tests/e2e/collectives.rs): every GPU sends and
    // receives (n+1)/n = 9/8 GiB over NVLink at `nvls_efficiency` 0.85 × 370.8 GB/s (3832.6 µs) after the
    // NVLS latency 25 µs: 3857.6 µs.
    let estimate = 25.0 + 9.0 / 8.0 * GIB / (0.85 * NVLINK) * 1e6;
    assert_eq!(v("simulate_1gib"), SUCCESS);
    assert_eq!(v("estimate_1gib_us"), us(estimate));
    assert_eq!(v("estimate_1gib_us"), "3857.6");
    assert_eq!(v("timed_1gib_start"), SUCCESS);
    assert_eq!(v("timed_1gib_calls"), all(SUCCESS, 8));
    assert_eq!(v("timed_1gib_end"), SUCCESS);
    assert_eq!(v("timed_1gib_sync"), "0");
    assert_eq!(v("allreduce_1gib_event_us"), us(estimate + LAUNCH_US));
    assert_eq!(v("allreduce_1gib_event_minus_estimate_us"), "2.00");
}

#[test]
fn an_8_byte_allreduce_takes_15_us() {
    // Latency decides: Ring LL, 6.6 + 14 × 0.6 = 15.0 µs (Tree LL 15.2, NVLS 25); the data takes under 1 ns.
    assert_eq!(v("simulate_8b"), SUCCESS);
    assert_eq!(v("estimate_8b_us"), "15.0");
    assert_eq!(v("timed_8b_calls"), all(SUCCESS, 8));
    assert_eq!(v("timed_8b_end"), SUCCESS);
    assert_eq!(v("timed_8b_sync"), "0");
    assert_eq!(v("allreduce_8b_event_us"), us(15.0 + LAUNCH_US));
    assert_eq!(v("allreduce_8b_event_minus_estimate_us"), "2.00");
}

#[test]
fn comm_split_by_parity_orders_ranks_by_key() {
    assert_eq!(v("split_start"), SUCCESS);
    assert_eq!(v("split_calls"), all(SUCCESS, 8));
    assert_eq!(v("split_end"), SUCCESS);
    assert_eq!(v("split_count"), all("4", 8));
    // Even ranks 0,2,4,6 → 0,1,2,3 of colour 0; odd ranks likewise of colour 1.
    assert_eq!(v("split_rank"), "0,0,1,1,2,2,3,3");
    assert_eq!(v("split_device"), seq(8));
    // The 4-rank communicator runs a collective of its own.
    assert_eq!(v("split_even_allreduce_calls"), all(SUCCESS, 4));
    assert_eq!(v("split_even_allreduce_end"), SUCCESS);
    assert_eq!(v("split_even_allreduce_sync"), "0");
}

#[test]
fn comm_split_with_no_colour_gives_null() {
    assert_eq!(v("split_nocolor_calls"), all(SUCCESS, 8));
    assert_eq!(v("split_nocolor_end"), SUCCESS);
    // Ranks 4..7 passed NCCL_SPLIT_NOCOLOR: their handle was overwritten with NULL.
    assert_eq!(v("split_nocolor_null"), "0,0,0,0,1,1,1,1");
    assert_eq!(v("split_nocolor_count"), "4,4,4,4,-,-,-,-");
    // Keys 7,6,5,4 for ranks 0..3: ranks ordered by key.
    assert_eq!(v("split_nocolor_rank"), "3,2,1,0,-,-,-,-");
    assert_eq!(v("split_nocolor_device"), "0,1,2,3,-,-,-,-");
}

#[test]
fn comm_shrink_without_rank_7() {
    assert_eq!(v("shrink_start"), SUCCESS);
    assert_eq!(v("shrink_calls"), all(SUCCESS, 7));
    assert_eq!(v("shrink_end"), SUCCESS);
    assert_eq!(v("shrink_count"), all("7", 7));
    assert_eq!(v("shrink_rank"), seq(7));
    assert_eq!(v("shrink_device"), seq(7));
    assert_eq!(v("shrink_allreduce_calls"), all(SUCCESS, 7));
    assert_eq!(v("shrink_allreduce_end"), SUCCESS);
    assert_eq!(v("shrink_allreduce_sync"), "0");
}

#[test]
fn premulsum_reduction_operations() {
    assert_eq!(v("premulsum_create"), all(SUCCESS, 8));
    // The first operation a communicator creates is ncclNumOps (5), as in NCCL (ncclNumOps + its index).
    assert_eq!(v("premulsum_op"), all("5", 8));
    assert_eq!(v("premulsum_op_ge_num_ops"), "1");
    assert_eq!(v("premulsum_allreduce_calls"), all(SUCCESS, 8));
    assert_eq!(v("premulsum_allreduce_end"), SUCCESS);
    assert_eq!(v("premulsum_allreduce_sync"), "0");
    assert_eq!(v("premulsum_destroy"), all(SUCCESS, 8));
    assert_eq!(v("premulsum_destroy_twice"), INVALID_ARGUMENT);
    assert_eq!(v("premulsum_allreduce_after_destroy"), INVALID_ARGUMENT);
}

#[test]
fn every_data_type_all_reduces() {
    // ncclInt8 … ncclFloat8e5m2: 12 types, 1024 elements each, every rank in one group.
    assert_eq!(v("dtype_calls"), all(SUCCESS, 12));
    assert_eq!(v("dtype_end"), all(SUCCESS, 12));
    assert_eq!(v("dtype_sync"), "0");
}

#[test]
fn invalid_arguments_are_rejected_and_explained() {
    assert_eq!(v("invalid_dtype"), INVALID_ARGUMENT);
    assert_eq!(v("invalid_dtype_error"), "invalid datatype 99");
    assert_eq!(v("invalid_redop"), INVALID_ARGUMENT);
    assert_eq!(v("invalid_root"), INVALID_ARGUMENT);
    assert_eq!(v("invalid_root_error"), "Broadcast with root 8 outside [0, 8)");
    assert_eq!(v("invalid_root_negative"), INVALID_ARGUMENT);
    assert_eq!(v("invalid_send_peer"), INVALID_ARGUMENT);
    assert_eq!(v("invalid_send_peer_error"), "ncclSend with peer 8 outside [0, 8)");
    assert_eq!(v("invalid_recv_peer"), INVALID_ARGUMENT);
    assert_eq!(v("null_comm_allreduce"), INVALID_ARGUMENT);
    assert_eq!(v("null_comm_count"), INVALID_ARGUMENT);
    // Inside a group the call fails and ncclGroupEnd returns its status again.
    assert_eq!(v("group_invalid_dtype"), "0,4,4");
}

#[test]
fn mem_alloc_is_device_memory_and_registers() {
    assert_eq!(v("mem_alloc"), SUCCESS);
    assert_eq!(v("mem_alloc_nonnull"), "1");
    // 64 MiB, a multiple of the 2 MiB alignment of large allocations: charged exactly (docs/gpu-model.md).
    let drop: u64 = v("mem_alloc_free_drop").parse().unwrap();
    assert!(drop >= 64 << 20, "{drop}");
    assert_eq!(drop, 64 << 20);
    assert_eq!(v("comm_register"), SUCCESS);
    assert_eq!(v("comm_register_handle_nonnull"), "1");
    assert_eq!(v("comm_deregister"), SUCCESS);
    assert_eq!(v("mem_free"), SUCCESS);
    assert_eq!(v("mem_free_restored"), "1");
}

#[test]
fn a_send_recv_ring_in_one_group() {
    // Eight 1 GiB sends r → r+1 at once: every GPU's NVLink carries one send up and one receive down, so no
    // two share a link. Point-to-point latency: NCCL's Simple ring base 8.4 µs + one NVLink hop 3.4 µs;
    // then 1 GiB at 370.8 GB/s (2895.7 µs): 2907.5 µs.
    let estimate = 8.4 + 3.4 + GIB / NVLINK * 1e6;
    assert_eq!(v("simulate_ring"), SUCCESS);
    assert_eq!(v("estimate_ring_us"), us(estimate));
    assert_eq!(v("estimate_ring_us"), "2907.5");
    assert_eq!(v("ring_start"), SUCCESS);
    assert_eq!(v("ring_sends"), all(SUCCESS, 8));
    assert_eq!(v("ring_recvs"), all(SUCCESS, 8));
    assert_eq!(v("ring_end"), SUCCESS);
    assert_eq!(v("ring_sync"), "0");
    assert_eq!(v("ring_event_us"), us(estimate + LAUNCH_US));
    assert_eq!(v("ring_event_minus_estimate_us"), "2.00");
}

#[test]
fn a_send_to_itself_costs_nothing_and_is_estimated_so() {
    // A send to the same GPU crosses no link (docs/network.md): estimated 0 and completed at its start.
    assert_eq!(v("simulate_self"), SUCCESS);
    assert_eq!(v("estimate_self_us"), "0.0");
    assert_eq!(v("self_calls"), "0,0,0,0");
    assert_eq!(v("self_sync"), "0");
    // The group starts and ends 2 µs after the first event. The second event's call follows ncclGroupEnd's
    // 2 µs launch call, and an event is placed no earlier than its call + 100 ns + the 2 µs launch latency:
    // 2.1 µs after the first (the only case here where the group is shorter than that 100 ns).
    assert_eq!(v("self_event_us"), "2.1");
}

#[test]
fn async_error_of_healthy_communicators_is_success() {
    assert_eq!(v("async_error_calls"), all(SUCCESS, 8));
    assert_eq!(v("async_error"), all(SUCCESS, 8));
}

#[test]
fn finalize_destroy_and_abort() {
    assert_eq!(v("finalize"), all(SUCCESS, 8));
    assert_eq!(v("destroy"), all(SUCCESS, 8));
    // A destroyed handle is rejected by every call.
    assert_eq!(v("destroyed_count"), INVALID_ARGUMENT);
    assert_eq!(v("destroyed_allreduce"), INVALID_ARGUMENT);
    assert_eq!(v("destroyed_async_error"), INVALID_ARGUMENT);
    assert_eq!(v("destroyed_finalize"), INVALID_ARGUMENT);
    assert_eq!(v("destroyed_destroy"), INVALID_ARGUMENT);
    assert_eq!(v("abort"), all(SUCCESS, 7));
    assert_eq!(v("aborted_count"), INVALID_ARGUMENT);
    assert_eq!(v("aborted_abort"), INVALID_ARGUMENT);
}

/// The data of small operations (docs/gpu-model.md "Data"): tests/programs/nccl_data.cu on 4 GPUs, rank r's
/// value i being 100·r + i (int64). Every result is what NCCL defines; an operation over 1 MiB per rank is
/// timed only and its receive buffer reads as zeros.
#[test]
fn small_operations_deliver_what_nccl_would() {
    let exe = compile("nccl_data.cu");
    let mut cmd = Command::new(exe);
    phantom_env(&mut cmd);
    cmd.env("PHANTOM_CLUSTER", "dgx-h100");
    let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
    out.assert_clean_success();
    let gathered = "0 1 100 101 200 201 300 301";
    let want = [
        ("all_gather", [gathered; 4].join(",")),
        // Σ_r (100·r + i) = 600 + 4·i.
        ("all_reduce_sum", ["600 604 608"; 4].join(",")),
        ("all_reduce_max", ["300 301 302"; 4].join(",")),
        ("broadcast_root2", ["200 201 202"; 4].join(",")),
        // Element j of the sum goes to rank j.
        ("reduce_scatter", "600,604,608,612".to_string()),
        // Rank r receives rank r − 1's values.
        ("send_recv_ring", "300 301,0 1,100 101,200 201".to_string()),
        ("copied_on", "300 301,0 1,100 101,200 201".to_string()),
        ("large_all_reduce", ["0 0"; 4].join(",")),
        // cudaMemset(…, 1, …): every byte 0x01.
        ("memset_0x01", ["72340172838076673"; 4].join(",")),
        ("done", "1".to_string()),
    ];
    for (key, value) in want {
        assert_eq!(out.value(key), value, "{key}: {}", out.describe());
    }
}
