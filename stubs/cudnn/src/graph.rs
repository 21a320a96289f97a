//! What Phantom makes of a finalized cuDNN operation graph: the tensors and operations copied out of the
//! application's descriptors, the engine configurations heuristics offer for it, and the kernel time its
//! execution takes (docs/cudnn.md, "Execution and the timing model"). Nothing here touches a descriptor or the
//! runtime.

use super::consts::{attr, desc, dtype, knob, note, pointwise};
use sim_core::shim_abi::{self as abi, ShimGemm};

/// A tensor descriptor's contents, copied when an operation using it is finalized.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub uid: i64,
    pub dtype: i32,
    pub dims: Vec<i64>,
    pub strides: Vec<i64>,
    pub is_virtual: bool,
    pub by_value: bool,
}

impl Tensor {
    pub fn numel(&self) -> u64 {
        self.dims.iter().map(|&d| d.max(0) as u64).product()
    }

    /// Bytes per element (1 for a type Phantom does not size).
    pub fn elem_bytes(&self) -> u32 {
        dtype::bytes(self.dtype).unwrap_or(1)
    }

    /// Whether the tensor lives in device memory the kernel reads or writes (not virtual, not a host scalar).
    fn in_memory(&self) -> bool {
        !self.is_virtual && !self.by_value
    }

    /// The last two dimensions and the product of the others (the batch), for a matrix operand.
    fn matrix(&self) -> Option<(u64, u64, u64)> {
        let n = self.dims.len();
        if n < 2 {
            return None;
        }
        let batch = self.dims[..n - 2].iter().map(|&d| d.max(0) as u64).product();
        Some((batch, self.dims[n - 2].max(0) as u64, self.dims[n - 1].max(0) as u64))
    }
}

/// An operation descriptor's contents: its type, the tensors it names (by attribute), and the mode of its
/// pointwise / reduction / matmul / convolution sub-descriptor.
#[derive(Clone, Debug)]
pub struct Op {
    pub kind: u32,
    pub tensors: Vec<(u32, Tensor)>,
    /// `cudnnPointwiseMode_t` of a pointwise operation, `cudnnReduceTensorOp_t` of a reduction.
    pub mode: Option<i32>,
    /// Compute type of a matmul or convolution.
    pub comp_type: Option<i32>,
    /// A convolution's geometry (part of the library-call key only).
    pub conv: Option<ConvParams>,
}

/// What a `CONVOLUTION_DESCRIPTOR` says beside its compute type: mode, dilations, filter strides, paddings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConvParams {
    pub mode: Option<i32>,
    pub dilations: Vec<i64>,
    pub strides: Vec<i64>,
    pub pre_paddings: Vec<i64>,
    pub post_paddings: Vec<i64>,
}

impl Op {
    pub fn tensor(&self, name: u32) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    fn is_pointwise(&self, mode: i32) -> bool {
        self.kind == desc::OP_POINTWISE && self.mode == Some(mode)
    }
}

/// One engine configuration as heuristics report it.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineChoice {
    pub index: i64,
    pub knobs: Vec<(i32, i64)>,
    pub numerical: Vec<i32>,
    pub behavior: Vec<i32>,
}

/// Scaled-dot-product attention recognised in a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Sdpa {
    pub backward: bool,
    pub b: u64,
    pub h: u64,
    pub s_q: u64,
    pub s_kv: u64,
    pub d: u64,
    pub causal: bool,
    pub dropout: bool,
    pub dtype: i32,
    /// All matrix-multiply FLOPs of the graph without masking (forward 2·b·h·s_q·s_kv·(d_qk + d_v), backward
    /// 2·b·h·s_q·s_kv·(3·d_qk + 2·d_v)).
    pub flops: u64,
    /// Bytes of the graph's device tensors (each read or written once).
    pub bytes: u64,
}

/// How one piece of work is timed through the runtime's GEMM model (docs/cudnn.md).
#[derive(Clone, Copy, Debug)]
pub enum Cost {
    /// A GEMM, its bytes those of its A, B and C matrices.
    Gemm(ShimGemm),
    /// The roofline of `compute` (a GEMM whose operands are not counted as bytes) and `bytes` of device memory
    /// traffic: the longer of the two, each with the GEMM's fixed cost once.
    Roofline { compute: ShimGemm, bytes: u64 },
}

impl Cost {
    /// A GEMM doing nothing but moving `bytes` (m = bytes − 1, n = k = 1, one byte per input element: its bytes
    /// are exactly `bytes`, its 2·m FLOPs negligible next to them).
    pub fn memory_gemm(bytes: u64) -> ShimGemm {
        ShimGemm {
            m: bytes.saturating_sub(1),
            n: 1,
            k: 1,
            batch: 1,
            precision: abi::PREC_FP32,
            in_bytes: 1,
            out_bytes: 0,
        }
    }

    fn set_fp32(&mut self) {
        match self {
            Cost::Gemm(g) | Cost::Roofline { compute: g, .. } => g.precision = abi::PREC_FP32,
        }
    }
}

/// A GEMM-equivalent piece of a generic graph. `fp32` marks an fp32 matrix product, which a tensor-core engine
/// computes in TF32 and engine 1 in full FP32.
#[derive(Clone, Debug)]
pub struct Piece {
    pub what: String,
    pub cost: Cost,
    pub fp32: bool,
}

/// How the graph is timed.
#[derive(Clone, Debug)]
pub enum Workload {
    Sdpa(Sdpa),
    Generic(Vec<Piece>),
}

