// fake_cudnn: a stand-in for NVIDIA's libcudnn.so.9 that lets CI, which has no GPU, run Phantom's cuDNN in an
// executing process (profiling mode: docs/profiling.md, docs/cudnn.md "Keys and profiling"). Phantom's stub
// opens it as "NVIDIA's library" (a file named libcudnn.so.9 in PHANTOM_REAL_LIBS) and mirrors every handle and
// backend descriptor into it; tests/tests/e2e/cudnn.rs builds it with phantom_tests::compile_shared and runs it
// beside tests/programs/fake_cuda_driver.c (PHANTOM_REAL_DRIVER), whose clock times what it launches. It
// implements only the calls the stub forwards, with cudnn_graph.h's signatures (the header is not in the pinned
// wheels, so the few types are declared here), and checks what a mirror must get right:
//
//   - every descriptor- or handle-typed attribute value set, and every descriptor passed to fill, is one this
//     library made and has not destroyed (a stub descriptor or handle leaking through is counted as `foreign`
//     and refused with CUDNN_STATUS_BAD_PARAM = 2000); nothing else it is given is ever dereferenced;
//   - finalizing a tensor needs data type, dimensions, strides and unique id; a graph needs its handle and
//     operations; a plan its handle and a finalized engine configuration;
//   - executing needs a finalized plan and variant pack that binds a non-NULL pointer to every non-virtual
//     tensor uid of the graph, and a workspace if the plan has one (else 2000).
//
// ITS ANSWERS (distinct from Phantom's, so a test sees whose answer the application got)
//   Heuristics: 2 engine configurations, engines 41 and 42, each with one knob (type 24, value 99) and numerical
//   note 0. Plan workspace: 4096 bytes for a graph with exactly two matmuls (an SDPA forward), else 0. Engine
//   global count 50.
//
// ITS KERNEL
//   An execution launches one kernel, `fake_cudnn_engine`, on the stream set with cudnnSetStream, through the
//   driver named by PHANTOM_REAL_DRIVER (already loaded by Phantom's runtime): grid 10·(operations in the
//   graph), block 256. By the fake driver's rule it takes 10000·ops + 256 ns: 140 256 ns for a 14-operation
//   graph.
//
// ITS HOST TIME
//   With FAKE_CUDNN_CREATE_NS=N, cudnnCreate busy-waits N ns of real time, as NVIDIA's library loads its code
//   when the first handle is made (a one-off that following ranks must not be charged per export).
//
// COUNTERS
//   At exit, if FAKE_CUDNN_STATS names a directory, it writes <dir>/fake-cudnn-<pid>.txt with `handles N`
//   (created), `descriptors N` (created), `executions N` (kernels launched), `foreign N` and `live_handles N`.

#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int cudnnStatus_t;
typedef void *cudnnHandle_t;
typedef void *cudnnBackendDescriptor_t;

enum { OK = 0, BAD_PARAM = 2000, NOT_FINALIZED = 2004, EXECUTION_FAILED = 5000 };
/* cudnnBackendDescriptorType_t */
enum { ENGINE = 2, ENGINECFG = 3, ENGINEHEUR = 4, PLAN = 5, KNOB_CHOICE = 7, GRAPH = 15, PACK = 16, TENSOR = 17,
       OP_MATMUL = 19, TYPE_COUNT = 44 };
/* cudnnBackendAttributeType_t */
enum { T_HANDLE = 0, T_BOOLEAN = 2, T_INT64 = 3, T_VOID_PTR = 6, T_NUMERICAL_NOTE = 11, T_BACKEND_DESCRIPTOR = 15,
       T_KNOB_TYPE = 9 };

#define MAX_ATTRS 32
#define MAX_UIDS 64

struct attr {
    int name, type;
    int64_t count;
    unsigned char *bytes;
};

struct desc {
    int type, finalized;
    struct attr attrs[MAX_ATTRS];
    int n_attrs;
    /* What finalizing or filling worked out. */
    struct desc *graph; /* engine heuristics, configurations, engines, plans: their graph */
    int64_t engine, knob_type, knob_value, workspace;
    int n_ops, n_matmuls, n_uids;
    int64_t uids[MAX_UIDS]; /* a graph's non-virtual tensors */
};

