// fake_cuda_driver: a stand-in for NVIDIA's driver (libcuda.so.1) that profiling mode can load in CI, where
// there is no GPU. Phantom's runtime opens it by absolute path (PHANTOM_REAL_DRIVER) exactly as it opens the
// real driver; tests/tests/e2e/profile.rs and calibrate.rs build it with `cc -shared -fPIC -O2`
// (phantom_tests::compile_shared) and check what profiling mode and `phantom calibrate` measured against the
// rule below. It exports only the driver functions those two use (real-gpu/src/driver.rs), under their exact
// names, with cuda.h's signatures (cuda.h is included, so the compiler checks every definition against NVIDIA's
// declaration).
//
// THE TIMING RULE (the tests compute their expected values from it)
//   The fake GPU has one clock in nanoseconds, starting at 1 000 000. Every command executes synchronously when
//   it is submitted, whatever its stream, and advances the clock:
//     - cuLaunchKernel of `phantom_spin` (Phantom's gate kernel, one u64 parameter): by that parameter;
//     - cuLaunchKernel of any other kernel: by 1000 * (gridX*gridY*gridZ) + blockX*blockY*blockZ;
//     - cuMemcpyAsync of B bytes: by B / 10 + 1000 (integer division);
//     - cuMemsetD8Async of B bytes: by B / 20 + 1000;
//     - cuEventRecord stores the clock in the event (and does not advance it).
//   With FAKE_CUDA_RUNNING_PERCENT=P, a kernel that is not the first command after a `phantom_spin` takes P % more
//   (integer division: 1000 * G + B plus (1000 * G + B) * P / 100), as a real GPU kept busy runs at a lower
//   clock than one a gate has just woken.
//   Copies take the same time in every direction and from every kind of memory (device, cuMemHostAlloc'd,
//   malloc'ed); allocating and freeing take no time. cuEventElapsedTime_v2 gives (end - start) / 1e6
//   milliseconds, computed in double and stored as float (so a reader that rounds to the nanosecond gets the
//   exact interval below 16 ms, and within 1 ns up to 32 ms). So a kernel of grid 64 and block 256 takes 64 256 ns, a 4 MiB copy 420 430 ns, and a 64 MiB
//   device-to-device copy 6 711 886 ns, which `phantom calibrate` reads as 2 x 64 MiB / 6 711 886 ns =
//   19.997 GB/s of device-memory bandwidth (tests/tests/e2e/calibrate.rs).
//
// COMPLETION (what cuEventQuery says)
//   Work is done when it is submitted, except that a `phantom_spin` launch holds the GPU, as the gate does on a
//   real one, until the host next waits: an event recorded after it and before the next cuEventSynchronize,
//   cuStreamSynchronize or cuCtxSynchronize is not complete, and the first cuEventQuery of that recording
//   returns CUDA_ERROR_NOT_READY (later ones CUDA_SUCCESS, so a polling loop ends). Every other cuEventQuery,
//   and every synchronising call, returns CUDA_SUCCESS. So Phantom's gate (real-gpu/src/gate.rs: spin, record,
//   queue the work, query the opening event) always finds itself long enough, as on a real GPU.
//   cuStreamQuery (any stream) likewise returns CUDA_ERROR_NOT_READY once after a `phantom_spin` launch since
//   the host last waited, and that ends the hold (events recorded later are complete; events already held stay
//   so until queried or waited for); otherwise CUDA_SUCCESS. So `phantom calibrate`'s launch-latency loop
//   (launch, then poll cuStreamQuery) polls exactly twice per launch.
//   With FAKE_CUDA_BUSY=1 the GPU is always behind the host, as in a program that keeps it busy: every event
//   recording is held, as one behind a gate is, until it is first queried or the host waits.
//
// MEMORY
//   cuMemAddressReserve reserves address space (mmap PROT_NONE, MAP_NORESERVE: hundreds of GB cost nothing);
//   cuMemMap puts fresh anonymous host memory at the address (no access yet, as on a GPU), cuMemSetAccess makes
//   it readable/writable, cuMemUnmap turns it back into a reservation. Device memory is therefore real host
//   memory at the device address, and with unified addressing cuMemcpyAsync is memmove in any direction and
//   cuMemsetD8Async is memset: data copied to the fake device really comes back. A copy or memset that touches
//   reserved but unmapped (or unwritable) memory fails with CUDA_ERROR_INVALID_VALUE instead of crashing.
//   The granularity is 2 MiB: reservations, allocations and mappings must be multiples of it.
//   cuMemAlloc_v2 does all of that in one call: it reserves the size rounded up to 2 MiB, maps fresh memory
//   there and makes it readable/writable; cuMemFree_v2 (of exactly a pointer it returned, else
//   CUDA_ERROR_INVALID_VALUE) unmaps and frees it, so a later copy to it fails. cuMemHostAlloc (flags
//   PORTABLE, DEVICEMAP and WRITECOMBINED accepted, others CUDA_ERROR_INVALID_VALUE) returns fresh anonymous
//   host memory, outside every reservation; cuMemFreeHost (of exactly a pointer it returned, else
//   CUDA_ERROR_INVALID_VALUE) unmaps it. Both allocators need a current context.
//
// MODULES AND KERNELS
//   cuModuleLoadData accepts a fat binary (first u32 0xBA55ED50), an ELF cubin, or NUL-terminated PTX text
//   (containing `.version`); anything else is CUDA_ERROR_INVALID_IMAGE. cuModuleGetFunction returns, for any
//   name, a handle that remembers the name. Kernels do no work on memory.
//
// ERRORS (like the real driver)
//   Every call but cuInit, cuDriverGetVersion and cuGetErrorString before cuInit: CUDA_ERROR_NOT_INITIALIZED.
//   A null out-pointer or an invalid size: CUDA_ERROR_INVALID_VALUE (1). A handle this library did not hand out
//   or has destroyed (checked by lookup, never dereferenced first): CUDA_ERROR_INVALID_HANDLE (400). Device
//   ordinals other than 0: CUDA_ERROR_INVALID_DEVICE. cuModuleLoadData, cuStreamCreate, cuEventCreate,
//   cuCtxSynchronize, cuMemAlloc_v2, cuMemHostAlloc, and work on the NULL / legacy / per-thread stream need a
//   current context on the calling thread (cuCtxSetCurrent with the primary context):
//   CUDA_ERROR_INVALID_CONTEXT otherwise.
//
// COUNTERS
//   At process exit, if FAKE_CUDA_STATS names a directory, the library writes <dir>/fake-cuda-<pid>.txt (calls
//   that failed are not counted):
//     launches N            cuLaunchKernel calls other than phantom_spin
//     spins N               phantom_spin launches
//     memcpys N             cuMemcpyAsync calls
//     memcpy_bytes N        bytes they copied
//     memsets N             cuMemsetD8Async calls
//     modules N             cuModuleLoadData calls that succeeded
//     mapped_peak_bytes N   the most bytes mapped at once (cuMemMap's and cuMemAlloc_v2's)
//     allocs N              cuMemAlloc_v2 calls
//     host_allocs N         cuMemHostAlloc calls
//     live_allocs N         cuMemAlloc_v2 and cuMemHostAlloc allocations not freed at exit
//     clock_ns N            the fake GPU's clock at exit
//     kernel NAME N         per kernel name launched (not phantom_spin; NAME as given to cuModuleGetFunction,
//                           the mangled name), in order of the name's first cuModuleGetFunction
//   A process that loads the library writes the file even if it called nothing; one that never loads it
//   writes none.

