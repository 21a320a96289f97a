// nccl_bench: Phantom's own collective benchmark, in the manner of nccl-tests (written for this project).
//
// Runs one NCCL collective over a range of sizes and prints, on rank 0, one line per size (per communicator
// with -c > 1): size count type redop root time_us algbw_GBps busbw_GBps. Sizes are in bytes as nccl-tests
// counts them: the whole buffer (for all-gather, alltoall and gather the receive buffer; for reduce-scatter
// and scatter the send buffer). Bus bandwidth uses nccl-tests' factors.
//
// Processes: RANK / WORLD_SIZE / LOCAL_RANK from the environment (as `phantom run -n` or torchrun set them),
// each driving -g GPUs (devices LOCAL_RANK*g .. LOCAL_RANK*g+g-1). Rank 0 hands the ncclUniqueIds to the
// others through a file, $NCCL_BENCH_ID_FILE (default ./nccl_bench.id.$MASTER_PORT): written to a temporary
// name and renamed; the others poll for it with poll(NULL, 0, 1) between attempts, never sleep()/nanosleep(),
// which Phantom virtualises. Rank 0 removes it at the end (or when it fails).
//
// Build: nvcc -cudart shared -I<cuda include> -I<nccl include> -L<nccl lib> -lnccl -o nccl_bench nccl_bench.cu

#include <cuda_runtime.h>
#include <nccl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_rank = 0;                  // process rank, for messages
std::string g_published_id_file;  // removed on exit by rank 0

[[noreturn]] void die(const char* fmt, ...) {
  std::fprintf(stderr, "nccl_bench: rank %d: ", g_rank);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  if (!g_published_id_file.empty()) std::remove(g_published_id_file.c_str());
  std::exit(1);
}

#define CUDA_CHECK(call)                                                                                  \
  do {                                                                                                    \
    cudaError_t e_ = (call);                                                                              \
    if (e_ != cudaSuccess) die("%s:%d: %s failed: %s (%s)", __FILE__, __LINE__, #call, cudaGetErrorName(e_), \
                               cudaGetErrorString(e_));                                                  \
  } while (0)

#define NCCL_CHECK(call)                                                                                  \
  do {                                                                                                    \
    ncclResult_t r_ = (call);                                                                             \
    if (r_ != ncclSuccess) die("%s:%d: %s failed: %s (%d)", __FILE__, __LINE__, #call, ncclGetErrorString(r_), \
                               static_cast<int>(r_));                                                    \
  } while (0)

enum class Op { AllReduce, AllGather, ReduceScatter, Broadcast, Reduce, AlltoAll, SendRecv, Gather, Scatter };

struct OpInfo {
  const char* name;
  Op op;
  bool reduces;         // takes a reduction operator
  bool rooted;          // has a root rank
  bool divided;         // the size is split into nranks equal parts
};

const OpInfo kOps[] = {
    {"allreduce", Op::AllReduce, true, false, false},     {"allgather", Op::AllGather, false, false, true},
    {"reducescatter", Op::ReduceScatter, true, false, true}, {"broadcast", Op::Broadcast, false, true, false},
    {"reduce", Op::Reduce, true, true, false},            {"alltoall", Op::AlltoAll, false, false, true},
    {"sendrecv", Op::SendRecv, false, false, false},      {"gather", Op::Gather, false, true, true},
    {"scatter", Op::Scatter, false, true, true},
};

struct TypeInfo {
  const char* name;
  ncclDataType_t type;
  size_t bytes;
};

const TypeInfo kTypes[] = {
    {"int8", ncclInt8, 1},       {"char", ncclInt8, 1},           {"uint8", ncclUint8, 1},
    {"int32", ncclInt32, 4},     {"int", ncclInt32, 4},           {"uint32", ncclUint32, 4},
    {"int64", ncclInt64, 8},     {"uint64", ncclUint64, 8},       {"half", ncclFloat16, 2},
    {"float16", ncclFloat16, 2}, {"float", ncclFloat32, 4},       {"float32", ncclFloat32, 4},
    {"double", ncclFloat64, 8},  {"float64", ncclFloat64, 8},     {"bfloat16", ncclBfloat16, 2},
    {"bf16", ncclBfloat16, 2},   {"fp8e4m3", ncclFloat8e4m3, 1}, {"fp8e5m2", ncclFloat8e5m2, 1},
};

struct RedOpInfo {
  const char* name;
  ncclRedOp_t op;
};

