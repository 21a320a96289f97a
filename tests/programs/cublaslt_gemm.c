/* cuBLASLt matmuls on Phantom's libcublasLt.so.13 from plain C, timed with CUDA events. cublasLt.h is not in the
 * pinned wheels, so the few types, enum values and prototypes used are declared here (values as in cublasLt.h of
 * cuBLAS 13.1) and the library is opened with dlopen. Prints `name=value` lines; the test
 * (tests/tests/e2e/cublaslt.rs) checks them. Exit status 1 if a call that must succeed failed or a time differs
 * from the model.
 *
 * The model (sim-core/src/blas.rs) on the default GPU, an H100 SXM 80GB (bf16 peak 989.4e12 FLOP/s, tf32
 * 494.7e12, HBM 3.0e12 B/s), with GEMM_EFFICIENCY = 0.75 and GEMM_FIXED_NS = 3000:
 *   time = ceil(max(2*m*n*k*batch / (peak*0.75), bytes / 3.0e12) in ns) + 3000,
 *   bytes = ((m*k + k*n)*in + m*n*out) * batch.
 * A fused epilogue adds only the full m x n matrices it moves, to `out` (stubs/cublaslt/src/imp.rs).
 *   bias_bf16: torch's nn.Linear(768, 2304) on 8192 tokens under bf16 autocast (transa = T, EPILOGUE_BIAS):
 *     m = 2304, n = 8192, k = 768: 28991029248 FLOP / 742.05e12 = 39068.8 ns; memory 53870592 B / 3.0e12
 *     = 17956.9 ns (smaller); the bias vector is not counted -> 39069 + 3000 = 42069 ns = 0.042069 ms.
 *   batched_bf16: 16 x (1024 x 1024 x 1024), strided: 34359738368 FLOP / 742.05e12 = 46303.8 ns; memory
 *     100663296 B / 3.0e12 = 33554.4 ns -> 46304 + 3000 = 49304 ns = 0.049304 ms.
 *   plain_bf16_k64: m = n = 8192, k = 64, memory-bound: 8589934592 FLOP / 742.05e12 = 11576.0 ns; memory
 *     ((8192*64 + 64*8192)*2 + 8192*8192*2) = 136314880 B / 3.0e12 = 45438.3 ns -> 45439 + 3000 = 48439 ns.
 *   gelu_aux_bias_bf16_k64: the same with GELU_AUX_BIAS, which also writes the bf16 GELU input (m x n):
 *     out = 2 + 2 bytes: 270532608 B / 3.0e12 = 90177.5 ns -> 90178 + 3000 = 93178 ns = 0.093178 ms.
 *   tf32: fp32 4096^3 with COMPUTE_32F_FAST_TF32: 137438953472 FLOP / (494.7e12*0.75) = 370430.4 ns; memory
 *     3*4096^2*4 B / 3.0e12 = 67108.9 ns -> 370431 + 3000 = 373431 ns = 0.373431 ms.
 * Each timed matmul follows a warm-up matmul on the same stream, which is still running when the start event is
 * recorded (host calls take microseconds), so the events bracket exactly one matmul's duration.
 *
 * Arguments `<case>=<ms>` replace a case's expected time: the test that gives a kernel-time table `call` records
 * for some matmuls' keys (docs/profiling.md, "Library calls") expects the table's durations there. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>

typedef void *cublasLtHandle_t;
typedef void *cublasLtMatmulDesc_t;
typedef void *cublasLtMatrixLayout_t;
typedef void *cublasLtMatmulPreference_t;
typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    int state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

/* cublas_api.h / cublasLt.h values. CUDA_R_16BF, CUDA_R_32F, CUDA_C_32F come from library_types.h. */
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum {
    DESC_TRANSA = 3,
    DESC_TRANSB = 4,
    DESC_EPILOGUE = 7,
    DESC_BIAS_POINTER = 8,
    DESC_EPILOGUE_AUX_POINTER = 11,
    DESC_EPILOGUE_AUX_LD = 12,
};
enum { LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6 };
enum { PREF_MAX_WORKSPACE_BYTES = 1 };
enum { EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4, EPILOGUE_GELU_AUX_BIAS = 164 };