#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GRANULE ((size_t)2 << 20)
#define FATBIN_MAGIC 0xBA55ED50u
#define SPIN_NAME "phantom_spin"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static __thread int has_context;
static char primary_context;  // its address is the primary context's handle
static uint64_t gpu_clock_ns = 1000000;
static int gate_holds;  // a phantom_spin launch since the host last waited (COMPLETION above)
static int after_spin;  // the last command was a phantom_spin launch (FAKE_CUDA_RUNNING_PERCENT above)

// An integer from the environment, read once into `*v` (0 when unset).
static long long env_once(const char* var, long long* v) {
  if (*v < 0) {
    const char* s = getenv(var);
    *v = s ? atoll(s) : 0;
  }
  return *v;
}

static struct {
  uint64_t launches, spins, memcpys, memcpy_bytes, memsets, modules, mapped_bytes, mapped_peak_bytes, allocs,
      host_allocs;
} stats;

// ---- handles: every object this library hands out is registered; a handle is valid iff it is registered ----

enum kind { K_STREAM = 1, K_EVENT, K_MODULE, K_FUNCTION, K_MEMHANDLE };

struct object {
  enum kind kind;
};

struct stream {
  struct object o;
};

struct event {
  struct object o;
  unsigned flags;
  int recorded;
  int held;  // recorded behind a gate and not yet queried or waited for
  uint64_t t;
};

struct kernel_count {
  char* name;
  uint64_t launches;
};

struct module {
  struct object o;
};

struct function {
  struct object o;
  size_t counter;  // index in `counters` (shared by every handle of the same name; the array may move)
  int is_spin;
};

struct memhandle {
  struct object o;
  size_t size;
  size_t maps;   // live mappings of it
  int released;  // cuMemRelease called: freed when the last mapping goes
};

static void** live;
static size_t n_live, cap_live;

static int grow(void** array, size_t* cap, size_t need, size_t elem) {
  if (need <= *cap) return 1;
  size_t c = *cap ? *cap * 2 : 64;
  while (c < need) c *= 2;
  void* p = realloc(*array, c * elem);
  if (!p) return 0;
  *array = p;
  *cap = c;
  return 1;
}

static int register_object(void* p) {
  if (!grow((void**)&live, &cap_live, n_live + 1, sizeof(void*))) return 0;
  live[n_live++] = p;
  return 1;
}

