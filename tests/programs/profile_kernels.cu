// profile_kernels: the workload of profiling mode's tests (tests/tests/e2e/profile.rs). One kernel, `busy`, run
// in three launch configurations; what each takes, seen through CUDA events and the host clock; and a 4 MiB
// round trip through device memory. It is a real CUDA program that does real, deterministic work, so it can
// also be run on a GPU (directly, or under `PHANTOM_PROFILE=execute` with NVIDIA's driver).
//
// Prints key=value lines (each key prefixed `r<RANK>_` when RANK is set, as under `phantom run -n N`):
//   grid_<G>_ms    cudaEventElapsedTime over 5 back-to-back launches of busy<<<G, 256>>> on one stream,
//                  for G = 64, 256, 1024 blocks
//   loop_host_ms   CLOCK_MONOTONIC time of the three configurations launched back to back 3 times, followed by
//                  cudaStreamSynchronize (under Phantom the clock is virtual)
//   roundtrip_ok   1 if 4 MiB copied host→device→host come back unchanged, else 0 (Phantom's simulated memory
//                  delivers zeros for copies over 1 MiB; profiling mode's real memory gives them back)
//   launches       the kernel launches this program made (27)
//   done           1, last
// Any failed CUDA call prints `error=…` and exits 1.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cuda_runtime.h>

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
  printf("%serror=%s at line %d: %s\n", prefix, #call, __LINE__, cudaGetErrorName(e_)); exit(1); } } while (0)

static char prefix[32];

// Each thread runs `iters` dependent FMAs on its element, so the kernel's time grows with iters.
__global__ void busy(float* x, int iters) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = x[i];
  for (int k = 0; k < iters; k++) v = fmaf(v, 0.999f, 0.001f);
  x[i] = v;
}

static const int GRIDS[3] = {64, 256, 1024};
static const int BLOCK = 256;
static const int ITERS = 2000;
static const int REPEATS = 5;
static const int LOOPS = 3;

static double now_ms() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main() {
  if (const char* rank = getenv("RANK")) snprintf(prefix, sizeof prefix, "r%s_", rank);
  int launches = 0;

  const size_t n = (size_t)GRIDS[2] * BLOCK;  // one element per thread of the largest grid
  float* x = nullptr;
  CHECK(cudaMalloc(&x, n * sizeof(float)));
  CHECK(cudaMemset(x, 0, n * sizeof(float)));
  cudaStream_t s;
  CHECK(cudaStreamCreate(&s));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  CHECK(cudaDeviceSynchronize());

  // 0. One launch of each configuration, then wait: NVIDIA's runtime loads a kernel at its first launch, which
  // would otherwise count in the first configuration's time.
  for (int g : GRIDS) {
    busy<<<g, BLOCK, 0, s>>>(x, ITERS);
    launches++;
  }
  CHECK(cudaDeviceSynchronize());

  // 1. Each configuration, 5 launches between two events.
  for (int g : GRIDS) {
    CHECK(cudaEventRecord(a, s));
    for (int r = 0; r < REPEATS; r++, launches++) busy<<<g, BLOCK, 0, s>>>(x, ITERS);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(b, s));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    printf("%sgrid_%d_ms=%.4f\n", prefix, g, ms);
  }

  // 2. All three configurations back to back, 3 times, on the host clock.
  double t0 = now_ms();
  for (int l = 0; l < LOOPS; l++)
    for (int g : GRIDS) {
      busy<<<g, BLOCK, 0, s>>>(x, ITERS);
      launches++;
    }
  CHECK(cudaGetLastError());
  CHECK(cudaStreamSynchronize(s));
  double t1 = now_ms();
  printf("%sloop_host_ms=%.4f\n", prefix, t1 - t0);

  // 3. 4 MiB of a known pattern to the device and back.
  const size_t bytes = 4u << 20;
  unsigned char* src = (unsigned char*)malloc(bytes);
  unsigned char* dst = (unsigned char*)malloc(bytes);
  if (!src || !dst) {
    printf("%serror=malloc\n", prefix);
    return 1;
  }
  for (size_t i = 0; i < bytes; i++) src[i] = (unsigned char)(i * 131 + (i >> 12) + 7);
  memset(dst, 0, bytes);
  void* d = nullptr;
  CHECK(cudaMalloc(&d, bytes));
  CHECK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dst, d, bytes, cudaMemcpyDeviceToHost));
  printf("%sroundtrip_ok=%d\n", prefix, memcmp(src, dst, bytes) == 0 ? 1 : 0);

  CHECK(cudaFree(d));
  CHECK(cudaFree(x));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  CHECK(cudaStreamDestroy(s));
  free(src);
  free(dst);
  printf("%slaunches=%d\n", prefix, launches);
  printf("%sdone=1\n", prefix);
  return 0;
}