static int (*lt_create)(cublasLtHandle_t *);
static int (*lt_destroy)(cublasLtHandle_t);
static size_t (*lt_get_version)(void);
static const char *(*lt_status_name)(int);
static int (*desc_create)(cublasLtMatmulDesc_t *, int, int);
static int (*desc_destroy)(cublasLtMatmulDesc_t);
static int (*desc_set)(cublasLtMatmulDesc_t, int, const void *, size_t);
static int (*layout_create)(cublasLtMatrixLayout_t *, int, uint64_t, uint64_t, int64_t);
static int (*layout_destroy)(cublasLtMatrixLayout_t);
static int (*layout_set)(cublasLtMatrixLayout_t, int, const void *, size_t);
static int (*layout_get)(cublasLtMatrixLayout_t, int, void *, size_t, size_t *);
static int (*pref_create)(cublasLtMatmulPreference_t *);
static int (*pref_destroy)(cublasLtMatmulPreference_t);
static int (*pref_set)(cublasLtMatmulPreference_t, int, const void *, size_t);
static int (*heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                        cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                        cublasLtMatmulHeuristicResult_t *, int *);
static int (*matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t,
                     const void *, cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t, void *,
                     cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);

static int failures = 0;

/* The command line's `<case>=<ms>` arguments. */
static int n_overrides = 0;
static char **overrides = NULL;

/* The time case `name` must take: its argument if one was given, else the model's `model_ms`. */
static double expected_ms(const char *name, double model_ms) {
    size_t len = strlen(name);
    for (int i = 0; i < n_overrides; i++)
        if (strncmp(overrides[i], name, len) == 0 && overrides[i][len] == '=') return atof(overrides[i] + len + 1);
    return model_ms;
}

static void check(const char *call, int status) {
    printf("%s=%d\n", call, status);
    if (status != 0) failures++;
}

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        printf("missing=%s\n", name);
        failures++;
    }
    return p;
}

/* Device buffers, large enough for every case (Phantom's device memory is simulated). */
static void *dev_a, *dev_b, *dev_d, *dev_aux, *dev_bias, *dev_workspace;
static const size_t WORKSPACE = 1 << 20;

struct gemm {
    int transa, m, n, k, batch, type, compute;
    unsigned epilogue;
};

/* The descriptors of one GEMM, as torch's gemm_and_bias builds them: op(A) is m x k (A stored k x m when
 * transposed), B is k x n, D is m x n, all column-major with ld = rows. */
struct plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulPreference_t pref;
};

static struct plan make_plan(struct gemm g) {
    struct plan p;
    int transb = CUBLAS_OP_N;
    uint64_t workspace = WORKSPACE;
    check("cublasLtMatmulDescCreate", desc_create(&p.op, g.compute, CUDA_R_32F));
    check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_TRANSA, &g.transa, sizeof g.transa));
    check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_TRANSB, &transb, sizeof transb));
    check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_EPILOGUE, &g.epilogue, sizeof g.epilogue));
    if (g.epilogue != EPILOGUE_DEFAULT)
        check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_BIAS_POINTER, &dev_bias, sizeof dev_bias));
    if (g.epilogue == EPILOGUE_GELU_AUX_BIAS) {
        int64_t ld = g.m;
        check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_EPILOGUE_AUX_POINTER, &dev_aux, sizeof dev_aux));
        check("cublasLtMatmulDescSetAttribute", desc_set(p.op, DESC_EPILOGUE_AUX_LD, &ld, sizeof ld));
    }
    if (g.transa == CUBLAS_OP_T)
        check("cublasLtMatrixLayoutCreate", layout_create(&p.a, g.type, g.k, g.m, g.k));
    else
        check("cublasLtMatrixLayoutCreate", layout_create(&p.a, g.type, g.m, g.k, g.m));
    check("cublasLtMatrixLayoutCreate", layout_create(&p.b, g.type, g.k, g.n, g.k));
    check("cublasLtMatrixLayoutCreate", layout_create(&p.d, g.type, g.m, g.n, g.m));
    if (g.batch > 1) {
        cublasLtMatrixLayout_t layouts[3] = {p.a, p.b, p.d};
        int64_t strides[3] = {(int64_t)g.m * g.k, (int64_t)g.k * g.n, (int64_t)g.m * g.n};
        for (int i = 0; i < 3; i++) {
            check("cublasLtMatrixLayoutSetAttribute", layout_set(layouts[i], LAYOUT_BATCH_COUNT, &g.batch, sizeof g.batch));
            check("cublasLtMatrixLayoutSetAttribute",
                  layout_set(layouts[i], LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]));
        }
    }
    check("cublasLtMatmulPreferenceCreate", pref_create(&p.pref));
    check("cublasLtMatmulPreferenceSetAttribute", pref_set(p.pref, PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
    return p;
}

static void free_plan(struct plan p) {
    check("cublasLtMatmulPreferenceDestroy", pref_destroy(p.pref));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(p.d));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(p.b));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(p.a));
    check("cublasLtMatmulDescDestroy", desc_destroy(p.op));
}

