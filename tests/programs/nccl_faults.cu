// nccl_faults: ranks that misuse NCCL on purpose, for the simulator's failure diagnosis (tests/tests/e2e/faults.rs).
//
// Usage: nccl_faults SCENARIO, one process per rank (`phantom run -n 4 -- nccl_faults SCENARIO`; RANK,
// WORLD_SIZE and LOCAL_RANK from the environment), one GPU per process (device LOCAL_RANK), one non-blocking
// stream. N = 262144 floats (1 MiB).
//
//   ok             every rank all-reduces N floats twice
//   mismatch-size  all-reduce of N floats; rank 1 passes 2N
//   mismatch-op    all-reduce of N floats; rank 1 calls ncclAllGather (N/WORLD_SIZE floats per rank)
//   mismatch-root  broadcast of N floats from rank 0; rank 1 names root 1
//   mismatch-type  all-reduce of N elements of ncclFloat; rank 1 passes ncclHalf
//   dead           rank 2 exits with code 7 after communicator initialisation; the others all-reduce
//   deadlock       every rank sends N floats to rank (r+1) % WORLD_SIZE, and nobody receives
//
// After its operations every rank synchronises its stream and asks ncclCommGetAsyncError. On an error it prints
// `rank R: NCCL error <code> (<ncclGetErrorString>) : <ncclGetLastError>` to stderr, aborts the communicator and
// exits with code 3; otherwise it prints `rank R ok` to stdout and exits 0. A failing NCCL call is reported
// the same way. A failing CUDA call, or a wait for another process that does not end, exits with code 1.
//
// Order: the scenarios that name a rank in their diagnosis make the order in which the simulator sees the
// ranks' calls fixed, so that the diagnosis is the same in every run. Rank 0 (mismatch-*) or every rank but
// rank 2 (dead) queues its operation, then proves that the simulator has processed it: ncclGroupSimulateEnd
// asks the simulator for an estimate over the same connection, answered only after everything sent before it
// (with real NCCL it is a local estimate and harmless). Then it creates the file `<id file>.queued.<rank>`,
// which the ranks that go next wait for: in mismatch-* the others then call (so rank 1 is compared with
// rank 0's call), in dead rank 2 then exits (after the others called the all-reduce it misses). In dead the
// others also report their error only once rank 2 has been reaped (its pid, from `<id file>.exiting.2`, is
// gone): they learn of its death when its connection closes, which happens while it exits, before
// `phantom run` can see the exit; so phantom run always sees rank 2 fail first and exits with its code 7.
//
// Rank 0 hands the ncclUniqueId to the others through a file, $NCCL_FAULTS_ID_FILE (default
// ./nccl_faults.id.$MASTER_PORT), as tests/programs/nccl_bench.cu does: written to a temporary name and
// renamed; every wait for a file polls with poll(NULL, 0, 1), never sleep()/nanosleep(), which Phantom
// virtualises, and gives up after about a minute of real time.

#include <cuda_runtime.h>
#include <nccl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr size_t kCount = 262144;  // 1 MiB of floats
constexpr int kWaitMs = 60000;     // real time to wait for another process's file

int g_rank = 0;

[[noreturn]] void die(const char* fmt, ...) {
  std::fprintf(stderr, "nccl_faults: rank %d: ", g_rank);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::exit(1);
}

#define CUDA_CHECK(call)                                                                                     \
  do {                                                                                                       \
    cudaError_t e_ = (call);                                                                                 \
    if (e_ != cudaSuccess) die("%s:%d: %s failed: %s (%s)", __FILE__, __LINE__, #call, cudaGetErrorName(e_), \
                               cudaGetErrorString(e_));                                                     \
  } while (0)

ncclComm_t g_comm = nullptr;
pid_t g_wait_for_reaped = 0;  // dead: rank 2's pid, once known
void wait_until_reaped(pid_t pid);

