//! cuDNN's backend descriptors (docs/cudnn.md, "Descriptors"): every `cudnnBackendDescriptor_t` handed out is a
//! key of one registry, never a pointer Phantom dereferences, so a destroyed or foreign descriptor is an error.
//! A descriptor keeps its attributes as NVIDIA's API passes them (type, count, bytes); finalizing copies what
//! later stages need out of the descriptors it refers to (tensors into operations, operations into the graph,
//! the graph into engines, configurations and plans), so the application may destroy those afterwards.

use super::consts::{attr, desc, status, ty};
use super::graph::{ConvParams, EngineChoice, Graph, Op, Tensor, ENGINE_GLOBAL_COUNT};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

/// A failed call: its `cudnnStatus_t` and what went wrong (kept for `cudnnGetLastErrorString`).
#[derive(Debug)]
pub struct Fail {
    pub code: u32,
    pub msg: String,
    /// Already logged where it happened (a failure of NVIDIA's library in an executing process).
    pub logged: bool,
}

pub type R<T> = Result<T, Fail>;

pub fn fail<T>(code: u32, msg: impl Into<String>) -> R<T> {
    Err(Fail { code, msg: msg.into(), logged: false })
}

/// An attribute as set: its `cudnnBackendAttributeType_t`, element count and the elements' bytes.
#[derive(Clone, Debug)]
struct Attr {
    ty: u32,
    count: usize,
    bytes: Vec<u8>,
}

impl Attr {
    fn words<const N: usize>(&self) -> impl Iterator<Item = [u8; N]> + '_ {
        self.bytes.chunks_exact(N).map(|c| c.try_into().expect("chunk of N bytes"))
    }
    fn i64s(&self) -> Vec<i64> {
        self.words::<8>().map(i64::from_ne_bytes).collect()
    }
    fn i32s(&self) -> Vec<i32> {
        self.words::<4>().map(i32::from_ne_bytes).collect()
    }
    fn ptrs(&self) -> Vec<usize> {
        self.words::<8>().map(|w| u64::from_ne_bytes(w) as usize).collect()
    }
}

/// An engine (or engine configuration, or execution plan: they carry the same facts) of a finalized graph.
#[derive(Clone, Debug)]
pub struct Engine {
    pub graph: Arc<Graph>,
    pub choice: EngineChoice,
}

/// A finalized variant pack.
#[derive(Clone, Debug)]
pub struct Pack {
    pub uids: Vec<i64>,
    pub ptrs: Vec<usize>,
    pub workspace: usize,
}

/// What finalizing (or filling by `cudnnBackendGetAttribute`) worked out.
#[derive(Clone, Debug)]
enum Info {
    None,
    Tensor(Tensor),
    Op(Op),
    Graph(Arc<Graph>),
    Engine(Engine),
    Heur(Vec<Engine>),
    Knob(i32, i64),
    Pack(Pack),
}

#[derive(Clone, Debug)]
struct Desc {
    kind: u32,
    attrs: BTreeMap<u32, Attr>,
    finalized: bool,
    info: Info,
}

impl Desc {
    fn new(kind: u32) -> Desc {
        Desc { kind, attrs: BTreeMap::new(), finalized: false, info: Info::None }
    }

    fn filled(kind: u32, info: Info) -> Desc {
        Desc { kind, attrs: BTreeMap::new(), finalized: true, info }
    }

    fn typed(&self, name: u32, t: u32) -> Option<&Attr> {
        self.attrs.get(&name).filter(|a| a.ty == t)
    }
    fn int64s(&self, name: u32) -> Option<Vec<i64>> {
        self.typed(name, ty::INT64).map(Attr::i64s)
    }
    fn int64(&self, name: u32) -> Option<i64> {
        self.int64s(name)?.first().copied()
    }
    /// The first element of a 4-byte (enum or INT32) attribute.
    fn enum32(&self, name: u32) -> Option<i32> {
        let a = self.attrs.get(&name).filter(|a| ty::size(a.ty) == Some(4))?;
        a.i32s().first().copied()
    }
    fn boolean(&self, name: u32) -> Option<bool> {
        self.typed(name, ty::BOOLEAN).and_then(|a| a.bytes.first()).map(|&b| b != 0)
    }
    fn descs(&self, name: u32) -> Vec<usize> {
        self.typed(name, ty::BACKEND_DESCRIPTOR).map(Attr::ptrs).unwrap_or_default()
    }
    fn ptrs(&self, name: u32) -> Vec<usize> {
        self.attrs.get(&name).filter(|a| a.ty == ty::VOID_PTR || a.ty == ty::HANDLE).map(Attr::ptrs).unwrap_or_default()
    }
}

struct Registry {
    next: usize,
    live: BTreeMap<usize, Desc>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { next: 0, live: BTreeMap::new() });

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Descriptors are numbered from here: never null, never a mapped address.
const DESC_BASE: usize = 0xcd00_0000_0000;

fn lookup(reg: &Registry, d: usize) -> R<&Desc> {
    if d == 0 {
        return fail(status::BAD_PARAM_NULL_POINTER, "descriptor is NULL");
    }
    reg.live.get(&d).ok_or_else(|| Fail {
        code: status::BAD_PARAM,
        msg: format!("{d:#x} is not a live backend descriptor (never created, or destroyed)"),
        logged: false,
    })
}