struct handle {
    CUstream stream;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void **live; /* every live descriptor and handle */
static int *live_is_handle;
static size_t n_live, cap_live;
static unsigned long handles_made, descriptors_made, executions, foreign;
static __thread char last_error[256];

static void fail_msg(const char *msg) { snprintf(last_error, sizeof last_error, "fake_cudnn: %s", msg); }

static int find(void *p, int is_handle) {
    for (size_t i = 0; i < n_live; i++)
        if (live[i] == p && live_is_handle[i] == is_handle) return (int)i;
    return -1;
}

static struct desc *desc_of(void *p) { return find(p, 0) >= 0 ? (struct desc *)p : NULL; }
static struct handle *handle_of(void *p) { return find(p, 1) >= 0 ? (struct handle *)p : NULL; }

static int add_live(void *p, int is_handle) {
    if (n_live == cap_live) {
        size_t cap = cap_live ? 2 * cap_live : 64;
        void **l = realloc(live, cap * sizeof *l);
        if (!l) return 0;
        live = l;
        int *h = realloc(live_is_handle, cap * sizeof *h);
        if (!h) return 0;
        live_is_handle = h;
        cap_live = cap;
    }
    live[n_live] = p;
    live_is_handle[n_live++] = is_handle;
    return 1;
}

static void remove_live(int i) {
    live[i] = live[n_live - 1];
    live_is_handle[i] = live_is_handle[n_live - 1];
    n_live--;
}

static size_t type_size(int t) {
    switch (t) {
    case 0: case 3: case 5: case 6: case 15: return 8;
    case 2: case 24: return 1;
    case 26: return 16;
    default: return 4;
    }
}

static struct attr *get(struct desc *d, int name) {
    for (int i = 0; i < d->n_attrs; i++)
        if (d->attrs[i].name == name) return &d->attrs[i];
    return NULL;
}

static int64_t int64_attr(struct desc *d, int name, int64_t otherwise) {
    struct attr *a = get(d, name);
    if (!a || a->count < 1 || a->type != T_INT64) return otherwise;
    int64_t v;
    memcpy(&v, a->bytes, 8);
    return v;
}

static void *ptr_attr(struct desc *d, int name, int64_t i) {
    struct attr *a = get(d, name);
    if (!a || i >= a->count || type_size(a->type) != 8) return NULL;
    void *v;
    memcpy(&v, a->bytes + 8 * i, 8);
    return v;
}

/* ---- versions, errors, handles ---- */

size_t cudnnGetVersion(void) { return 91900; }

const char *cudnnGetErrorString(cudnnStatus_t s) { return s == 0 ? "CUDNN_STATUS_SUCCESS" : "CUDNN_STATUS_FAKE_ERROR"; }

void cudnnGetLastErrorString(char *message, size_t max_size) {
    if (!message || !max_size) return;
    snprintf(message, max_size, "%s", last_error);
    last_error[0] = 0;
}

// Busy-waits FAKE_CUDNN_CREATE_NS ns (ITS HOST TIME above).
static void create_host_time(void) {
    const char *v = getenv("FAKE_CUDNN_CREATE_NS");
    long long ns = v ? atoll(v) : 0;
    if (ns <= 0) return;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < ns);
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
    if (!h) return BAD_PARAM;
    create_host_time();
    struct handle *x = calloc(1, sizeof *x);
    pthread_mutex_lock(&lock);
    int ok = x && add_live(x, 1);
    if (ok) handles_made++;
    pthread_mutex_unlock(&lock);
    if (!ok) return 4000;
    *h = x;
    return OK;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
    pthread_mutex_lock(&lock);
    int i = find(h, 1);
    if (i >= 0) remove_live(i);
    pthread_mutex_unlock(&lock);
    if (i < 0) return 1001;
    free(h);
    return OK;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t h, CUstream s) {
    pthread_mutex_lock(&lock);
    struct handle *x = handle_of(h);
    if (x) x->stream = s;
    pthread_mutex_unlock(&lock);
    return x ? OK : 1001;
}

/* ---- descriptors ---- */

cudnnStatus_t cudnnBackendCreateDescriptor(int type, cudnnBackendDescriptor_t *d) {
    if (!d || type < 0 || type >= TYPE_COUNT) return BAD_PARAM;
    struct desc *x = calloc(1, sizeof *x);
    if (!x) return 4000;
    x->type = type;
    pthread_mutex_lock(&lock);
    int ok = add_live(x, 0);
    if (ok) descriptors_made++;
    pthread_mutex_unlock(&lock);
    if (!ok) return 4000;
    *d = x;
    return OK;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d) {
    pthread_mutex_lock(&lock);
    int i = find(d, 0);
    if (i >= 0) remove_live(i);
    pthread_mutex_unlock(&lock);
    if (i < 0) return BAD_PARAM;
    struct desc *x = d;
    for (int a = 0; a < x->n_attrs; a++) free(x->attrs[a].bytes);
    free(x);
    return OK;
}

