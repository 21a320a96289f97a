// Benchmark (prints, asserts nothing): real wall-clock cost of one cuDNN backend export through Phantom's stub,
// the calls PyTorch's cuDNN frontend makes about a thousand of per GPT-2 step (descriptor create, set attribute,
// finalize, destroy). scripts/bench.sh runs it in a simulated process and in an executing process of profiling
// mode, where the stub brackets every export for the host clock and mirrors it into "NVIDIA's" library (there
// stubs/cudnn/testing/fake_cudnn.c, whose own work is next to nothing). Wall time is read with the raw
// clock_gettime system call, which Phantom's virtual clock does not intercept.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cuda_runtime.h>

typedef void *desc_t;

static double wall_ns(void) {
  struct timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// cudnn_graph.h's values (cudnn.h is not in the pinned wheels).
enum { TENSOR_DESC = 17, T_DATA_TYPE = 1, T_INT64 = 3, D_BFLOAT16 = 9 };
enum { A_BYTE_ALIGNMENT = 900, A_DATA_TYPE = 901, A_DIMENSIONS = 902, A_STRIDES = 903, A_UNIQUE_ID = 906 };

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100000;
  cudaFree(0);  // runtime initialisation outside the timed part
  void *lib = dlopen("libcudnn.so.9", RTLD_NOW);
  if (!lib) {
    printf("libcudnn.so.9: %s\n", dlerror());
    return 1;
  }
  int (*create)(int, desc_t *) = (int (*)(int, desc_t *))dlsym(lib, "cudnnBackendCreateDescriptor");
  int (*destroy)(desc_t) = (int (*)(desc_t))dlsym(lib, "cudnnBackendDestroyDescriptor");
  int (*set)(desc_t, int, int, int64_t, const void *) =
      (int (*)(desc_t, int, int, int64_t, const void *))dlsym(lib, "cudnnBackendSetAttribute");
  int (*finalize)(desc_t) = (int (*)(desc_t))dlsym(lib, "cudnnBackendFinalize");
  if (!create || !destroy || !set || !finalize) {
    printf("libcudnn.so.9 lacks the backend API\n");
    return 1;
  }
  int64_t dims[4] = {8, 12, 1024, 64}, strides[4] = {12 * 1024 * 64, 1024 * 64, 64, 1}, align = 16;
  int dtype = D_BFLOAT16, status = 0;
  double t0 = wall_ns();
  for (int i = 0; i < n; i++) {
    desc_t t = NULL;
    int64_t uid = i;
    status |= create(TENSOR_DESC, &t);
    status |= set(t, A_DATA_TYPE, T_DATA_TYPE, 1, &dtype);
    status |= set(t, A_DIMENSIONS, T_INT64, 4, dims);
    status |= set(t, A_STRIDES, T_INT64, 4, strides);
    status |= set(t, A_UNIQUE_ID, T_INT64, 1, &uid);
    status |= set(t, A_BYTE_ALIGNMENT, T_INT64, 1, &align);
    status |= finalize(t);
    status |= destroy(t);
  }
  double t1 = wall_ns();
  printf("cuDNN backend export (tensor descriptor: create, 5 x set, finalize, destroy): %.1f ns per export over %d "
         "descriptors%s\n",
         (t1 - t0) / n / 8, n, status ? " (some calls failed)" : "");
  return status != 0;
}
