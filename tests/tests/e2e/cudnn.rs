//! cuDNN's backend (graph) API on the staged `libcudnn.so.9` (stubs/cudnn/src/, docs/cudnn.md): PyTorch's SDPA
//! graphs go through heuristics, plans and execution with the engines, knobs and workspace NVIDIA's cuDNN 9.19
//! reported on an H100, and execute in the model's time on the handle's stream (every figure is derived in
//! tests/programs/cudnn_sdpa.c), measured with CUDA events; descriptors and handles are validated.

use phantom_tests::{compile, run_program};

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