static cudnnStatus_t set_locked(struct desc *d, int name, int type, int64_t count, const void *elems) {
    if (!d) return BAD_PARAM;
    if (d->finalized) return BAD_PARAM;
    if (count < 0 || count > 4096 || (count > 0 && !elems)) return BAD_PARAM;
    if (type == T_BACKEND_DESCRIPTOR || type == T_HANDLE) {
        for (int64_t i = 0; i < count; i++) {
            void *p;
            memcpy(&p, (const unsigned char *)elems + 8 * i, 8);
            if (p && find(p, type == T_HANDLE) < 0) {
                foreign++;
                fail_msg(type == T_HANDLE ? "a handle this library did not make" : "a descriptor this library did not make");
                return BAD_PARAM;
            }
        }
    }
    struct attr *a = get(d, name);
    if (!a) {
        if (d->n_attrs == MAX_ATTRS) return BAD_PARAM;
        a = &d->attrs[d->n_attrs++];
    } else {
        free(a->bytes);
    }
    size_t len = (size_t)count * type_size(type);
    a->name = name;
    a->type = type;
    a->count = count;
    a->bytes = malloc(len ? len : 1);
    if (len) memcpy(a->bytes, elems, len);
    return OK;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, int name, int type, int64_t count,
                                       const void *elems) {
    pthread_mutex_lock(&lock);
    cudnnStatus_t s = set_locked(desc_of(d), name, type, count, elems);
    pthread_mutex_unlock(&lock);
    return s;
}

/* A graph's operations, matmuls and non-virtual tensor uids. */
static cudnnStatus_t finalize_graph(struct desc *g) {
    struct attr *ops = get(g, 801);
    void *h = ptr_attr(g, 800, 0);
    if (!ops || ops->count < 1 || !h || !handle_of(h)) {
        fail_msg("graph without its handle or operations");
        return BAD_PARAM;
    }
    g->n_ops = (int)ops->count;
    for (int64_t i = 0; i < ops->count; i++) {
        struct desc *op = desc_of(ptr_attr(g, 801, i));
        if (!op || !op->finalized) return NOT_FINALIZED;
        if (op->type == OP_MATMUL) g->n_matmuls++;
        for (int a = 0; a < op->n_attrs; a++) {
            if (op->attrs[a].type != T_BACKEND_DESCRIPTOR) continue;
            for (int64_t k = 0; k < op->attrs[a].count; k++) {
                struct desc *t = desc_of(ptr_attr(op, op->attrs[a].name, k));
                if (!t || t->type != TENSOR) continue;
                struct attr *v = get(t, 907);
                if (v && v->count > 0 && v->bytes[0]) continue;
                int64_t uid = int64_attr(t, 906, -1);
                int seen = 0;
                for (int u = 0; u < g->n_uids; u++) seen |= g->uids[u] == uid;
                if (!seen && g->n_uids < MAX_UIDS) g->uids[g->n_uids++] = uid;
            }
        }
    }
    return OK;
}

static cudnnStatus_t finalize_locked(struct desc *d) {
    if (!d || d->finalized) return BAD_PARAM;
    switch (d->type) {
    case TENSOR:
        if (!get(d, 901) || !get(d, 902) || !get(d, 903) || !get(d, 906)) {
            fail_msg("tensor without data type, dimensions, strides or unique id");
            return BAD_PARAM;
        }
        break;
    case GRAPH: {
        cudnnStatus_t s = finalize_graph(d);
        if (s) return s;
        break;
    }
    case ENGINEHEUR: {
        struct desc *g = desc_of(ptr_attr(d, 201, 0));
        if (!g || !g->finalized || g->type != GRAPH) return BAD_PARAM;
        d->graph = g;
        break;
    }
    case ENGINE: {
        struct desc *g = desc_of(ptr_attr(d, 1300, 0));
        if (!g || !g->finalized || g->type != GRAPH) return BAD_PARAM;
        d->graph = g;
        d->engine = int64_attr(d, 1301, -1);
        break;
    }
    case ENGINECFG: {
        struct desc *e = desc_of(ptr_attr(d, 300, 0));
        if (!e || !e->finalized || e->type != ENGINE) return BAD_PARAM;
        d->graph = e->graph;
        d->engine = e->engine;
        break;
    }
    case PLAN: {
        struct desc *c = desc_of(ptr_attr(d, 401, 0));
        void *h = ptr_attr(d, 400, 0);
        if (!c || !c->finalized || c->type != ENGINECFG || !h || !handle_of(h)) {
            fail_msg("plan without its handle or a finalized engine configuration");
            return BAD_PARAM;
        }
        d->graph = c->graph;
        d->engine = c->engine;
        d->workspace = c->graph && c->graph->n_matmuls == 2 ? 4096 : 0;
        break;
    }
    case PACK: {
        struct attr *u = get(d, 1000), *p = get(d, 1001);
        if ((u ? u->count : 0) != (p ? p->count : 0)) return BAD_PARAM;
        break;
    }
    default:
        break;
    }
    d->finalized = 1;
    return OK;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t d) {
    pthread_mutex_lock(&lock);
    cudnnStatus_t s = finalize_locked(desc_of(d));
    pthread_mutex_unlock(&lock);
    return s;
}

