//! cuBLASLt matmuls on the staged `libcublasLt.so.13` (stubs/cublaslt/src/imp.rs): the roofline model's time on the
//! stream (sim-core/src/blas.rs; every figure is derived in tests/programs/cublaslt_gemm.c), measured with CUDA
//! events, for torch's `nn.Linear` with a bias epilogue, a strided batch, an aux epilogue on a memory-bound shape
//! and a TF32 GEMM; the handle torch really passes (its cuBLAS handle); and cuBLASLt's error statuses. Then the
//! replay of library-call times from a kernel-time table's `call` records (docs/profiling.md, "Library calls"),
//! for cuBLASLt and for cuBLAS (tests/programs/cublas_gemm.c, whose model times programs.rs checks).

use phantom_tests::{compile, phantom_env, run_program, run_with_timeout, Output, PROGRAM_TIMEOUT};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Writes a kernel-time table with `calls` (key, duration in ns as written) to a fresh file and returns its path.
fn call_table(tag: &str, calls: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phantom-calls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let mut text = String::from("# phantom kernel-time table v1\n# source: tests/tests/e2e/cublaslt.rs\n");
    for (key, ns) in calls {
        text.push_str(&format!("call\t{key}\t{ns}\n"));
    }
    let path = dir.join("calls.table");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// `exe` with `args` against the staged libraries, timed by the kernel-time table `table`.
fn run_with_table(exe: &Path, args: &[&str], table: &Path) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    phantom_env(&mut cmd);
    cmd.env("PHANTOM_KERNEL_TABLE", table).env_remove("PHANTOM_PROFILE");
    run_with_timeout(cmd, PROGRAM_TIMEOUT)
}

/// The keys of cublaslt_gemm.c's `bias_bf16` matmul (torch's `nn.Linear(768, 2304)` on 8192 tokens: A transposed,
/// C = D's layout, a bias pointer) and its `batched_bf16` one (16 strided 1024³ matmuls), as
/// stubs/cublaslt/src/imp.rs writes them (docs/profiling.md, "Library calls").
const BIAS_KEY: &str = "cublasLt matmul m=2304 n=8192 k=768 batch=1 ta=T tb=N a=bf16 b=bf16 c=bf16 d=bf16 \
                        lda=768 ldb=768 ldc=2304 ldd=2304 compute=f32 scale=f32 epilogue=BIAS bias=1";
const BATCHED_KEY: &str = "cublasLt matmul m=1024 n=1024 k=1024 batch=16 ta=N tb=N a=bf16 b=bf16 c=bf16 d=bf16 \
                           lda=1024 ldb=1024 ldc=1024 ldd=1024 compute=f32 scale=f32 epilogue=DEFAULT \
                           sa=1048576 sb=1048576 sc=1048576 sd=1048576";

/// A table's `call` records time the matmuls whose keys they list, exactly: 123456 ns for the bias GEMM, through
/// either handle (the key does not depend on the handle), and 54321.5 ns, rounded half up to 54322 ns, for the
/// batched one. The matmuls no record lists keep the model's time (lookup is exact, not by prefix or shape).
#[test]
fn cublaslt_matmuls_take_a_tables_call_times() {
    let table = call_table("cublaslt", &[(BIAS_KEY, "123456"), (BATCHED_KEY, "54321.5")]);
    let exe = compile("cublaslt_gemm.c");
    let args = ["bias_bf16=0.123456", "bias_bf16_cublas_handle=0.123456", "batched_bf16=0.054322"];
    let out = run_with_table(&exe, &args, &table);
    out.assert_clean_success();
    for (case, ms) in [
        ("bias_bf16", "0.123456"),
        ("bias_bf16_cublas_handle", "0.123456"),
        ("batched_bf16", "0.054322"),
        // Not in the table: the model, as in cublaslt_matmuls_take_the_model_time.
        ("plain_bf16_k64", "0.048439"),
        ("gelu_aux_bias_bf16_k64", "0.093178"),
        ("tf32", "0.373431"),
    ] {
        assert_eq!(out.value(&format!("{case}_ms")), ms, "{case}");
    }
    let _ = std::fs::remove_dir_all(table.parent().unwrap());
}

/// The keys of cublas_gemm.c's two GEMMs (fp32 SGEMM and bf16 GemmEx, 4096³, default math mode), as
/// stubs/cublas/src/imp.rs writes them.
const SGEMM_KEY: &str = "cublas sgemm m=4096 n=4096 k=4096 batch=1 ta=N tb=N a=f32 b=f32 c=f32 lda=4096 ldb=4096 \
                         ldc=4096 compute=f32 math=default";
const GEMM_EX_KEY: &str = "cublas gemmEx m=4096 n=4096 k=4096 batch=1 ta=N tb=N a=bf16 b=bf16 c=bf16 lda=4096 \
                           ldb=4096 ldc=4096 compute=f32 math=default";

/// cuBLAS's GEMMs take a table's `call` times too: 1 ms for the SGEMM (the model says 2.738104 ms) and 70000 ns
/// for the bf16 GemmEx (the model: 0.188216 ms).
#[test]
fn cublas_gemms_take_a_tables_call_times() {
    let table = call_table("cublas", &[(SGEMM_KEY, "1000000"), (GEMM_EX_KEY, "70000")]);
    let exe = compile("cublas_gemm.c");
    let out = run_with_table(&exe, &["sgemm_ms=1.000000", "gemm_ex_bf16_ms=0.070000"], &table);
    out.assert_clean_success();
    assert_eq!(out.value("sgemm_ms"), "1.000000");
    assert_eq!(out.value("gemm_ex_bf16_ms"), "0.070000");
    let _ = std::fs::remove_dir_all(table.parent().unwrap());
}