/// Which descriptor type owns an attribute and the types it may be set or queried as; `None` for attributes
/// Phantom does not interpret (those are stored and returned as given).
fn spec(name: u32) -> Option<(u32, &'static [u32])> {
    const BD: &[u32] = &[ty::BACKEND_DESCRIPTOR];
    const I64: &[u32] = &[ty::INT64];
    const DT: &[u32] = &[ty::DATA_TYPE];
    const SCALAR: &[u32] = &[ty::FLOAT, ty::DOUBLE];
    const BOOL: &[u32] = &[ty::BOOLEAN];
    Some(match name {
        0 => (desc::POINTWISE, &[ty::POINTWISE_MODE]),
        1 => (desc::POINTWISE, DT),
        3..=8 => (desc::POINTWISE, SCALAR),
        9 => (desc::POINTWISE, I64),
        100 => (desc::CONVOLUTION, DT),
        101 => (desc::CONVOLUTION, &[ty::CONVOLUTION_MODE]),
        102..=106 => (desc::CONVOLUTION, I64),
        200 => (desc::ENGINEHEUR, &[ty::HEUR_MODE]),
        201 | 202 | 204 => (desc::ENGINEHEUR, BD),
        203 => (desc::ENGINEHEUR, &[ty::INT32]),
        300..=302 => (desc::ENGINECFG, BD),
        303 => (desc::ENGINECFG, I64),
        304 => (desc::ENGINECFG, &[ty::INT32]),
        400 => (desc::EXECUTION_PLAN, &[ty::HANDLE]),
        401 | 406 | 407 => (desc::EXECUTION_PLAN, BD),
        402..=404 => (desc::EXECUTION_PLAN, I64),
        405 => (desc::EXECUTION_PLAN, &[ty::CHAR]),
        600 => (desc::KNOB_CHOICE, &[ty::KNOB_TYPE]),
        601 => (desc::KNOB_CHOICE, I64),
        700 | 701 => (desc::OP_CONV_FORWARD, SCALAR),
        702..=705 => (desc::OP_CONV_FORWARD, BD),
        706 | 707 => (desc::OP_CONV_BACKWARD_DATA, SCALAR),
        708..=711 => (desc::OP_CONV_BACKWARD_DATA, BD),
        712 | 713 => (desc::OP_CONV_BACKWARD_FILTER, SCALAR),
        714..=717 => (desc::OP_CONV_BACKWARD_FILTER, BD),
        750..=753 | 756..=758 => (desc::OP_POINTWISE, BD),
        754 | 755 => (desc::OP_POINTWISE, SCALAR),
        800 => (desc::OPERATIONGRAPH, &[ty::HANDLE]),
        801 => (desc::OPERATIONGRAPH, BD),
        802 => (desc::OPERATIONGRAPH, I64),
        803 | 804 => (desc::OPERATIONGRAPH, BOOL),
        900 | 902..=906 => (desc::TENSOR, I64),
        901 => (desc::TENSOR, DT),
        907 | 908 => (desc::TENSOR, BOOL),
        909 => (desc::TENSOR, &[ty::TENSOR_REORDERING_MODE]),
        913 => (desc::TENSOR, BD),
        1000 => (desc::VARIANT_PACK, I64),
        1001..=1003 => (desc::VARIANT_PACK, &[ty::VOID_PTR]),
        1300 | 1302 | 1304 | 1307 => (desc::ENGINE, BD),
        1301 => (desc::ENGINE, I64),
        1303 => (desc::ENGINE, &[ty::NUMERICAL_NOTE]),
        1305 => (desc::ENGINE, &[ty::BEHAVIOR_NOTE]),
        1306 => (desc::ENGINE, &[ty::INT32]),
        1500 => (desc::MATMUL, DT),
        1520..=1523 | 1525..=1527 => (desc::OP_MATMUL, BD),
        1524 => (desc::OP_MATMUL, I64),
        1600 => (desc::REDUCTION, &[ty::REDUCTION_OPERATOR_TYPE]),
        1601 => (desc::REDUCTION, DT),
        1602 => (desc::REDUCTION, BOOL),
        1610..=1612 => (desc::OP_REDUCTION, BD),
        2200 | 2201 => (desc::OP_RESHAPE, BD),
        2300 => (desc::RNG, &[ty::RNG_DISTRIBUTION]),
        2301..=2305 => (desc::RNG, &[ty::DOUBLE]),
        2310 | 2312 | 2313 => (desc::OP_RNG, BD),
        2311 => (desc::OP_RNG, &[ty::INT64, ty::BACKEND_DESCRIPTOR]),
        _ => return None,
    })
}

/// Checks that `name` belongs to descriptors of type `kind` and may have type `t`.
fn check_spec(kind: u32, name: u32, t: u32) -> R<()> {
    if let Some((owner, types)) = spec(name) {
        if owner != kind {
            return fail(
                status::BAD_PARAM,
                format!("attribute {name} does not belong to a CUDNN_BACKEND_{}", desc::name(kind)),
            );
        }
        if !types.contains(&t) {
            return fail(
                status::BAD_PARAM_ATTRIBUTE_TYPE,
                format!("attribute {name} of a CUDNN_BACKEND_{} cannot have attribute type {t}", desc::name(kind)),
            );
        }
    }
    Ok(())
}

pub fn create(kind: i32) -> R<usize> {
    if !(0..desc::COUNT as i32).contains(&kind) {
        return fail(status::BAD_PARAM, format!("unknown cudnnBackendDescriptorType_t {kind}"));
    }
    let mut reg = registry();
    reg.next += 1;
    let d = DESC_BASE + reg.next * 0x100;
    reg.live.insert(d, Desc::new(kind as u32));
    Ok(d)
}

pub fn destroy(d: usize) -> R<()> {
    let mut reg = registry();
    lookup(&reg, d)?;
    reg.live.remove(&d);
    Ok(())
}

