// NVTX ranges in simulated time: tests/tests/e2e/nvtx.rs runs this under `phantom run -n 1 --host-time
// deterministic --kernel-table tests/programs/nvtx_ranges.table --trace ...` and checks the ranges, levels
// and mark in the trace against the durations printed here (CLOCK_MONOTONIC deltas around each range) and
// against the documented model (docs/gpu-model.md, docs/time.md). Uses NVIDIA's NVTX v3 headers (header
// only: the calls reach Phantom through NVTX_INJECTION64_PATH, which `phantom run` sets).
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

__global__ void step_kernel(float* x) { if (x) x[threadIdx.x] += 1.0f; }
__global__ void small_kernel(float* x) { if (x) x[threadIdx.x] *= 2.0f; }

static long long now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
  printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_)); return 1; } } while (0)

int main() {
  float* d = nullptr;
  CHECK(cudaMalloc(&d, 1 << 20));  // initialises the runtime: from here the clocks read simulated time
  long tid = syscall(SYS_gettid);
  printf("pid=%d\ntid=%ld\n", (int)getpid(), tid);
  nvtxNameOsThreadA((uint32_t)tid, "trainer");

  // Step 0: three 1 ms kernels, then a nested range around the synchronisation.
  long long t0 = now_ns();
  nvtxRangeId_t epoch = nvtxRangeStartA("epoch");
  int push_step0 = nvtxRangePushA("step 0");
  for (int i = 0; i < 3; i++) step_kernel<<<1, 32>>>(d);
  CHECK(cudaGetLastError());
  long long t_sync = now_ns();
  int push_sync = nvtxRangePushA("sync");
  CHECK(cudaDeviceSynchronize());
  int pop_sync = nvtxRangePop();
  long long t_sync_end = now_ns();
  int pop_step0 = nvtxRangePop();
  long long t1 = now_ns();

  // Step 1: one 250 us kernel; a mark and an empty wide-character range after the launch; a range in a
  // domain of its own, named by a registered string, around the synchronisation.
  nvtxDomainHandle_t domain = nvtxDomainCreateA("phantom.test");
  nvtxStringHandle_t wait = nvtxDomainRegisterStringA(domain, "wait");
  int push_step1 = nvtxRangePushA("step 1");
  small_kernel<<<1, 32>>>(d);
  CHECK(cudaGetLastError());
  long long t_mark = now_ns();
  nvtxMarkA("launched");
  int push_wide = nvtxRangePushW(L"wide \u00fc");
  int pop_wide = nvtxRangePop();
  nvtxEventAttributes_t a = {};
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
  a.message.registered = wait;
  int push_wait = nvtxDomainRangePushEx(domain, &a);
  CHECK(cudaStreamSynchronize(0));
  int pop_wait = nvtxDomainRangePop(domain);
  long long t_wait_end = now_ns();
  int pop_step1 = nvtxRangePop();
  long long t2 = now_ns();
  nvtxRangeEnd(epoch);
  int pop_empty = nvtxRangePop();

  printf("levels=%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", push_step0, push_sync, pop_sync, pop_step0, push_step1,
         push_wide, pop_wide, push_wait, pop_wait, pop_step1);
  printf("pop_empty=%d\nepoch_id_nonzero=%d\n", pop_empty, epoch != 0);
  printf("step0_ns=%lld\nsync_ns=%lld\nsync_offset_ns=%lld\n", t1 - t0, t_sync_end - t_sync, t_sync - t0);
  printf("step1_ns=%lld\nmark_offset_ns=%lld\nwait_ns=%lld\nepoch_ns=%lld\n", t2 - t1, t_mark - t1,
         t_wait_end - t_mark, t2 - t0);
  CHECK(cudaFree(d));
  printf("done=1\n");
  return 0;
}
