/* cuDNN's backend (graph) API on Phantom's libcudnn.so.9 from plain C, the way PyTorch's cuDNN frontend drives it
 * for scaled-dot-product attention: tensors and operations → operation graph → heuristics → engine configs →
 * execution plan → workspace size → variant pack → execute, timed with CUDA events. cudnn.h is not in the
 * pinned wheels, so the few enum values used are declared here (cudnn_graph.h of cuDNN 9.19) and the library is
 * opened with dlopen. Prints `name=value` lines; the test (tests/tests/e2e/cudnn.rs) checks them. Exit status 1
 * if a call that must succeed failed or a time differs from the model.
 *
 * The model (docs/cudnn.md): an SDPA graph runs as one kernel whose time is the roofline of its compute, the GEMM
 * {batch b·h, m = s_q, n = s_kv (⌈s_kv/2⌉ when causal), k = slowdown·FLOPs/(2·b·h·s_q·s_kv)} without operand
 * bytes, and of its device tensors' bytes, each through the runtime's GEMM model (sim-core/src/blas.rs) on the
 * default GPU, an H100 SXM 80GB: bf16 peak 989.4e12 FLOP/s × GEMM_EFFICIENCY 0.75 = 742.05e12 FLOP/s, HBM
 * 3.0e12 B/s, plus GEMM_FIXED_NS = 3000 once. The slowdown (2.55 forward, 3.54 backward) is what an H100 measured
 * for this very shape. For b=8, h=12, s=1024, d=64 in bf16 (GPT-2's attention at batch 8):
 *   forward, causal: 2·96·1024²·128 = 25769803776 FLOP × 2.55 → k = ⌈65712999628 / 201326592⌉ = 327, n = 512:
 *     2·1024·512·327·96 = 32917946368 FLOP → 44360.3 ns (bytes: 16908.3 ns, less) → 44360 + 3000 = 47360 ns
 *     (the H100: 47.3 µs).
 *   forward, not causal: n = 1024: 65835892736 FLOP → 88719 + 3000 = 91719 ns as the events measure it.
 *   backward, causal: k = 3·d_qk + 2·d_v = 320 base, × 3.54 → k = 1133: 2·1024·512·1133·96 = 114051006464 FLOP
 *     → 153697.5 ns (bytes: 33554.4 ns, less) → 153698 + 3000 = 156698 ns (the H100: 156.8 µs).
 *   a plain bf16 matmul 4096×4096×4096 (no softmax): a GEMM as cuBLAS's (3·4096²·2 B → 33554.4 ns, less than
 *     185215.2 ns of compute) → 185216 + 3000 = 188216 ns.
 * Each timed execution follows two warm-up executions on the same stream, still running when the start event is
 * recorded, so the events bracket exactly one execution.
 *
 * With the argument `unsupported` it instead finalizes a graph with an operation Phantom does not model (a
 * normalization) and prints the status, which must come with one log line on stderr. With the argument
 * `other-times` the times are printed but not compared with the model's: a kernel-time table
 * (PHANTOM_KERNEL_TABLE) or profiling mode times the executions instead (tests/tests/e2e/cudnn.rs). */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cuda_runtime.h>

typedef void *desc_t;
typedef void *cudnn_t;

/* cudnnBackendDescriptorType_t */
enum {
    POINTWISE_DESC = 0, ENGINE_DESC = 2, ENGINECFG_DESC = 3, ENGINEHEUR_DESC = 4, EXECUTION_PLAN_DESC = 5,
    KNOB_CHOICE_DESC = 7, OP_POINTWISE_DESC = 13, OPERATIONGRAPH_DESC = 15, VARIANT_PACK_DESC = 16,
    TENSOR_DESC = 17, MATMUL_DESC = 18, OP_MATMUL_DESC = 19, REDUCTION_DESC = 21, OP_REDUCTION_DESC = 22,
    OP_NORM_FORWARD_DESC = 29, OP_RESHAPE_DESC = 31
};
/* cudnnBackendAttributeType_t */
enum { T_HANDLE = 0, T_DATA_TYPE = 1, T_BOOLEAN = 2, T_INT64 = 3, T_FLOAT = 4, T_VOID_PTR = 6, T_HEUR_MODE = 8,
       T_KNOB_TYPE = 9, T_POINTWISE_MODE = 14, T_BACKEND_DESCRIPTOR = 15, T_REDUCTION_OPERATOR = 18 };