// Reports an NCCL error as the tests expect it and exits with code 3.
[[noreturn]] void nccl_failed(ncclResult_t r, const char* where) {
  if (g_wait_for_reaped) wait_until_reaped(g_wait_for_reaped);
  const char* last = ncclGetLastError(g_comm);
  std::fprintf(stderr, "rank %d: NCCL error %d (%s) : %s\n", g_rank, static_cast<int>(r), ncclGetErrorString(r),
               last ? last : "(null)");
  if (std::strcmp(where, "ncclCommGetAsyncError") != 0) std::fprintf(stderr, "rank %d: (returned by %s)\n", g_rank, where);
  std::fflush(stderr);
  if (g_comm) ncclCommAbort(g_comm);
  std::exit(3);
}

#define NCCL_CHECK(call)                                     \
  do {                                                       \
    ncclResult_t r_ = (call);                                \
    if (r_ != ncclSuccess) nccl_failed(r_, #call);           \
  } while (0)

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0 || x > (1 << 24)) die("bad %s `%s`", name, v);
  return static_cast<int>(x);
}

std::string id_file_path() {
  const char* p = std::getenv("NCCL_FAULTS_ID_FILE");
  if (p && *p) return p;
  const char* port = std::getenv("MASTER_PORT");
  return std::string("./nccl_faults.id.") + (port && *port ? port : "0");
}

// Writes `size` bytes to `path` atomically (temporary name, then rename).
void publish(const std::string& path, const void* data, size_t size) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) die("cannot create %s: %s", tmp.c_str(), std::strerror(errno));
  size_t n = size ? std::fwrite(data, size, 1, f) : 1;
  if (std::fclose(f) != 0 || n != 1) die("cannot write %s", tmp.c_str());
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    die("cannot rename %s to %s: %s", tmp.c_str(), path.c_str(), std::strerror(errno));
}

// Waits for `path` to hold `size` bytes and reads them into `data`.
void wait_for(const std::string& path, void* data, size_t size) {
  for (int attempt = 0; attempt < kWaitMs; attempt++) {
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      size_t n = size ? std::fread(data, size, 1, f) : 1;
      std::fclose(f);
      if (n == 1) return;
    }
    poll(nullptr, 0, 1);  // 1 ms of real time; not virtualised by Phantom
  }
  die("gave up waiting for %s (is every rank running, with the same MASTER_PORT / NCCL_FAULTS_ID_FILE?)",
      path.c_str());
}

// Waits until process `pid` is gone, reaped by its parent (phantom run).
void wait_until_reaped(pid_t pid) {
  for (int attempt = 0; attempt < kWaitMs; attempt++) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return;
    poll(nullptr, 0, 1);
  }
  die("process %d (rank 2) did not end", static_cast<int>(pid));
}

std::string queued_file(int rank) { return id_file_path() + ".queued." + std::to_string(rank); }

