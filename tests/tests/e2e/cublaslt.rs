//! cuBLASLt matmuls on the staged `libcublasLt.so.13` (stubs/cublaslt/src/imp.rs): the roofline model's time on the
//! stream (sim-core/src/blas.rs; every figure is derived in tests/programs/cublaslt_gemm.c), measured with CUDA
//! events, for torch's `nn.Linear` with a bias epilogue, a strided batch, an aux epilogue on a memory-bound shape
//! and a TF32 GEMM; the handle torch really passes (its cuBLAS handle); and cuBLASLt's error statuses.

use phantom_tests::{compile, run_program};

/// `cublasStatus_t` values.
const SUCCESS: &str = "0";
const NOT_INITIALIZED: &str = "1";
const INVALID_VALUE: &str = "7";
const NOT_SUPPORTED: &str = "15";

#[test]
fn cublaslt_matmuls_take_the_model_time() {
    let out = run_program(&compile("cublaslt_gemm.c"), &[]);
    out.assert_clean_success();
    assert_eq!(out.value("version"), "130100");
    for (case, ms) in [
        // Compute-bound: the bias vector costs nothing.
        ("bias_bf16", "0.042069"),
        ("batched_bf16", "0.049304"),
        // Memory-bound: GELU_AUX_BIAS also writes the m × n GELU input, doubling D's traffic.
        ("plain_bf16_k64", "0.048439"),
        ("gelu_aux_bias_bf16_k64", "0.093178"),
        ("tf32", "0.373431"),
        ("bias_bf16_cublas_handle", "0.042069"),
    ] {
        assert_eq!(out.value(&format!("{case}_ms")), ms, "{case}");
        assert_eq!(out.value(&format!("{case}_algos")), "1", "{case}: one heuristic result");
        assert_eq!(out.value(&format!("{case}_state")), SUCCESS, "{case}");
        assert_eq!(out.value(&format!("{case}_workspace")), "0", "{case}");
        assert_eq!(out.value(&format!("{case}_waves")), "1.0", "{case}");
    }
    assert_eq!(out.value("matmul_destroyed_cublas_handle"), NOT_INITIALIZED);
    assert_eq!(out.value("matmul_null_handle"), NOT_INITIALIZED);
    assert_eq!(out.value("create_null"), INVALID_VALUE);
    assert_eq!(out.value("set_attribute_bad_size"), INVALID_VALUE);
    assert_eq!(out.value("set_attribute_unknown"), INVALID_VALUE);
    assert_eq!(out.value("batch_count"), "1");
    assert_eq!(out.value("batch_count_written"), "4");
    assert_eq!(out.value("stride_size"), "8");
    assert_eq!(out.value("heuristic_mismatch"), INVALID_VALUE);
    assert_eq!(out.value("heuristic_mismatch_count"), "0");
    assert_eq!(out.value("matmul_mismatch"), INVALID_VALUE);
    assert_eq!(out.value("layout_destroy_again"), INVALID_VALUE);
    assert_eq!(out.value("matmul_destroyed_layout"), INVALID_VALUE);
    assert_eq!(out.value("matmul_complex"), NOT_SUPPORTED);
    assert_eq!(out.value("status_name"), "CUBLAS_STATUS_NOT_SUPPORTED");
    assert_eq!(out.value("destroy_again"), NOT_INITIALIZED);
}