/* cudnnBackendAttributeName_t */
enum {
    A_POINTWISE_MODE = 0, A_POINTWISE_MATH_PREC = 1, A_POINTWISE_AXIS = 9, A_ENGINEHEUR_MODE = 200,
    A_ENGINEHEUR_OPERATION_GRAPH = 201, A_ENGINEHEUR_RESULTS = 202, A_ENGINECFG_ENGINE = 300,
    A_ENGINECFG_KNOB_CHOICES = 302, A_EXECUTION_PLAN_HANDLE = 400, A_EXECUTION_PLAN_ENGINE_CONFIG = 401,
    A_EXECUTION_PLAN_WORKSPACE_SIZE = 402, A_KNOB_CHOICE_KNOB_TYPE = 600, A_KNOB_CHOICE_KNOB_VALUE = 601,
    A_OP_PW_DESC = 750, A_OP_PW_X = 751, A_OP_PW_B = 752, A_OP_PW_Y = 753, A_OP_PW_T = 758,
    A_OPERATIONGRAPH_HANDLE = 800, A_OPERATIONGRAPH_OPS = 801,
    A_TENSOR_BYTE_ALIGNMENT = 900, A_TENSOR_DATA_TYPE = 901, A_TENSOR_DIMENSIONS = 902, A_TENSOR_STRIDES = 903,
    A_TENSOR_UNIQUE_ID = 906, A_TENSOR_IS_VIRTUAL = 907, A_TENSOR_IS_BY_VALUE = 908, A_VARIANT_PACK_UNIQUE_IDS = 1000,
    A_VARIANT_PACK_DATA_POINTERS = 1001, A_VARIANT_PACK_WORKSPACE = 1003, A_ENGINE_GLOBAL_INDEX = 1301,
    A_ENGINE_NUMERICAL_NOTE = 1303, A_MATMUL_COMP_TYPE = 1500, A_OP_MATMUL_A = 1520, A_OP_MATMUL_B = 1521,
    A_OP_MATMUL_C = 1522, A_OP_MATMUL_DESC = 1523, A_REDUCTION_OPERATOR = 1600, A_REDUCTION_COMP_TYPE = 1601,
    A_OP_REDUCTION_X = 1610, A_OP_REDUCTION_Y = 1611, A_OP_REDUCTION_DESC = 1612, A_OP_RESHAPE_X = 2200,
    A_OP_RESHAPE_Y = 2201
};
/* cudnnDataType_t, cudnnPointwiseMode_t, cudnnReduceTensorOp_t, cudnnBackendHeurMode_t */
enum { D_FLOAT = 0, D_INT32 = 4, D_BFLOAT16 = 9, D_BOOLEAN = 11 };
enum { PW_ADD = 0, PW_MUL = 1, PW_DIV = 6, PW_SUB = 9, PW_EXP = 13, PW_LOG = 15, PW_CMP_GE = 303,
       PW_GEN_INDEX = 501, PW_BINARY_SELECT = 601 };
enum { REDUCE_ADD = 0, REDUCE_MAX = 3 };
enum { HEUR_MODE_A = 3 };

static int (*create_desc)(int, desc_t *);
static int (*destroy_desc)(desc_t);
static int (*set_attr)(desc_t, int, int, int64_t, const void *);
static int (*get_attr)(desc_t, int, int, int64_t, int64_t *, void *);
static int (*finalize)(desc_t);
static int (*execute)(cudnn_t, desc_t, desc_t);

static int failures = 0;
/* Compare each time with the model's (not with the argument `other-times`). */
static int model_times = 1;

static void check(const char *call, int status) {
    if (status != 0) {
        printf("%s=%d\n", call, status);
        failures++;
    }
}

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        printf("missing=%s\n", name);
        failures++;
    }
    return p;
}

static desc_t make(int type) {
    desc_t d = NULL;
    check("cudnnBackendCreateDescriptor", create_desc(type, &d));
    return d;
}

static void set_desc(desc_t d, int name, desc_t v) { check("set_desc", set_attr(d, name, T_BACKEND_DESCRIPTOR, 1, &v)); }
static void set_i64(desc_t d, int name, int64_t v) { check("set_i64", set_attr(d, name, T_INT64, 1, &v)); }
static void set_int(desc_t d, int name, int type, int v) { check("set_int", set_attr(d, name, type, 1, &v)); }