const RedOpInfo kRedOps[] = {{"sum", ncclSum}, {"prod", ncclProd}, {"max", ncclMax}, {"min", ncclMin}, {"avg", ncclAvg}};

struct Options {
  const OpInfo* op = &kOps[0];
  const TypeInfo* type = &kTypes[10];  // float
  const RedOpInfo* redop = &kRedOps[0];
  size_t min_bytes = 32ull << 20;
  size_t max_bytes = 32ull << 20;
  double factor = 2.0;
  int gpus = 1;
  int warmup = 5;
  int iters = 20;
  int comms = 1;
  int split = 0;  // 0: no split
  const char* algo = nullptr;
};

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [-o op] [-b min] [-e max] [-f factor] [-t dtype] [-r redop] [-g gpus] [-w warmup]\n"
               "          [-n iters] [-c comms] [-s split] [-a algo]\n"
               "  -o  allreduce (default), allgather, reducescatter, broadcast, reduce, alltoall, sendrecv,\n"
               "      gather, scatter\n"
               "  -b/-e  smallest/largest size in bytes, K/M/G suffixes (default 32M); -f  size factor (2)\n"
               "  -t  float (default), half, bfloat16, double, int8, uint8, int32, uint32, int64, uint64,\n"
               "      fp8e4m3, fp8e5m2;  -r  sum (default), prod, max, min, avg\n"
               "  -g  GPUs per process (1);  -w  warmup iterations (5);  -n  timed iterations (20)\n"
               "  -c  independent communicators over the same ranks, run concurrently (1)\n"
               "  -s  split: communicator color = rank %% split (ncclCommSplit)\n"
               "  -a  NCCL_ALGO for the communicators\n",
               argv0);
}

size_t parse_size(const char* s) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (errno != 0 || end == s || v < 0) die("bad size `%s`", s);
  double mult = 1;
  switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
  }
  if (*end == 'B' || *end == 'b') end++;
  if (*end != '\0') die("bad size `%s`", s);
  return static_cast<size_t>(v * mult);
}

long parse_int(const char* s, long lo, long hi, const char* what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) die("bad %s `%s` (%ld to %ld)", what, s, lo, hi);
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  int c;
  while ((c = getopt(argc, argv, "o:b:e:f:t:r:g:w:n:c:s:a:h")) != -1) {
    switch (c) {
      case 'o': {
        o.op = nullptr;
        for (const auto& i : kOps)
          if (std::strcmp(optarg, i.name) == 0) o.op = &i;
        if (!o.op) die("unknown operation `%s`", optarg);
        break;
      }
      case 't': {
        o.type = nullptr;
        for (const auto& i : kTypes)
          if (std::strcmp(optarg, i.name) == 0) o.type = &i;
        if (!o.type) die("unknown data type `%s`", optarg);
        break;
      }
      case 'r': {
        o.redop = nullptr;
        for (const auto& i : kRedOps)
          if (std::strcmp(optarg, i.name) == 0) o.redop = &i;
        if (!o.redop) die("unknown reduction `%s`", optarg);
        break;
      }
      case 'b': o.min_bytes = parse_size(optarg); break;
      case 'e': o.max_bytes = parse_size(optarg); break;
      case 'f': {
        char* end = nullptr;
        o.factor = std::strtod(optarg, &end);
        if (end == optarg || *end != '\0' || !(o.factor > 1.0)) die("bad factor `%s` (a number above 1)", optarg);
        break;
      }
      case 'g': o.gpus = static_cast<int>(parse_int(optarg, 1, 64, "GPU count")); break;
      case 'w': o.warmup = static_cast<int>(parse_int(optarg, 0, 1000000, "warmup count")); break;
      case 'n': o.iters = static_cast<int>(parse_int(optarg, 1, 1000000, "iteration count")); break;
      case 'c': o.comms = static_cast<int>(parse_int(optarg, 1, 64, "communicator count")); break;
      case 's': o.split = static_cast<int>(parse_int(optarg, 1, 1 << 20, "split")); break;
      case 'a': o.algo = optarg; break;
      case 'h': usage(argv[0]); std::exit(0);
      default: usage(argv[0]); std::exit(1);
    }
  }
  if (optind != argc) die("unexpected argument `%s`", argv[optind]);
  if (o.max_bytes < o.min_bytes) o.max_bytes = o.min_bytes;
  return o;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return static_cast<int>(parse_int(v, 0, 1 << 24, name));
}

