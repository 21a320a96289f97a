// nccl_api: NCCL API semantics in one process that drives all 8 GPUs of the dgx-h100 preset, without a
// launcher (the simulator is embedded in the process). Prints key=value lines that
// tests/tests/e2e/nccl_api.rs checks; a value per communicator is a comma-separated list in rank order ("-"
// where a communicator is NULL). Statuses are printed as numbers (ncclSuccess 0, ncclInvalidArgument 4,
// ncclInvalidUsage 5). Run with PHANTOM_HOST_TIME=deterministic.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#define N 8

// A CUDA call that must succeed (setup, synchronisation): the program stops otherwise.
#define CHECK(call)                                                                                   \
  do {                                                                                                \
    cudaError_t e_ = (call);                                                                          \
    if (e_ != cudaSuccess) {                                                                          \
      printf("error=%s at line %d: %s\n", #call, __LINE__, cudaGetErrorName(e_));                     \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)

// An NCCL call that must succeed for the rest of the program to make sense.
#define NCHECK(call)                                                                                  \
  do {                                                                                                \
    ncclResult_t r_ = (call);                                                                         \
    if (r_ != ncclSuccess) {                                                                          \
      printf("error=%s at line %d: %d %s\n", #call, __LINE__, (int)r_, ncclGetLastError(NULL));       \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)

static std::string join(const int* v, int n) {
  std::string s;
  for (int i = 0; i < n; i++) {
    if (i) s += ",";
    s += std::to_string(v[i]);
  }
  return s;
}

static void print_list(const char* key, const int* v, int n) { printf("%s=%s\n", key, join(v, n).c_str()); }

// Count, user rank and device of each communicator: <prefix>_count=…, <prefix>_rank=…, <prefix>_device=….
static void queries(const char* prefix, const ncclComm_t* c, int n) {
  std::string count, rank, dev;
  for (int i = 0; i < n; i++) {
    const char* sep = i ? "," : "";
    if (c[i] == NULL) {
      count += std::string(sep) + "-";
      rank += std::string(sep) + "-";
      dev += std::string(sep) + "-";
      continue;
    }
    int v = -1;
    ncclResult_t r = ncclCommCount(c[i], &v);
    count += sep + (r == ncclSuccess ? std::to_string(v) : "err" + std::to_string((int)r));
    v = -1;
    r = ncclCommUserRank(c[i], &v);
    rank += sep + (r == ncclSuccess ? std::to_string(v) : "err" + std::to_string((int)r));
    v = -1;
    r = ncclCommCuDevice(c[i], &v);
    dev += sep + (r == ncclSuccess ? std::to_string(v) : "err" + std::to_string((int)r));
  }
  printf("%s_count=%s\n%s_rank=%s\n%s_device=%s\n", prefix, count.c_str(), prefix, rank.c_str(), prefix, dev.c_str());
}

static cudaStream_t s[N];
static float* buf[N];   // 1 GiB per GPU
static float* rbuf[N];  // 1 GiB per GPU

// cudaStreamSynchronize on every stream; the first failure's code, else 0.
static int sync_all() {
  int worst = 0;
  for (int i = 0; i < N; i++) {
    cudaError_t e = cudaStreamSynchronize(s[i]);
    if (e != cudaSuccess && worst == 0) worst = (int)e;
  }
  return worst;
}

// An in-place all-reduce of `count` elements on comms[0..n) (rank i on stream s[dev of i]), each call's
// status in calls[].
static void allreduce_calls(ncclComm_t* comms, int n, size_t count, ncclDataType_t dt, const ncclRedOp_t* ops,
                            int* calls) {
  for (int i = 0; i < n; i++) {
    int d = -1;
    ncclCommCuDevice(comms[i], &d);
    if (d < 0) d = 0;
    calls[i] = (int)ncclAllReduce(buf[d], buf[d], count, dt, ops ? ops[i] : ncclSum, comms[i], s[d]);
  }
}

// A whole group: start, all-reduce on every communicator, end, synchronise. Prints <key>_calls, <key>_end,
// <key>_sync.
static void allreduce_group(const char* key, ncclComm_t* comms, int n, size_t count, ncclDataType_t dt,
                            const ncclRedOp_t* ops) {
  int calls[N];
  int start = (int)ncclGroupStart();
  allreduce_calls(comms, n, count, dt, ops, calls);
  int end = (int)ncclGroupEnd();
  printf("%s_start=%d\n", key, start);
  std::string k = std::string(key) + "_calls";
  print_list(k.c_str(), calls, n);
  printf("%s_end=%d\n%s_sync=%d\n", key, end, key, sync_all());
}

int main() {
  // ---- version and strings ----
  int version = 0;
  int get_version = (int)ncclGetVersion(&version);
  printf("get_version=%d\nversion=%d\n", get_version, version);
  printf("string_success=%s\n", ncclGetErrorString(ncclSuccess));
  printf("string_unhandled_cuda=%s\n", ncclGetErrorString(ncclUnhandledCudaError));
  printf("string_system=%s\n", ncclGetErrorString(ncclSystemError));
  printf("string_invalid_argument=%s\n", ncclGetErrorString(ncclInvalidArgument));
  printf("string_invalid_usage=%s\n", ncclGetErrorString(ncclInvalidUsage));
  printf("string_remote=%s\n", ncclGetErrorString(ncclRemoteError));

  // ---- devices, streams, buffers ----
  int ndev = 0;
  CHECK(cudaGetDeviceCount(&ndev));
  printf("device_count=%d\n", ndev);
  if (ndev < N) return 1;
  for (int i = 0; i < N; i++) {
    CHECK(cudaSetDevice(i));
    CHECK(cudaStreamCreateWithFlags(&s[i], cudaStreamNonBlocking));
    CHECK(cudaMalloc(&buf[i], size_t(1) << 30));
    CHECK(cudaMalloc(&rbuf[i], size_t(1) << 30));
  }

  // ---- ncclCommInitAll ----
  ncclComm_t all[N];
  printf("init_all=%d\n", (int)ncclCommInitAll(all, N, NULL));
  queries("init_all", all, N);

  // ---- groups: ncclGroupEnd without a start ----
  printf("group_end_without_start=%d\n", (int)ncclGroupEnd());
  printf("group_end_without_start_error=%s\n", ncclGetLastError(NULL));
  {
    ncclSimInfo_t info = NCCL_SIM_INFO_INITIALIZER;
    printf("group_simulate_end_without_start=%d\n", (int)ncclGroupSimulateEnd(&info));
  }

  // ---- ncclGetUniqueId + ncclCommInitRank of every rank in one group ----
  ncclUniqueId id, id2;
  printf("unique_id=%d\n", (int)ncclGetUniqueId(&id));
  NCHECK(ncclGetUniqueId(&id2));
  printf("unique_ids_differ=%d\n", memcmp(&id, &id2, sizeof id) != 0);
  {
    ncclComm_t bad = NULL;
    printf("init_rank_out_of_range=%d\n", (int)ncclCommInitRank(&bad, N, id2, N));
    printf("init_rank_out_of_range_error=%s\n", ncclGetLastError(NULL));
  }
  ncclComm_t c[N];
  int init_calls[N];
  printf("init_rank_start=%d\n", (int)ncclGroupStart());
  for (int i = 0; i < N; i++) {
    CHECK(cudaSetDevice(i));
    init_calls[i] = (int)ncclCommInitRank(&c[i], N, id, i);
  }
  printf("init_rank_end=%d\n", (int)ncclGroupEnd());
  print_list("init_rank_calls", init_calls, N);
  queries("init_rank", c, N);
  for (int i = 0; i < N; i++) {
    ncclResult_t e = ncclInProgress;
    int r = (int)ncclCommGetAsyncError(c[i], &e);
    init_calls[i] = r == 0 ? (int)e : 100 + r;
  }
  print_list("async_error_after_init", init_calls, N);

  // ---- nested groups: nothing runs until the outermost ncclGroupEnd ----
  {
    int calls[N];
    int start1 = (int)ncclGroupStart();
    int start2 = (int)ncclGroupStart();
    allreduce_calls(c, N, 1024, ncclFloat32, NULL, calls);
    int end_inner = (int)ncclGroupEnd();
    // The inner end queued nothing: the stream has no work (and this query does not wait for any).
    int query_inner = (int)cudaStreamQuery(s[0]);
    int end_outer = (int)ncclGroupEnd();
    // The outer end queued the all-reduce: it ends after the launch latency, later than now.
    int query_outer = (int)cudaStreamQuery(s[0]);
    printf("nested_start=%d,%d\n", start1, start2);
    print_list("nested_calls", calls, N);
    printf("nested_end_inner=%d\nnested_query_after_inner_end=%d\n", end_inner, query_inner);
    printf("nested_end_outer=%d\nnested_query_after_outer_end=%d\n", end_outer, query_outer);
    printf("nested_sync=%d\n", sync_all());
  }

  // ---- timing: ncclGroupSimulateEnd's estimate vs the events around the same group on comm 0's stream ----
  cudaEvent_t e0, e1;
  CHECK(cudaSetDevice(0));
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  const size_t counts[2] = {size_t(1) << 28, 2};  // 1 GiB and 8 bytes of float
  const char* names[2] = {"1gib", "8b"};
  for (int k = 0; k < 2; k++) {
    int calls[N];
    ncclSimInfo_t info = NCCL_SIM_INFO_INITIALIZER;
    NCHECK(ncclGroupStart());
    allreduce_calls(c, N, counts[k], ncclFloat32, NULL, calls);
    int sim = (int)ncclGroupSimulateEnd(&info);
    printf("simulate_%s=%d\nestimate_%s_us=%.1f\n", names[k], sim, names[k], info.estimatedTime);

    // Nothing but these calls between the two records: the first event is placed one api call + launch
    // latency after its call; the group is handed over one api call later and runs one launch latency after
    // the ncclGroupEnd's launch call.
    CHECK(cudaSetDevice(0));
    CHECK(cudaEventRecord(e0, s[0]));
    int start = (int)ncclGroupStart();
    allreduce_calls(c, N, counts[k], ncclFloat32, NULL, calls);
    int end = (int)ncclGroupEnd();
    CHECK(cudaEventRecord(e1, s[0]));
    printf("timed_%s_start=%d\n", names[k], start);
    std::string key = std::string("timed_") + names[k] + "_calls";
    print_list(key.c_str(), calls, N);
    printf("timed_%s_end=%d\ntimed_%s_sync=%d\n", names[k], end, names[k], sync_all());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    printf("allreduce_%s_event_us=%.1f\n", names[k], ms * 1000.0);
    printf("allreduce_%s_event_minus_estimate_us=%.2f\n", names[k], ms * 1000.0 - info.estimatedTime);
  }

  // ---- ncclCommSplit: colour = rank % 2, key = rank ----
  ncclComm_t split[N];
  {
    int calls[N];
    int start = (int)ncclGroupStart();
    for (int i = 0; i < N; i++) calls[i] = (int)ncclCommSplit(c[i], i % 2, i, &split[i], NULL);
    int end = (int)ncclGroupEnd();
    printf("split_start=%d\nsplit_end=%d\n", start, end);
    print_list("split_calls", calls, N);
    queries("split", split, N);
    // The even ranks' communicator runs an all-reduce of its own.
    ncclComm_t even[4] = {split[0], split[2], split[4], split[6]};
    allreduce_group("split_even_allreduce", even, 4, 1 << 20, ncclFloat32, NULL);
  }

  // ---- ncclCommSplit with NCCL_SPLIT_NOCOLOR: ranks 0..3 colour 0, keys reversed; ranks 4..7 no colour ----
  ncclComm_t nocolor[N];
  {
    static int sentinel;
    int calls[N];
    for (int i = 0; i < N; i++) nocolor[i] = (ncclComm_t)&sentinel;
    int start = (int)ncclGroupStart();
    for (int i = 0; i < N; i++)
      calls[i] = (int)ncclCommSplit(c[i], i < 4 ? 0 : NCCL_SPLIT_NOCOLOR, N - 1 - i, &nocolor[i], NULL);
    int end = (int)ncclGroupEnd();
    printf("split_nocolor_start=%d\nsplit_nocolor_end=%d\n", start, end);
    print_list("split_nocolor_calls", calls, N);
    int is_null[N];
    for (int i = 0; i < N; i++) is_null[i] = nocolor[i] == NULL;
    print_list("split_nocolor_null", is_null, N);
    queries("split_nocolor", nocolor, N);
  }

  // ---- ncclCommShrink: ranks 0..6 exclude rank 7 ----
  ncclComm_t shrunk[N - 1];
  {
    int exclude[1] = {N - 1};
    int calls[N - 1];
    int start = (int)ncclGroupStart();
    for (int i = 0; i < N - 1; i++)
      calls[i] = (int)ncclCommShrink(c[i], exclude, 1, &shrunk[i], NULL, NCCL_SHRINK_DEFAULT);
    int end = (int)ncclGroupEnd();
    printf("shrink_start=%d\nshrink_end=%d\n", start, end);
    print_list("shrink_calls", calls, N - 1);
    queries("shrink", shrunk, N - 1);
    allreduce_group("shrink_allreduce", shrunk, N - 1, 1 << 20, ncclFloat32, NULL);
  }

  // ---- ncclRedOpCreatePreMulSum: one per communicator, used in an all-reduce, destroyed ----
  {
    ncclRedOp_t ops[N];
    int calls[N], values[N];
    float scalar = 0.5f;
    for (int i = 0; i < N; i++) {
      ops[i] = ncclSum;
      calls[i] = (int)ncclRedOpCreatePreMulSum(&ops[i], &scalar, ncclFloat32, ncclScalarHostImmediate, c[i]);
      values[i] = (int)ops[i];
    }
    print_list("premulsum_create", calls, N);
    print_list("premulsum_op", values, N);
    printf("premulsum_op_ge_num_ops=%d\n", (int)ops[0] >= (int)ncclNumOps);
    allreduce_group("premulsum_allreduce", c, N, 1 << 20, ncclFloat32, ops);
    for (int i = 0; i < N; i++) calls[i] = (int)ncclRedOpDestroy(ops[i], c[i]);
    print_list("premulsum_destroy", calls, N);
    printf("premulsum_destroy_twice=%d\n", (int)ncclRedOpDestroy(ops[0], c[0]));
    printf("premulsum_allreduce_after_destroy=%d\n",
           (int)ncclAllReduce(buf[0], buf[0], 1024, ncclFloat32, ops[0], c[0], s[0]));
  }

  // ---- every data type ----
  {
    int calls[ncclNumTypes], ends[ncclNumTypes];
    for (int t = 0; t < (int)ncclNumTypes; t++) {
      int per[N];
      NCHECK(ncclGroupStart());
      allreduce_calls(c, N, 1024, (ncclDataType_t)t, NULL, per);
      ends[t] = (int)ncclGroupEnd();
      calls[t] = 0;
      for (int i = 0; i < N; i++)
        if (per[i] != 0 && calls[t] == 0) calls[t] = per[i];
    }
    print_list("dtype_calls", calls, ncclNumTypes);
    print_list("dtype_end", ends, ncclNumTypes);
    printf("dtype_sync=%d\n", sync_all());
  }

  // ---- invalid arguments (outside a group: nothing is queued, no rank waits for the others) ----
  printf("invalid_dtype=%d\n", (int)ncclAllReduce(buf[0], buf[0], 1024, (ncclDataType_t)99, ncclSum, c[0], s[0]));
  printf("invalid_dtype_error=%s\n", ncclGetLastError(c[0]));
  printf("invalid_redop=%d\n", (int)ncclAllReduce(buf[0], buf[0], 1024, ncclFloat32, (ncclRedOp_t)42, c[0], s[0]));
  printf("invalid_root=%d\n", (int)ncclBroadcast(buf[0], buf[0], 1024, ncclFloat32, N, c[0], s[0]));
  printf("invalid_root_error=%s\n", ncclGetLastError(c[0]));
  printf("invalid_root_negative=%d\n", (int)ncclBroadcast(buf[0], buf[0], 1024, ncclFloat32, -1, c[0], s[0]));
  printf("invalid_send_peer=%d\n", (int)ncclSend(buf[0], 1024, ncclFloat32, N, c[0], s[0]));
  printf("invalid_send_peer_error=%s\n", ncclGetLastError(c[0]));
  printf("invalid_recv_peer=%d\n", (int)ncclRecv(buf[0], 1024, ncclFloat32, -1, c[0], s[0]));
  printf("null_comm_allreduce=%d\n", (int)ncclAllReduce(buf[0], buf[0], 1024, ncclFloat32, ncclSum, NULL, s[0]));
  {
    int n = -1;
    printf("null_comm_count=%d\n", (int)ncclCommCount(NULL, &n));
  }
  // Inside a group the failed call's status is returned again by ncclGroupEnd.
  {
    int start = (int)ncclGroupStart();
    int call = (int)ncclAllReduce(buf[0], buf[0], 1024, (ncclDataType_t)99, ncclSum, c[0], s[0]);
    int end = (int)ncclGroupEnd();
    printf("group_invalid_dtype=%d,%d,%d\n", start, call, end);
  }

  // ---- ncclMemAlloc / ncclMemFree / ncclCommRegister / ncclCommDeregister ----
  {
    const size_t size = size_t(64) << 20;
    size_t free0 = 0, free1 = 0, free2 = 0, total = 0;
    CHECK(cudaSetDevice(0));
    CHECK(cudaMemGetInfo(&free0, &total));
    void* p = NULL;
    printf("mem_alloc=%d\n", (int)ncclMemAlloc(&p, size));
    CHECK(cudaMemGetInfo(&free1, &total));
    printf("mem_alloc_nonnull=%d\n", p != NULL);
    printf("mem_alloc_free_drop=%zu\n", free0 - free1);
    void* handle = NULL;
    printf("comm_register=%d\n", (int)ncclCommRegister(c[0], p, size, &handle));
    printf("comm_register_handle_nonnull=%d\n", handle != NULL);
    printf("comm_deregister=%d\n", (int)ncclCommDeregister(c[0], handle));
    printf("mem_free=%d\n", (int)ncclMemFree(p));
    CHECK(cudaMemGetInfo(&free2, &total));
    printf("mem_free_restored=%d\n", free2 == free0);
  }

  // ---- a send/receive ring in one group: rank r sends 1 GiB to r+1 and receives from r-1 ----
  {
    int sends[N], recvs[N];
    ncclSimInfo_t info = NCCL_SIM_INFO_INITIALIZER;
    NCHECK(ncclGroupStart());
    for (int r = 0; r < N; r++) {
      sends[r] = (int)ncclSend(buf[r], size_t(1) << 28, ncclFloat32, (r + 1) % N, c[r], s[r]);
      recvs[r] = (int)ncclRecv(rbuf[r], size_t(1) << 28, ncclFloat32, (r + N - 1) % N, c[r], s[r]);
    }
    int sim = (int)ncclGroupSimulateEnd(&info);
    printf("simulate_ring=%d\nestimate_ring_us=%.1f\n", sim, info.estimatedTime);

    CHECK(cudaSetDevice(0));
    CHECK(cudaEventRecord(e0, s[0]));
    int start = (int)ncclGroupStart();
    for (int r = 0; r < N; r++) {
      sends[r] = (int)ncclSend(buf[r], size_t(1) << 28, ncclFloat32, (r + 1) % N, c[r], s[r]);
      recvs[r] = (int)ncclRecv(rbuf[r], size_t(1) << 28, ncclFloat32, (r + N - 1) % N, c[r], s[r]);
    }
    int end = (int)ncclGroupEnd();
    CHECK(cudaEventRecord(e1, s[0]));
    printf("ring_start=%d\nring_end=%d\n", start, end);
    print_list("ring_sends", sends, N);
    print_list("ring_recvs", recvs, N);
    printf("ring_sync=%d\n", sync_all());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    printf("ring_event_us=%.1f\nring_event_minus_estimate_us=%.2f\n", ms * 1000.0, ms * 1000.0 - info.estimatedTime);
  }

  // ---- a send to itself (rank 0, 1 GiB) moves nothing over a link ----
  {
    ncclSimInfo_t info = NCCL_SIM_INFO_INITIALIZER;
    NCHECK(ncclGroupStart());
    NCHECK(ncclSend(buf[0], size_t(1) << 28, ncclFloat32, 0, c[0], s[0]));
    NCHECK(ncclRecv(rbuf[0], size_t(1) << 28, ncclFloat32, 0, c[0], s[0]));
    int sim = (int)ncclGroupSimulateEnd(&info);
    printf("simulate_self=%d\nestimate_self_us=%.1f\n", sim, info.estimatedTime);
    CHECK(cudaSetDevice(0));
    CHECK(cudaEventRecord(e0, s[0]));
    int start = (int)ncclGroupStart();
    int send = (int)ncclSend(buf[0], size_t(1) << 28, ncclFloat32, 0, c[0], s[0]);
    int recv = (int)ncclRecv(rbuf[0], size_t(1) << 28, ncclFloat32, 0, c[0], s[0]);
    int end = (int)ncclGroupEnd();
    CHECK(cudaEventRecord(e1, s[0]));
    printf("self_calls=%d,%d,%d,%d\nself_sync=%d\n", start, send, recv, end, sync_all());
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    printf("self_event_us=%.1f\n", ms * 1000.0);
  }

  // ---- ncclCommGetAsyncError on healthy communicators ----
  {
    int calls[N], values[N];
    for (int i = 0; i < N; i++) {
      ncclResult_t e = ncclInProgress;
      calls[i] = (int)ncclCommGetAsyncError(c[i], &e);
      values[i] = (int)e;
    }
    print_list("async_error_calls", calls, N);
    print_list("async_error", values, N);
  }

  // ---- finalize + destroy, abort ----
  {
    int fin[N], des[N];
    for (int i = 0; i < N; i++) fin[i] = (int)ncclCommFinalize(all[i]);
    for (int i = 0; i < N; i++) des[i] = (int)ncclCommDestroy(all[i]);
    print_list("finalize", fin, N);
    print_list("destroy", des, N);
    int n = -1;
    ncclResult_t e = ncclSuccess;
    printf("destroyed_count=%d\n", (int)ncclCommCount(all[0], &n));
    printf("destroyed_allreduce=%d\n",
           (int)ncclAllReduce(buf[0], buf[0], 1024, ncclFloat32, ncclSum, all[0], s[0]));
    printf("destroyed_async_error=%d\n", (int)ncclCommGetAsyncError(all[0], &e));
    printf("destroyed_finalize=%d\n", (int)ncclCommFinalize(all[0]));
    printf("destroyed_destroy=%d\n", (int)ncclCommDestroy(all[0]));

    int ab[N - 1];
    for (int i = 0; i < N - 1; i++) ab[i] = (int)ncclCommAbort(shrunk[i]);
    print_list("abort", ab, N - 1);
    printf("aborted_count=%d\n", (int)ncclCommCount(shrunk[0], &n));
    printf("aborted_abort=%d\n", (int)ncclCommAbort(shrunk[0]));

    for (int i = 0; i < N; i++) {
      NCHECK(ncclCommDestroy(split[i]));
      if (nocolor[i]) NCHECK(ncclCommDestroy(nocolor[i]));
      NCHECK(ncclCommDestroy(c[i]));
    }
  }
  printf("done=1\n");
  return 0;
}