static size_t find_object(const void* p) {
  for (size_t i = 0; i < n_live; i++)
    if (live[i] == p) return i;
  return (size_t)-1;
}

// The object `p` if it is a live object of kind `k`, else NULL. `p` is compared, not dereferenced, first.
static void* lookup(const void* p, enum kind k) {
  if (!p) return NULL;
  size_t i = find_object(p);
  if (i == (size_t)-1) return NULL;
  struct object* o = live[i];
  return o->kind == k ? o : NULL;
}

static void unregister_object(const void* p) {
  size_t i = find_object(p);
  if (i != (size_t)-1) live[i] = live[--n_live];
}

static struct kernel_count* counters;
static size_t n_counters, cap_counters;

static size_t counter_for(const char* name) {
  for (size_t i = 0; i < n_counters; i++)
    if (strcmp(counters[i].name, name) == 0) return i;
  return (size_t)-1;
}

// ---- address space ----

struct range {
  uintptr_t start;
  size_t size;
};

struct mapping {
  uintptr_t start;
  size_t size;
  int prot;
  struct memhandle* handle;
};

static struct range* reservations;
static size_t n_reservations, cap_reservations;
static struct mapping* mappings;
static size_t n_mappings, cap_mappings;

static int overlaps(uintptr_t a, size_t an, uintptr_t b, size_t bn) { return a < b + bn && b < a + an; }

static struct range* reservation_containing(uintptr_t p, size_t n) {
  for (size_t i = 0; i < n_reservations; i++) {
    struct range* r = &reservations[i];
    if (p >= r->start && n <= r->size && p - r->start <= r->size - n) return r;
  }
  return NULL;
}

// Bytes of [p, p+n) covered by mappings whose protection includes `prot`.
static size_t mapped_within(uintptr_t p, size_t n, int prot) {
  size_t covered = 0;
  for (size_t i = 0; i < n_mappings; i++) {
    struct mapping* m = &mappings[i];
    if (!overlaps(p, n, m->start, m->size) || (m->prot & prot) != prot) continue;
    uintptr_t lo = p > m->start ? p : m->start;
    uintptr_t hi = p + n < m->start + m->size ? p + n : m->start + m->size;
    covered += hi - lo;
  }
  return covered;
}

// Whether [p, p+n) may be accessed with `prot`: its parts inside reservations must be mapped with that
// protection; parts outside every reservation are host memory, the caller's business (unified addressing).
static int accessible(uintptr_t p, size_t n, int prot) {
  if (n == 0) return 1;
  if (p + n < p) return 0;
  for (size_t i = 0; i < n_reservations; i++) {
    struct range* r = &reservations[i];
    if (!overlaps(p, n, r->start, r->size)) continue;
    uintptr_t lo = p > r->start ? p : r->start;
    uintptr_t hi = p + n < r->start + r->size ? p + n : r->start + r->size;
    if (mapped_within(lo, hi - lo, prot) != hi - lo) return 0;
  }
  return 1;
}

// ---- common checks ----

#define LOCKED(body)                \
  do {                              \
    pthread_mutex_lock(&lock);      \
    CUresult r_ = (body);           \
    pthread_mutex_unlock(&lock);    \
    return r_;                      \
  } while (0)

// The host waited for the GPU: gates have ended and every event is complete (COMPLETION above).
static CUresult host_waits(void) {
  gate_holds = 0;
  for (size_t i = 0; i < n_live; i++) {
    struct object* o = live[i];
    if (o->kind == K_EVENT) ((struct event*)o)->held = 0;
  }
  return CUDA_SUCCESS;
}

// Resolves a stream argument: the NULL, legacy and per-thread streams need a current context.
static CUresult check_stream(CUstream s) {
  if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD)
    return has_context ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
  return lookup(s, K_STREAM) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

// ---- initialisation, device, context ----

CUresult CUDAAPI cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
  return CUDA_SUCCESS;
}

#define NEED_INIT()                                      \
  do {                                                   \
    if (!__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)) \
      return CUDA_ERROR_NOT_INITIALIZED;                 \
  } while (0)