/// `cudnnBackendSetAttribute`: copies `count` elements of type `t` from `elems`.
pub fn set(d: usize, name: i32, t: i32, count: i64, elems: *const c_void) -> R<()> {
    let mut reg = registry();
    let target = lookup(&reg, d)?;
    let (name, t) = (name as u32, t as u32);
    if target.finalized {
        return fail(status::BAD_PARAM, format!("CUDNN_BACKEND_{} is already finalized", desc::name(target.kind)));
    }
    let Some(size) = ty::size(t) else {
        return fail(status::BAD_PARAM, format!("unknown cudnnBackendAttributeType_t {t}"));
    };
    // No attribute has anywhere near 2^24 elements: a larger count is a mistake, not an allocation to attempt.
    if !(0..1 << 24).contains(&count) {
        return fail(status::BAD_PARAM, format!("element count {count}"));
    }
    if count > 0 && elems.is_null() {
        return fail(status::BAD_PARAM_NULL_POINTER, "arrayOfElements is NULL");
    }
    check_spec(target.kind, name, t)?;
    let len = count as usize * size;
    // SAFETY: the caller passes `count` elements of `size` bytes (cuDNN's contract); checked non-null above.
    let bytes =
        if len == 0 { Vec::new() } else { unsafe { std::slice::from_raw_parts(elems as *const u8, len) }.to_vec() };
    let a = Attr { ty: t, count: count as usize, bytes };
    if t == ty::BACKEND_DESCRIPTOR {
        for p in a.ptrs() {
            lookup(&reg, p)?;
        }
    }
    reg.live.get_mut(&d).expect("looked up above").attrs.insert(name, a);
    Ok(())
}

/// The tensor copy of a finalized tensor descriptor.
fn tensor_info(d: &Desc) -> R<Tensor> {
    let need = |what: &str| Fail { code: status::BAD_PARAM, msg: format!("tensor without {what}"), logged: false };
    let dtype = d.enum32(attr::TENSOR_DATA_TYPE).ok_or_else(|| need("CUDNN_ATTR_TENSOR_DATA_TYPE"))?;
    let dims = d.int64s(attr::TENSOR_DIMENSIONS).ok_or_else(|| need("CUDNN_ATTR_TENSOR_DIMENSIONS"))?;
    let strides = d.int64s(attr::TENSOR_STRIDES).ok_or_else(|| need("CUDNN_ATTR_TENSOR_STRIDES"))?;
    let uid = d.int64(attr::TENSOR_UNIQUE_ID).ok_or_else(|| need("CUDNN_ATTR_TENSOR_UNIQUE_ID"))?;
    let align = d.int64(attr::TENSOR_BYTE_ALIGNMENT).ok_or_else(|| need("CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT"))?;
    if dims.is_empty() || dims.len() > 8 || dims.len() != strides.len() {
        return fail(
            status::BAD_PARAM,
            format!("tensor uid {uid}: {} dimensions and {} strides (1 to 8, equal)", dims.len(), strides.len()),
        );
    }
    if dims.iter().any(|&x| x <= 0) || strides.iter().any(|&x| x < 0) || align <= 0 {
        return fail(
            status::BAD_PARAM,
            format!("tensor uid {uid}: dims {dims:?} strides {strides:?} alignment {align}"),
        );
    }
    Ok(Tensor {
        uid,
        dtype,
        dims,
        strides,
        is_virtual: d.boolean(attr::TENSOR_IS_VIRTUAL).unwrap_or(false),
        by_value: d.boolean(attr::TENSOR_IS_BY_VALUE).unwrap_or(false),
    })
}

/// A referenced descriptor, which must be live, finalized and of type `kind`.
fn referenced(reg: &Registry, p: usize, kind: u32) -> R<&Desc> {
    let r = lookup(reg, p)?;
    if r.kind != kind {
        return fail(
            status::BAD_PARAM,
            format!("expected a CUDNN_BACKEND_{}, got a CUDNN_BACKEND_{}", desc::name(kind), desc::name(r.kind)),
        );
    }
    if !r.finalized {
        return fail(
            status::BAD_PARAM_NOT_FINALIZED,
            format!("the CUDNN_BACKEND_{} it refers to is not finalized", desc::name(kind)),
        );
    }
    Ok(r)
}

fn one(d: &Desc, name: u32) -> R<usize> {
    match d.descs(name).as_slice() {
        [p] => Ok(*p),
        _ => fail(
            status::BAD_PARAM,
            format!("CUDNN_BACKEND_{} needs attribute {name} (one descriptor)", desc::name(d.kind)),
        ),
    }
}

/// The attributes an operation needs before it can be finalized.
fn required(kind: u32) -> &'static [u32] {
    match kind {
        desc::OP_MATMUL => &[
            attr::OPERATION_MATMUL_ADESC,
            attr::OPERATION_MATMUL_BDESC,
            attr::OPERATION_MATMUL_CDESC,
            attr::OPERATION_MATMUL_DESC,
        ],
        desc::OP_POINTWISE => &[attr::OPERATION_POINTWISE_PW_DESCRIPTOR],
        desc::OP_REDUCTION => {
            &[attr::OPERATION_REDUCTION_DESC, attr::OPERATION_REDUCTION_XDESC, attr::OPERATION_REDUCTION_YDESC]
        }
        desc::OP_CONV_FORWARD => &[702, 703, 704, 705],
        desc::OP_CONV_BACKWARD_DATA => &[708, 709, 710, 711],
        desc::OP_CONV_BACKWARD_FILTER => &[714, 715, 716, 717],
        desc::OP_RESHAPE => &[attr::OPERATION_RESHAPE_XDESC, attr::OPERATION_RESHAPE_YDESC],
        desc::OP_RNG => &[attr::OPERATION_RNG_YDESC, attr::OPERATION_RNG_DESC],
        _ => &[],
    }
}