/// A finalized operation graph.
#[derive(Debug)]
pub struct Graph {
    pub ops: Vec<Op>,
    pub workload: Workload,
    /// The library-call key of its executions ([`Graph::key`]), worked out once.
    key: String,
}

/// The number of engines `CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT` reports for any graph (each of which
/// Phantom times the same way).
pub const ENGINE_GLOBAL_COUNT: i64 = 64;

/// Workspace (bytes) of NVIDIA's Hopper SDPA forward engines: a 16-byte tile-scheduler counter (docs/cudnn.md).
pub const SDPA_FWD_WORKSPACE: i64 = 16;
/// Workspace of the SDPA backward engines beyond the frontend's own dQ accumulator and softmax sum.
pub const SDPA_BWD_WORKSPACE: i64 = 0;

impl Graph {
    /// Copies `ops` and works out how to time them; `Err` names what Phantom cannot model.
    pub fn new(ops: Vec<Op>) -> Result<Graph, String> {
        let workload = classify(&ops)?;
        let key = match &workload {
            Workload::Sdpa(s) => format!("{} graph={:016x}", s.key(), fnv1a64(&ops_key(&ops))),
            Workload::Generic(_) => format!("cudnn graph {}", ops_key(&ops)),
        };
        Ok(Graph { ops, workload, key })
    }

    /// Every tensor uid the variant pack must bind (non-virtual tensors, by-value scalars included).
    pub fn io_uids(&self) -> Vec<i64> {
        let mut uids: Vec<i64> = self
            .ops
            .iter()
            .flat_map(|op| op.tensors.iter())
            .filter(|(_, t)| !t.is_virtual)
            .map(|(_, t)| t.uid)
            .collect();
        uids.sort_unstable();
        uids.dedup();
        uids
    }

    /// The engine configurations heuristics return, best first: for SDPA those NVIDIA's cuDNN 9.19 offered on an
    /// H100 for torch's graphs (calibration/torch/h100-sxm-80gb/cudnn.log.gz), for other graphs engine 0
    /// (tensor cores) and, for fp32 matrix products, engine 1 (no tensor cores).
    pub fn heuristics(&self) -> Vec<EngineChoice> {
        let sdpa_notes = |index: i64, knobs: Vec<(i32, i64)>| EngineChoice {
            index,
            knobs,
            numerical: vec![note::TENSOR_CORE],
            behavior: vec![note::RUNTIME_COMPILATION, note::SUPPORTS_CUDA_GRAPH_NATIVE_API],
        };
        match &self.workload {
            Workload::Sdpa(s) if !s.backward => vec![
                sdpa_notes(2, vec![(knob::KERNEL_CFG, 7)]),
                sdpa_notes(1, vec![(knob::KERNEL_CFG, 6)]),
                sdpa_notes(1, vec![(knob::KERNEL_CFG, 5)]),
                sdpa_notes(1, vec![(knob::KERNEL_CFG, 3)]),
            ],
            Workload::Sdpa(_) => vec![
                sdpa_notes(6, vec![(knob::STAGES, -1), (knob::KERNEL_CFG, 26)]),
                sdpa_notes(7, vec![(knob::STAGES, -1), (knob::KERNEL_CFG, 28)]),
                sdpa_notes(7, vec![(knob::STAGES, -1), (knob::KERNEL_CFG, 26)]),
            ],
            Workload::Generic(pieces) => {
                let mut v = vec![EngineChoice {
                    index: 0,
                    knobs: vec![],
                    numerical: vec![note::TENSOR_CORE],
                    behavior: vec![],
                }];
                if pieces.iter().any(|p| p.fp32) {
                    v.push(EngineChoice { index: 1, knobs: vec![], numerical: vec![], behavior: vec![] });
                }
                v
            }
        }
    }

    /// The engine with global index `index` (any index below `ENGINE_GLOBAL_COUNT`): the heuristics entry of
    /// that index if there is one, else an engine without knobs or notes.
    pub fn engine(&self, index: i64) -> EngineChoice {
        self.heuristics().into_iter().find(|e| e.index == index).unwrap_or(EngineChoice {
            index,
            knobs: vec![],
            numerical: vec![],
            behavior: vec![],
        })
    }

    /// Workspace (bytes) an execution plan of this graph needs.
    pub fn workspace(&self) -> i64 {
        match &self.workload {
            Workload::Sdpa(s) if s.backward => SDPA_BWD_WORKSPACE,
            Workload::Sdpa(_) => SDPA_FWD_WORKSPACE,
            Workload::Generic(_) => 0,
        }
    }

    /// The GEMMs the execution is timed as (their times add up to one kernel) and the kernel's name.
    pub fn kernel(&self, engine_index: i64) -> (String, Vec<Cost>) {
        match &self.workload {
            Workload::Sdpa(s) => (s.name(), vec![s.cost()]),
            Workload::Generic(pieces) => {
                let gemms = pieces
                    .iter()
                    .map(|p| {
                        let mut c = p.cost;
                        if p.fp32 && engine_index == 1 {
                            c.set_fp32();
                        }
                        c
                    })
                    .collect();
                let name = match pieces.len() {
                    0 => "cudnn graph (no work)".to_string(),
                    1 => format!("cudnn {}", pieces[0].what),
                    n => format!("cudnn graph {} (+{} ops)", pieces[0].what, n - 1),
                };
                (name, gemms)
            }
        }
    }
}