/* A packed (row-major) 4-d tensor; `flags` 1 = virtual, 2 = by value. */
static desc_t tensor(int64_t uid, int dtype, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int flags) {
    int64_t dims[4] = {d0, d1, d2, d3};
    int64_t strides[4] = {d1 * d2 * d3, d2 * d3, d3, 1};
    desc_t t = make(TENSOR_DESC);
    set_int(t, A_TENSOR_DATA_TYPE, T_DATA_TYPE, dtype);
    check("dims", set_attr(t, A_TENSOR_DIMENSIONS, T_INT64, 4, dims));
    check("strides", set_attr(t, A_TENSOR_STRIDES, T_INT64, 4, strides));
    set_i64(t, A_TENSOR_UNIQUE_ID, uid);
    set_i64(t, A_TENSOR_BYTE_ALIGNMENT, 16);
    char is_virtual = (flags & 1) != 0, by_value = (flags & 2) != 0;
    if (is_virtual) check("virtual", set_attr(t, A_TENSOR_IS_VIRTUAL, T_BOOLEAN, 1, &is_virtual));
    if (by_value) check("by_value", set_attr(t, A_TENSOR_IS_BY_VALUE, T_BOOLEAN, 1, &by_value));
    check("finalize tensor", finalize(t));
    return t;
}

/* A pointwise operation y = mode(x[, b][, t]); `axis` >= 0 for GEN_INDEX. The mode descriptor is destroyed once
 * the operation is finalized, as the frontend does. */
static desc_t pointwise(int mode, desc_t x, desc_t b, desc_t t, desc_t y, int64_t axis) {
    desc_t pw = make(POINTWISE_DESC);
    set_int(pw, A_POINTWISE_MODE, T_POINTWISE_MODE, mode);
    set_int(pw, A_POINTWISE_MATH_PREC, T_DATA_TYPE, mode == PW_CMP_GE ? D_BOOLEAN : D_FLOAT);
    if (axis >= 0) set_i64(pw, A_POINTWISE_AXIS, axis);
    check("finalize pw", finalize(pw));
    desc_t op = make(OP_POINTWISE_DESC);
    set_desc(op, A_OP_PW_DESC, pw);
    set_desc(op, A_OP_PW_X, x);
    if (b) set_desc(op, A_OP_PW_B, b);
    if (t) set_desc(op, A_OP_PW_T, t);
    set_desc(op, A_OP_PW_Y, y);
    float one = 1.0f;
    check("alpha1", set_attr(op, 754, T_FLOAT, 1, &one));
    check("finalize pointwise op", finalize(op));
    check("destroy pw", destroy_desc(pw));
    return op;
}

static desc_t matmul(desc_t a, desc_t b, desc_t c) {
    desc_t mm = make(MATMUL_DESC);
    set_int(mm, A_MATMUL_COMP_TYPE, T_DATA_TYPE, D_FLOAT);
    check("finalize matmul desc", finalize(mm));
    desc_t op = make(OP_MATMUL_DESC);
    set_desc(op, A_OP_MATMUL_A, a);
    set_desc(op, A_OP_MATMUL_B, b);
    set_desc(op, A_OP_MATMUL_C, c);
    set_desc(op, A_OP_MATMUL_DESC, mm);
    check("finalize matmul op", finalize(op));
    check("destroy matmul desc", destroy_desc(mm));
    return op;
}

static desc_t reduction(int mode, desc_t x, desc_t y) {
    desc_t r = make(REDUCTION_DESC);
    set_int(r, A_REDUCTION_OPERATOR, T_REDUCTION_OPERATOR, mode);
    set_int(r, A_REDUCTION_COMP_TYPE, T_DATA_TYPE, D_FLOAT);
    check("finalize reduction desc", finalize(r));
    desc_t op = make(OP_REDUCTION_DESC);
    set_desc(op, A_OP_REDUCTION_DESC, r);
    set_desc(op, A_OP_REDUCTION_X, x);
    set_desc(op, A_OP_REDUCTION_Y, y);
    check("finalize reduction op", finalize(op));
    check("destroy reduction desc", destroy_desc(r));
    return op;
}

