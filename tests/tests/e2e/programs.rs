//! C and CUDA programs compiled with NVIDIA's headers and nvcc, run against the staged libraries on the default
//! cluster (preset `dgx-h100`: one node of 8 × H100 SXM5 80 GB).

use phantom_cuda_sys::CUDART_VERSION;
use phantom_tests::{compile, run_program};

/// `cudaError_t` `cudaSuccess` as the programs print it.
const SUCCESS: &str = "0";

#[test]
fn hello_runtime_sees_dgx_h100() {
    let out = run_program(&compile("hello_runtime.c"), &[]);
    out.assert_clean_success();
    for call in [
        "cudaRuntimeGetVersion",
        "cudaDriverGetVersion",
        "cudaGetDeviceCount",
        "cudaSetDevice",
        "cudaGetDeviceProperties",
        "cudaMalloc",
        "cudaMemset",
        "cudaFree",
        "cudaDeviceSynchronize",
    ] {
        assert_eq!(out.value(call), SUCCESS, "{call}: {}", out.describe());
    }
    // The runtime reports the version of the headers its ABI was generated from (13.5 → 13050), and a
    // driver of the same version.
    assert_eq!(out.value("runtime_version"), CUDART_VERSION.to_string());
    assert_eq!(out.value("driver_version"), CUDART_VERSION.to_string());
    assert_eq!(out.value("device_count"), "8");
    assert_eq!(out.value("name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(out.value("multiProcessorCount"), "132");
    assert_eq!(out.value("cc"), "9.0");
    // sim-core's H100 SXM5 80 GB preset.
    assert_eq!(out.value("totalGlobalMem"), "85017493504");
    assert_eq!(out.value("pointer_nonnull"), "1");
}

#[test]
fn vector_add_kernel_launch() {
    let out = run_program(&compile("vector_add.cu"), &[]);
    out.assert_clean_success();
    for call in [
        "cudaMalloc_a",
        "cudaMalloc_b",
        "cudaMalloc_c",
        "cudaMemcpy_h2d_a",
        "cudaMemcpy_h2d_b",
        "launch",
        "cudaDeviceSynchronize",
        "cudaMemcpy_d2h_c",
        "cudaFree_a",
        "cudaFree_b",
        "cudaFree_c",
        "cudaGetLastError",
    ] {
        assert_eq!(out.value(call), SUCCESS, "{call}: {}", out.describe());
    }
    assert_eq!(out.value("blocks"), "4096");
    assert_eq!(out.value("threads"), "256");
}

/// The README's example: device listing and event timing of repeated kernel launches.
#[test]
fn saxpy_example() {
    let out = run_program(&compile("examples/saxpy.cu"), &[]);
    out.assert_clean_success();
    let devices: Vec<_> = out.stdout.lines().filter(|l| l.starts_with("device ")).collect();
    assert_eq!(devices.len(), 8, "{}", out.describe());
    for (i, line) in devices.iter().enumerate() {
        assert_eq!(*line, format!("device {i}: NVIDIA H100 80GB HBM3, 132 SMs, 79.2 GiB"));
    }
    assert!(out.stdout.lines().any(|l| l.starts_with("10 x saxpy(67108864): ")), "{}", out.describe());
}

/// A C program built with NVIDIA's nccl.h and linked with -lnccl runs on the staged `libnccl.so.2`: version of
/// the headers (2.32.3), status strings, the per-thread last error message, `pncclX` aliases.
#[test]
fn nccl_version_and_strings() {
    let out = run_program(&compile("nccl_version.c"), &[]);
    out.assert_clean_success();
    assert_eq!(out.value("ncclGetVersion"), "0");
    assert_eq!(out.value("version"), "23203");
    assert_eq!(out.value("header_version"), "23203");
    assert_eq!(out.value("pncclGetVersion"), "0");
    assert_eq!(out.value("pversion"), "23203");
    assert_eq!(out.value("last_error_before"), "");
    assert_eq!(out.value("ncclGetVersion_null"), "4", "ncclInvalidArgument");
    assert_eq!(out.value("last_error_after"), "ncclGetVersion: version is NULL");
    assert_eq!(out.value("plast_error_same"), "1");
    assert_eq!(out.value("string_0"), "no error");
    assert!(out.value("string_5").starts_with("invalid usage"), "{}", out.describe());
    assert_eq!(out.value("string_9"), "unknown result code", "ncclNumResults is no status");
    let strings: std::collections::BTreeSet<String> = (0..9).map(|i| out.value(&format!("string_{i}"))).collect();
    assert_eq!(strings.len(), 9, "one string per status: {}", out.describe());
    assert_eq!(out.value("pstring_same"), "1");
}

/// A C program built with NVIDIA's cuda.h and linked with -lcuda runs on the staged `libcuda.so.1`: the driver
/// calls implemented over the runtime (devices, primary contexts, error strings, cuGetProcAddress).
#[test]
fn driver_api_sees_dgx_h100() {
    let out = run_program(&compile("driver_api.c"), &[]);
    out.assert_clean_success();
    assert_eq!(out.value("driver_version"), CUDART_VERSION.to_string());
    assert_eq!(out.value("device_count"), "8");
    assert_eq!(out.value("name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(out.value("multiProcessorCount"), "132");
    assert_eq!(out.value("totalMem"), "85017493504");
    assert_eq!(out.value("cuDeviceGet_bad"), "101", "CUDA_ERROR_INVALID_DEVICE");
    assert_eq!(out.value("cuDeviceGetCount_null"), "1", "CUDA_ERROR_INVALID_VALUE");
    assert_eq!(out.value("ctx_flags"), "0");
    assert_eq!(out.value("ctx_active_before"), "0", "device 3 unused and not current");
    assert_eq!(out.value("ctx_active_after"), "1", "retained");
    assert_eq!(out.value("ctx_nonnull"), "1");
    assert_eq!(out.value("current_is_ctx"), "1");
    assert_eq!(out.value("ctx_device"), "3");
    assert_eq!(out.value("popped_is_ctx"), "1");
    assert_eq!(out.value("device_after_pop"), "0");
    assert_eq!(out.value("string_1"), "invalid argument");
    assert_eq!(out.value("name_801"), "CUDA_ERROR_NOT_SUPPORTED");
    assert_eq!(out.value("cuGetErrorString_unknown"), "1");
    assert_eq!(out.value("proc_status"), "0", "CU_GET_PROC_ADDRESS_SUCCESS");
    assert_eq!(out.value("proc_cuDeviceGet"), "0");
    assert_eq!(out.value("proc_device"), "3");
    assert_eq!(out.value("cuGetProcAddress_missing"), "500", "CUDA_ERROR_NOT_FOUND");
    assert_eq!(out.value("missing_fn_null"), "1");
    assert_eq!(out.value("missing_status"), "1", "CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND");
}

/// cuBLAS GEMMs on the staged `libcublas.so.13` take the roofline model's time (sim-core/src/blas.rs; the
/// numbers are derived in tests/programs/cublas_gemm.c) on the handle's stream, measured with CUDA events; handles
/// are validated.
#[test]
fn cublas_gemms_take_the_model_time() {
    let out = run_program(&compile("cublas_gemm.c"), &[]);
    out.assert_clean_success();
    assert_eq!(out.value("stream_same"), "1");
    assert_eq!(out.value("sgemm_ms"), "2.738104");
    assert_eq!(out.value("gemm_ex_bf16_ms"), "0.188216");
    assert_eq!(out.value("sgemm_negative"), "7", "CUBLAS_STATUS_INVALID_VALUE");
    assert_eq!(out.value("create_null"), "7", "CUBLAS_STATUS_INVALID_VALUE");
    assert_eq!(out.value("gemm_ex_bad_type"), "15", "CUBLAS_STATUS_NOT_SUPPORTED");
    assert_eq!(out.value("destroy_again"), "1", "CUBLAS_STATUS_NOT_INITIALIZED");
    assert_eq!(out.value("sgemm_destroyed"), "1", "CUBLAS_STATUS_NOT_INITIALIZED");
}
