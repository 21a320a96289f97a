// What `phantom run --trace` adds around the GPU work (docs/trace.md): the host API track, device memory
// counters and the arrow of a cross-stream wait. tests/tests/e2e/trace.rs runs it in deterministic host time
// with the kernel-time table tests/programs/trace_host.table (producer 1 ms, consumer 250 us) and checks the
// trace against the times below and against what this program prints.
//
// One process, one GPU: a 1 MiB and a 3000-byte allocation; `producer` on stream s1, an event recorded after
// it, s2 waits for the event and runs `consumer`; the host waits for s2 (its own clock around the wait is
// printed), frees, sleeps 10 us, then allocates and frees 1 MiB 1000 times.
#include <chrono>
#include <cstdio>
#include <cuda_runtime.h>
#include <unistd.h>

__global__ void producer(float* x) { if (x) x[threadIdx.x] += 1.0f; }
__global__ void consumer(float* x) { if (x) x[threadIdx.x] *= 2.0f; }

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
  printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_)); return 1; } } while (0)

static long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main() {
  float *a = nullptr, *b = nullptr;
  CHECK(cudaMalloc(&a, 1 << 20));
  cudaStream_t s1, s2;
  CHECK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  cudaEvent_t e;
  CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  producer<<<1, 32, 0, s1>>>(a);
  CHECK(cudaMalloc(&b, 3000));
  CHECK(cudaEventRecord(e, s1));
  CHECK(cudaStreamWaitEvent(s2, e, 0));
  consumer<<<1, 32, 0, s2>>>(b);
  long long t0 = now_ns();
  CHECK(cudaStreamSynchronize(s2));
  long long t1 = now_ns();
  printf("sync_ns=%lld\n", t1 - t0);
  CHECK(cudaFree(b));
  usleep(10);
  t0 = now_ns();
  for (int i = 0; i < 1000; i++) {
    void* p = nullptr;
    CHECK(cudaMalloc(&p, 1 << 20));
    CHECK(cudaFree(p));
  }
  t1 = now_ns();
  printf("loop_ns=%lld\n", t1 - t0);
  CHECK(cudaFree(a));
  size_t free_bytes = 0, total = 0;
  CHECK(cudaMemGetInfo(&free_bytes, &total));
  printf("free=%zu\ntotal=%zu\n", free_bytes, total);
  printf("done=1\n");
  return 0;
}