static desc_t reshape(desc_t x, desc_t y) {
    desc_t op = make(OP_RESHAPE_DESC);
    set_desc(op, A_OP_RESHAPE_X, x);
    set_desc(op, A_OP_RESHAPE_Y, y);
    check("finalize reshape", finalize(op));
    return op;
}

static desc_t graph(cudnn_t h, desc_t *ops, int n) {
    desc_t g = make(OPERATIONGRAPH_DESC);
    check("graph ops", set_attr(g, A_OPERATIONGRAPH_OPS, T_BACKEND_DESCRIPTOR, n, ops));
    check("graph handle", set_attr(g, A_OPERATIONGRAPH_HANDLE, T_HANDLE, 1, &h));
    check("finalize graph", finalize(g));
    return g;
}

/* Heuristics → the first engine config → execution plan on handle `h`, printing `<case>_configs`, `_engine`,
 * `_knobs` (type:value pairs) and `_workspace`. */
static desc_t plan(const char *name, cudnn_t h, desc_t g, int64_t *workspace) {
    desc_t heur = make(ENGINEHEUR_DESC);
    set_desc(heur, A_ENGINEHEUR_OPERATION_GRAPH, g);
    set_int(heur, A_ENGINEHEUR_MODE, T_HEUR_MODE, HEUR_MODE_A);
    check("finalize heur", finalize(heur));
    int64_t count = -1;
    check("heur count", get_attr(heur, A_ENGINEHEUR_RESULTS, T_BACKEND_DESCRIPTOR, 0, &count, NULL));
    printf("%s_configs=%lld\n", name, (long long)count);
    desc_t cfgs[8];
    for (int i = 0; i < 8; i++) cfgs[i] = make(ENGINECFG_DESC);
    int64_t got = -1;
    check("heur results", get_attr(heur, A_ENGINEHEUR_RESULTS, T_BACKEND_DESCRIPTOR, 8, &got, cfgs));

    desc_t engine = make(ENGINE_DESC);
    check("cfg engine", get_attr(cfgs[0], A_ENGINECFG_ENGINE, T_BACKEND_DESCRIPTOR, 1, &got, &engine));
    int64_t index = -1;
    check("engine index", get_attr(engine, A_ENGINE_GLOBAL_INDEX, T_INT64, 1, &got, &index));
    int notes[10];
    int64_t n_notes = -1;
    check("engine notes", get_attr(engine, A_ENGINE_NUMERICAL_NOTE, 11, 10, &n_notes, notes));
    printf("%s_engine=%lld\n%s_tensor_core=%d\n", name, (long long)index, name, n_notes >= 1 && notes[0] == 0);
    desc_t knobs[4];
    for (int i = 0; i < 4; i++) knobs[i] = make(KNOB_CHOICE_DESC);
    int64_t n_knobs = -1;
    check("cfg knobs", get_attr(cfgs[0], A_ENGINECFG_KNOB_CHOICES, T_BACKEND_DESCRIPTOR, 4, &n_knobs, knobs));
    printf("%s_knobs=", name);
    for (int i = 0; i < n_knobs && i < 4; i++) {
        int type = -1;
        int64_t value = -2;
        check("knob type", get_attr(knobs[i], A_KNOB_CHOICE_KNOB_TYPE, T_KNOB_TYPE, 1, NULL, &type));
        check("knob value", get_attr(knobs[i], A_KNOB_CHOICE_KNOB_VALUE, T_INT64, 1, NULL, &value));
        printf("%s%d:%lld", i ? "," : "", type, (long long)value);
    }
    printf("\n");

    desc_t p = make(EXECUTION_PLAN_DESC);
    set_desc(p, A_EXECUTION_PLAN_ENGINE_CONFIG, cfgs[0]);
    check("plan handle", set_attr(p, A_EXECUTION_PLAN_HANDLE, T_HANDLE, 1, &h));
    check("finalize plan", finalize(p));
    check("plan workspace", get_attr(p, A_EXECUTION_PLAN_WORKSPACE_SIZE, T_INT64, 1, NULL, workspace));
    printf("%s_workspace=%lld\n", name, (long long)*workspace);
    /* The plan keeps what it needs: everything it came from can go. */
    for (int i = 0; i < 8; i++) check("destroy cfg", destroy_desc(cfgs[i]));
    for (int i = 0; i < 4; i++) check("destroy knob", destroy_desc(knobs[i]));
    check("destroy engine", destroy_desc(engine));
    check("destroy heur", destroy_desc(heur));
    return p;
}