static int run(cublasLtHandle_t h, struct plan p, const cublasLtMatmulAlgo_t *algo, cudaStream_t s) {
    const float one = 1.0f, zero = 0.0f;
    return matmul(h, p.op, &one, dev_a, p.a, dev_b, p.b, &zero, dev_d, p.d, dev_d, p.d, algo, dev_workspace,
                  WORKSPACE, s);
}

/* Asks the heuristic for one algorithm, then times one matmul with it and prints `<name>_ms`. */
static void timed_gemm(const char *name, cublasLtHandle_t h, struct gemm g, cudaStream_t s, cudaEvent_t start,
                       cudaEvent_t stop, double expect_ms) {
    struct plan p = make_plan(g);
    cublasLtMatmulHeuristicResult_t result;
    int count = -1;
    float ms = -1;
    memset(&result, 0xff, sizeof result);
    check("cublasLtMatmulAlgoGetHeuristic", heuristic(h, p.op, p.a, p.b, p.d, p.d, p.pref, 1, &result, &count));
    printf("%s_algos=%d\n", name, count);
    printf("%s_state=%d\n", name, result.state);
    printf("%s_workspace=%zu\n", name, result.workspaceSize);
    printf("%s_waves=%.1f\n", name, result.wavesCount);
    if (count != 1 || result.state != 0 || result.workspaceSize > WORKSPACE) failures++;

    check("cublasLtMatmul", run(h, p, &result.algo, s));
    check("cudaEventRecord", cudaEventRecord(start, s));
    check("cublasLtMatmul", run(h, p, &result.algo, s));
    check("cudaEventRecord", cudaEventRecord(stop, s));
    check("cudaEventSynchronize", cudaEventSynchronize(stop));
    check("cudaEventElapsedTime", cudaEventElapsedTime(&ms, start, stop));
    printf("%s_ms=%.6f\n", name, ms);
    if (fabs(ms - expected_ms(name, expect_ms)) > 1e-6) failures++;
    free_plan(p);
}