// The ncclUniqueIds (one per communicator) from rank 0 to every process, through a file.
struct IdFile {
  std::string path;

  static IdFile from_env() {
    const char* p = std::getenv("NCCL_BENCH_ID_FILE");
    if (p && *p) return {p};
    const char* port = std::getenv("MASTER_PORT");
    return {std::string("./nccl_bench.id.") + (port && *port ? port : "0")};
  }

  void publish(const std::vector<ncclUniqueId>& ids) const {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) die("cannot create %s: %s", tmp.c_str(), std::strerror(errno));
    size_t n = std::fwrite(ids.data(), sizeof(ncclUniqueId), ids.size(), f);
    if (std::fclose(f) != 0 || n != ids.size()) die("cannot write %s", tmp.c_str());
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      die("cannot rename %s to %s: %s", tmp.c_str(), path.c_str(), std::strerror(errno));
    g_published_id_file = path;
  }

  // Waits (up to about two minutes of real time) for rank 0's file.
  std::vector<ncclUniqueId> wait(size_t count) const {
    std::vector<ncclUniqueId> ids(count);
    for (long attempt = 0; attempt < 120000; attempt++) {
      if (FILE* f = std::fopen(path.c_str(), "rb")) {
        size_t n = std::fread(ids.data(), sizeof(ncclUniqueId), count, f);
        std::fclose(f);
        if (n == count) return ids;
      }
      poll(nullptr, 0, 1);  // 1 ms of real time; not virtualised by Phantom
    }
    die("no ncclUniqueId from rank 0 in %s (is rank 0 running, with the same MASTER_PORT / NCCL_BENCH_ID_FILE?)",
        path.c_str());
  }

};

// One communicator as seen by one of this process's GPUs.
struct Slot {
  int device = 0;
  ncclComm_t comm = nullptr;
  int rank = 0;    // in `comm`
  int nranks = 0;  // of `comm`
  cudaStream_t stream = nullptr;
  void* send = nullptr;
  void* recv = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
};

// Element counts for a size in bytes: `count` as printed (the whole buffer), and the per-call count NCCL takes.
struct Counts {
  size_t count;       // whole buffer, in elements
  size_t call_count;  // argument to the NCCL call
  size_t send_elems, recv_elems;
};

Counts counts_for(const Options& o, size_t bytes, int nranks) {
  size_t total = bytes / o.type->bytes;
  size_t part = total / nranks;
  if (o.op->divided) total = part * nranks;
  switch (o.op->op) {
    case Op::AllGather: case Op::Gather: return {total, part, part, total};
    case Op::ReduceScatter: case Op::Scatter: return {total, part, total, part};
    case Op::AlltoAll: return {total, part, total, total};
    default: return {total, total, total, total};
  }
}

double bus_factor(Op op, int n) {
  switch (op) {
    case Op::AllReduce: return 2.0 * (n - 1) / n;
    case Op::AllGather: case Op::ReduceScatter: case Op::AlltoAll: case Op::Gather: case Op::Scatter:
      return static_cast<double>(n - 1) / n;
    default: return 1.0;
  }
}

void launch(const Options& o, const Slot& s, const Counts& c) {
  const int root = 0;
  ncclDataType_t t = o.type->type;
  ncclRedOp_t r = o.redop->op;
  switch (o.op->op) {
    case Op::AllReduce: NCCL_CHECK(ncclAllReduce(s.send, s.recv, c.call_count, t, r, s.comm, s.stream)); break;
    case Op::AllGather: NCCL_CHECK(ncclAllGather(s.send, s.recv, c.call_count, t, s.comm, s.stream)); break;
    case Op::ReduceScatter:
      NCCL_CHECK(ncclReduceScatter(s.send, s.recv, c.call_count, t, r, s.comm, s.stream));
      break;
    case Op::Broadcast: NCCL_CHECK(ncclBroadcast(s.send, s.recv, c.call_count, t, root, s.comm, s.stream)); break;
    case Op::Reduce: NCCL_CHECK(ncclReduce(s.send, s.recv, c.call_count, t, r, root, s.comm, s.stream)); break;
    case Op::AlltoAll: NCCL_CHECK(ncclAlltoAll(s.send, s.recv, c.call_count, t, s.comm, s.stream)); break;
    case Op::Gather: NCCL_CHECK(ncclGather(s.send, s.recv, c.call_count, t, root, s.comm, s.stream)); break;
    case Op::Scatter: NCCL_CHECK(ncclScatter(s.send, s.recv, c.call_count, t, root, s.comm, s.stream)); break;
    case Op::SendRecv: {
      int next = (s.rank + 1) % s.nranks, prev = (s.rank - 1 + s.nranks) % s.nranks;
      NCCL_CHECK(ncclSend(s.send, c.call_count, t, next, s.comm, s.stream));
      NCCL_CHECK(ncclRecv(s.recv, c.call_count, t, prev, s.comm, s.stream));
      break;
    }
  }
}