static desc_t variant_pack(const int64_t *uids, void *const *ptrs, int n, void *workspace) {
    desc_t v = make(VARIANT_PACK_DESC);
    check("pack uids", set_attr(v, A_VARIANT_PACK_UNIQUE_IDS, T_INT64, n, uids));
    check("pack ptrs", set_attr(v, A_VARIANT_PACK_DATA_POINTERS, T_VOID_PTR, n, ptrs));
    check("pack workspace", set_attr(v, A_VARIANT_PACK_WORKSPACE, T_VOID_PTR, 1, &workspace));
    check("finalize pack", finalize(v));
    return v;
}

/* Two warm-up executions, then one between events: prints `<name>_ms` and checks it against `expect_ms`. */
static void timed(const char *name, cudnn_t h, desc_t p, desc_t v, cudaStream_t s, double expect_ms) {
    cudaEvent_t start, stop;
    float ms = -1;
    check("cudaEventCreate", cudaEventCreate(&start));
    check("cudaEventCreate", cudaEventCreate(&stop));
    check("cudnnBackendExecute", execute(h, p, v));
    check("cudnnBackendExecute", execute(h, p, v));
    check("cudaEventRecord", cudaEventRecord(start, s));
    check("cudnnBackendExecute", execute(h, p, v));
    check("cudaEventRecord", cudaEventRecord(stop, s));
    check("cudaEventSynchronize", cudaEventSynchronize(stop));
    check("cudaEventElapsedTime", cudaEventElapsedTime(&ms, start, stop));
    printf("%s_ms=%.6f\n", name, ms);
    if (model_times && fabs(ms - expect_ms) > 1e-6) failures++;
}

enum { B = 8, H = 12, S = 1024, D = 64 };

/* The forward graph torch 2.11's frontend builds (calibration/torch/h100-sxm-80gb/cudnn.log.gz): S = Q·Kᵀ,
 * scaled, causally masked (GEN_INDEX rows and columns, CMP_GE, BINARY_SELECT with -inf), softmax with its stats
 * (max, sub, exp, sum, log, add) and O = P·V. Device tensor uids 1..5, by-value scalars 6, 7. */
static desc_t sdpa_forward(cudnn_t h, int causal) {
    desc_t q = tensor(1, D_BFLOAT16, B, H, S, D, 0), kt = tensor(2, D_BFLOAT16, B, H, D, S, 0);
    desc_t v = tensor(3, D_BFLOAT16, B, H, S, D, 0), o = tensor(4, D_BFLOAT16, B, H, S, D, 0);
    desc_t stats = tensor(5, D_FLOAT, B, H, S, 1, 0);
    desc_t scale = tensor(6, D_FLOAT, 1, 1, 1, 1, 2), neg_inf = tensor(7, D_FLOAT, 1, 1, 1, 1, 2);
    desc_t s0 = tensor(100, D_FLOAT, B, H, S, S, 1), s1 = tensor(101, D_FLOAT, B, H, S, S, 1);
    desc_t row = tensor(102, D_INT32, B, H, S, S, 1), col = tensor(103, D_INT32, B, H, S, S, 1);
    desc_t mask = tensor(104, D_BOOLEAN, B, H, S, S, 1), s2 = tensor(105, D_FLOAT, B, H, S, S, 1);
    desc_t max = tensor(106, D_FLOAT, B, H, S, 1, 1), s3 = tensor(107, D_FLOAT, B, H, S, S, 1);
    desc_t e = tensor(108, D_FLOAT, B, H, S, S, 1), sum = tensor(109, D_FLOAT, B, H, S, 1, 1);
    desc_t log_sum = tensor(110, D_FLOAT, B, H, S, 1, 1), p = tensor(111, D_BFLOAT16, B, H, S, S, 1);
    desc_t masked = causal ? s2 : s1;
    desc_t ops[14];
    int n = 0;
    ops[n++] = matmul(q, kt, s0);
    ops[n++] = pointwise(PW_MUL, s0, scale, NULL, s1, -1);
    if (causal) {
        ops[n++] = pointwise(PW_GEN_INDEX, s1, NULL, NULL, row, 2);
        ops[n++] = pointwise(PW_GEN_INDEX, s1, NULL, NULL, col, 3);
        ops[n++] = pointwise(PW_CMP_GE, row, col, NULL, mask, -1);
        ops[n++] = pointwise(PW_BINARY_SELECT, s1, neg_inf, mask, s2, -1);
    }
    ops[n++] = reduction(REDUCE_MAX, masked, max);
    ops[n++] = pointwise(PW_SUB, masked, max, NULL, s3, -1);
    ops[n++] = pointwise(PW_EXP, s3, NULL, NULL, e, -1);
    ops[n++] = reduction(REDUCE_ADD, e, sum);
    ops[n++] = pointwise(PW_LOG, sum, NULL, NULL, log_sum, -1);
    ops[n++] = pointwise(PW_ADD, max, log_sum, NULL, stats, -1);
    ops[n++] = pointwise(PW_DIV, e, sum, NULL, p, -1);
    ops[n++] = matmul(p, v, o);
    return graph(h, ops, n);
}