int main(int argc, char **argv) {
    n_overrides = argc - 1;
    overrides = argv + 1;
    void *lib = dlopen("libcublasLt.so.13", RTLD_NOW);
    void *cublas = dlopen("libcublas.so.13", RTLD_NOW);
    if (!lib || !cublas) {
        printf("dlopen=%s\n", dlerror());
        return 1;
    }
    lt_create = sym(lib, "cublasLtCreate");
    lt_destroy = sym(lib, "cublasLtDestroy");
    lt_get_version = sym(lib, "cublasLtGetVersion");
    lt_status_name = sym(lib, "cublasLtGetStatusName");
    desc_create = sym(lib, "cublasLtMatmulDescCreate");
    desc_destroy = sym(lib, "cublasLtMatmulDescDestroy");
    desc_set = sym(lib, "cublasLtMatmulDescSetAttribute");
    layout_create = sym(lib, "cublasLtMatrixLayoutCreate");
    layout_destroy = sym(lib, "cublasLtMatrixLayoutDestroy");
    layout_set = sym(lib, "cublasLtMatrixLayoutSetAttribute");
    layout_get = sym(lib, "cublasLtMatrixLayoutGetAttribute");
    pref_create = sym(lib, "cublasLtMatmulPreferenceCreate");
    pref_destroy = sym(lib, "cublasLtMatmulPreferenceDestroy");
    pref_set = sym(lib, "cublasLtMatmulPreferenceSetAttribute");
    heuristic = sym(lib, "cublasLtMatmulAlgoGetHeuristic");
    matmul = sym(lib, "cublasLtMatmul");
    int (*cublas_create)(void **) = sym(cublas, "cublasCreate_v2");
    int (*cublas_destroy)(void *) = sym(cublas, "cublasDestroy_v2");
    if (failures) return 1;

    cublasLtHandle_t h = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t start, stop;
    check("cudaMalloc", cudaMalloc(&dev_a, 128u << 20));
    check("cudaMalloc", cudaMalloc(&dev_b, 128u << 20));
    check("cudaMalloc", cudaMalloc(&dev_d, 256u << 20));
    check("cudaMalloc", cudaMalloc(&dev_aux, 256u << 20));
    check("cudaMalloc", cudaMalloc(&dev_bias, 1u << 20));
    check("cudaMalloc", cudaMalloc(&dev_workspace, WORKSPACE));
    check("cudaStreamCreate", cudaStreamCreate(&s));
    check("cudaEventCreate", cudaEventCreate(&start));
    check("cudaEventCreate", cudaEventCreate(&stop));

    check("cublasLtCreate", lt_create(&h));
    printf("version=%zu\n", lt_get_version());

    struct gemm bias = {CUBLAS_OP_T, 2304, 8192, 768, 1, CUDA_R_16BF, CUBLAS_COMPUTE_32F, EPILOGUE_BIAS};
    struct gemm batched = {CUBLAS_OP_N, 1024, 1024, 1024, 16, CUDA_R_16BF, CUBLAS_COMPUTE_32F, EPILOGUE_DEFAULT};
    struct gemm plain = {CUBLAS_OP_N, 8192, 8192, 64, 1, CUDA_R_16BF, CUBLAS_COMPUTE_32F, EPILOGUE_DEFAULT};
    struct gemm gelu = {CUBLAS_OP_N, 8192, 8192, 64, 1, CUDA_R_16BF, CUBLAS_COMPUTE_32F, EPILOGUE_GELU_AUX_BIAS};
    struct gemm tf32 = {CUBLAS_OP_N, 4096, 4096, 4096, 1, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, EPILOGUE_DEFAULT};
    timed_gemm("bias_bf16", h, bias, s, start, stop, 0.042069);
    timed_gemm("batched_bf16", h, batched, s, start, stop, 0.049304);
    timed_gemm("plain_bf16_k64", h, plain, s, start, stop, 0.048439);
    timed_gemm("gelu_aux_bias_bf16_k64", h, gelu, s, start, stop, 0.093178);
    timed_gemm("tf32", h, tf32, s, start, stop, 0.373431);

    /* torch passes its cuBLAS handle as the cuBLASLt handle: the same bias GEMM through one, then through it once
     * destroyed (CUBLAS_STATUS_NOT_INITIALIZED = 1). */
    void *blas = NULL;
    check("cublasCreate_v2", cublas_create(&blas));
    timed_gemm("bias_bf16_cublas_handle", blas, bias, s, start, stop, 0.042069);
    check("cublasDestroy_v2", cublas_destroy(blas));
    struct plan p = make_plan(bias);
    printf("matmul_destroyed_cublas_handle=%d\n", run(blas, p, NULL, s));

    /* Errors: a NULL handle (CUBLAS_STATUS_NOT_INITIALIZED = 1), a NULL handle pointer to cublasLtCreate
     * (CUBLAS_STATUS_INVALID_VALUE = 7), an attribute of the wrong size or an unknown attribute (7). Then a layout's
     * BATCH_COUNT read back (default 1, 4 bytes) and the size of STRIDED_BATCH_OFFSET asked with sizeInBytes 0. */
    printf("matmul_null_handle=%d\n", run(NULL, p, NULL, s));
    printf("create_null=%d\n", lt_create(NULL));
    int64_t wide = CUBLAS_OP_T;
    int32_t narrow = CUBLAS_OP_T;
    printf("set_attribute_bad_size=%d\n", desc_set(p.op, DESC_TRANSA, &wide, sizeof wide));
    printf("set_attribute_unknown=%d\n", desc_set(p.op, 9, &narrow, sizeof narrow));
    int32_t batch = 0;
    size_t written = 0;
    check("cublasLtMatrixLayoutGetAttribute", layout_get(p.d, LAYOUT_BATCH_COUNT, &batch, sizeof batch, &written));
    printf("batch_count=%d\n", batch);
    printf("batch_count_written=%zu\n", written);
    written = 0;
    check("cublasLtMatrixLayoutGetAttribute", layout_get(p.d, LAYOUT_STRIDED_BATCH_OFFSET, NULL, 0, &written));
    printf("stride_size=%zu\n", written);

    /* Mismatched layouts: B with k + 1 rows (7), in the heuristic and in the matmul. */
    cublasLtMatrixLayout_t b_bad = NULL;
    cublasLtMatmulHeuristicResult_t result;
    int count = -1;
    check("cublasLtMatrixLayoutCreate", layout_create(&b_bad, CUDA_R_16BF, bias.k + 1, bias.n, bias.k + 1));
    printf("heuristic_mismatch=%d\n", heuristic(h, p.op, p.a, b_bad, p.d, p.d, p.pref, 1, &result, &count));
    printf("heuristic_mismatch_count=%d\n", count);
    const float one = 1.0f, zero = 0.0f;
    printf("matmul_mismatch=%d\n", matmul(h, p.op, &one, dev_a, p.a, dev_b, b_bad, &zero, dev_d, p.d, dev_d, p.d,
                                          NULL, dev_workspace, WORKSPACE, s));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(b_bad));
    printf("layout_destroy_again=%d\n", layout_destroy(b_bad));
    printf("matmul_destroyed_layout=%d\n", matmul(h, p.op, &one, dev_a, p.a, dev_b, b_bad, &zero, dev_d, p.d, dev_d,
                                                  p.d, NULL, dev_workspace, WORKSPACE, s));

    /* A type Phantom does not time (complex fp32): CUBLAS_STATUS_NOT_SUPPORTED = 15. */
    cublasLtMatrixLayout_t a_c = NULL, b_c = NULL, d_c = NULL;
    check("cublasLtMatrixLayoutCreate", layout_create(&a_c, CUDA_C_32F, bias.k, bias.m, bias.k));
    check("cublasLtMatrixLayoutCreate", layout_create(&b_c, CUDA_C_32F, bias.k, bias.n, bias.k));
    check("cublasLtMatrixLayoutCreate", layout_create(&d_c, CUDA_C_32F, bias.m, bias.n, bias.m));
    printf("matmul_complex=%d\n", matmul(h, p.op, &one, dev_a, a_c, dev_b, b_c, &zero, dev_d, d_c, dev_d, d_c, NULL,
                                         dev_workspace, WORKSPACE, s));
    printf("status_name=%s\n", lt_status_name(15));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(a_c));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(b_c));
    check("cublasLtMatrixLayoutDestroy", layout_destroy(d_c));
    free_plan(p);

    check("cudaStreamSynchronize", cudaStreamSynchronize(s));
    check("cublasLtDestroy", lt_destroy(h));
    printf("destroy_again=%d\n", lt_destroy(h));
    return failures ? 1 : 0;
}
