// report_steps: what `phantom run --report` says about the ranks' GPUs (docs/launcher.md, "What the ranks
// add"). tests/tests/e2e/report.rs runs it as 2 ranks under `phantom run -n 2 --host-time deterministic
// --kernel-table tests/programs/report_steps.table --report r.json` and compares the report with what each
// rank prints here (key=value lines).
//
// Each rank allocates 1 MiB and 3,000,000 B, frees the 1 MiB, and runs STEPS steps, each an NVTX range
// `step N` (a level-0 range `init` around the set-up, and a nested one, must not count as steps). A step
// queues on stream `ns` a 10 us `pre_kernel` then an all-reduce, and on stream `cs` a 1 ms `compute_kernel`
// then `model_kernel` (timed by the fallback model: no table entry); on odd steps the compute waits for the
// all-reduce (cudaStreamSynchronize), so the communication is exposed, on even steps it overlaps it.
//
// Events give every span relative to event `a`, recorded on `ns` after `pre_kernel` (which ends there, and
// where the stream reaches the all-reduce): `b` after the all-reduce (its completion), `c1` after the
// compute kernel, `c2` after the model kernel. Kernel starts are their ends minus their table durations
// (the model kernel starts as the compute kernel ends). From these the program computes what the report
// must say: the union of kernel spans (busy), the all-reduce spans (NCCL) and the part of those no kernel
// covers (exposed), over the run and per step (all of a step's GPU work runs inside its range).
#include <cuda_runtime.h>
#include <nccl.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#define STEPS 4
#define COUNT (3000000 / 4)
#define PRE_NS 10000LL
#define COMPUTE_NS 1000000LL

__global__ void pre_kernel(float* x) { if (x) x[threadIdx.x] += 1.0f; }
__global__ void compute_kernel(float* x) { if (x) x[threadIdx.x] *= 2.0f; }
__global__ void model_kernel(float* x) { if (x) x[blockIdx.x * blockDim.x + threadIdx.x] -= 1.0f; }

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
  printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_)); exit(1); } } while (0)
#define NCHECK(call) do { ncclResult_t r_ = (call); if (r_ != ncclSuccess) { \
  printf("error=%s at line %d: %d\n", #call, __LINE__, (int)r_); exit(1); } } while (0)

static long long now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int env_int(const char* k) {
  const char* v = getenv(k);
  return v ? atoi(v) : 0;
}

// Nanoseconds from event x to event y (CUDA gives float milliseconds).
static long long between(cudaEvent_t x, cudaEvent_t y) {
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, x, y));
  return llround((double)ms * 1e6);
}

typedef std::pair<long long, long long> Span;

// Sorted, merged union of spans.
static std::vector<Span> merged(std::vector<Span> v) {
  std::sort(v.begin(), v.end());
  std::vector<Span> out;
  for (const Span& s : v) {
    if (!out.empty() && s.first <= out.back().second) out.back().second = std::max(out.back().second, s.second);
    else out.push_back(s);
  }
  return out;
}

static long long length(const std::vector<Span>& v) {
  long long n = 0;
  for (const Span& s : v) n += s.second - s.first;
  return n;
}

// Length of `s` not covered by the merged spans `cover`.
static long long uncovered(Span s, const std::vector<Span>& cover) {
  long long covered = 0;
  for (const Span& c : cover) covered += std::max(0LL, std::min(s.second, c.second) - std::max(s.first, c.first));
  return (s.second - s.first) - covered;
}

int main() {
  int rank = env_int("RANK"), world = env_int("WORLD_SIZE"), local = env_int("LOCAL_RANK");
  CHECK(cudaSetDevice(local));
  float* tmp = nullptr;
  float* buf = nullptr;
  CHECK(cudaMalloc(&tmp, 1 << 20));
  CHECK(cudaMalloc(&buf, 3000000));
  CHECK(cudaFree(tmp));
  // Both ranks print to one stdout: every key names its rank.
  printf("r%d_allocated=%d,%d\n", rank, 1 << 20, 3000000);

  nvtxRangePushA("init");
  ncclUniqueId id;  // Phantom's simulator only matches ids: every rank can use the same fixed one.
  memset(&id, 0, sizeof id);
  strcpy(id.internal, "phantom report_steps");
  ncclComm_t comm;
  NCHECK(ncclCommInitRank(&comm, world, id, rank));
  cudaStream_t cs, ns;
  CHECK(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&ns, cudaStreamNonBlocking));
  cudaEvent_t a, b, c1, c2;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  CHECK(cudaEventCreate(&c1));
  CHECK(cudaEventCreate(&c2));
  nvtxRangePop();

  long long busy = 0, nccl = 0, exposed = 0, model = 0;
  for (int step = 0; step < STEPS; step++) {
    char name[32];
    snprintf(name, sizeof name, "step %d", step);
    long long t0 = now_ns();
    nvtxRangePushA(name);
    pre_kernel<<<1, 32, 0, ns>>>(buf);
    CHECK(cudaEventRecord(a, ns));
    nvtxRangePushA("all-reduce");
    NCHECK(ncclAllReduce(buf, buf, COUNT, ncclFloat, ncclSum, comm, ns));
    nvtxRangePop();
    CHECK(cudaEventRecord(b, ns));
    if (step % 2 == 1) CHECK(cudaStreamSynchronize(ns));
    compute_kernel<<<1, 32, 0, cs>>>(buf);
    CHECK(cudaEventRecord(c1, cs));
    model_kernel<<<1024, 256, 0, cs>>>(buf);
    CHECK(cudaEventRecord(c2, cs));
    CHECK(cudaStreamSynchronize(cs));
    CHECK(cudaStreamSynchronize(ns));
    nvtxRangePop();
    long long t1 = now_ns();

    long long tb = between(a, b), tc1 = between(a, c1), tc2 = between(a, c2);
    std::vector<Span> kernels = merged({{-PRE_NS, 0}, {tc1 - COMPUTE_NS, tc1}, {tc1, tc2}});
    long long step_busy = length(kernels), step_exposed = uncovered({0, tb}, kernels);
    busy += step_busy;
    nccl += tb;
    exposed += step_exposed;
    model += tc2 - tc1;
    printf("r%d_step%d_ns=%lld\nr%d_step%d_allreduce_ns=%lld\n", rank, step, t1 - t0, rank, step, tb);
    printf("r%d_step%d_busy_ns=%lld\nr%d_step%d_exposed_ns=%lld\n", rank, step, step_busy, rank, step, step_exposed);
  }
  printf("r%d_busy_ns=%lld\nr%d_nccl_ns=%lld\nr%d_exposed_ns=%lld\nr%d_model_ns=%lld\n", rank, busy, rank, nccl, rank,
         exposed, rank, model);
  NCHECK(ncclCommDestroy(comm));
  CHECK(cudaFree(buf));
  printf("r%d_done=1\n", rank);
  return 0;
}