/* The backward graph reduced to its shape: S = Q·Kᵀ, causal mask, P = exp(S), dP = dO·Vᵀ, dS = P·dP, and the three
 * gradients dV = Pᵀ·dO, dQ = dS·K, dK = dSᵀ·Q (the transposes as reshapes). Device uids 11..18. */
static desc_t sdpa_backward(cudnn_t h) {
    desc_t q = tensor(11, D_BFLOAT16, B, H, S, D, 0), kt = tensor(12, D_BFLOAT16, B, H, D, S, 0);
    desc_t k = tensor(13, D_BFLOAT16, B, H, S, D, 0), vt = tensor(14, D_BFLOAT16, B, H, D, S, 0);
    desc_t d_o = tensor(15, D_BFLOAT16, B, H, S, D, 0), dq = tensor(16, D_BFLOAT16, B, H, S, D, 0);
    desc_t dk = tensor(17, D_BFLOAT16, B, H, S, D, 0), dv = tensor(18, D_BFLOAT16, B, H, S, D, 0);
    desc_t neg_inf = tensor(19, D_FLOAT, 1, 1, 1, 1, 2);
    desc_t s0 = tensor(200, D_FLOAT, B, H, S, S, 1), row = tensor(201, D_INT32, B, H, S, S, 1);
    desc_t col = tensor(202, D_INT32, B, H, S, S, 1), mask = tensor(203, D_BOOLEAN, B, H, S, S, 1);
    desc_t s1 = tensor(204, D_FLOAT, B, H, S, S, 1), p = tensor(205, D_FLOAT, B, H, S, S, 1);
    desc_t pt = tensor(206, D_BFLOAT16, B, H, S, S, 1), dp = tensor(207, D_FLOAT, B, H, S, S, 1);
    desc_t ds = tensor(208, D_BFLOAT16, B, H, S, S, 1), dst = tensor(209, D_BFLOAT16, B, H, S, S, 1);
    desc_t ops[] = {
        matmul(q, kt, s0),
        pointwise(PW_GEN_INDEX, s0, NULL, NULL, row, 2),
        pointwise(PW_GEN_INDEX, s0, NULL, NULL, col, 3),
        pointwise(PW_CMP_GE, row, col, NULL, mask, -1),
        pointwise(PW_BINARY_SELECT, s0, neg_inf, mask, s1, -1),
        pointwise(PW_EXP, s1, NULL, NULL, p, -1),
        reshape(p, pt),
        matmul(pt, d_o, dv),
        matmul(d_o, vt, dp),
        pointwise(PW_MUL, p, dp, NULL, ds, -1),
        matmul(ds, k, dq),
        reshape(ds, dst),
        matmul(dst, q, dk),
    };
    return graph(h, ops, (int)(sizeof ops / sizeof ops[0]));
}

