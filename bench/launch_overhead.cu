// Benchmark (prints, asserts nothing): real wall-clock cost of Phantom's fast paths, per call.
// Wall time is read with the raw clock_gettime system call, which Phantom's virtual clock does not intercept.
#include <cstdio>
#include <cstdlib>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cuda_runtime.h>

__global__ void tiny(float* x) { if (x) x[threadIdx.x] += 1.0f; }

static double wall_ns() {
  struct timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000000;
  cudaStream_t s;
  cudaStreamCreate(&s);
  tiny<<<1, 32, 0, s>>>(nullptr);  // warm up: runtime initialisation, first-launch caches
  cudaStreamSynchronize(s);

  double t0 = wall_ns();
  for (int i = 0; i < n; i++) tiny<<<1, 32, 0, s>>>(nullptr);
  double t1 = wall_ns();
  printf("kernel launch (<<<>>>, one stream): %.1f ns per launch over %d launches\n", (t1 - t0) / n, n);

  cudaStream_t s2;
  cudaStreamCreate(&s2);
  t0 = wall_ns();
  for (int i = 0; i < n; i++) tiny<<<1, 32, 0, (i & 1) ? s : s2>>>(nullptr);
  t1 = wall_ns();
  printf("kernel launch (<<<>>>, two streams alternating): %.1f ns per launch over %d launches\n", (t1 - t0) / n, n);

  int dev = -1;
  t0 = wall_ns();
  for (int i = 0; i < n; i++) cudaGetDevice(&dev);
  t1 = wall_ns();
  printf("cudaGetDevice: %.1f ns per call over %d calls\n", (t1 - t0) / n, n);

  int m = n / 10;
  t0 = wall_ns();
  for (int i = 0; i < m; i++) cudaStreamSynchronize(s);
  t1 = wall_ns();
  printf("cudaStreamSynchronize: %.1f ns per call over %d calls\n", (t1 - t0) / m, m);

  t0 = wall_ns();
  for (int i = 0; i < m; i++) {
    tiny<<<1, 32, 0, s>>>(nullptr);
    cudaStreamSynchronize(s);
  }
  t1 = wall_ns();
  printf("launch + cudaStreamSynchronize: %.1f ns per pair over %d pairs\n", (t1 - t0) / m, m);
  return 0;
}