fn op_info(reg: &Registry, d: &Desc) -> R<Op> {
    for &name in required(d.kind) {
        if d.descs(name).is_empty() {
            return fail(status::BAD_PARAM, format!("CUDNN_BACKEND_{} needs attribute {name}", desc::name(d.kind)));
        }
    }
    let mut op = Op { kind: d.kind, tensors: Vec::new(), mode: None, comp_type: None, conv: None };
    for (&name, a) in &d.attrs {
        if a.ty != ty::BACKEND_DESCRIPTOR {
            continue;
        }
        for p in a.ptrs() {
            let r = lookup(reg, p)?;
            if !r.finalized {
                return fail(
                    status::BAD_PARAM_NOT_FINALIZED,
                    format!(
                        "attribute {name} of a CUDNN_BACKEND_{}: its descriptor is not finalized",
                        desc::name(d.kind)
                    ),
                );
            }
            match (&r.info, r.kind) {
                (Info::Tensor(t), _) => op.tensors.push((name, t.clone())),
                (_, desc::POINTWISE) => op.mode = r.enum32(attr::POINTWISE_MODE),
                (_, desc::REDUCTION) => op.mode = r.enum32(attr::REDUCTION_OPERATOR),
                (_, desc::MATMUL) => op.comp_type = r.enum32(attr::MATMUL_COMP_TYPE),
                (_, desc::CONVOLUTION) => {
                    op.comp_type = r.enum32(attr::CONVOLUTION_COMP_TYPE);
                    let ints = |name: u32| r.int64s(name).unwrap_or_default();
                    op.conv = Some(ConvParams {
                        mode: r.enum32(attr::CONVOLUTION_CONV_MODE),
                        dilations: ints(attr::CONVOLUTION_DILATIONS),
                        strides: ints(attr::CONVOLUTION_FILTER_STRIDES),
                        pre_paddings: ints(attr::CONVOLUTION_PRE_PADDINGS),
                        post_paddings: ints(attr::CONVOLUTION_POST_PADDINGS),
                    });
                }
                _ => {}
            }
        }
    }
    if d.kind == desc::OP_POINTWISE
        && op.tensor(attr::OPERATION_POINTWISE_XDESC).is_none()
        && op.tensor(attr::OPERATION_POINTWISE_DYDESC).is_none()
    {
        return fail(status::BAD_PARAM, "pointwise operation without an X (or dY) tensor");
    }
    Ok(op)
}

fn graph_of(reg: &Registry, d: &Desc, name: u32) -> R<Arc<Graph>> {
    match &referenced(reg, one(d, name)?, desc::OPERATIONGRAPH)?.info {
        Info::Graph(g) => Ok(g.clone()),
        _ => fail(status::INTERNAL_ERROR, "finalized operation graph without a graph"),
    }
}

fn engine_of(reg: &Registry, p: usize, kind: u32) -> R<Engine> {
    match &referenced(reg, p, kind)?.info {
        Info::Engine(e) => Ok(e.clone()),
        _ => fail(status::INTERNAL_ERROR, "finalized engine without an engine"),
    }
}