// Proves that the simulator has processed this rank's earlier calls, then tells the other ranks so.
void announce_queued(ncclComm_t comm, cudaStream_t stream, const void* buf) {
  NCCL_CHECK(ncclGroupStart());
  NCCL_CHECK(ncclAllReduce(buf, const_cast<void*>(buf), 1, ncclFloat, ncclSum, comm, stream));
  ncclSimInfo_t info = NCCL_SIM_INFO_INITIALIZER;
  NCCL_CHECK(ncclGroupSimulateEnd(&info));
  publish(queued_file(g_rank), nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) die("usage: %s ok|mismatch-size|mismatch-op|mismatch-root|mismatch-type|dead|deadlock", argv[0]);
  const std::string scenario = argv[1];
  const char* known[] = {"ok", "mismatch-size", "mismatch-op", "mismatch-root", "mismatch-type", "dead", "deadlock"};
  bool valid = false;
  for (const char* k : known) valid = valid || scenario == k;
  if (!valid) die("unknown scenario `%s`", scenario.c_str());
  const bool mismatch = scenario.rfind("mismatch-", 0) == 0;

  const int world = env_int("WORLD_SIZE", 1);
  g_rank = env_int("RANK", 0);
  const int local_rank = env_int("LOCAL_RANK", g_rank);
  if (g_rank >= world) die("RANK %d is not below WORLD_SIZE %d", g_rank, world);
  if ((mismatch && world < 2) || (scenario == "dead" && world < 3))
    die("scenario %s needs more ranks than WORLD_SIZE %d", scenario.c_str(), world);

  CUDA_CHECK(cudaSetDevice(local_rank));
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  void* send = nullptr;
  void* recv = nullptr;
  // Room for the largest call: 2N floats (mismatch-size), N floats gathered from every rank (mismatch-op).
  const size_t bytes = 2 * kCount * sizeof(float) * static_cast<size_t>(world);
  CUDA_CHECK(cudaMalloc(&send, bytes));
  CUDA_CHECK(cudaMalloc(&recv, bytes));

  ncclUniqueId id;
  const std::string id_file = id_file_path();
  if (g_rank == 0) {
    NCCL_CHECK(ncclGetUniqueId(&id));
    publish(id_file, &id, sizeof id);
  } else {
    wait_for(id_file, &id, sizeof id);
  }
  NCCL_CHECK(ncclCommInitRank(&g_comm, world, id, g_rank));

  const int next = (g_rank + 1) % world;
  if (scenario == "ok") {
    for (int i = 0; i < 2; i++) NCCL_CHECK(ncclAllReduce(send, recv, kCount, ncclFloat, ncclSum, g_comm, stream));
  } else if (mismatch) {
    if (g_rank != 0) {
      char none;
      wait_for(queued_file(0), &none, 0);
    }
    const bool odd = g_rank == 1;
    if (scenario == "mismatch-size") {
      NCCL_CHECK(ncclAllReduce(send, recv, odd ? 2 * kCount : kCount, ncclFloat, ncclSum, g_comm, stream));
    } else if (scenario == "mismatch-op") {
      if (odd)
        NCCL_CHECK(ncclAllGather(send, recv, kCount / world, ncclFloat, g_comm, stream));
      else
        NCCL_CHECK(ncclAllReduce(send, recv, kCount, ncclFloat, ncclSum, g_comm, stream));
    } else if (scenario == "mismatch-root") {
      NCCL_CHECK(ncclBroadcast(send, recv, kCount, ncclFloat, odd ? 1 : 0, g_comm, stream));
    } else {  // mismatch-type
      NCCL_CHECK(ncclAllReduce(send, recv, kCount, odd ? ncclHalf : ncclFloat, ncclSum, g_comm, stream));
    }
    if (g_rank == 0) announce_queued(g_comm, stream, send);
  } else if (scenario == "dead") {
    if (g_rank == 2) {
      for (int r = 0; r < world; r++) {
        char none;
        if (r != 2) wait_for(queued_file(r), &none, 0);
      }
      pid_t self = getpid();
      publish(id_file + ".exiting.2", &self, sizeof self);
      std::fprintf(stderr, "rank 2: exiting with code 7 before the all-reduce\n");
      std::exit(7);
    }
    NCCL_CHECK(ncclAllReduce(send, recv, kCount, ncclFloat, ncclSum, g_comm, stream));
    announce_queued(g_comm, stream, send);
    wait_for(id_file + ".exiting.2", &g_wait_for_reaped, sizeof g_wait_for_reaped);
  } else {  // deadlock
    NCCL_CHECK(ncclSend(send, kCount, ncclFloat, next, g_comm, stream));
  }

  CUDA_CHECK(cudaStreamSynchronize(stream));
  ncclResult_t async = ncclSuccess;
  NCCL_CHECK(ncclCommGetAsyncError(g_comm, &async));
  if (async != ncclSuccess) nccl_failed(async, "ncclCommGetAsyncError");

  NCCL_CHECK(ncclCommDestroy(g_comm));
  CUDA_CHECK(cudaFree(send));
  CUDA_CHECK(cudaFree(recv));
  CUDA_CHECK(cudaStreamDestroy(stream));
  std::printf("rank %d ok\n", g_rank);
  return 0;
}