CUresult CUDAAPI cuDriverGetVersion(int* version) {
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = 13000;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice* device, int ordinal) {
  NEED_INIT();
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *device = 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char* name, int len, CUdevice dev) {
  NEED_INIT();
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "%s", "Phantom fake GPU");
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {
  (void)flags;
  NEED_INIT();
  return dev == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
  NEED_INIT();
  if (!ctx) return CUDA_ERROR_INVALID_VALUE;
  if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  *ctx = (CUcontext)&primary_context;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx) {
  NEED_INIT();
  if (ctx != NULL && ctx != (CUcontext)&primary_context) return CUDA_ERROR_INVALID_CONTEXT;
  has_context = ctx != NULL;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSynchronize(void) {
  NEED_INIT();
  LOCKED(has_context ? host_waits() : CUDA_ERROR_INVALID_CONTEXT);
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char** str) {
  static const struct {
    CUresult code;
    const char* text;
  } texts[] = {
      {CUDA_SUCCESS, "no error"},
      {CUDA_ERROR_INVALID_VALUE, "invalid argument"},
      {CUDA_ERROR_OUT_OF_MEMORY, "out of memory"},
      {CUDA_ERROR_NOT_INITIALIZED, "initialization error"},
      {CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"},
      {CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid"},
      {CUDA_ERROR_INVALID_CONTEXT, "invalid device context"},
      {CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"},
      {CUDA_ERROR_NOT_FOUND, "named symbol not found"},
      {CUDA_ERROR_NOT_READY, "device not ready"},
      {CUDA_ERROR_NOT_SUPPORTED, "operation not supported"},
  };
  if (!str) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    if (texts[i].code == error) {
      *str = texts[i].text;
      return CUDA_SUCCESS;
    }
  }
  *str = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}

// ---- virtual memory ----

static CUresult address_reserve(CUdeviceptr* ptr, size_t size, size_t alignment, unsigned long long flags) {
  if (!ptr || size == 0 || size % GRANULE || flags) return CUDA_ERROR_INVALID_VALUE;
  if (alignment == 0) alignment = GRANULE;
  if (alignment & (alignment - 1)) return CUDA_ERROR_INVALID_VALUE;
  if (alignment < GRANULE) alignment = GRANULE;
  if (!grow((void**)&reservations, &cap_reservations, n_reservations + 1, sizeof(struct range)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  size_t total = size + alignment;
  if (total < size) return CUDA_ERROR_OUT_OF_MEMORY;
  void* base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t b = (uintptr_t)base;
  uintptr_t start = (b + alignment - 1) & ~(uintptr_t)(alignment - 1);
  if (start > b) munmap(base, start - b);
  if (b + total > start + size) munmap((void*)(start + size), b + total - (start + size));
  reservations[n_reservations++] = (struct range){start, size};
  *ptr = (CUdeviceptr)start;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                     unsigned long long flags) {
  (void)addr;  // a hint, as for the real driver
  NEED_INIT();
  LOCKED(address_reserve(ptr, size, alignment, flags));
}

static CUresult address_free(CUdeviceptr ptr, size_t size) {
  for (size_t i = 0; i < n_reservations; i++) {
    if (reservations[i].start != (uintptr_t)ptr || reservations[i].size != size) continue;
    if (mapped_within((uintptr_t)ptr, size, 0)) return CUDA_ERROR_INVALID_VALUE;  // still mapped
    munmap((void*)(uintptr_t)ptr, size);
    reservations[i] = reservations[--n_reservations];
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  NEED_INIT();
  LOCKED(address_free(ptr, size));
}

static CUresult mem_create(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                           unsigned long long flags) {
  if (!handle || !prop || size == 0 || size % GRANULE || flags) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
    return CUDA_ERROR_INVALID_VALUE;
  if (prop->location.id != 0) return CUDA_ERROR_INVALID_DEVICE;
  struct memhandle* h = calloc(1, sizeof *h);
  if (!h) return CUDA_ERROR_OUT_OF_MEMORY;
  h->o.kind = K_MEMHANDLE;
  h->size = size;
  if (!register_object(h)) {
    free(h);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *handle = (CUmemGenericAllocationHandle)(uintptr_t)h;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                             unsigned long long flags) {
  NEED_INIT();
  LOCKED(mem_create(handle, size, prop, flags));
}

static CUresult mem_release(CUmemGenericAllocationHandle handle) {
  struct memhandle* h = lookup((void*)(uintptr_t)handle, K_MEMHANDLE);
  if (!h) return CUDA_ERROR_INVALID_HANDLE;
  unregister_object(h);
  if (h->maps)
    h->released = 1;  // as on the GPU: the memory lives until it is unmapped
  else
    free(h);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle) {
  NEED_INIT();
  LOCKED(mem_release(handle));
}

static CUresult mem_map(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                        unsigned long long flags) {
  struct memhandle* h = lookup((void*)(uintptr_t)handle, K_MEMHANDLE);
  if (!h) return CUDA_ERROR_INVALID_HANDLE;
  uintptr_t p = (uintptr_t)ptr;
  if (flags || size == 0 || size % GRANULE || offset % GRANULE || p % GRANULE || offset > h->size ||
      size > h->size - offset)
    return CUDA_ERROR_INVALID_VALUE;
  if (!reservation_containing(p, size)) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n_mappings; i++)
    if (overlaps(p, size, mappings[i].start, mappings[i].size)) return CUDA_ERROR_INVALID_VALUE;
  if (!grow((void**)&mappings, &cap_mappings, n_mappings + 1, sizeof(struct mapping))) return CUDA_ERROR_OUT_OF_MEMORY;
  // Fresh memory, not yet accessible: cuMemSetAccess grants access.
  void* m = mmap((void*)p, size, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  mappings[n_mappings++] = (struct mapping){p, size, PROT_NONE, h};
  h->maps++;
  stats.mapped_bytes += size;
  if (stats.mapped_bytes > stats.mapped_peak_bytes) stats.mapped_peak_bytes = stats.mapped_bytes;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                          unsigned long long flags) {
  NEED_INIT();
  LOCKED(mem_map(ptr, size, offset, handle, flags));
}

static CUresult mem_set_access(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  uintptr_t p = (uintptr_t)ptr;
  if (!desc || count == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  int prot = -1;
  for (size_t i = 0; i < count; i++) {
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
    if (desc[i].location.id != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (desc[i].flags) {
      case CU_MEM_ACCESS_FLAGS_PROT_NONE: prot = PROT_NONE; break;
      case CU_MEM_ACCESS_FLAGS_PROT_READ: prot = PROT_READ; break;
      case CU_MEM_ACCESS_FLAGS_PROT_READWRITE: prot = PROT_READ | PROT_WRITE; break;
      default: return CUDA_ERROR_INVALID_VALUE;
    }
  }
  // The whole range must be mapped, and only whole mappings change.
  if (mapped_within(p, size, 0) != size) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n_mappings; i++) {
    struct mapping* m = &mappings[i];
    if (overlaps(p, size, m->start, m->size) && (m->start < p || m->start + m->size > p + size))
      return CUDA_ERROR_INVALID_VALUE;
  }
  if (mprotect((void*)p, size, prot) != 0) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n_mappings; i++)
    if (overlaps(p, size, mappings[i].start, mappings[i].size)) mappings[i].prot = prot;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  NEED_INIT();
  LOCKED(mem_set_access(ptr, size, desc, count));
}

static CUresult mem_unmap(CUdeviceptr ptr, size_t size) {
  uintptr_t p = (uintptr_t)ptr;
  if (size == 0) return CUDA_ERROR_INVALID_VALUE;
  // The range must consist of whole mappings.
  if (mapped_within(p, size, 0) != size) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n_mappings; i++) {
    struct mapping* m = &mappings[i];
    if (overlaps(p, size, m->start, m->size) && (m->start < p || m->start + m->size > p + size))
      return CUDA_ERROR_INVALID_VALUE;
  }
  void* r = mmap((void*)p, size, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n_mappings;) {
    struct mapping* m = &mappings[i];
    if (!overlaps(p, size, m->start, m->size)) {
      i++;
      continue;
    }
    struct memhandle* h = m->handle;
    stats.mapped_bytes -= m->size;
    if (--h->maps == 0 && h->released) free(h);
    mappings[i] = mappings[--n_mappings];
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size) {
  NEED_INIT();
  LOCKED(mem_unmap(ptr, size));
}

// ---- plain allocations (cuMemAlloc_v2, cuMemHostAlloc) ----

struct allocation {
  uintptr_t start;
  size_t size;  // device: the reserved and mapped size (a multiple of GRANULE); host: as asked
};

static struct allocation *device_allocs, *host_allocs;
static size_t n_device_allocs, cap_device_allocs, n_host_allocs, cap_host_allocs;

static CUresult mem_alloc(CUdeviceptr* dptr, size_t bytes) {
  if (!dptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (!has_context) return CUDA_ERROR_INVALID_CONTEXT;
  size_t size = (bytes + GRANULE - 1) / GRANULE * GRANULE;
  if (size < bytes) return CUDA_ERROR_OUT_OF_MEMORY;
  if (!grow((void**)&device_allocs, &cap_device_allocs, n_device_allocs + 1, sizeof(struct allocation)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  CUdeviceptr p;
  CUresult r = address_reserve(&p, size, 0, 0);
  if (r != CUDA_SUCCESS) return r;
  CUmemAllocationProp prop;
  memset(&prop, 0, sizeof prop);
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  CUmemGenericAllocationHandle h;
  r = mem_create(&h, size, &prop, 0);
  if (r == CUDA_SUCCESS) {
    r = mem_map(p, size, 0, h, 0);
    mem_release(h);  // the memory lives until it is unmapped
  }
  if (r == CUDA_SUCCESS) {
    CUmemAccessDesc access;
    memset(&access, 0, sizeof access);
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = 0;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    r = mem_set_access(p, size, &access, 1);
    if (r != CUDA_SUCCESS) mem_unmap(p, size);
  }
  if (r != CUDA_SUCCESS) {
    address_free(p, size);
    return r;
  }
  device_allocs[n_device_allocs++] = (struct allocation){(uintptr_t)p, size};
  stats.allocs++;
  *dptr = p;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr* dptr, size_t bytesize) {
  NEED_INIT();
  LOCKED(mem_alloc(dptr, bytesize));
}

static CUresult mem_free(CUdeviceptr dptr) {
  for (size_t i = 0; i < n_device_allocs; i++) {
    struct allocation a = device_allocs[i];
    if (a.start != (uintptr_t)dptr) continue;
    CUresult r = mem_unmap(dptr, a.size);
    if (r == CUDA_SUCCESS) r = address_free(dptr, a.size);
    if (r != CUDA_SUCCESS) return r;
    device_allocs[i] = device_allocs[--n_device_allocs];
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr dptr) {
  NEED_INIT();
  LOCKED(mem_free(dptr));
}

static CUresult mem_host_alloc(void** pp, size_t bytes, unsigned flags) {
  const unsigned known = CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
  if (!pp || bytes == 0 || (flags & ~known)) return CUDA_ERROR_INVALID_VALUE;
  if (!has_context) return CUDA_ERROR_INVALID_CONTEXT;
  if (!grow((void**)&host_allocs, &cap_host_allocs, n_host_allocs + 1, sizeof(struct allocation)))
    return CUDA_ERROR_OUT_OF_MEMORY;
  void* m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  host_allocs[n_host_allocs++] = (struct allocation){(uintptr_t)m, bytes};
  stats.host_allocs++;
  *pp = m;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostAlloc(void** pp, size_t bytesize, unsigned int Flags) {
  NEED_INIT();
  LOCKED(mem_host_alloc(pp, bytesize, Flags));
}

static CUresult mem_free_host(void* p) {
  for (size_t i = 0; i < n_host_allocs; i++) {
    if (host_allocs[i].start != (uintptr_t)p) continue;
    munmap(p, host_allocs[i].size);
    host_allocs[i] = host_allocs[--n_host_allocs];
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuMemFreeHost(void* p) {
  NEED_INIT();
  LOCKED(mem_free_host(p));
}

// ---- modules and kernels ----

static CUresult module_load(CUmodule* module, const void* image) {
  if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
  if (!has_context) return CUDA_ERROR_INVALID_CONTEXT;
  uint32_t magic;
  memcpy(&magic, image, sizeof magic);
  int ok = magic == FATBIN_MAGIC || memcmp(image, "\177ELF", 4) == 0 || strstr((const char*)image, ".version");
  if (!ok) return CUDA_ERROR_INVALID_IMAGE;
  struct module* m = calloc(1, sizeof *m);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  m->o.kind = K_MODULE;
  if (!register_object(m)) {
    free(m);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  stats.modules++;
  *module = (CUmodule)m;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleLoadData(CUmodule* module, const void* image) {
  NEED_INIT();
  LOCKED(module_load(module, image));
}

static CUresult module_get_function(CUfunction* f, CUmodule module, const char* name) {
  if (!f || !name) return CUDA_ERROR_INVALID_VALUE;
  if (!lookup(module, K_MODULE)) return CUDA_ERROR_INVALID_HANDLE;
  size_t c = counter_for(name);
  if (c == (size_t)-1) {
    if (!grow((void**)&counters, &cap_counters, n_counters + 1, sizeof(struct kernel_count)))
      return CUDA_ERROR_OUT_OF_MEMORY;
    char* copy = strdup(name);
    if (!copy) return CUDA_ERROR_OUT_OF_MEMORY;
    counters[n_counters] = (struct kernel_count){copy, 0};
    c = n_counters++;
  }
  struct function* fn = calloc(1, sizeof *fn);
  if (!fn) return CUDA_ERROR_OUT_OF_MEMORY;
  fn->o.kind = K_FUNCTION;
  fn->counter = c;
  fn->is_spin = strcmp(name, SPIN_NAME) == 0;
  if (!register_object(fn)) {
    free(fn);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *f = (CUfunction)fn;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction* f, CUmodule module, const char* name) {
  NEED_INIT();
  LOCKED(module_get_function(f, module, name));
}

CUresult CUDAAPI cuFuncLoad(CUfunction f) {
  NEED_INIT();
  LOCKED(lookup(f, K_FUNCTION) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE);
}

CUresult CUDAAPI cuFuncSetAttribute(CUfunction f, CUfunction_attribute attrib, int value) {
  (void)attrib;
  (void)value;
  NEED_INIT();
  LOCKED(lookup(f, K_FUNCTION) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE);
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       CUstream stream, void** params) {
  struct function* fn = lookup(f, K_FUNCTION);
  if (!fn) return CUDA_ERROR_INVALID_HANDLE;
  CUresult r = check_stream(stream);
  if (r != CUDA_SUCCESS) return r;
  if (!gx || !gy || !gz || !bx || !by || !bz) return CUDA_ERROR_INVALID_VALUE;
  if (fn->is_spin) {
    if (!params || !params[0]) return CUDA_ERROR_INVALID_VALUE;
    uint64_t ns;
    memcpy(&ns, params[0], sizeof ns);
    gpu_clock_ns += ns;
    gate_holds = 1;
    after_spin = 1;
    stats.spins++;
    return CUDA_SUCCESS;
  }
  static long long running_percent = -1;
  uint64_t t = 1000ull * gx * gy * gz + (uint64_t)bx * by * bz;
  if (!after_spin) t += t * (uint64_t)env_once("FAKE_CUDA_RUNNING_PERCENT", &running_percent) / 100;
  after_spin = 0;
  gpu_clock_ns += t;
  stats.launches++;
  counters[fn->counter].launches++;
  return CUDA_SUCCESS;
}

// Busy-waits the number of ns of real time in the environment variable `var` (0 when unset), read once into
// `*ns`.
static void busy_wait_env(const char* var, long long* ns) {
  if (env_once(var, ns) <= 0) return;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < *ns);
}

// FAKE_CUDA_LAUNCH_HOST_NS=N: every cuLaunchKernel busy-waits N ns of real time first, so that the host time a
// launch costs is known (an executing process charges what the driver's launch took: docs/time.md).
static void launch_host_cost(void) {
  static long long ns = -1;
  busy_wait_env("FAKE_CUDA_LAUNCH_HOST_NS", &ns);
}

// FAKE_CUDA_STREAM_SYNC_HOST_NS=N: every cuStreamSynchronize busy-waits N ns, as NVIDIA's driver spins while the
// GPU finishes (an executing process keeps that CPU time apart from its own: docs/time.md).
static void stream_sync_host_cost(void) {
  static long long ns = -1;
  busy_wait_env("FAKE_CUDA_STREAM_SYNC_HOST_NS", &ns);
}

CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                unsigned int sharedMemBytes, CUstream hStream, void** kernelParams, void** extra) {
  (void)sharedMemBytes;
  (void)extra;
  NEED_INIT();
  launch_host_cost();
  LOCKED(launch(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, hStream, kernelParams));
}

// ---- streams and events ----

static CUresult stream_create(CUstream* s) {
  if (!s) return CUDA_ERROR_INVALID_VALUE;
  if (!has_context) return CUDA_ERROR_INVALID_CONTEXT;
  struct stream* st = calloc(1, sizeof *st);
  if (!st) return CUDA_ERROR_OUT_OF_MEMORY;
  st->o.kind = K_STREAM;
  if (!register_object(st)) {
    free(st);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *s = (CUstream)st;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamCreate(CUstream* s, unsigned int flags) {
  (void)flags;
  NEED_INIT();
  LOCKED(stream_create(s));
}

static CUresult stream_destroy(CUstream s) {
  struct stream* st = lookup(s, K_STREAM);
  if (!st) return CUDA_ERROR_INVALID_HANDLE;
  unregister_object(st);
  free(st);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy(CUstream s) {
  NEED_INIT();
  LOCKED(stream_destroy(s));
}

static CUresult stream_synchronize(CUstream s) {
  CUresult r = check_stream(s);
  return r == CUDA_SUCCESS ? host_waits() : r;
}

CUresult CUDAAPI cuStreamSynchronize(CUstream s) {
  NEED_INIT();
  stream_sync_host_cost();
  LOCKED(stream_synchronize(s));
}

static CUresult stream_wait_event(CUstream s, CUevent e) {
  CUresult r = check_stream(s);
  if (r != CUDA_SUCCESS) return r;
  return lookup(e, K_EVENT) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult stream_query(CUstream s) {
  CUresult r = check_stream(s);
  if (r != CUDA_SUCCESS) return r;
  if (!gate_holds) return CUDA_SUCCESS;
  gate_holds = 0;  // COMPLETION above: reported once, then the gate has ended
  return CUDA_ERROR_NOT_READY;
}

CUresult CUDAAPI cuStreamQuery(CUstream s) {
  NEED_INIT();
  LOCKED(stream_query(s));
}

CUresult CUDAAPI cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags) {
  (void)flags;
  NEED_INIT();
  LOCKED(stream_wait_event(s, e));
}

static CUresult event_create(CUevent* e, unsigned flags) {
  if (!e) return CUDA_ERROR_INVALID_VALUE;
  if (!has_context) return CUDA_ERROR_INVALID_CONTEXT;
  struct event* ev = calloc(1, sizeof *ev);
  if (!ev) return CUDA_ERROR_OUT_OF_MEMORY;
  ev->o.kind = K_EVENT;
  ev->flags = flags;
  if (!register_object(ev)) {
    free(ev);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *e = (CUevent)ev;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventCreate(CUevent* e, unsigned int flags) {
  NEED_INIT();
  LOCKED(event_create(e, flags));
}

static CUresult event_record(CUevent e, CUstream s) {
  struct event* ev = lookup(e, K_EVENT);
  if (!ev) return CUDA_ERROR_INVALID_HANDLE;
  CUresult r = check_stream(s);
  if (r != CUDA_SUCCESS) return r;
  ev->recorded = 1;
  ev->t = gpu_clock_ns;
  static long long busy = -1;
  ev->held = gate_holds || env_once("FAKE_CUDA_BUSY", &busy) != 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent e, CUstream s) {
  NEED_INIT();
  LOCKED(event_record(e, s));
}

CUresult CUDAAPI cuEventSynchronize(CUevent e) {
  NEED_INIT();
  LOCKED(lookup(e, K_EVENT) ? host_waits() : CUDA_ERROR_INVALID_HANDLE);
}

static CUresult event_query(CUevent e) {
  struct event* ev = lookup(e, K_EVENT);
  if (!ev) return CUDA_ERROR_INVALID_HANDLE;
  if (!ev->held) return CUDA_SUCCESS;
  ev->held = 0;
  return CUDA_ERROR_NOT_READY;
}

CUresult CUDAAPI cuEventQuery(CUevent e) {
  NEED_INIT();
  LOCKED(event_query(e));
}

static CUresult event_elapsed(float* ms, CUevent start, CUevent end) {
  if (!ms) return CUDA_ERROR_INVALID_VALUE;
  struct event* a = lookup(start, K_EVENT);
  struct event* b = lookup(end, K_EVENT);
  if (!a || !b || !a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
  if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
  double ns = (double)(int64_t)(b->t - a->t);
  *ms = (float)(ns / 1e6);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  NEED_INIT();
  LOCKED(event_elapsed(ms, start, end));
}

static CUresult event_destroy(CUevent e) {
  struct event* ev = lookup(e, K_EVENT);
  if (!ev) return CUDA_ERROR_INVALID_HANDLE;
  unregister_object(ev);
  free(ev);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent e) {
  NEED_INIT();
  LOCKED(event_destroy(e));
}

// ---- copies and memsets ----

static CUresult memcpy_async(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  CUresult r = check_stream(s);
  if (r != CUDA_SUCCESS) return r;
  if (n && (!dst || !src)) return CUDA_ERROR_INVALID_VALUE;
  if (!accessible((uintptr_t)src, n, PROT_READ) || !accessible((uintptr_t)dst, n, PROT_READ | PROT_WRITE))
    return CUDA_ERROR_INVALID_VALUE;
  if (n) memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n);
  gpu_clock_ns += n / 10 + 1000;
  after_spin = 0;
  stats.memcpys++;
  stats.memcpy_bytes += n;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  NEED_INIT();
  LOCKED(memcpy_async(dst, src, n, s));
}

static CUresult memset_async(CUdeviceptr dst, unsigned char value, size_t n, CUstream s) {
  CUresult r = check_stream(s);
  if (r != CUDA_SUCCESS) return r;
  if (n && !dst) return CUDA_ERROR_INVALID_VALUE;
  if (!accessible((uintptr_t)dst, n, PROT_READ | PROT_WRITE)) return CUDA_ERROR_INVALID_VALUE;
  if (n) memset((void*)(uintptr_t)dst, value, n);
  gpu_clock_ns += n / 20 + 1000;
  after_spin = 0;
  stats.memsets++;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t n, CUstream s) {
  NEED_INIT();
  LOCKED(memset_async(dst, value, n, s));
}

// ---- counters at exit ----

__attribute__((destructor)) static void write_stats(void) {
  const char* dir = getenv("FAKE_CUDA_STATS");
  if (!dir || !*dir) return;
  char path[4096], tmp[4096];
  snprintf(path, sizeof path, "%s/fake-cuda-%d.txt", dir, (int)getpid());
  snprintf(tmp, sizeof tmp, "%s/.fake-cuda-%d.tmp", dir, (int)getpid());
  pthread_mutex_lock(&lock);
  FILE* f = fopen(tmp, "w");
  if (f) {
    fprintf(f, "launches %llu\n", (unsigned long long)stats.launches);
    fprintf(f, "spins %llu\n", (unsigned long long)stats.spins);
    fprintf(f, "memcpys %llu\n", (unsigned long long)stats.memcpys);
    fprintf(f, "memcpy_bytes %llu\n", (unsigned long long)stats.memcpy_bytes);
    fprintf(f, "memsets %llu\n", (unsigned long long)stats.memsets);
    fprintf(f, "modules %llu\n", (unsigned long long)stats.modules);
    fprintf(f, "mapped_peak_bytes %llu\n", (unsigned long long)stats.mapped_peak_bytes);
    fprintf(f, "allocs %llu\n", (unsigned long long)stats.allocs);
    fprintf(f, "host_allocs %llu\n", (unsigned long long)stats.host_allocs);
    fprintf(f, "live_allocs %llu\n", (unsigned long long)(n_device_allocs + n_host_allocs));
    fprintf(f, "clock_ns %llu\n", (unsigned long long)gpu_clock_ns);
    for (size_t i = 0; i < n_counters; i++)
      if (counters[i].launches && strcmp(counters[i].name, SPIN_NAME) != 0)
        fprintf(f, "kernel %s %llu\n", counters[i].name, (unsigned long long)counters[i].launches);
    if (fclose(f) == 0) rename(tmp, path);
  }
  pthread_mutex_unlock(&lock);
}