/// How much slower than a GEMM of the same FLOPs cuDNN's flash-attention kernels run, in thousandths. The GEMM
/// model assumes 75 % of the tensor-core peak; on an H100, GPT-2 124M's attention (b=8, h=12, s=1024, d=64,
/// causal, bf16) took 47.3 µs forward and 156.8 µs backward (its three kernels) in
/// calibration/torch/h100-sxm-80gb/gpt2-124m-profile.json.gz: 2.55× and 3.54× the model's compute time, i.e.
/// 29 % and 21 % of the peak. One measured shape: other shapes scale by FLOPs (docs/cudnn.md).
const SDPA_FPROP_SLOWDOWN_PERMILLE: u64 = 2_550;
const SDPA_BPROP_SLOWDOWN_PERMILLE: u64 = 3_540;

impl Sdpa {
    pub fn name(&self) -> String {
        let seq = if self.s_q == self.s_kv {
            format!("s={}", self.s_q)
        } else {
            format!("s_q={} s_kv={}", self.s_q, self.s_kv)
        };
        format!(
            "cudnn sdpa {} b={} h={} {} d={} {}{}{}",
            if self.backward { "bprop" } else { "fprop" },
            self.b,
            self.h,
            seq,
            self.d,
            dtype::name(self.dtype),
            if self.causal { " causal" } else { "" },
            if self.dropout { " dropout" } else { "" },
        )
    }

    /// The compute as a GEMM (docs/cudnn.md): batch b·h, m = s_q, n = s_kv (halved, rounded up, when causal),
    /// k such that 2·m·n·k·batch is the graph's matrix-multiply FLOPs; its operands are not counted as bytes.
    pub fn compute_gemm(&self) -> ShimGemm {
        let batch = self.b * self.h;
        let n = if self.causal { self.s_kv.div_ceil(2) } else { self.s_kv };
        let per_k = 2 * batch * self.s_q * self.s_kv;
        let slowdown = if self.backward { SDPA_BPROP_SLOWDOWN_PERMILLE } else { SDPA_FPROP_SLOWDOWN_PERMILLE };
        let flops = self.flops.saturating_mul(slowdown) / 1_000;
        let k = if per_k == 0 { 0 } else { flops.div_ceil(per_k) };
        ShimGemm {
            m: self.s_q,
            n,
            k,
            batch,
            precision: precision(self.dtype).unwrap_or(abi::PREC_BF16),
            in_bytes: 0,
            out_bytes: 0,
        }
    }

