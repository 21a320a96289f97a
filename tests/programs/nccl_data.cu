// nccl_data: the data of small NCCL operations (docs/gpu-model.md "Data", docs/simulator.md "Data of small
// operations"). One process drives 4 GPUs of the dgx-h100 preset (ncclCommInitAll, simulator embedded).
// Each rank writes its own values with cudaMemcpy, runs a collective, and copies the result back; the
// program prints key=value lines (per rank, comma-separated) that tests/tests/e2e/nccl_api.rs checks.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define N 4

#define CHECK(call)                                                                                   \
  do {                                                                                                \
    cudaError_t e_ = (call);                                                                          \
    if (e_ != cudaSuccess) {                                                                          \
      printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_));                     \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)

#define NCHECK(call)                                                                                  \
  do {                                                                                                \
    ncclResult_t r_ = (call);                                                                         \
    if (r_ != ncclSuccess) {                                                                          \
      printf("error=%s at line %d: %d %s\n", #call, __LINE__, (int)r_, ncclGetLastError(NULL));       \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)

static ncclComm_t comms[N];
static cudaStream_t streams[N];
static long long* send_buf[N];
static long long* recv_buf[N];

// Every rank's input: `count` values, value i of rank r = 100 * r + i.
static void fill(int count) {
  for (int r = 0; r < N; r++) {
    std::vector<long long> v(count);
    for (int i = 0; i < count; i++) v[i] = 100 * r + i;
    CHECK(cudaSetDevice(r));
    CHECK(cudaMemcpy(send_buf[r], v.data(), count * sizeof(long long), cudaMemcpyHostToDevice));
  }
}

// Prints `key=` then, per rank, the first `count` values of its receive buffer joined by spaces.
static void show(const char* key, int count) {
  std::string line = std::string(key) + "=";
  for (int r = 0; r < N; r++) {
    CHECK(cudaSetDevice(r));
    CHECK(cudaStreamSynchronize(streams[r]));
    std::vector<long long> v(count);
    CHECK(cudaMemcpy(v.data(), recv_buf[r], count * sizeof(long long), cudaMemcpyDeviceToHost));
    if (r) line += ",";
    for (int i = 0; i < count; i++) line += (i ? " " : "") + std::to_string(v[i]);
  }
  printf("%s\n", line.c_str());
}

int main() {
  int devs[N] = {0, 1, 2, 3};
  NCHECK(ncclCommInitAll(comms, N, devs));
  for (int r = 0; r < N; r++) {
    CHECK(cudaSetDevice(r));
    CHECK(cudaStreamCreate(&streams[r]));
    CHECK(cudaMalloc(&send_buf[r], 1 << 21));
    CHECK(cudaMalloc(&recv_buf[r], 1 << 21));
  }

  fill(2);
  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclAllGather(send_buf[r], recv_buf[r], 2, ncclInt64, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("all_gather", 2 * N);

  fill(3);
  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclAllReduce(send_buf[r], recv_buf[r], 3, ncclInt64, ncclSum, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("all_reduce_sum", 3);

  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclAllReduce(send_buf[r], recv_buf[r], 3, ncclInt64, ncclMax, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("all_reduce_max", 3);

  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclBroadcast(send_buf[r], recv_buf[r], 3, ncclInt64, 2, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("broadcast_root2", 3);

  fill(4);
  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclReduceScatter(send_buf[r], recv_buf[r], 1, ncclInt64, ncclSum, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("reduce_scatter", 1);

  // A ring of sends: rank r sends its values to r + 1.
  fill(2);
  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) {
    NCHECK(ncclSend(send_buf[r], 2, ncclInt64, (r + 1) % N, comms[r], streams[r]));
    NCHECK(ncclRecv(recv_buf[r], 2, ncclInt64, (r + N - 1) % N, comms[r], streams[r]));
  }
  NCHECK(ncclGroupEnd());
  show("send_recv_ring", 2);

  // A device-to-device copy carries the received data on.
  for (int r = 0; r < N; r++) {
    CHECK(cudaSetDevice(r));
    CHECK(cudaMemcpy(send_buf[r], recv_buf[r], 2 * sizeof(long long), cudaMemcpyDeviceToDevice));
    CHECK(cudaMemcpy(recv_buf[r], send_buf[r], 2 * sizeof(long long), cudaMemcpyDeviceToDevice));
  }
  show("copied_on", 2);

  // Larger than 1 MiB per rank: timed only; the receive buffer reads as zeros.
  NCHECK(ncclGroupStart());
  for (int r = 0; r < N; r++) NCHECK(ncclAllReduce(send_buf[r], recv_buf[r], 262144, ncclInt64, ncclSum, comms[r], streams[r]));
  NCHECK(ncclGroupEnd());
  show("large_all_reduce", 2);

  // A small memset is remembered too.
  for (int r = 0; r < N; r++) {
    CHECK(cudaSetDevice(r));
    CHECK(cudaMemset(recv_buf[r], 1, 2 * sizeof(long long)));
  }
  show("memset_0x01", 1);

  for (int r = 0; r < N; r++) NCHECK(ncclCommDestroy(comms[r]));
  printf("done=1\n");
  return 0;
}
