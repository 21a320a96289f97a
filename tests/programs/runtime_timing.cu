// Exercises simulated time through the CUDA runtime API; prints key=value lines that
// tests/tests/runtime_timing.rs checks against values derived from the GPU model and the kernel table
// (tests/programs/runtime_timing.table). Run with PHANTOM_HOST_TIME=deterministic.
#include <chrono>
#include <cstdio>
#include <cuda_runtime.h>

__device__ float coefficients[16];

__global__ void spin(float* x) { if (x) x[threadIdx.x] += 1.0f; }
__global__ void half_gpu(float* x) { if (x) x[blockIdx.x] += 1.0f; }
__global__ void full_gpu(float* x) { if (x) x[blockIdx.x] += 1.0f; }
__global__ void short_step(float* x) { if (x) x[threadIdx.x] *= 2.0f; }

static double host_ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
  printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_)); return 1; } } while (0)

int main() {
  cudaDeviceProp p;
  CHECK(cudaGetDeviceProperties(&p, 0));
  printf("sms=%d\ncc=%d.%d\ntotal_mem=%zu\nname=%s\n", p.multiProcessorCount, p.major, p.minor, p.totalGlobalMem, p.name);

  float* d = nullptr;
  CHECK(cudaMalloc(&d, 1 << 20));
  cudaStream_t s, s2;
  CHECK(cudaStreamCreate(&s));
  CHECK(cudaStreamCreate(&s2));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));

  // 1. Ten 1.5 ms kernels on one stream.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(cudaEventRecord(a, s));
  for (int i = 0; i < 10; i++) spin<<<1, 32, 0, s>>>(d);
  CHECK(cudaGetLastError());
  CHECK(cudaEventRecord(b, s));
  CHECK(cudaStreamSynchronize(s));
  auto t1 = std::chrono::steady_clock::now();
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  printf("ten_kernels_event_ms=%.4f\nten_kernels_host_ms=%.4f\n", ms, host_ms(t0, t1));

  // 2. Two kernels on two streams: small ones overlap, GPU-filling ones serialise.
  t0 = std::chrono::steady_clock::now();
  half_gpu<<<66, 256, 0, s>>>(d);
  half_gpu<<<66, 256, 0, s2>>>(d);
  CHECK(cudaDeviceSynchronize());
  t1 = std::chrono::steady_clock::now();
  printf("two_small_host_ms=%.4f\n", host_ms(t0, t1));
  t0 = std::chrono::steady_clock::now();
  full_gpu<<<132 * 8 * 2, 256, 0, s>>>(d);
  full_gpu<<<132 * 8 * 2, 256, 0, s2>>>(d);
  CHECK(cudaDeviceSynchronize());
  t1 = std::chrono::steady_clock::now();
  printf("two_full_host_ms=%.4f\n", host_ms(t0, t1));

  // 3. 1 GiB host-to-device copy from pinned memory.
  const size_t gib = size_t(1) << 30;
  void *h = nullptr, *dbig = nullptr;
  CHECK(cudaMallocHost(&h, gib));
  CHECK(cudaMalloc(&dbig, gib));
  CHECK(cudaEventRecord(a, s));
  CHECK(cudaMemcpyAsync(dbig, h, gib, cudaMemcpyHostToDevice, s));
  CHECK(cudaEventRecord(b, s));
  CHECK(cudaEventSynchronize(b));
  CHECK(cudaEventElapsedTime(&ms, a, b));
  printf("h2d_1gib_ms=%.4f\n", ms);

  // 4. Device-to-host copies deliver zeros.
  ((unsigned char*)h)[0] = 0xAB;
  ((unsigned char*)h)[4095] = 0xCD;
  CHECK(cudaMemcpy(h, dbig, 4096, cudaMemcpyDeviceToHost));
  printf("d2h_bytes=%d,%d\n", ((unsigned char*)h)[0], ((unsigned char*)h)[4095]);
  CHECK(cudaFree(dbig));
  CHECK(cudaFreeHost(h));

  // 5. More memory than the GPU has.
  void* huge = nullptr;
  cudaError_t e = cudaMalloc(&huge, size_t(81) << 30);
  printf("malloc_81gib=%d\n", (int)e);
  cudaError_t first = cudaGetLastError();
  cudaError_t second = cudaGetLastError();
  printf("last_error_first=%d\nlast_error_second=%d\n", (int)first, (int)second);
  void* small = nullptr;
  printf("malloc_after=%d\n", (int)cudaMalloc(&small, 1 << 20));
  size_t free_b = 0, total_b = 0;
  CHECK(cudaMemGetInfo(&free_b, &total_b));
  printf("mem_total=%zu\n", total_b);

  // 6. A captured graph of 100 kernels replays in the time the same kernels take when launched directly.
  CHECK(cudaEventRecord(a, s));
  for (int i = 0; i < 100; i++) short_step<<<1, 32, 0, s>>>(d);
  CHECK(cudaEventRecord(b, s));
  CHECK(cudaEventSynchronize(b));
  CHECK(cudaEventElapsedTime(&ms, a, b));
  printf("direct_100_ms=%.4f\n", ms);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < 100; i++) short_step<<<1, 32, 0, s>>>(d);
  CHECK(cudaStreamEndCapture(s, &g));
  size_t nodes = 0;
  CHECK(cudaGraphGetNodes(g, nullptr, &nodes));
  printf("graph_nodes=%zu\n", nodes);
  CHECK(cudaGraphInstantiate(&ge, g, 0));
  CHECK(cudaEventRecord(a, s));
  CHECK(cudaGraphLaunch(ge, s));
  CHECK(cudaEventRecord(b, s));
  CHECK(cudaEventSynchronize(b));
  CHECK(cudaEventElapsedTime(&ms, a, b));
  printf("graph_100_ms=%.4f\n", ms);
  CHECK(cudaGraphExecDestroy(ge));
  CHECK(cudaGraphDestroy(g));
  // 7. __device__ variables: copies to and from a symbol; the device keeps small data (docs/gpu-model.md, "Data").
  float host_coef[16] = {1, 2, 3};
  CHECK(cudaMemcpyToSymbol(coefficients, host_coef, sizeof(host_coef)));
  CHECK(cudaMemcpyFromSymbolAsync(host_coef, coefficients, 2 * sizeof(float), sizeof(float), cudaMemcpyDeviceToHost, s));
  CHECK(cudaStreamSynchronize(s));
  size_t sym_size = 0;
  CHECK(cudaGetSymbolSize(&sym_size, coefficients));
  printf("symbol_size=%zu\nsymbol_readback=%g,%g,%g\n", sym_size, host_coef[0], host_coef[1], host_coef[2]);
  printf("symbol_overflow=%d\n", (int)cudaMemcpyToSymbol(coefficients, host_coef, sizeof(host_coef), 4));
  printf("done=1\n");
  return 0;
}
