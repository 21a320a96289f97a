// intercept: how much host time NVIDIA's runtime and libraries take *inside* a real program, per call kind.
// An LD_PRELOAD library that wraps the calls whose host cost Phantom models or measures (docs/time.md), times
// each with the monotonic clock and prints, at exit, per function: calls, mean ns, and the mean of the calls
// that took at most 50 us (a longer call waited for the driver's queue or loaded code, as a first call does).
//
//   cc -O2 -shared -fPIC -o intercept.so calibration/host/intercept.c -ldl
//   LD_PRELOAD=./intercept.so python3 tests/programs/torch/gpt2.py     # on NVIDIA's libraries
//
// Compare with an executing process's `PHANTOM_LOG=warn,phantom::host=info` lines and the profiling line's
// "driver took ... per launch". Functions the program never calls are not printed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

#define LONG_CALL_NS 50000ull

struct tally {
  const char *name;
  _Atomic uint64_t calls, ns, short_calls, short_ns;
};

enum { LAUNCH, LAUNCH_STUB, LAUNCH_EX, MEMSET, EVENT_RECORD, GEMM_EX, LT_MATMUL, LT_HEURISTIC, CUDNN_EXECUTE, N_TALLY };
static struct tally tallies[N_TALLY] = {
    {"cudaLaunchKernel"}, {"__cudaLaunchKernel"}, {"cudaLaunchKernelExC"}, {"cudaMemsetAsync"}, {"cudaEventRecord"},
    {"cublasGemmEx"}, {"cublasLtMatmul"}, {"cublasLtMatmulAlgoGetHeuristic"}, {"cudnnBackendExecute"},
};

static void note(int i, uint64_t t0) {
  uint64_t d = now_ns() - t0;
  struct tally *t = &tallies[i];
  atomic_fetch_add(&t->calls, 1);
  atomic_fetch_add(&t->ns, d);
  if (d <= LONG_CALL_NS) {
    atomic_fetch_add(&t->short_calls, 1);
    atomic_fetch_add(&t->short_ns, d);
  }
}

// The real function: the next definition after this library, or, for a library opened with RTLD_LOCAL (torch
// opens some that way), the definition in that library, found by its soname.
static void *next(const char *name, const char *soname) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) {
    void *lib = dlopen(soname, RTLD_NOLOAD | RTLD_LAZY);
    if (lib) f = dlsym(lib, name);
  }
  if (!f) fprintf(stderr, "intercept: %s not found\n", name);
  return f;
}

// Each wrapper: the real function of the same name (found once), timed. Arguments pass through as words: every
// parameter of these functions is an integer, a pointer or a struct of at most 16 bytes passed in registers
// (dim3 pairs are passed as two 8+4-byte halves on x86-64, so they are spelled out).
typedef struct { unsigned x, y, z; } dim3_t;

int cudaLaunchKernel(const void *f, dim3_t g, dim3_t b, void **args, size_t shared, void *s) {
  static int (*real)(const void *, dim3_t, dim3_t, void **, size_t, void *);
  if (!real) real = next("cudaLaunchKernel", "libcudart.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(f, g, b, args, shared, s);
  note(LAUNCH, t0);
  return r;
}

// What nvcc's host stubs call for a <<<...>>> launch since CUDA 12.x (a cudaKernel_t rather than a host function).
int __cudaLaunchKernel(const void *k, dim3_t g, dim3_t b, void **args, size_t shared, void *s) {
  static int (*real)(const void *, dim3_t, dim3_t, void **, size_t, void *);
  if (!real) real = next("__cudaLaunchKernel", "libcudart.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(k, g, b, args, shared, s);
  note(LAUNCH_STUB, t0);
  return r;
}

int cudaLaunchKernelExC(const void *config, const void *f, void **args) {
  static int (*real)(const void *, const void *, void **);
  if (!real) real = next("cudaLaunchKernelExC", "libcudart.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(config, f, args);
  note(LAUNCH_EX, t0);
  return r;
}

int cudaMemsetAsync(void *p, int v, size_t n, void *s) {
  static int (*real)(void *, int, size_t, void *);
  if (!real) real = next("cudaMemsetAsync", "libcudart.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(p, v, n, s);
  note(MEMSET, t0);
  return r;
}

int cudaEventRecord(void *e, void *s) {
  static int (*real)(void *, void *);
  if (!real) real = next("cudaEventRecord", "libcudart.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(e, s);
  note(EVENT_RECORD, t0);
  return r;
}

int cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, const void *a, int at, int lda,
                 const void *b, int bt, int ldb, const void *beta, void *c, int ct, int ldc, int compute, int algo) {
  static int (*real)(void *, int, int, int, int, int, const void *, const void *, int, int, const void *, int, int,
                     const void *, void *, int, int, int, int);
  if (!real) real = next("cublasGemmEx", "libcublas.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(h, ta, tb, m, n, k, alpha, a, at, lda, b, bt, ldb, beta, c, ct, ldc, compute, algo);
  note(GEMM_EX, t0);
  return r;
}

int cublasLtMatmul(void *h, void *desc, const void *alpha, const void *a, void *la, const void *b, void *lb,
                   const void *beta, const void *c, void *lc, void *d, void *ld, const void *algo, void *ws,
                   size_t wss, void *s) {
  static int (*real)(void *, void *, const void *, const void *, void *, const void *, void *, const void *,
                     const void *, void *, void *, void *, const void *, void *, size_t, void *);
  if (!real) real = next("cublasLtMatmul", "libcublasLt.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(h, desc, alpha, a, la, b, lb, beta, c, lc, d, ld, algo, ws, wss, s);
  note(LT_MATMUL, t0);
  return r;
}

int cublasLtMatmulAlgoGetHeuristic(void *h, void *op, void *a, void *b, void *c, void *d, void *pref, int n,
                                   void *results, int *returned) {
  static int (*real)(void *, void *, void *, void *, void *, void *, void *, int, void *, int *);
  if (!real) real = next("cublasLtMatmulAlgoGetHeuristic", "libcublasLt.so.13");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(h, op, a, b, c, d, pref, n, results, returned);
  note(LT_HEURISTIC, t0);
  return r;
}

int cudnnBackendExecute(void *h, void *plan, void *pack) {
  static int (*real)(void *, void *, void *);
  if (!real) real = next("cudnnBackendExecute", "libcudnn_graph.so.9");
  if (!real) return 999;
  uint64_t t0 = now_ns();
  int r = real(h, plan, pack);
  note(CUDNN_EXECUTE, t0);
  return r;
}

__attribute__((destructor)) static void report(void) {
  for (int i = 0; i < N_TALLY; i++) {
    struct tally *t = &tallies[i];
    if (!t->calls) continue;
    fprintf(stderr, "intercept: %s calls %llu mean_ns %.0f short_mean_ns %.0f long_calls %llu\n", t->name,
            (unsigned long long)t->calls, (double)t->ns / t->calls,
            t->short_calls ? (double)t->short_ns / t->short_calls : 0.0,
            (unsigned long long)(t->calls - t->short_calls));
  }
}