/// `cudnnBackendFinalize`. `is_handle` says whether a `cudnnHandle_t` is live. In an executing process
/// (`executing`) NVIDIA's library has already accepted the descriptor's twin, and an engine's global index is
/// bounded by NVIDIA's engine count, not Phantom's.
pub fn finalize(d: usize, is_handle: &dyn Fn(usize) -> bool, executing: bool) -> R<()> {
    let mut reg = registry();
    let this = lookup(&reg, d)?;
    if this.finalized {
        return fail(status::BAD_PARAM, format!("CUDNN_BACKEND_{} is already finalized", desc::name(this.kind)));
    }
    let check_handle = |name: u32| -> R<()> {
        match this.ptrs(name).first() {
            Some(&h) if !is_handle(h) => {
                fail(status::BAD_PARAM, format!("attribute {name}: {h:#x} is not a live cudnnHandle_t"))
            }
            _ => Ok(()),
        }
    };
    let need = |name: u32, what: &str| -> R<()> {
        if this.attrs.contains_key(&name) {
            Ok(())
        } else {
            fail(status::BAD_PARAM, format!("CUDNN_BACKEND_{} without {what}", desc::name(this.kind)))
        }
    };
    let info = match this.kind {
        desc::TENSOR => Info::Tensor(tensor_info(this)?),
        desc::POINTWISE => {
            need(attr::POINTWISE_MODE, "CUDNN_ATTR_POINTWISE_MODE")?;
            Info::None
        }
        desc::MATMUL => {
            need(attr::MATMUL_COMP_TYPE, "CUDNN_ATTR_MATMUL_COMP_TYPE")?;
            Info::None
        }
        desc::REDUCTION => {
            need(attr::REDUCTION_OPERATOR, "CUDNN_ATTR_REDUCTION_OPERATOR")?;
            Info::None
        }
        k if desc::is_operation(k) => Info::Op(op_info(&reg, this)?),
        desc::OPERATIONGRAPH => {
            check_handle(attr::OPERATIONGRAPH_HANDLE)?;
            let ops = this.descs(attr::OPERATIONGRAPH_OPS);
            if ops.is_empty() {
                return fail(status::BAD_PARAM, "operation graph without CUDNN_ATTR_OPERATIONGRAPH_OPS");
            }
            let mut copied = Vec::with_capacity(ops.len());
            for p in ops {
                let r = lookup(&reg, p)?;
                match &r.info {
                    Info::Op(op) if r.finalized => copied.push(op.clone()),
                    _ if !desc::is_operation(r.kind) => {
                        return fail(
                            status::BAD_PARAM,
                            format!("CUDNN_BACKEND_{} is not an operation", desc::name(r.kind)),
                        )
                    }
                    _ => {
                        return fail(
                            status::BAD_PARAM_NOT_FINALIZED,
                            format!("CUDNN_BACKEND_{} is not finalized", desc::name(r.kind)),
                        )
                    }
                }
            }
            match Graph::new(copied) {
                Ok(g) => Info::Graph(Arc::new(g)),
                Err(why) => {
                    return fail(status::NOT_SUPPORTED, format!("Phantom cannot model this operation graph: {why}"))
                }
            }
        }
        desc::ENGINEHEUR => {
            let graph = graph_of(&reg, this, attr::ENGINEHEUR_OPERATION_GRAPH)?;
            match this.enum32(attr::ENGINEHEUR_MODE) {
                Some(0..=3) => {}
                Some(m) => return fail(status::BAD_PARAM, format!("unknown cudnnBackendHeurMode_t {m}")),
                None => return fail(status::BAD_PARAM, "engine heuristics without CUDNN_ATTR_ENGINEHEUR_MODE"),
            }
            let engines =
                graph.heuristics().into_iter().map(|choice| Engine { graph: graph.clone(), choice }).collect();
            Info::Heur(engines)
        }
        desc::ENGINE => {
            let graph = graph_of(&reg, this, attr::ENGINE_OPERATION_GRAPH)?;
            let Some(index) = this.int64(attr::ENGINE_GLOBAL_INDEX) else {
                return fail(status::BAD_PARAM, "engine without CUDNN_ATTR_ENGINE_GLOBAL_INDEX");
            };
            if index < 0 || (!executing && index >= ENGINE_GLOBAL_COUNT) {
                return fail(
                    status::BAD_PARAM_OUT_OF_BOUND,
                    format!("engine index {index} (the graph has {ENGINE_GLOBAL_COUNT})"),
                );
            }
            let choice = graph.engine(index);
            Info::Engine(Engine { graph, choice })
        }
        desc::KNOB_CHOICE => match (this.enum32(attr::KNOB_CHOICE_KNOB_TYPE), this.int64(attr::KNOB_CHOICE_KNOB_VALUE))
        {
            (Some(t), Some(v)) => Info::Knob(t, v),
            _ => return fail(status::BAD_PARAM, "knob choice without its type or value"),
        },
        desc::ENGINECFG => {
            let mut e = engine_of(&reg, one(this, attr::ENGINECFG_ENGINE)?, desc::ENGINE)?;
            if this.attrs.contains_key(&attr::ENGINECFG_KNOB_CHOICES) {
                let mut knobs = Vec::new();
                for p in this.descs(attr::ENGINECFG_KNOB_CHOICES) {
                    if let Info::Knob(t, v) = referenced(&reg, p, desc::KNOB_CHOICE)?.info {
                        knobs.push((t, v));
                    }
                }
                e.choice.knobs = knobs;
            }
            Info::Engine(e)
        }
        desc::EXECUTION_PLAN => {
            check_handle(attr::EXECUTION_PLAN_HANDLE)?;
            if !this.attrs.contains_key(&attr::EXECUTION_PLAN_ENGINE_CONFIG)
                && this.attrs.contains_key(&attr::EXECUTION_PLAN_JSON_REPRESENTATION)
            {
                return fail(
                    status::NOT_SUPPORTED,
                    "Phantom cannot load an execution plan from its JSON representation",
                );
            }
            Info::Engine(engine_of(&reg, one(this, attr::EXECUTION_PLAN_ENGINE_CONFIG)?, desc::ENGINECFG)?)
        }
        desc::VARIANT_PACK => {
            let uids = this.int64s(attr::VARIANT_PACK_UNIQUE_IDS).unwrap_or_default();
            let ptrs = this.ptrs(attr::VARIANT_PACK_DATA_POINTERS);
            if uids.len() != ptrs.len() {
                return fail(
                    status::BAD_PARAM,
                    format!("variant pack with {} unique ids and {} data pointers", uids.len(), ptrs.len()),
                );
            }
            let workspace = this.ptrs(attr::VARIANT_PACK_WORKSPACE).first().copied().unwrap_or(0);
            Info::Pack(Pack { uids, ptrs, workspace })
        }
        _ => Info::None,
    };
    let this = reg.live.get_mut(&d).expect("looked up above");
    this.info = info;
    this.finalized = true;
    Ok(())
}

/// What a query returns: elements of one attribute type, or descriptors to copy into the caller's.
enum Value {
    Elems { ty: u32, count: usize, bytes: Vec<u8> },
    Descs { kind: u32, fill: Vec<Desc> },
}

fn i64s(v: &[i64]) -> Value {
    Value::Elems { ty: ty::INT64, count: v.len(), bytes: v.iter().flat_map(|x| x.to_ne_bytes()).collect() }
}

fn enums(t: u32, v: &[i32]) -> Value {
    Value::Elems { ty: t, count: v.len(), bytes: v.iter().flat_map(|x| x.to_ne_bytes()).collect() }
}

/// The JSON `CUDNN_ATTR_EXECUTION_PLAN_JSON_REPRESENTATION` returns: the engine configuration, in the form
/// NVIDIA's API log prints it.
fn plan_json(e: &Engine) -> String {
    let knobs: Vec<String> = e
        .choice
        .knobs
        .iter()
        .map(|(t, v)| match *t {
            super::consts::knob::KERNEL_CFG => format!("\"CUDNN_KNOB_TYPE_KERNEL_CFG\":{v}"),
            super::consts::knob::STAGES => format!("\"CUDNN_KNOB_TYPE_STAGES\":{v}"),
            other => format!("\"{other}\":{v}"),
        })
        .collect();
    format!(
        "{{\"engineId\":{},\"smVersion\":900,\"knobChoices\":{{{}}},\"phantom\":\"{}\"}}",
        e.choice.index,
        knobs.join(","),
        e.graph.kernel(e.choice.index).0
    )
}

