// host_costs: what NVIDIA's CUDA runtime costs the calling thread per call, measured on the host clock. The
// figures are what Phantom's `[host] api_call_ns` and `launch_call_ns` model (docs/time.md, docs/calibration.md):
// a trivial query (cudaGetDevice, cudaGetLastError, cudaStreamQuery on an idle stream) and a kernel launch;
// also what the driver's own cuLaunchKernel costs (the runtime's part of a launch is the difference), an
// asynchronous memset and an event record.
//
// Build and run against NVIDIA's runtime (not Phantom's):
//   nvcc -cudart shared -arch=sm_90 -O2 -o host_costs calibration/host/host_costs.cu
//   LD_LIBRARY_PATH=<NVIDIA's lib dir> ./host_costs
// Prints key=value lines: *_ns are medians over 21 rounds, per call.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>
#include <cuda.h>
#include <cuda_runtime.h>

__global__ void empty() {}

static double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

template <class F>
static double median_per_call(int rounds, int calls, F f) {
  std::vector<double> v;
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ns();
    for (int i = 0; i < calls; i++) f();
    v.push_back((now_ns() - t0) / calls);
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main() {
  cudaStream_t s;
  if (cudaStreamCreate(&s) != cudaSuccess) return 1;
  empty<<<1, 1, 0, s>>>();
  cudaStreamSynchronize(s);
  int dev = 0;
  printf("get_device_ns=%.1f\n", median_per_call(21, 100000, [&] { cudaGetDevice(&dev); }));
  printf("get_last_error_ns=%.1f\n", median_per_call(21, 100000, [&] { (void)cudaGetLastError(); }));
  printf("stream_query_ns=%.1f\n", median_per_call(21, 20000, [&] { (void)cudaStreamQuery(s); }));
  // Launches: 256 per round, then wait outside the timed part, so the queue never fills.
  std::vector<double> v;
  for (int r = 0; r < 41; r++) {
    double t0 = now_ns();
    for (int i = 0; i < 256; i++) empty<<<1, 1, 0, s>>>();
    v.push_back((now_ns() - t0) / 256);
    cudaStreamSynchronize(s);
  }
  std::sort(v.begin(), v.end());
  printf("launch_ns=%.1f\n", v[v.size() / 2]);
  // The same work through the driver, and other queued calls, timed the same way.
  cudaFunction_t fn;
  if (cudaGetFuncBySymbol(&fn, (const void *)empty) != cudaSuccess) return 1;
  void *dev_buf = nullptr;
  if (cudaMalloc(&dev_buf, 1 << 20) != cudaSuccess) return 1;
  cudaEvent_t ev;
  if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) return 1;
  auto queued = [&](const char *name, auto call) {
    std::vector<double> w;
    for (int r = 0; r < 41; r++) {
      double t0 = now_ns();
      for (int i = 0; i < 256; i++) call();
      w.push_back((now_ns() - t0) / 256);
      cudaStreamSynchronize(s);
    }
    std::sort(w.begin(), w.end());
    printf("%s=%.1f\n", name, w[w.size() / 2]);
  };
  // The driver's function from the runtime (no link against libcuda).
  void *entry = nullptr;
  cudaDriverEntryPointQueryResult found;
  if (cudaGetDriverEntryPointByVersion("cuLaunchKernel", &entry, 12000, cudaEnableDefault, &found) != cudaSuccess || !entry) return 1;
  auto cu_launch = (CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **))entry;
  queued("cu_launch_ns", [&] { cu_launch((CUfunction)fn, 1, 1, 1, 1, 1, 1, 0, (CUstream)s, nullptr, nullptr); });
  queued("memset_async_ns", [&] { cudaMemsetAsync(dev_buf, 0, 1 << 20, s); });
  queued("event_record_ns", [&] { cudaEventRecord(ev, s); });
  printf("done=1\n");
  return 0;
}
