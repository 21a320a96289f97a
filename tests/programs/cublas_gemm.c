/* cuBLAS GEMMs on Phantom's libcublas.so.13 from plain C, timed with CUDA events. The cuBLAS headers are not in
 * the pinned wheels, so the few prototypes used are declared here (as in NVIDIA's cublas_api.h) and the library
 * is opened with dlopen. Prints `name=value` lines; the test (tests/tests/e2e/programs.rs) checks them. Exit
 * status 1 if a call that must succeed failed or a time differs from the model.
 *
 * The model (sim-core/src/blas.rs) on the default GPU, an H100 SXM 80GB (fp32 peak 67e12 FLOP/s, bf16 989.4e12,
 * HBM 3.0e12 B/s), with GEMM_EFFICIENCY = 0.75 and GEMM_FIXED_NS = 3000:
 *   SGEMM 4096^3: 2*4096^3 = 137438953472 FLOP / (67e12*0.75) = 2735103.55 ns -> 2735104 ns (memory:
 *     3*4096^2*4 B / 3.0e12 = 67108.9 ns, smaller) + 3000 = 2738104 ns = 2.738104 ms.
 *   GemmEx bf16 4096^3 (fp32 compute): 137438953472 / (989.4e12*0.75) = 185215.2 ns -> 185216 + 3000
 *     = 188216 ns = 0.188216 ms.
 * Each timed GEMM follows a warm-up GEMM on the same stream, which is still running when the start event is
 * recorded (host calls take microseconds), so the events bracket exactly one GEMM's duration.
 *
 * Arguments `<name>=<ms>` (`sgemm_ms=0.5`) replace a GEMM's expected time: the test that gives a kernel-time table
 * `call` records for the GEMMs' keys (docs/profiling.md, "Library calls") expects the table's durations. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>

typedef void *cublasHandle_t;
typedef int (*create_t)(cublasHandle_t *);
typedef int (*destroy_t)(cublasHandle_t);
typedef int (*set_stream_t)(cublasHandle_t, cudaStream_t);
typedef int (*get_stream_t)(cublasHandle_t, cudaStream_t *);
typedef int (*sgemm_t)(cublasHandle_t, int, int, int, int, int, const float *, const float *, int, const float *,
                       int, const float *, float *, int);
typedef int (*gemm_ex_t)(cublasHandle_t, int, int, int, int, int, const void *, const void *, int, int,
                         const void *, int, int, const void *, void *, int, int, int, int);

/* CUDA_R_16BF (14) comes from library_types.h, included by cuda_runtime.h. */
enum { CUBLAS_OP_N = 0, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };

static int failures = 0;

/* The command line's `<name>=<ms>` arguments. */
static int n_overrides = 0;
static char **overrides = NULL;

/* The time `name` must take: its argument if one was given, else the model's `model_ms`. */
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

/* Prints the time between the events as `name=<ms>` and checks it against the model's `expect_ms`. */
static void timed(const char *name, cudaEvent_t start, cudaEvent_t stop, double expect_ms) {
    float ms = -1;
    check("cudaEventSynchronize", cudaEventSynchronize(stop));
    check("cudaEventElapsedTime", cudaEventElapsedTime(&ms, start, stop));
    printf("%s=%.6f\n", name, ms);
    if (fabs(ms - expected_ms(name, expect_ms)) > 1e-6) failures++;
}

int main(int argc, char **argv) {
    n_overrides = argc - 1;
    overrides = argv + 1;
    void *lib = dlopen("libcublas.so.13", RTLD_NOW);
    if (!lib) {
        printf("dlopen=%s\n", dlerror());
        return 1;
    }
    create_t create = (create_t)sym(lib, "cublasCreate_v2");
    destroy_t destroy = (destroy_t)sym(lib, "cublasDestroy_v2");
    set_stream_t set_stream = (set_stream_t)sym(lib, "cublasSetStream_v2");
    get_stream_t get_stream = (get_stream_t)sym(lib, "cublasGetStream_v2");
    sgemm_t sgemm = (sgemm_t)sym(lib, "cublasSgemm_v2");
    gemm_ex_t gemm_ex = (gemm_ex_t)sym(lib, "cublasGemmEx");
    if (failures) return 1;

    const int n = 4096;
    const float one = 1.0f, zero = 0.0f;
    float *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t h = NULL;
    cudaStream_t s = NULL, got = NULL;
    cudaEvent_t start, stop;
    check("cudaMalloc", cudaMalloc((void **)&a, (size_t)n * n * 4));
    check("cudaMalloc", cudaMalloc((void **)&b, (size_t)n * n * 4));
    check("cudaMalloc", cudaMalloc((void **)&c, (size_t)n * n * 4));
    check("cudaStreamCreate", cudaStreamCreate(&s));
    check("cudaEventCreate", cudaEventCreate(&start));
    check("cudaEventCreate", cudaEventCreate(&stop));

    check("cublasCreate_v2", create(&h));
    check("cublasSetStream_v2", set_stream(h, s));
    check("cublasGetStream_v2", get_stream(h, &got));
    printf("stream_same=%d\n", got == s);

    check("cublasSgemm_v2", sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, c, n));
    check("cudaEventRecord", cudaEventRecord(start, s));
    check("cublasSgemm_v2", sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, c, n));
    check("cudaEventRecord", cudaEventRecord(stop, s));
    timed("sgemm_ms", start, stop, 2.738104);

    check("cublasGemmEx", gemm_ex(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n,
                                  &zero, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    check("cudaEventRecord", cudaEventRecord(start, s));
    check("cublasGemmEx", gemm_ex(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n,
                                  &zero, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    check("cudaEventRecord", cudaEventRecord(stop, s));
    timed("gemm_ex_bf16_ms", start, stop, 0.188216);

    /* Errors: a negative dimension (CUBLAS_STATUS_INVALID_VALUE = 7), a NULL handle pointer (7), an unknown data
     * type (CUBLAS_STATUS_NOT_SUPPORTED = 15), a destroyed handle (CUBLAS_STATUS_NOT_INITIALIZED = 1). */
    printf("sgemm_negative=%d\n", sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, n, n, &one, a, n, b, n, &zero, c, n));
    printf("create_null=%d\n", create(NULL));
    printf("gemm_ex_bad_type=%d\n", gemm_ex(h, 0, 0, n, n, n, &one, a, 99, n, b, 99, n, &zero, c, 99, n,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    check("cublasDestroy_v2", destroy(h));
    printf("destroy_again=%d\n", destroy(h));
    printf("sgemm_destroyed=%d\n", sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, c, n));
    return failures ? 1 : 0;
}