fn engine_value(this: &Desc, name: u32) -> R<Option<Value>> {
    let Info::Engine(e) = &this.info else { return Ok(None) };
    let engine_desc = || Desc::filled(desc::ENGINE, Info::Engine(e.clone()));
    Ok(Some(match (this.kind, name) {
        (desc::ENGINECFG, attr::ENGINECFG_ENGINE) => Value::Descs { kind: desc::ENGINE, fill: vec![engine_desc()] },
        (desc::ENGINECFG, attr::ENGINECFG_KNOB_CHOICES) => Value::Descs {
            kind: desc::KNOB_CHOICE,
            fill: e.choice.knobs.iter().map(|&(t, v)| Desc::filled(desc::KNOB_CHOICE, Info::Knob(t, v))).collect(),
        },
        (desc::ENGINECFG, attr::ENGINECFG_WORKSPACE_SIZE)
        | (desc::EXECUTION_PLAN, attr::EXECUTION_PLAN_WORKSPACE_SIZE) => i64s(&[e.graph.workspace()]),
        (desc::ENGINECFG, attr::ENGINECFG_SHARED_MEMORY_USED) => enums(ty::INT32, &[0]),
        (desc::ENGINECFG, attr::ENGINECFG_INTERMEDIATE_INFO) => {
            Value::Descs { kind: desc::INTERMEDIATE_INFO, fill: vec![] }
        }
        (desc::ENGINE, attr::ENGINE_GLOBAL_INDEX) => i64s(&[e.choice.index]),
        (desc::ENGINE, attr::ENGINE_NUMERICAL_NOTE) => enums(ty::NUMERICAL_NOTE, &e.choice.numerical),
        (desc::ENGINE, attr::ENGINE_BEHAVIOR_NOTE) => enums(ty::BEHAVIOR_NOTE, &e.choice.behavior),
        (desc::ENGINE, attr::ENGINE_KNOB_INFO) => Value::Descs { kind: desc::KNOB_INFO, fill: vec![] },
        (desc::ENGINE, attr::ENGINE_LAYOUT_INFO) => Value::Descs { kind: desc::LAYOUT_INFO, fill: vec![] },
        (desc::ENGINE, attr::ENGINE_OPERATION_GRAPH) => Value::Descs {
            kind: desc::OPERATIONGRAPH,
            fill: vec![Desc::filled(desc::OPERATIONGRAPH, Info::Graph(e.graph.clone()))],
        },
        (desc::EXECUTION_PLAN, attr::EXECUTION_PLAN_ENGINE_CONFIG) => {
            Value::Descs { kind: desc::ENGINECFG, fill: vec![Desc::filled(desc::ENGINECFG, Info::Engine(e.clone()))] }
        }
        (desc::EXECUTION_PLAN, attr::EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS)
        | (desc::EXECUTION_PLAN, attr::EXECUTION_PLAN_RUN_ONLY_INTERMEDIATE_UIDS) => i64s(&[]),
        (desc::EXECUTION_PLAN, attr::EXECUTION_PLAN_JSON_REPRESENTATION) => {
            let mut bytes = plan_json(e).into_bytes();
            bytes.push(0);
            Value::Elems { ty: ty::CHAR, count: bytes.len(), bytes }
        }
        _ => return Ok(None),
    }))
}

/// Attributes a descriptor computes (as opposed to returning what was set).
fn computed(this: &Desc, name: u32) -> R<Option<Value>> {
    let derived = matches!(
        (this.kind, name),
        (desc::ENGINEHEUR, attr::ENGINEHEUR_RESULTS)
            | (desc::OPERATIONGRAPH, attr::OPERATIONGRAPH_ENGINE_GLOBAL_COUNT)
            | (desc::ENGINECFG, 300..=304)
            | (desc::ENGINE, 1301..=1305)
            | (desc::KNOB_CHOICE, 600 | 601)
            | (desc::EXECUTION_PLAN, 401..=405)
    );
    if derived && !this.finalized {
        return fail(
            status::BAD_PARAM_NOT_FINALIZED,
            format!("CUDNN_BACKEND_{} is not finalized", desc::name(this.kind)),
        );
    }
    if let Some(v) = engine_value(this, name)? {
        return Ok(Some(v));
    }
    Ok(match (&this.info, name) {
        (Info::Heur(engines), attr::ENGINEHEUR_RESULTS) => Some(Value::Descs {
            kind: desc::ENGINECFG,
            fill: engines.iter().map(|e| Desc::filled(desc::ENGINECFG, Info::Engine(e.clone()))).collect(),
        }),
        (Info::Graph(_), attr::OPERATIONGRAPH_ENGINE_GLOBAL_COUNT) => Some(i64s(&[ENGINE_GLOBAL_COUNT])),
        (Info::Knob(t, _), attr::KNOB_CHOICE_KNOB_TYPE) => Some(enums(ty::KNOB_TYPE, &[*t])),
        (Info::Knob(_, v), attr::KNOB_CHOICE_KNOB_VALUE) => Some(i64s(&[*v])),
        _ => None,
    })
}

/// What attribute `name` of `this` has: computed, as set, or its default.
fn value_of(reg: &Registry, this: &Desc, name: u32, t: u32) -> R<Value> {
    Ok(match computed(this, name)? {
        Some(v) => v,
        None => match this.attrs.get(&name) {
            Some(a) if a.ty == ty::BACKEND_DESCRIPTOR => {
                let mut fill = Vec::new();
                let mut kind = None;
                for p in a.ptrs() {
                    let r = lookup(reg, p)?;
                    kind = Some(r.kind);
                    fill.push(r.clone());
                }
                Value::Descs { kind: kind.unwrap_or(u32::MAX), fill }
            }
            Some(a) => Value::Elems { ty: a.ty, count: a.count, bytes: a.bytes.clone() },
            None => match (this.kind, name) {
                (desc::TENSOR, attr::TENSOR_IS_VIRTUAL) | (desc::TENSOR, attr::TENSOR_IS_BY_VALUE) => {
                    Value::Elems { ty: ty::BOOLEAN, count: 1, bytes: vec![0] }
                }
                (desc::TENSOR, attr::TENSOR_VECTOR_COUNT) => i64s(&[1]),
                (desc::TENSOR, attr::TENSOR_VECTORIZED_DIMENSION) => i64s(&[-1]),
                _ => Value::Elems { ty: t, count: 0, bytes: vec![] },
            },
        },
    })
}