/* Writes `n` values of `size` bytes (at most `requested`) and the count. */
static cudnnStatus_t answer(int64_t requested, int64_t *count, void *elems, const void *values, int64_t n,
                            size_t size) {
    if (count) *count = n;
    if (elems && values && n > 0 && requested > 0) memcpy(elems, values, (size_t)(n < requested ? n : requested) * size);
    return OK;
}

/* The caller's descriptors to fill: each must be ours and of type `type`. */
static cudnnStatus_t targets(void *elems, int64_t n, int type, struct desc **out) {
    for (int64_t i = 0; i < n; i++) {
        void *p;
        memcpy(&p, (unsigned char *)elems + 8 * i, 8);
        out[i] = desc_of(p);
        if (!out[i]) {
            foreign++;
            fail_msg("asked to fill a descriptor this library did not make");
            return BAD_PARAM;
        }
        if (out[i]->type != type) return BAD_PARAM;
    }
    return OK;
}

static cudnnStatus_t get_locked(struct desc *d, int name, int type, int64_t requested, int64_t *count,
                                void *elems) {
    if (!d || requested < 0) return BAD_PARAM;
    struct desc *t[8];
    int64_t fill = elems && requested > 0 ? (requested < 8 ? requested : 8) : 0;
    if (type == T_BACKEND_DESCRIPTOR && fill > 0) {
        int want = d->type == ENGINEHEUR && name == 202 ? ENGINECFG
                   : d->type == ENGINECFG && name == 300 ? ENGINE
                   : d->type == ENGINECFG && name == 302 ? KNOB_CHOICE
                                                         : -1;
        if (want >= 0) {
            if (!d->finalized) return NOT_FINALIZED;
            cudnnStatus_t s = targets(elems, fill, want, t);
            if (s) return s;
        }
    }
    switch (d->type * 10000 + name) {
    case ENGINEHEUR * 10000 + 202: /* results: engines 41 and 42 */
        if (!d->finalized) return NOT_FINALIZED;
        for (int64_t i = 0; i < fill && i < 2; i++) {
            t[i]->finalized = 1;
            t[i]->graph = d->graph;
            t[i]->engine = 41 + i;
        }
        if (count) *count = 2;
        return OK;
    case ENGINECFG * 10000 + 300:
        if (fill > 0) {
            t[0]->finalized = 1;
            t[0]->graph = d->graph;
            t[0]->engine = d->engine;
        }
        if (count) *count = 1;
        return OK;
    case ENGINECFG * 10000 + 302:
        if (fill > 0) {
            t[0]->finalized = 1;
            t[0]->knob_type = 24;
            t[0]->knob_value = 99;
        }
        if (count) *count = 1;
        return OK;
    case ENGINECFG * 10000 + 303:
    case PLAN * 10000 + 402: {
        int64_t ws = d->graph && d->graph->n_matmuls == 2 ? 4096 : 0;
        return answer(requested, count, elems, &ws, 1, 8);
    }
    case ENGINE * 10000 + 1301:
        return answer(requested, count, elems, &d->engine, 1, 8);
    case ENGINE * 10000 + 1303: {
        int note = 0;
        return answer(requested, count, elems, &note, 1, 4);
    }
    case KNOB_CHOICE * 10000 + 600: {
        int kt = (int)d->knob_type;
        return answer(requested, count, elems, &kt, 1, 4);
    }
    case KNOB_CHOICE * 10000 + 601:
        return answer(requested, count, elems, &d->knob_value, 1, 8);
    case GRAPH * 10000 + 802: {
        int64_t n = 50;
        return answer(requested, count, elems, &n, 1, 8);
    }
    default: {
        struct attr *a = get(d, name);
        if (!a) return answer(requested, count, elems, NULL, 0, 1);
        if (a->type != type) return 2010;
        if (type == T_BACKEND_DESCRIPTOR) { /* filling copies are not needed by the stub's callers */
            if (count) *count = a->count;
            return OK;
        }
        return answer(requested, count, elems, a->bytes, a->count, type_size(type));
    }
    }
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const d, int name, int type, int64_t requested,
                                       int64_t *count, void *elems) {
    pthread_mutex_lock(&lock);
    cudnnStatus_t s = get_locked(desc_of(d), name, type, requested, count, elems);
    pthread_mutex_unlock(&lock);
    return s;
}