// One iteration on every communicator and GPU of this process; grouped whenever one call covers several
// communicators of one rank set or a send/recv pair.
void iteration(const Options& o, std::vector<std::vector<Slot>>& slots, const Counts& c) {
  bool group = o.gpus > 1 || o.op->op == Op::SendRecv;
  for (auto& per_comm : slots) {
    if (group) NCCL_CHECK(ncclGroupStart());
    for (auto& s : per_comm) launch(o, s, c);
    if (group) NCCL_CHECK(ncclGroupEnd());
  }
}

void synchronize(std::vector<std::vector<Slot>>& slots) {
  for (auto& per_comm : slots)
    for (auto& s : per_comm) CUDA_CHECK(cudaStreamSynchronize(s.stream));
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_options(argc, argv);
  int world = env_int("WORLD_SIZE", 1);
  g_rank = env_int("RANK", 0);
  int local_rank = env_int("LOCAL_RANK", g_rank);
  if (world < 1 || g_rank >= world) die("RANK %d is not below WORLD_SIZE %d", g_rank, world);
  if (o.algo) setenv("NCCL_ALGO", o.algo, 1);
  const int nranks = world * o.gpus;

  int ndev = 0;
  CUDA_CHECK(cudaGetDeviceCount(&ndev));
  if ((local_rank + 1) * o.gpus > ndev)
    die("LOCAL_RANK %d with %d GPUs per process needs devices %d..%d, but there are %d", local_rank, o.gpus,
        local_rank * o.gpus, (local_rank + 1) * o.gpus - 1, ndev);

  // Unique ids: one per communicator.
  std::vector<ncclUniqueId> ids(o.comms);
  IdFile id_file = IdFile::from_env();
  if (g_rank == 0) {
    for (auto& id : ids) NCCL_CHECK(ncclGetUniqueId(&id));
    if (world > 1) id_file.publish(ids);
  } else {
    ids = id_file.wait(o.comms);
  }

  // slots[c][i]: communicator c on this process's GPU i.
  std::vector<std::vector<Slot>> slots(o.comms, std::vector<Slot>(o.gpus));
  for (int c = 0; c < o.comms; c++) {
    NCCL_CHECK(ncclGroupStart());
    for (int i = 0; i < o.gpus; i++) {
      Slot& s = slots[c][i];
      s.device = local_rank * o.gpus + i;
      CUDA_CHECK(cudaSetDevice(s.device));
      NCCL_CHECK(ncclCommInitRank(&s.comm, nranks, ids[c], g_rank * o.gpus + i));
    }
    NCCL_CHECK(ncclGroupEnd());
  }

  if (o.split > 0) {
    for (int c = 0; c < o.comms; c++) {
      NCCL_CHECK(ncclGroupStart());
      std::vector<ncclComm_t> parts(o.gpus);
      for (int i = 0; i < o.gpus; i++) {
        int r = g_rank * o.gpus + i;
        CUDA_CHECK(cudaSetDevice(slots[c][i].device));
        NCCL_CHECK(ncclCommSplit(slots[c][i].comm, r % o.split, r, &parts[i], nullptr));
      }
      NCCL_CHECK(ncclGroupEnd());
      for (int i = 0; i < o.gpus; i++) {
        NCCL_CHECK(ncclCommDestroy(slots[c][i].comm));
        slots[c][i].comm = parts[i];
      }
    }
  }

  // Streams, events and buffers sized for the largest size.
  Counts max_counts{};
  for (auto& per_comm : slots) {
    for (auto& s : per_comm) {
      NCCL_CHECK(ncclCommUserRank(s.comm, &s.rank));
      NCCL_CHECK(ncclCommCount(s.comm, &s.nranks));
      max_counts = counts_for(o, o.max_bytes, s.nranks);
      CUDA_CHECK(cudaSetDevice(s.device));
      CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
      CUDA_CHECK(cudaEventCreate(&s.start));
      CUDA_CHECK(cudaEventCreate(&s.stop));
      CUDA_CHECK(cudaMalloc(&s.send, std::max<size_t>(max_counts.send_elems * o.type->bytes, 1)));
      CUDA_CHECK(cudaMalloc(&s.recv, std::max<size_t>(max_counts.recv_elems * o.type->bytes, 1)));
    }
  }
  const Slot& first = slots[0][0];
  const int comm_ranks = first.nranks;
  const bool printer = g_rank == 0;

  if (printer) {
    int version = 0;
    NCCL_CHECK(ncclGetVersion(&version));
    std::printf("# nccl_bench: %s, %d ranks (%d processes x %d GPUs)", o.op->name, nranks, world, o.gpus);
    if (o.split > 0) std::printf(", split %d ways: %d ranks per communicator", o.split, comm_ranks);
    std::printf(", %d communicator%s\n", o.comms, o.comms > 1 ? "s running concurrently" : "");
    std::printf("# dtype %s, redop %s, warmup %d, iters %d, NCCL %d, NCCL_ALGO %s\n", o.type->name,
                o.op->reduces ? o.redop->name : "none", o.warmup, o.iters, version,
                std::getenv("NCCL_ALGO") ? std::getenv("NCCL_ALGO") : "(default)");
    if (o.comms > 1) std::printf("# time per communicator from CUDA events on its stream (rank 0)\n");
    std::printf("# %s%s\n", o.comms > 1 ? "comm " : "", "size count type redop root time_us algbw_GBps busbw_GBps");
  }

  // Warm-up at the largest and the smallest size.
  for (size_t bytes : {o.max_bytes, o.min_bytes}) {
    Counts c = counts_for(o, bytes, comm_ranks);
    if (c.call_count == 0) continue;
    for (int w = 0; w < o.warmup; w++) iteration(o, slots, c);
    synchronize(slots);
  }

  // Sizes min, min*f, min*f^2, ... up to max (as nccl-tests: max itself only if the sequence reaches it).
  for (size_t bytes = o.min_bytes; bytes <= o.max_bytes;) {
    Counts c = counts_for(o, bytes, comm_ranks);
    if (c.call_count > 0) {
      for (auto& per_comm : slots) {
        CUDA_CHECK(cudaSetDevice(per_comm[0].device));
        CUDA_CHECK(cudaEventRecord(per_comm[0].start, per_comm[0].stream));
      }
      auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < o.iters; it++) iteration(o, slots, c);
      for (auto& per_comm : slots) {
        CUDA_CHECK(cudaSetDevice(per_comm[0].device));
        CUDA_CHECK(cudaEventRecord(per_comm[0].stop, per_comm[0].stream));
      }
      synchronize(slots);
      auto t1 = std::chrono::steady_clock::now();
      double host_us = std::chrono::duration<double, std::micro>(t1 - t0).count() / o.iters;

      if (printer) {
        size_t size = c.count * o.type->bytes;
        const char* redop = o.op->reduces ? o.redop->name : "none";
        int root = o.op->rooted ? 0 : -1;
        double factor = bus_factor(o.op->op, comm_ranks);
        for (int k = 0; k < o.comms; k++) {
          double us = host_us;
          if (o.comms > 1) {
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, slots[k][0].start, slots[k][0].stop));
            us = 1000.0 * ms / o.iters;
            std::printf("%d ", k);
          }
          double algbw = us > 0 ? static_cast<double>(size) / (us * 1e3) : 0.0;  // bytes/ns = GB/s
          std::printf("%zu %zu %s %s %d %.3f %.2f %.2f\n", size, c.count, o.type->name, redop, root, us, algbw,
                      algbw * factor);
        }
        std::fflush(stdout);
      }
    }
    size_t next = static_cast<size_t>(static_cast<double>(bytes) * o.factor);
    bytes = next > bytes ? next : bytes + 1;
  }

  for (auto& per_comm : slots) {
    for (auto& s : per_comm) {
      CUDA_CHECK(cudaSetDevice(s.device));
      NCCL_CHECK(ncclCommDestroy(s.comm));
      CUDA_CHECK(cudaFree(s.send));
      CUDA_CHECK(cudaFree(s.recv));
      CUDA_CHECK(cudaEventDestroy(s.start));
      CUDA_CHECK(cudaEventDestroy(s.stop));
      CUDA_CHECK(cudaStreamDestroy(s.stream));
    }
  }
  // Every rank read the ids before the first collective could complete.
  if (!g_published_id_file.empty()) std::remove(g_published_id_file.c_str());
  return 0;
}