/// `cudnnBackendGetAttribute`: writes at most `requested` elements to `elems` (descriptor-typed attributes fill
/// the descriptors the caller created and put there) and the number the attribute has to `count`.
pub fn get(d: usize, name: i32, t: i32, requested: i64, count: Option<&mut i64>, elems: *mut c_void) -> R<()> {
    let mut reg = registry();
    let this = lookup(&reg, d)?;
    let (name, t) = (name as u32, t as u32);
    if requested < 0 {
        return fail(status::BAD_PARAM, format!("negative requested element count {requested}"));
    }
    if ty::size(t).is_none() {
        return fail(status::BAD_PARAM, format!("unknown cudnnBackendAttributeType_t {t}"));
    }
    check_spec(this.kind, name, t)?;
    let value = value_of(&reg, this, name, t)?;
    let requested = requested as usize;
    match value {
        Value::Elems { ty: vt, count: n, bytes } => {
            if vt != t {
                return fail(
                    status::BAD_PARAM_ATTRIBUTE_TYPE,
                    format!("attribute {name} has attribute type {vt}, not {t}"),
                );
            }
            let size = ty::size(t).expect("checked above");
            // A NULL array asks for the count only.
            let write = if elems.is_null() { 0 } else { n.min(requested) };
            if write > 0 {
                // SAFETY: the caller provides room for `requested` elements (cuDNN's contract).
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), elems as *mut u8, write * size) };
            }
            if let Some(c) = count {
                *c = n as i64;
            }
        }
        Value::Descs { kind, fill } => {
            if t != ty::BACKEND_DESCRIPTOR {
                return fail(
                    status::BAD_PARAM_ATTRIBUTE_TYPE,
                    format!("attribute {name} is descriptor-typed, not type {t}"),
                );
            }
            let write = if elems.is_null() { 0 } else { fill.len().min(requested) };
            // SAFETY: the caller passes `requested` descriptors it created (cuDNN's contract).
            let targets: Vec<usize> =
                (0..write).map(|i| unsafe { *(elems as *const *mut c_void).add(i) } as usize).collect();
            for &p in &targets {
                let r = lookup(&reg, p)?;
                if r.kind != kind {
                    return fail(
                        status::BAD_PARAM,
                        format!(
                            "attribute {name} fills CUDNN_BACKEND_{}, got a CUDNN_BACKEND_{}",
                            desc::name(kind),
                            desc::name(r.kind)
                        ),
                    );
                }
            }
            for (p, src) in targets.into_iter().zip(fill.iter()) {
                *reg.live.get_mut(&p).expect("looked up above") = src.clone();
            }
            if let Some(c) = count {
                *c = fill.len() as i64;
            }
        }
    }
    Ok(())
}

/// The type of live descriptor `d`.
pub fn kind_of(d: usize) -> R<u32> {
    Ok(lookup(&registry(), d)?.kind)
}

/// Executing process: after NVIDIA's library has filled the twins of `targets` with descriptor-typed attribute
/// `name` of `d`'s twin, fills the stub's `targets` as far as the stub needs them later: each as the stub's own
/// query fills it (engine configurations from Phantom's heuristics, the engine's graph, knob choices), the
/// targets past the stub's own count like its last one (so any engine configuration NVIDIA offered carries the
/// graph, which is what the execution's key comes from). Best effort: a target the stub cannot fill is left
/// as it is.
pub fn fill_like(d: usize, name: i32, targets: &[usize]) {
    let mut reg = registry();
    let Ok(this) = lookup(&reg, d) else { return };
    let Ok(Value::Descs { kind, fill }) = value_of(&reg, this, name as u32, ty::BACKEND_DESCRIPTOR) else { return };
    let Some(last) = fill.last() else { return };
    for (i, &p) in targets.iter().enumerate() {
        let src = fill.get(i).unwrap_or(last).clone();
        if let Some(target) = reg.live.get_mut(&p).filter(|r| r.kind == kind) {
            *target = src;
        }
    }
}

/// What `cudnnBackendExecute` runs: the plan's engine. With `check_bindings`, after checking the variant pack
/// binds every tensor the graph reads or writes and a workspace if the plan needs one (an executing process
/// leaves those checks to NVIDIA's library, whose plan may need another workspace).
pub fn execution(plan: usize, pack: usize, check_bindings: bool) -> R<Engine> {
    let reg = registry();
    let p = lookup(&reg, plan)?;
    if p.kind != desc::EXECUTION_PLAN {
        return fail(status::BAD_PARAM, format!("executionPlan is a CUDNN_BACKEND_{}", desc::name(p.kind)));
    }
    let Info::Engine(e) = &p.info else {
        return fail(status::BAD_PARAM_NOT_FINALIZED, "the execution plan is not finalized");
    };
    let v = lookup(&reg, pack)?;
    if v.kind != desc::VARIANT_PACK {
        return fail(status::BAD_PARAM, format!("variantPack is a CUDNN_BACKEND_{}", desc::name(v.kind)));
    }
    let Info::Pack(pk) = &v.info else {
        return fail(status::BAD_PARAM_NOT_FINALIZED, "the variant pack is not finalized");
    };
    if !check_bindings {
        return Ok(e.clone());
    }
    for uid in e.graph.io_uids() {
        match pk.uids.iter().position(|&u| u == uid) {
            None => return fail(status::BAD_PARAM, format!("the variant pack has no pointer for tensor uid {uid}")),
            Some(i) if pk.ptrs[i] == 0 => {
                return fail(
                    status::BAD_PARAM_NULL_POINTER,
                    format!("the variant pack's pointer for tensor uid {uid} is NULL"),
                )
            }
            Some(_) => {}
        }
    }
    if e.graph.workspace() > 0 && pk.workspace == 0 {
        return fail(
            status::BAD_PARAM,
            format!("the plan needs {} bytes of workspace and the variant pack has none", e.graph.workspace()),
        );
    }
    Ok(e.clone())
}