static int unsupported(cudnn_t h) {
    desc_t x = tensor(1, D_FLOAT, 8, 1024, 768, 1, 0), y = tensor(2, D_FLOAT, 8, 1024, 768, 1, 0);
    desc_t op = make(OP_NORM_FORWARD_DESC);
    set_desc(op, 2002, x); /* CUDNN_ATTR_OPERATION_NORM_FWD_XDESC */
    set_desc(op, 2013, y); /* CUDNN_ATTR_OPERATION_NORM_FWD_YDESC */
    check("finalize norm op", finalize(op));
    desc_t g = make(OPERATIONGRAPH_DESC);
    check("graph ops", set_attr(g, A_OPERATIONGRAPH_OPS, T_BACKEND_DESCRIPTOR, 1, &op));
    check("graph handle", set_attr(g, A_OPERATIONGRAPH_HANDLE, T_HANDLE, 1, &h));
    printf("unsupported_graph=%d\n", finalize(g));
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    void *lib = dlopen("libcudnn.so.9", RTLD_NOW);
    if (!lib) {
        printf("dlopen=%s\n", dlerror());
        return 1;
    }
    size_t (*get_version)(void) = (size_t(*)(void))sym(lib, "cudnnGetVersion");
    int (*get_property)(int, int *) = (int (*)(int, int *))sym(lib, "cudnnGetProperty");
    const char *(*error_string)(int) = (const char *(*)(int))sym(lib, "cudnnGetErrorString");
    void (*last_error)(char *, size_t) = (void (*)(char *, size_t))sym(lib, "cudnnGetLastErrorString");
    int (*create)(cudnn_t *) = (int (*)(cudnn_t *))sym(lib, "cudnnCreate");
    int (*destroy)(cudnn_t) = (int (*)(cudnn_t))sym(lib, "cudnnDestroy");
    int (*set_stream)(cudnn_t, cudaStream_t) = (int (*)(cudnn_t, cudaStream_t))sym(lib, "cudnnSetStream");
    int (*get_stream)(cudnn_t, cudaStream_t *) = (int (*)(cudnn_t, cudaStream_t *))sym(lib, "cudnnGetStream");
    create_desc = (int (*)(int, desc_t *))sym(lib, "cudnnBackendCreateDescriptor");
    destroy_desc = (int (*)(desc_t))sym(lib, "cudnnBackendDestroyDescriptor");
    set_attr = (int (*)(desc_t, int, int, int64_t, const void *))sym(lib, "cudnnBackendSetAttribute");
    get_attr = (int (*)(desc_t, int, int, int64_t, int64_t *, void *))sym(lib, "cudnnBackendGetAttribute");
    finalize = (int (*)(desc_t))sym(lib, "cudnnBackendFinalize");
    execute = (int (*)(cudnn_t, desc_t, desc_t))sym(lib, "cudnnBackendExecute");
    if (failures) return 1;

    cudnn_t h = NULL;
    cudaStream_t s = NULL, got = NULL;
    check("cudnnCreate", create(&h));
    if (argc > 1 && strcmp(argv[1], "unsupported") == 0) return unsupported(h);
    if (argc > 1 && strcmp(argv[1], "other-times") == 0) model_times = 0;

    int major = -1, minor = -1, patch = -1;
    check("cudnnGetProperty", get_property(0, &major));
    check("cudnnGetProperty", get_property(1, &minor));
    check("cudnnGetProperty", get_property(2, &patch));
    printf("version=%zu\nproperty=%d.%d.%d\n", get_version(), major, minor, patch);
    check("cudaStreamCreate", cudaStreamCreate(&s));
    check("cudnnSetStream", set_stream(h, s));
    check("cudnnGetStream", get_stream(h, &got));
    printf("stream_same=%d\n", got == s);

    /* Device buffers: Phantom's device memory holds no data, the pointers only have to be there. */
    void *q, *k, *v, *o, *stats, *ws;
    check("cudaMalloc", cudaMalloc(&q, (size_t)B * H * S * D * 2));
    check("cudaMalloc", cudaMalloc(&k, (size_t)B * H * S * D * 2));
    check("cudaMalloc", cudaMalloc(&v, (size_t)B * H * S * D * 2));
    check("cudaMalloc", cudaMalloc(&o, (size_t)B * H * S * D * 2));
    check("cudaMalloc", cudaMalloc(&stats, (size_t)B * H * S * 4));
    check("cudaMalloc", cudaMalloc(&ws, 1 << 20));
    float scale = 0.125f, neg_inf = -INFINITY;

    /* Forward, causal and not. */
    int64_t fwd_ws = -1;
    desc_t g = sdpa_forward(h, 1);
    desc_t p = plan("fwd", h, g, &fwd_ws);
    int64_t fwd_uids[] = {1, 2, 3, 4, 5, 6, 7};
    void *fwd_ptrs[] = {q, k, v, o, stats, &scale, &neg_inf};
    desc_t pack = variant_pack(fwd_uids, fwd_ptrs, 7, ws);
    timed("fwd_causal", h, p, pack, s, 0.047360);
    int64_t full_ws = -1;
    desc_t full = plan("fwd_full", h, sdpa_forward(h, 0), &full_ws);
    desc_t full_pack = variant_pack(fwd_uids, fwd_ptrs, 6, ws); /* no -inf without the mask */
    timed("fwd_full", h, full, full_pack, s, 0.091719);

    /* Backward. */
    int64_t bwd_ws = -1;
    desc_t bp = plan("bwd", h, sdpa_backward(h), &bwd_ws);
    int64_t bwd_uids[] = {11, 12, 13, 14, 15, 16, 17, 18, 19};
    void *bwd_ptrs[] = {q, k, k, v, o, q, k, v, &neg_inf};
    desc_t bwd_pack = variant_pack(bwd_uids, bwd_ptrs, 9, NULL);
    timed("bwd_causal", h, bp, bwd_pack, s, 0.156698);

    /* A plain bf16 matmul 4096³ (no softmax): a GEMM, as cuBLAS's. */
    void *a;
    check("cudaMalloc", cudaMalloc(&a, (size_t)4096 * 4096 * 2));
    desc_t ma = tensor(1, D_BFLOAT16, 1, 1, 4096, 4096, 0), mb = tensor(2, D_BFLOAT16, 1, 1, 4096, 4096, 0);
    desc_t mc = tensor(3, D_BFLOAT16, 1, 1, 4096, 4096, 0);
    desc_t mm_op = matmul(ma, mb, mc);
    int64_t mm_ws = -1;
    desc_t mm_plan = plan("matmul", h, graph(h, &mm_op, 1), &mm_ws);
    int64_t mm_uids[] = {1, 2, 3};
    void *mm_ptrs[] = {a, a, a};
    desc_t mm_pack = variant_pack(mm_uids, mm_ptrs, 3, NULL);
    timed("matmul_bf16", h, mm_plan, mm_pack, s, 0.188216);

    /* Errors. An unknown descriptor (CUDNN_STATUS_BAD_PARAM = 2000), an attribute of the wrong type
     * (CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE = 2010), a tensor without dimensions (2000), executing a plan that is
     * not finalized (CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED = 2004), a variant pack missing a tensor (2000), the
     * forward plan without a workspace (it needs 16 bytes: 2000), a destroyed handle
     * (CUDNN_STATUS_NOT_INITIALIZED = 1001). */
    int64_t one = 1;
    printf("set_unknown_descriptor=%d\n", set_attr((desc_t)0x1234, A_TENSOR_UNIQUE_ID, T_INT64, 1, &one));
    char message[256] = "";
    last_error(message, sizeof message);
    printf("last_error=%s\n", message);
    printf("error_string=%s\n", error_string(2000));
    desc_t t = make(TENSOR_DESC);
    float f = 1.0f;
    printf("set_wrong_type=%d\n", set_attr(t, A_TENSOR_DIMENSIONS, T_FLOAT, 1, &f));
    set_int(t, A_TENSOR_DATA_TYPE, T_DATA_TYPE, D_FLOAT);
    set_i64(t, A_TENSOR_UNIQUE_ID, 99);
    printf("finalize_incomplete=%d\n", finalize(t));
    desc_t unfinished = make(EXECUTION_PLAN_DESC);
    printf("execute_unfinalized=%d\n", execute(h, unfinished, pack));
    desc_t short_pack = variant_pack(fwd_uids, fwd_ptrs, 4, ws);
    printf("execute_missing_uid=%d\n", execute(h, p, short_pack));
    desc_t no_ws_pack = variant_pack(fwd_uids, fwd_ptrs, 7, NULL);
    printf("execute_no_workspace=%d\n", execute(h, p, no_ws_pack));
    check("cudnnBackendDestroyDescriptor", destroy_desc(t));
    printf("destroy_again=%d\n", destroy_desc(t));
    check("cudnnDestroy", destroy(h));
    printf("execute_destroyed_handle=%d\n", execute(h, p, pack));
    return failures ? 1 : 0;
}