/* ---- execution ---- */

static CUresult (*load_data)(CUmodule *, const void *);
static CUresult (*get_function)(CUfunction *, CUmodule, const char *);
static CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                          CUstream, void **, void **);
static CUfunction engine_kernel;

/* The driver Phantom's runtime loaded (PHANTOM_REAL_DRIVER) and the kernel, found on first use. */
static int driver(void) {
    if (engine_kernel) return 1;
    const char *path = getenv("PHANTOM_REAL_DRIVER");
    void *lib = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (!lib) {
        fail_msg("the driver of PHANTOM_REAL_DRIVER is not loaded");
        return 0;
    }
    load_data = (CUresult(*)(CUmodule *, const void *))dlsym(lib, "cuModuleLoadData");
    get_function = (CUresult(*)(CUfunction *, CUmodule, const char *))dlsym(lib, "cuModuleGetFunction");
    launch = (CUresult(*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                          void **, void **))dlsym(lib, "cuLaunchKernel");
    CUmodule m;
    if (!load_data || !get_function || !launch || load_data(&m, ".version 8.0\n.target sm_90\n") != CUDA_SUCCESS ||
        get_function(&engine_kernel, m, "fake_cudnn_engine") != CUDA_SUCCESS) {
        fail_msg("cannot load the kernel");
        engine_kernel = NULL;
        return 0;
    }
    return 1;
}

static cudnnStatus_t execute_locked(struct handle *h, struct desc *plan, struct desc *pack) {
    if (!h) return 1001;
    if (!plan || !pack || plan->type != PLAN || pack->type != PACK) return BAD_PARAM;
    if (!plan->finalized || !pack->finalized) return NOT_FINALIZED;
    struct desc *g = plan->graph;
    struct attr *uids = get(pack, 1000);
    for (int u = 0; g && u < g->n_uids; u++) {
        int bound = 0;
        for (int64_t i = 0; uids && i < uids->count; i++) {
            int64_t uid;
            memcpy(&uid, uids->bytes + 8 * i, 8);
            bound |= uid == g->uids[u] && ptr_attr(pack, 1001, i) != NULL;
        }
        if (!bound) {
            fail_msg("the variant pack does not bind every tensor");
            return BAD_PARAM;
        }
    }
    if (plan->workspace > 0 && !ptr_attr(pack, 1003, 0)) {
        fail_msg("the plan needs a workspace");
        return BAD_PARAM;
    }
    if (!driver()) return EXECUTION_FAILED;
    unsigned grid = 10u * (unsigned)(g ? g->n_ops : 1);
    if (launch(engine_kernel, grid, 1, 1, 256, 1, 1, 0, h->stream, NULL, NULL) != CUDA_SUCCESS) {
        fail_msg("cuLaunchKernel failed (is the stream the driver's?)");
        return EXECUTION_FAILED;
    }
    executions++;
    return OK;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack) {
    pthread_mutex_lock(&lock);
    cudnnStatus_t s = execute_locked(handle_of(h), desc_of(plan), desc_of(pack));
    pthread_mutex_unlock(&lock);
    return s;
}

__attribute__((destructor)) static void write_stats(void) {
    const char *dir = getenv("FAKE_CUDNN_STATS");
    if (!dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/fake-cudnn-%d.txt", dir, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return;
    size_t live_handles = 0;
    for (size_t i = 0; i < n_live; i++) live_handles += live_is_handle[i];
    fprintf(f, "handles %lu\ndescriptors %lu\nexecutions %lu\nforeign %lu\nlive_handles %zu\n", handles_made,
            descriptors_made, executions, foreign, live_handles);
    fclose(f);
}