    /// The roofline of that compute and the graph's device tensors read or written once (the scores and
    /// probabilities never leave the chip).
    pub fn cost(&self) -> Cost {
        Cost::Roofline { compute: self.compute_gemm(), bytes: self.bytes }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Library-call keys (docs/cudnn.md, "Keys")
// ---------------------------------------------------------------------------------------------------------

impl Graph {
    /// The library-call key of an execution of this graph: one line of text without tabs that names what the
    /// plan computes, from this module's analysis alone (never from the engine, NVIDIA's heuristics or the
    /// mode), so the same graph gives the same key in an executing, a following and a replaying process. A
    /// profiling run files the measured time under it; a kernel-time table's `call` record looks it up.
    /// SDPA: [`Sdpa::key`] and ` graph=` the [`fnv1a64`] digest of the operations (what the analysis does not
    /// read, such as a bias or a padding mask, still tells two graphs apart); any other graph: `cudnn graph `
    /// and the operations ([`ops_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Sdpa {
    /// `cudnn sdpa fwd|bwd b= h= sq= skv= d= dv= dtype= causal= dropout= bytes=`: every input of the timing
    /// model. d_v is what the matmul FLOPs leave after d (forward FLOPs = 2·b·h·s_q·s_kv·(d + d_v), backward
    /// 2·b·h·s_q·s_kv·(3·d + 2·d_v)); a graph whose FLOPs do not have that form says `flops=` instead.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` is newer than the workspace's rust-version (1.85)
    pub fn key(&self) -> String {
        let per = 2 * self.b * self.h * self.s_q * self.s_kv;
        let dv = (per > 0 && self.flops % per == 0).then(|| self.flops / per).and_then(|units| {
            if self.backward {
                units.checked_sub(3 * self.d).filter(|r| r % 2 == 0).map(|r| r / 2)
            } else {
                units.checked_sub(self.d)
            }
        });
        format!(
            "cudnn sdpa {} b={} h={} sq={} skv={} d={} {} dtype={} causal={} dropout={} bytes={}",
            if self.backward { "bwd" } else { "fwd" },
            self.b,
            self.h,
            self.s_q,
            self.s_kv,
            self.d,
            dv.map_or(format!("flops={}", self.flops), |dv| format!("dv={dv}")),
            dtype_key(self.dtype),
            self.causal as u8,
            self.dropout as u8,
            self.bytes,
        )
    }
}

/// The 64-bit FNV-1a hash of `s`: a digest fixed by its definition (unlike `std`'s hashers), so keys that contain
/// one stay the same across builds.
pub fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A data type in a key: Phantom's short name, or `dtype<n>` for one it has no name for.
fn dtype_key(t: i32) -> String {
    match dtype::name(t) {
        "other" => format!("dtype{t}"),
        name => name.to_string(),
    }
}

/// An operation type in a key: NVIDIA's name without `CUDNN_BACKEND_OPERATION_` and `_DESCRIPTOR`, lower case
/// (`matmul`, `pointwise`, `convolution_forward`, …).
fn op_key(kind: u32) -> String {
    let name = desc::name(kind);
    let name = name.strip_prefix("OPERATION_").unwrap_or(name);
    name.strip_suffix("_DESCRIPTOR").unwrap_or(name).to_ascii_lowercase()
}

/// The role of a tensor attribute in a key: the letter cudnn_graph.h gives it (`x`, `y`, `a`, `dy`, …), else
/// `attr<number>`.
fn role_key(name: u32) -> String {
    let known = match name {
        751 | 704 | 716 | 1610 | 2200 => "x",
        753 | 705 | 1611 | 2201 | 2310 => "y",
        752 | 1521 => "b",
        756 | 710 => "dx",
        757 | 711 | 717 => "dy",
        758 => "t",
        703 | 709 => "w",
        715 => "dw",
        1520 => "a",
        1522 => "c",
        1525 => "m",
        1526 => "n",
        1527 => "k",
        2311 => "seed",
        2313 => "offset",
        2800 | 2851 => "q",
        2801 | 2852 => "k",
        2802 | 2853 => "v",
        2803 | 2854 => "o",
        2804 | 2855 => "stats",
        2805 | 2856 => "scale",
        2859 => "dq",
        2860 => "dk",
        2861 => "dv",
        2862 => "do",
        _ => return format!("attr{name}"),
    };
    known.to_string()
}

fn list(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// The operations in order, `; `-separated: each its type, mode / reduction operator, compute type, convolution
/// geometry, and tensors by role. Tensors are numbered `t0`, `t1`, … in order of first appearance (the
/// application's unique ids are labels, not part of the computation); the first appearance also gives data
/// type, dimensions, strides and `:virtual` / `:value` (by-value scalar).
fn ops_key(ops: &[Op]) -> String {
    use std::fmt::Write;
    let mut uids: Vec<i64> = Vec::new();
    let mut out = String::new();
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&op_key(op.kind));
        if let Some(m) = op.mode {
            let _ = write!(out, " mode={m}");
        }
        if let Some(c) = op.comp_type {
            let _ = write!(out, " comp={}", dtype_key(c));
        }
        if let Some(c) = &op.conv {
            let _ = write!(
                out,
                " conv={} dilation={} stride={} pad={}/{}",
                c.mode.map_or("-".to_string(), |m| m.to_string()),
                list(&c.dilations),
                list(&c.strides),
                list(&c.pre_paddings),
                list(&c.post_paddings)
            );
        }
        for (name, t) in &op.tensors {
            let _ = write!(out, " {}=", role_key(*name));
            match uids.iter().position(|&u| u == t.uid) {
                Some(n) => {
                    let _ = write!(out, "t{n}");
                }
                None => {
                    let _ = write!(
                        out,
                        "t{}:{}[{}]/[{}]{}{}",
                        uids.len(),
                        dtype_key(t.dtype),
                        list(&t.dims),
                        list(&t.strides),
                        if t.is_virtual { ":virtual" } else { "" },
                        if t.by_value { ":value" } else { "" },
                    );
                    uids.push(t.uid);
                }
            }
        }
    }
    out
}

/// The `PREC_*` a tensor-core kernel computes in for inputs of `dtype` (fp32 → TF32), `None` if none.
fn precision(t: i32) -> Option<u32> {
    Some(match t {
        dtype::BFLOAT16 => abi::PREC_BF16,
        dtype::HALF => abi::PREC_FP16,
        dtype::FP8_E4M3 | dtype::FP8_E5M2 | dtype::INT8 => abi::PREC_FP8,
        dtype::FLOAT => abi::PREC_TF32,
        dtype::DOUBLE => abi::PREC_FP64,
        _ => return None,
    })
}

fn missing(op: &Op, what: &str) -> String {
    format!("{} without its {what} tensor", desc::name(op.kind))
}

/// Decides how a graph is timed; `Err` names the first thing Phantom cannot model.
fn classify(ops: &[Op]) -> Result<Workload, String> {
    for op in ops {
        match op.kind {
            desc::OP_MATMUL
            | desc::OP_POINTWISE
            | desc::OP_REDUCTION
            | desc::OP_RESHAPE
            | desc::OP_RNG
            | desc::OP_CONV_FORWARD
            | desc::OP_CONV_BACKWARD_DATA
            | desc::OP_CONV_BACKWARD_FILTER
            | desc::OP_SDPA_FWD
            | desc::OP_SDPA_BWD => {}
            k => return Err(format!("operation {} ({k}) is not modeled", desc::name(k))),
        }
    }
    if let Some(s) = sdpa_op(ops)? {
        return Ok(Workload::Sdpa(s));
    }
    if let Some(s) = sdpa_decomposed(ops)? {
        return Ok(Workload::Sdpa(s));
    }
    generic(ops).map(Workload::Generic)
}

/// A matmul's (batch, m, n, k, A, C).
fn matmul_shape(op: &Op) -> Result<(u64, u64, u64, u64, &Tensor, &Tensor), String> {
    let a = op.tensor(attr::OPERATION_MATMUL_ADESC).ok_or_else(|| missing(op, "A"))?;
    let c = op.tensor(attr::OPERATION_MATMUL_CDESC).ok_or_else(|| missing(op, "C"))?;
    let (_, _, k) = a.matrix().ok_or("matmul A tensor with fewer than 2 dimensions")?;
    let (batch, m, n) = c.matrix().ok_or("matmul C tensor with fewer than 2 dimensions")?;
    Ok((batch, m, n, k, a, c))
}

/// Bytes of the device tensors `ops` name (not virtual, not by-value), each counted once.
fn io_bytes<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> u64 {
    let mut seen = std::collections::BTreeSet::new();
    tensors.filter(|t| t.in_memory() && seen.insert(t.uid)).map(|t| t.numel() * t.elem_bytes() as u64).sum()
}

fn is_causal(ops: &[Op]) -> bool {
    ops.iter().any(|o| o.is_pointwise(pointwise::GEN_INDEX))
        && ops.iter().any(|o| o.is_pointwise(pointwise::BINARY_SELECT))
        && ops.iter().any(|o| {
            o.kind == desc::OP_POINTWISE
                && matches!(o.mode, Some(m) if (pointwise::CMP_EQ..=pointwise::CMP_LE).contains(&m))
        })
}

/// SDPA as cuDNN frontends lower it: two (forward) or more (backward) matmuls around a softmax (an EXP
/// pointwise). The score matmul is the one with the largest virtual output (s_q × s_kv per head).
fn sdpa_decomposed(ops: &[Op]) -> Result<Option<Sdpa>, String> {
    let matmuls: Vec<&Op> = ops.iter().filter(|o| o.kind == desc::OP_MATMUL).collect();
    if matmuls.len() < 2 || !ops.iter().any(|o| o.is_pointwise(pointwise::EXP)) {
        return Ok(None);
    }
    let mut flops = 0u64;
    let mut score: Option<(u64, u64, u64, u64, &Tensor, &Tensor)> = None;
    for op in &matmuls {
        let s = matmul_shape(op)?;
        let (batch, m, n, k, _, c) = s;
        flops += 2 * batch * m * n * k;
        if c.is_virtual && score.is_none_or(|(_, bm, bn, ..)| m * n > bm * bn) {
            score = Some(s);
        }
    }
    let Some((_, s_q, s_kv, d, q, c)) = score else { return Ok(None) };
    let (b, h) = match c.dims.len() {
        0..=2 => (1, 1),
        3 => (c.dims[0].max(0) as u64, 1),
        n => (c.dims[..n - 3].iter().map(|&x| x.max(0) as u64).product(), c.dims[n - 3].max(0) as u64),
    };
    if precision(q.dtype).is_none() || q.dtype == dtype::FLOAT || q.dtype == dtype::DOUBLE {
        return Err(format!("attention on {} inputs is not modeled", dtype::name(q.dtype)));
    }
    Ok(Some(Sdpa {
        backward: matmuls.len() > 2,
        b,
        h,
        s_q,
        s_kv,
        d,
        causal: is_causal(ops),
        dropout: ops.iter().any(|o| o.kind == desc::OP_RNG),
        dtype: q.dtype,
        flops,
        bytes: io_bytes(ops.iter().flat_map(|o| o.tensors.iter().map(|(_, t)| t))),
    }))
}

/// SDPA as one `OPERATION_SDPA_FWD/BWD` operation (cuDNN 9.13+ / 9.17+): Q [b,h,s_q,d], K [b,h_k,s_kv,d],
/// V [b,h_k,s_kv,d_v]. Phantom does not read its mask sub-graph, so it is timed unmasked.
fn sdpa_op(ops: &[Op]) -> Result<Option<Sdpa>, String> {
    let Some(op) = ops.iter().find(|o| o.kind == desc::OP_SDPA_FWD || o.kind == desc::OP_SDPA_BWD) else {
        return Ok(None);
    };
    let backward = op.kind == desc::OP_SDPA_BWD;
    let (qn, kn, vn) = if backward {
        (attr::OPERATION_SDPA_BWD_QDESC, attr::OPERATION_SDPA_BWD_KDESC, attr::OPERATION_SDPA_BWD_VDESC)
    } else {
        (attr::OPERATION_SDPA_FWD_QDESC, attr::OPERATION_SDPA_FWD_KDESC, attr::OPERATION_SDPA_FWD_VDESC)
    };
    let q = op.tensor(qn).ok_or_else(|| missing(op, "Q"))?;
    let k = op.tensor(kn).ok_or_else(|| missing(op, "K"))?;
    let v = op.tensor(vn).ok_or_else(|| missing(op, "V"))?;
    if q.dims.len() != 4 || k.dims.len() != 4 || v.dims.len() != 4 {
        return Err("SDPA operation with Q, K, V not 4-dimensional".into());
    }
    if precision(q.dtype).is_none() {
        return Err(format!("attention on {} inputs is not modeled", dtype::name(q.dtype)));
    }
    let u = |x: i64| x.max(0) as u64;
    let (b, h, s_q, d) = (u(q.dims[0]), u(q.dims[1]), u(q.dims[2]), u(q.dims[3]));
    let (s_kv, d_v) = (u(k.dims[2]), u(v.dims[3]));
    let per = 2 * b * h * s_q * s_kv;
    let flops = if backward { per * (3 * d + 2 * d_v) } else { per * (d + d_v) };
    let bytes = io_bytes(op.tensors.iter().map(|(_, t)| t));
    Ok(Some(Sdpa { backward, b, h, s_q, s_kv, d, causal: false, dropout: false, dtype: q.dtype, flops, bytes }))
}

/// A memory-bound piece that reads `read` and writes `written` (each counted only if in device memory), as a
/// GEMM with m = elements written, n = 1, k = elements read per element written: its bytes are the two tensors'
/// bytes and its FLOPs negligible (docs/cudnn.md).
fn memory_piece(what: String, read: Option<&Tensor>, written: Option<&Tensor>) -> Option<Piece> {
    let read = read.filter(|t| t.in_memory());
    let written = written.filter(|t| t.in_memory());
    if read.is_none() && written.is_none() {
        return None; // fused into its neighbours: nothing leaves the chip
    }
    let r = read.map_or(1, |t| t.numel().max(1));
    let w = written.map_or(1, |t| t.numel().max(1));
    let m = w.max(1);
    let k = r.div_ceil(m).max(1);
    Some(Piece {
        what,
        cost: Cost::Gemm(ShimGemm {
            m,
            n: 1,
            k,
            batch: 1,
            precision: abi::PREC_FP32,
            in_bytes: read.map_or(0, |t| t.elem_bytes()),
            out_bytes: written.map_or(0, |t| t.elem_bytes()),
        }),
        fp32: false,
    })
}

/// Spatial product of dims [N, C, spatial…] or [K, C, filter…].
fn spatial(t: &Tensor) -> u64 {
    t.dims.iter().skip(2).map(|&d| d.max(0) as u64).product()
}

/// A convolution: the FLOPs of its implicit GEMM (one batch entry per group), the bytes of its three tensors
/// (the im2col operand is never materialized).
fn conv_piece(op: &Op) -> Result<Piece, String> {
    let (x, w, y, kind) = match op.kind {
        desc::OP_CONV_FORWARD => (
            attr::OPERATION_CONVOLUTION_FORWARD_X,
            attr::OPERATION_CONVOLUTION_FORWARD_W,
            attr::OPERATION_CONVOLUTION_FORWARD_Y,
            "conv fprop",
        ),
        desc::OP_CONV_BACKWARD_DATA => (
            attr::OPERATION_CONVOLUTION_BWD_DATA_DX,
            attr::OPERATION_CONVOLUTION_BWD_DATA_W,
            attr::OPERATION_CONVOLUTION_BWD_DATA_DY,
            "conv dgrad",
        ),
        _ => (
            attr::OPERATION_CONVOLUTION_BWD_FILTER_X,
            attr::OPERATION_CONVOLUTION_BWD_FILTER_DW,
            attr::OPERATION_CONVOLUTION_BWD_FILTER_DY,
            "conv wgrad",
        ),
    };
    let x = op.tensor(x).ok_or_else(|| missing(op, "x"))?;
    let w = op.tensor(w).ok_or_else(|| missing(op, "filter"))?;
    let y = op.tensor(y).ok_or_else(|| missing(op, "y"))?;
    if x.dims.len() < 3 || w.dims.len() != x.dims.len() || y.dims.len() != x.dims.len() {
        return Err(format!("{} with tensors of unequal or too few dimensions", desc::name(op.kind)));
    }
    let u = |v: i64| v.max(0) as u64;
    let (n, c, k_out, c_per_group) = (u(x.dims[0]), u(x.dims[1]), u(w.dims[0]), u(w.dims[1]).max(1));
    let groups = (c / c_per_group).max(1);
    let k_per_group = k_out / groups;
    let (m, nn, kk) = match op.kind {
        desc::OP_CONV_FORWARD => (n * spatial(y), k_per_group, c_per_group * spatial(w)),
        desc::OP_CONV_BACKWARD_DATA => (n * spatial(x), c_per_group, k_per_group * spatial(w)),
        _ => (k_per_group, c_per_group * spatial(w), n * spatial(y)),
    };
    let Some(p) = precision(x.dtype) else {
        return Err(format!("{kind} on {} tensors is not modeled", dtype::name(x.dtype)));
    };
    Ok(Piece {
        what: format!(
            "{kind} m={m} n={nn} k={kk}{} {}",
            if groups > 1 { format!(" groups={groups}") } else { String::new() },
            dtype::name(x.dtype)
        ),
        cost: Cost::Roofline {
            compute: ShimGemm { m, n: nn, k: kk, batch: groups, precision: p, in_bytes: 0, out_bytes: 0 },
            bytes: io_bytes([x, w, y].into_iter()),
        },
        fp32: x.dtype == dtype::FLOAT,
    })
}

/// Any other graph: each matmul / convolution a GEMM, each pointwise / reduction / RNG that reads or writes
/// device memory a memory-bound GEMM, reshapes free.
fn generic(ops: &[Op]) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    for op in ops {
        match op.kind {
            desc::OP_MATMUL => {
                let (batch, m, n, k, a, c) = matmul_shape(op)?;
                let Some(p) = precision(a.dtype) else {
                    return Err(format!("matmul on {} tensors is not modeled", dtype::name(a.dtype)));
                };
                let what = if batch > 1 {
                    format!("matmul batch={batch} m={m} n={n} k={k} {}", dtype::name(a.dtype))
                } else {
                    format!("matmul m={m} n={n} k={k} {}", dtype::name(a.dtype))
                };
                pieces.push(Piece {
                    what,
                    cost: Cost::Gemm(ShimGemm {
                        m,
                        n,
                        k,
                        batch,
                        precision: p,
                        in_bytes: a.elem_bytes(),
                        out_bytes: if c.is_virtual { 0 } else { c.elem_bytes() },
                    }),
                    fp32: a.dtype == dtype::FLOAT,
                });
            }
            desc::OP_CONV_FORWARD | desc::OP_CONV_BACKWARD_DATA | desc::OP_CONV_BACKWARD_FILTER => {
                pieces.push(conv_piece(op)?)
            }
            desc::OP_POINTWISE => {
                let x = op.tensor(attr::OPERATION_POINTWISE_XDESC).or(op.tensor(attr::OPERATION_POINTWISE_DYDESC));
                let y = op.tensor(attr::OPERATION_POINTWISE_YDESC).or(op.tensor(attr::OPERATION_POINTWISE_DXDESC));
                let what = format!("pointwise mode {}", op.mode.unwrap_or(-1));
                pieces.extend(memory_piece(what, x, y));
            }
            desc::OP_REDUCTION => {
                let x = op.tensor(attr::OPERATION_REDUCTION_XDESC);
                let y = op.tensor(attr::OPERATION_REDUCTION_YDESC);
                pieces.extend(memory_piece(format!("reduction op {}", op.mode.unwrap_or(-1)), x, y));
            }
            desc::OP_RNG => {
                let y = op.tensor(attr::OPERATION_RNG_YDESC);
                pieces.extend(memory_piece("rng".to_string(), None, y));
            }
            _ => {} // reshape: a view
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(uid: i64, dt: i32, dims: &[i64], is_virtual: bool) -> Tensor {
        Tensor { uid, dtype: dt, dims: dims.to_vec(), strides: vec![1; dims.len()], is_virtual, by_value: false }
    }

    fn matmul(a: Tensor, b: Tensor, c: Tensor) -> Op {
        Op {
            kind: desc::OP_MATMUL,
            tensors: vec![
                (attr::OPERATION_MATMUL_ADESC, a),
                (attr::OPERATION_MATMUL_BDESC, b),
                (attr::OPERATION_MATMUL_CDESC, c),
            ],
            mode: None,
            comp_type: Some(dtype::FLOAT),
            conv: None,
        }
    }

    fn pw(mode: i32, x: Tensor, y: Tensor) -> Op {
        Op {
            kind: desc::OP_POINTWISE,
            tensors: vec![(attr::OPERATION_POINTWISE_XDESC, x), (attr::OPERATION_POINTWISE_YDESC, y)],
            mode: Some(mode),
            comp_type: None,
            conv: None,
        }
    }

    /// torch's forward graph for (8, 12, 1024, 64) bf16, reduced to what classification reads.
    fn sdpa_fwd(causal: bool) -> Vec<Op> {
        let bf = dtype::BFLOAT16;
        let s = t(4, dtype::FLOAT, &[8, 12, 1024, 1024], true);
        let mut ops = vec![
            matmul(t(0, bf, &[8, 12, 1024, 64], false), t(1, bf, &[8, 12, 64, 1024], false), s.clone()),
            pw(pointwise::EXP, s.clone(), t(16, dtype::FLOAT, &[8, 12, 1024, 1024], true)),
            matmul(
                t(13, bf, &[8, 12, 1024, 1024], true),
                t(2, bf, &[8, 12, 1024, 64], false),
                t(3, bf, &[8, 12, 1024, 64], false),
            ),
        ];
        if causal {
            ops.push(pw(pointwise::GEN_INDEX, s.clone(), t(7, dtype::INT32, &[8, 12, 1024, 1024], true)));
            ops.push(pw(303, s.clone(), t(10, dtype::BOOLEAN, &[8, 12, 1024, 1024], true)));
            ops.push(pw(pointwise::BINARY_SELECT, s.clone(), t(12, dtype::FLOAT, &[8, 12, 1024, 1024], true)));
        }
        ops
    }

    #[test]
    fn torch_forward_graph_is_causal_sdpa() {
        let g = Graph::new(sdpa_fwd(true)).unwrap();
        let Workload::Sdpa(s) = &g.workload else { panic!("not sdpa") };
        assert_eq!((s.b, s.h, s.s_q, s.s_kv, s.d, s.causal, s.backward), (8, 12, 1024, 1024, 64, true, false));
        // 4·b·h·s²·d = 25_769_803_776 FLOP; × the forward slowdown 2.55 → k = ⌈65_712_999_628 / (2·96·1024²)⌉ = 327
        // (128 without it); causal halves n.
        assert_eq!(s.flops, 25_769_803_776);
        let gm = s.compute_gemm();
        assert_eq!((gm.batch, gm.m, gm.n, gm.k, gm.in_bytes, gm.out_bytes), (96, 1024, 512, 327, 0, 0));
        // Q, K, V, O: 4 · 8·12·1024·64 · 2 B.
        assert_eq!(s.bytes, 4 * 8 * 12 * 1024 * 64 * 2);
        assert_eq!(s.name(), "cudnn sdpa fprop b=8 h=12 s=1024 d=64 bf16 causal");
        assert_eq!(g.workspace(), 16);
        assert_eq!(g.heuristics()[0].index, 2);
        assert_eq!(g.heuristics()[0].knobs, vec![(knob::KERNEL_CFG, 7)]);
    }

    #[test]
    fn sdpa_key_names_every_input_of_the_model() {
        let g = Graph::new(sdpa_fwd(true)).unwrap();
        // d_v = 25_769_803_776 / (2·8·12·1024·1024) − 64 = 64; bytes: Q, K, V, O of 8·12·1024·64 bf16.
        let digest = fnv1a64(&ops_key(&g.ops));
        assert_eq!(
            g.key(),
            format!(
                "cudnn sdpa fwd b=8 h=12 sq=1024 skv=1024 d=64 dv=64 dtype=bf16 causal=1 dropout=0 bytes=50331648 \
                 graph={digest:016x}"
            )
        );
        // The digest is fixed by the graph (the same in every build and mode), and tells the mask apart.
        assert_eq!(digest, 0xfcce_691c_7520_8724);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c); // the published FNV-1a 64 test vector
        let plain = Graph::new(sdpa_fwd(false)).unwrap();
        assert!(plain.key().starts_with("cudnn sdpa fwd b=8 h=12 sq=1024 skv=1024 d=64 dv=64 dtype=bf16 causal=0 "));
        // Unique ids are labels: renumbering the tensors keeps the key.
        let mut renumbered = sdpa_fwd(true);
        for op in &mut renumbered {
            for (_, t) in &mut op.tensors {
                t.uid += 1000;
            }
        }
        assert_eq!(Graph::new(renumbered).unwrap().key(), g.key());
        // FLOPs that are not 2·b·h·s_q·s_kv·(d + d_v) are named as such.
        let Workload::Sdpa(mut s) = g.workload.clone() else { panic!("not sdpa") };
        s.flops += 1;
        assert!(s.key().contains(" d=64 flops=25769803777 dtype=bf16 "), "{}", s.key());
    }

    #[test]
    fn generic_key_lists_operations_and_tensors_in_order() {
        let g = Graph::new(vec![
            matmul(
                t(7, dtype::FLOAT, &[1, 64, 32], false),
                t(9, dtype::FLOAT, &[1, 32, 16], false),
                t(3, dtype::FLOAT, &[1, 64, 16], true),
            ),
            pw(pointwise::EXP + 1, t(3, dtype::FLOAT, &[1, 64, 16], true), t(4, dtype::HALF, &[1, 64, 16], false)),
        ])
        .unwrap();
        assert_eq!(
            g.key(),
            "cudnn graph matmul comp=fp32 a=t0:fp32[1,64,32]/[1,1,1] b=t1:fp32[1,32,16]/[1,1,1] \
             c=t2:fp32[1,64,16]/[1,1,1]:virtual; pointwise mode=14 x=t2 y=t3:fp16[1,64,16]/[1,1,1]"
        );
    }

    #[test]
    fn non_causal_keeps_the_full_score_matrix() {
        let g = Graph::new(sdpa_fwd(false)).unwrap();
        let Workload::Sdpa(s) = &g.workload else { panic!("not sdpa") };
        assert_eq!(s.compute_gemm().n, 1024);
    }

    #[test]
    fn single_matmul_is_a_gemm_and_fp32_offers_two_engines() {
        let g = Graph::new(vec![matmul(
            t(0, dtype::FLOAT, &[1, 64, 32], false),
            t(1, dtype::FLOAT, &[1, 32, 16], false),
            t(2, dtype::FLOAT, &[1, 64, 16], false),
        )])
        .unwrap();
        let (name, costs) = g.kernel(0);
        assert_eq!(name, "cudnn matmul m=64 n=16 k=32 fp32");
        let Cost::Gemm(tf32) = costs[0] else { panic!("a matmul is a GEMM") };
        assert_eq!(
            (tf32.m, tf32.n, tf32.k, tf32.precision, tf32.in_bytes, tf32.out_bytes),
            (64, 16, 32, abi::PREC_TF32, 4, 4)
        );
        let Cost::Gemm(fp32) = g.kernel(1).1[0] else { panic!("a matmul is a GEMM") };
        assert_eq!(fp32.precision, abi::PREC_FP32);
        assert_eq!(g.heuristics().len(), 2);
        assert_eq!(g.io_uids(), vec![0, 1, 2]);
    }

    #[test]
    fn conv_forward_is_an_implicit_gemm() {
        let op = Op {
            kind: desc::OP_CONV_FORWARD,
            tensors: vec![
                (attr::OPERATION_CONVOLUTION_FORWARD_X, t(0, dtype::HALF, &[32, 64, 56, 56], false)),
                (attr::OPERATION_CONVOLUTION_FORWARD_W, t(1, dtype::HALF, &[128, 64, 3, 3], false)),
                (attr::OPERATION_CONVOLUTION_FORWARD_Y, t(2, dtype::HALF, &[32, 128, 56, 56], false)),
            ],
            mode: None,
            comp_type: Some(dtype::FLOAT),
            conv: None,
        };
        let g = Graph::new(vec![op]).unwrap();
        let (name, costs) = g.kernel(0);
        assert_eq!(name, "cudnn conv fprop m=100352 n=128 k=576 fp16");
        let Cost::Roofline { compute, bytes } = costs[0] else { panic!("a convolution is a roofline") };
        assert_eq!((compute.m, compute.n, compute.k, compute.batch), (32 * 56 * 56, 128, 64 * 9, 1));
        // x, w, y once each (not the 9× larger im2col matrix).
        assert_eq!(bytes, (32 * 64 * 56 * 56 + 128 * 64 * 9 + 32 * 128 * 56 * 56) * 2);
        let m = Cost::memory_gemm(bytes);
        assert_eq!((m.m * m.k + m.k * m.n) * m.in_bytes as u64, bytes);
    }

    #[test]
    fn unmodeled_operations_are_named() {
        let op = Op { kind: desc::OP_NORM_FORWARD, tensors: vec![], mode: None, comp_type: None, conv: None };
        let e = Graph::new(vec![op]).unwrap_err();
        assert!(e.contains("OPERATION_NORM_FORWARD_DESCRIPTOR"), "{e}");
    }
}