#[cfg(test)]
mod tests {
    use super::super::consts::dtype;
    use super::*;

    fn set_i64s(d: usize, name: u32, v: &[i64]) {
        set(d, name as i32, ty::INT64 as i32, v.len() as i64, v.as_ptr() as *const c_void).unwrap();
    }

    fn tensor(uid: i64, dims: &[i64]) -> usize {
        let d = create(desc::TENSOR as i32).unwrap();
        let dt = dtype::BFLOAT16;
        set(d, attr::TENSOR_DATA_TYPE as i32, ty::DATA_TYPE as i32, 1, &dt as *const i32 as *const c_void).unwrap();
        set_i64s(d, attr::TENSOR_DIMENSIONS, dims);
        let mut strides = vec![1i64; dims.len()];
        for i in (0..dims.len() - 1).rev() {
            strides[i] = strides[i + 1] * dims[i + 1];
        }
        set_i64s(d, attr::TENSOR_STRIDES, &strides);
        set_i64s(d, attr::TENSOR_UNIQUE_ID, &[uid]);
        set_i64s(d, attr::TENSOR_BYTE_ALIGNMENT, &[16]);
        finalize(d, &|_| true, false).unwrap();
        d
    }

    fn set_desc(d: usize, name: u32, v: usize) {
        set(d, name as i32, ty::BACKEND_DESCRIPTOR as i32, 1, &v as *const usize as *const c_void).unwrap();
    }

    #[test]
    fn matmul_graph_to_plan() {
        let (a, b, c) = (tensor(1, &[1, 64, 32]), tensor(2, &[1, 32, 16]), tensor(3, &[1, 64, 16]));
        let mm = create(desc::MATMUL as i32).unwrap();
        let f = dtype::FLOAT;
        set(mm, attr::MATMUL_COMP_TYPE as i32, ty::DATA_TYPE as i32, 1, &f as *const i32 as *const c_void).unwrap();
        finalize(mm, &|_| true, false).unwrap();
        let op = create(desc::OP_MATMUL as i32).unwrap();
        set_desc(op, attr::OPERATION_MATMUL_ADESC, a);
        set_desc(op, attr::OPERATION_MATMUL_BDESC, b);
        set_desc(op, attr::OPERATION_MATMUL_CDESC, c);
        set_desc(op, attr::OPERATION_MATMUL_DESC, mm);
        finalize(op, &|_| true, false).unwrap();
        destroy(mm).unwrap(); // the operation keeps what it needs
        let g = create(desc::OPERATIONGRAPH as i32).unwrap();
        set_desc(g, attr::OPERATIONGRAPH_OPS, op);
        finalize(g, &|_| true, false).unwrap();

        let heur = create(desc::ENGINEHEUR as i32).unwrap();
        set_desc(heur, attr::ENGINEHEUR_OPERATION_GRAPH, g);
        let mode = 3i32;
        set(heur, attr::ENGINEHEUR_MODE as i32, ty::HEUR_MODE as i32, 1, &mode as *const i32 as *const c_void).unwrap();
        finalize(heur, &|_| true, false).unwrap();
        let mut n = 0i64;
        get(
            heur,
            attr::ENGINEHEUR_RESULTS as i32,
            ty::BACKEND_DESCRIPTOR as i32,
            0,
            Some(&mut n),
            std::ptr::null_mut(),
        )
        .unwrap();
        assert_eq!(n, 1);
        let mut cfg = create(desc::ENGINECFG as i32).unwrap();
        get(
            heur,
            attr::ENGINEHEUR_RESULTS as i32,
            ty::BACKEND_DESCRIPTOR as i32,
            1,
            Some(&mut n),
            &mut cfg as *mut usize as *mut c_void,
        )
        .unwrap();
        let plan = create(desc::EXECUTION_PLAN as i32).unwrap();
        set_desc(plan, attr::EXECUTION_PLAN_ENGINE_CONFIG, cfg);
        finalize(plan, &|_| true, false).unwrap();
        let mut ws = -1i64;
        get(
            plan,
            attr::EXECUTION_PLAN_WORKSPACE_SIZE as i32,
            ty::INT64 as i32,
            1,
            None,
            &mut ws as *mut i64 as *mut c_void,
        )
        .unwrap();
        assert_eq!(ws, 0);

        // Executing needs every uid bound.
        let pack = create(desc::VARIANT_PACK as i32).unwrap();
        set_i64s(pack, attr::VARIANT_PACK_UNIQUE_IDS, &[1, 2]);
        let ptrs = [0x1000usize, 0x2000];
        set(pack, attr::VARIANT_PACK_DATA_POINTERS as i32, ty::VOID_PTR as i32, 2, ptrs.as_ptr() as *const c_void)
            .unwrap();
        finalize(pack, &|_| true, false).unwrap();
        assert_eq!(execution(plan, pack, true).unwrap_err().code, status::BAD_PARAM);
        assert_eq!(execution(pack, plan, true).unwrap_err().code, status::BAD_PARAM);

        // Wrong attribute type, unknown descriptor, double finalize.
        let x = 1.0f32;
        let e =
            set(a, attr::TENSOR_DIMENSIONS as i32, ty::FLOAT as i32, 1, &x as *const f32 as *const c_void).unwrap_err();
        assert_eq!(e.code, status::BAD_PARAM); // finalized already
        let fresh = create(desc::TENSOR as i32).unwrap();
        let e = set(fresh, attr::TENSOR_DIMENSIONS as i32, ty::FLOAT as i32, 1, &x as *const f32 as *const c_void)
            .unwrap_err();
        assert_eq!(e.code, status::BAD_PARAM_ATTRIBUTE_TYPE);
        assert_eq!(finalize(0x1234, &|_| true, false).unwrap_err().code, status::BAD_PARAM);
        destroy(fresh).unwrap();
        assert_eq!(destroy(fresh).unwrap_err().code, status::BAD_PARAM);
    }
}
