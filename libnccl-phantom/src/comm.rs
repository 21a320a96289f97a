//! Communicators, the per-thread group queue, and NCCL's operations over the runtime table.
//!
//! Semantics follow nccl.h: operations called between `ncclGroupStart` and the matching `ncclGroupEnd` are
//! queued and submitted together when the outermost group ends; outside a group each call is its own group.
//! Initialisation calls inside a group complete at `ncclGroupEnd`. Communicator handles are checked
//! against the live set, so a destroyed or foreign handle is `ncclInvalidArgument`, never undefined
//! behaviour.

use crate::export::{self, NcclResult};
use crate::rt::{last_message, runtime, Runtime};
use phantom_cuda_sys::nccl::{ncclComm_t, ncclResult_t};
use sim_core::net::CollOp;
use sim_core::shim_abi::*;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

const COOKIE: u64 = 0x5048_4e54_4e43_434c; // "PHNTNCCL"

/// `ncclDataType_t` → bytes per element (ncclInt8 … ncclFloat8e5m2).
const DTYPE_BYTES: [u64; 12] = [1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1];
/// Built-in reduction operations (`ncclNumOps`).
const NUM_OPS: i32 = 5;

/// What an `ncclComm_t` points to.
pub struct Comm {
    cookie: u64,
    pub id: u64,
    pub rank: u32,
    pub nranks: u32,
    pub device: i32,
    splits: AtomicU64,
    shrinks: AtomicU64,
    /// Live `ncclRedOpCreatePreMulSum` operations.
    redops: Mutex<Vec<i32>>,
    gone: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Addresses of live communicators. Destroyed ones are never freed (a few dozen bytes each), so a stale
/// handle can always be recognised.
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn new_comm(info: &ShimCommInfo, device: i32) -> ncclComm_t {
    let c = Box::leak(Box::new(Comm {
        cookie: COOKIE,
        id: info.comm,
        rank: info.rank,
        nranks: info.nranks,
        device,
        splits: AtomicU64::new(0),
        shrinks: AtomicU64::new(0),
        redops: Mutex::new(Vec::new()),
        gone: AtomicBool::new(false),
    }));
    let p = c as *mut Comm as usize;
    lock(&LIVE).get_or_insert_with(HashSet::new).insert(p);
    p as ncclComm_t
}

/// The communicator behind a handle; null, unknown or destroyed → `ncclInvalidArgument`.
pub fn comm(h: ncclComm_t) -> NcclResult<&'static Comm> {
    let p = h as usize;
    if p == 0 || !lock(&LIVE).as_ref().is_some_and(|s| s.contains(&p)) {
        return Err(export::error(ncclResult_t::ncclInvalidArgument, format!("invalid or destroyed communicator {p:#x}")));
    }
    let c = unsafe { &*(p as *const Comm) };
    if c.cookie != COOKIE || c.gone.load(Ordering::Acquire) {
        return Err(export::error(ncclResult_t::ncclInvalidArgument, format!("destroyed communicator {p:#x}")));
    }
    Ok(c)
}

fn rt() -> NcclResult<&'static Runtime> {
    runtime().map_err(|e| export::error(ncclResult_t::ncclSystemError, e))
}

/// A table call's status as NCCL reports it.
fn check(rt: &Runtime, what: &str, rc: i32) -> NcclResult<()> {
    match rc {
        0 => Ok(()),
        // cudaErrorInvalidValue
        1 => Err(export::error(ncclResult_t::ncclInvalidArgument, format!("{what}: {}", last_message(rt)))),
        // cudaErrorInvalidResourceHandle (a bad stream), cudaErrorStreamCapture*
        400 | 900..=910 => Err(export::error(ncclResult_t::ncclInvalidUsage, format!("{what}: {}", last_message(rt)))),
        _ => {
            let msg = format!("{what}: {} (CUDA error {rc})", last_message(rt));
            crate::log::init();
            tracing::error!("phantom: {msg}");
            Err(export::error(ncclResult_t::ncclUnhandledCudaError, msg))
        }
    }
}

// ---- groups ----

struct PendingJoin {
    join: ShimJoin,
    out: *mut ncclComm_t,
}

#[derive(Default)]
struct Group {
    depth: u32,
    ops: Vec<(ShimOp, ShimBuffers)>,
    joins: Vec<PendingJoin>,
    /// The first error of a call inside the group (returned again by `ncclGroupEnd`).
    error: Option<ncclResult_t>,
}

thread_local! {
    static GROUP: RefCell<Group> = RefCell::new(Group::default());
}

pub fn group_start() -> NcclResult<()> {
    GROUP.with(|g| g.borrow_mut().depth += 1);
    Ok(())
}

pub fn group_end() -> NcclResult<()> {
    let (ops, joins, error) = GROUP.with(|g| {
        let mut g = g.borrow_mut();
        if g.depth == 0 {
            return Err(export::error(ncclResult_t::ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart"));
        }
        g.depth -= 1;
        if g.depth > 0 {
            return Ok(None);
        }
        Ok(Some((std::mem::take(&mut g.ops), std::mem::take(&mut g.joins), g.error.take())))
    })?
    .map_or((Vec::new(), Vec::new(), None), |x| x);
    if let Some(e) = error {
        return Err(e);
    }
    run_joins(joins)?;
    submit(&ops)
}

/// `ncclGroupSimulateEnd`: ends the group without running it; returns the contention-free time of what it
/// queued, in microseconds (operations on different streams overlap; one stream runs its operations together).
pub fn group_simulate_end() -> NcclResult<f32> {
    let ops = GROUP.with(|g| {
        let mut g = g.borrow_mut();
        if g.depth == 0 {
            return Err(export::error(ncclResult_t::ncclInvalidUsage, "ncclGroupSimulateEnd without ncclGroupStart"));
        }
        g.depth -= 1;
        if g.depth > 0 {
            return Ok(Vec::new());
        }
        g.joins.clear();
        g.error = None;
        Ok(std::mem::take(&mut g.ops))
    })?;
    let rt = rt()?;
    let mut worst = 0u64;
    for (op, _) in &ops {
        let mut ns = 0u64;
        check(rt, "ncclGroupSimulateEnd", unsafe { (rt.table.estimate)(op, &mut ns) })?;
        worst = worst.max(ns);
    }
    Ok(worst as f32 / 1000.0)
}

fn in_group() -> bool {
    GROUP.with(|g| g.borrow().depth > 0)
}

/// Fails a call with `code` and `msg` (`ncclGetLastError`); inside a group `ncclGroupEnd` reports it too.
fn bad(code: ncclResult_t, msg: impl std::fmt::Display) -> ncclResult_t {
    fail(export::error(code, msg))
}

/// Records an error raised inside a group (so `ncclGroupEnd` reports it too) and returns it.
fn fail(e: ncclResult_t) -> ncclResult_t {
    GROUP.with(|g| {
        let mut g = g.borrow_mut();
        if g.depth > 0 && g.error.is_none() {
            g.error = Some(e);
        }
    });
    e
}

/// Queues operations with their buffers, so that the data of small ones travels (runtime table version 3).
fn submit(ops: &[(ShimOp, ShimBuffers)]) -> NcclResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let rt = rt()?;
    let (list, buffers): (Vec<ShimOp>, Vec<ShimBuffers>) = ops.iter().copied().unzip();
    check(rt, "queuing NCCL operations", unsafe { (rt.table.submit_with_buffers)(list.as_ptr(), buffers.as_ptr(), list.len()) })
}

fn run_joins(joins: Vec<PendingJoin>) -> NcclResult<()> {
    if joins.is_empty() {
        return Ok(());
    }
    let rt = rt()?;
    let list: Vec<ShimJoin> = joins.iter().map(|j| j.join).collect();
    let mut out = vec![ShimCommInfo::default(); list.len()];
    check(rt, "communicator initialisation", unsafe { (rt.table.join)(list.as_ptr(), list.len(), out.as_mut_ptr()) })?;
    let mut result = Ok(());
    for (j, info) in joins.iter().zip(&out) {
        let handle = match info.status {
            JOINED => new_comm(info, j.join.device),
            JOINED_NONE => std::ptr::null_mut(),
            _ => {
                if result.is_ok() {
                    let msg = format!("communicator initialisation failed: {}", last_message(rt));
                    crate::log::init();
                    tracing::error!("phantom: {msg}");
                    result = Err(export::error(ncclResult_t::ncclInvalidUsage, msg));
                }
                std::ptr::null_mut()
            }
        };
        unsafe { j.out.write(handle) };
    }
    result
}

/// Queues a join, or runs it at once outside a group.
fn join(join: ShimJoin, out: *mut ncclComm_t) -> NcclResult<()> {
    if out.is_null() {
        return Err(bad(ncclResult_t::ncclInvalidArgument, "the communicator pointer is NULL"));
    }
    let j = PendingJoin { join, out };
    if in_group() {
        GROUP.with(|g| g.borrow_mut().joins.push(j));
        Ok(())
    } else {
        run_joins(vec![j])
    }
}

fn current_device() -> NcclResult<i32> {
    let rt = rt()?;
    let mut d = 0;
    match unsafe { (rt.get_device)(&mut d) } {
        0 => Ok(d),
        e => Err(bad(ncclResult_t::ncclUnhandledCudaError, format!("cudaGetDevice failed with CUDA error {e}"))),
    }
}

// ---- unique ids and initialisation ----

/// A fresh unique id: 16 random bytes (the rest zero) — what every rank must present to join.
pub fn unique_id() -> [u8; 128] {
    let mut id = [0u8; 128];
    let mut filled = 0;
    while filled < 16 {
        let n = unsafe { libc::getrandom(id[filled..16].as_mut_ptr() as *mut c_void, 16 - filled, 0) };
        if n <= 0 {
            // No entropy source: fall back to time and process id (unique enough for one machine).
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let v = t ^ ((std::process::id() as u128) << 96);
            id[..16].copy_from_slice(&v.to_le_bytes());
            break;
        }
        filled += n as usize;
    }
    id
}

fn key_of(id: &[u8; 128]) -> [u8; 16] {
    // Ids from other NCCL-compatible sources may spread their entropy: fold all 128 bytes.
    let mut k = [0u8; 16];
    for (i, b) in id.iter().enumerate() {
        k[i % 16] ^= b.rotate_left((i / 16) as u32);
    }
    k
}

fn init_join(id: &[u8; 128], nranks: i32, rank: i32, device: i32) -> NcclResult<ShimJoin> {
    if nranks < 1 || rank < 0 || rank >= nranks {
        return Err(bad(ncclResult_t::ncclInvalidArgument, format!("rank {rank} is not in [0, {nranks})")));
    }
    Ok(ShimJoin { kind: JOIN_INIT, key: key_of(id), nranks: nranks as u32, rank: rank as u32, parent: 0, seq: 0, color: 0, split_key: 0, device })
}

/// `ncclCommInitRank` (and the config/scalable variants): joins on the current device.
pub fn init_rank(out: *mut ncclComm_t, nranks: i32, id: &[u8; 128], rank: i32) -> NcclResult<()> {
    let device = current_device()?;
    join(init_join(id, nranks, rank, device)?, out)
}

/// `ncclCommInitAll`: one communicator over `devices` (or devices 0..n), all in this thread.
pub fn init_all(comms: *mut ncclComm_t, devices: &[i32]) -> NcclResult<()> {
    if comms.is_null() || devices.is_empty() {
        return Err(export::error(ncclResult_t::ncclInvalidArgument, "ncclCommInitAll: no communicators to create"));
    }
    let id = unique_id();
    let n = devices.len() as i32;
    let joins = devices
        .iter()
        .enumerate()
        .map(|(r, &d)| Ok(PendingJoin { join: init_join(&id, n, r as i32, d)?, out: unsafe { comms.add(r) } }))
        .collect::<NcclResult<Vec<_>>>()?;
    run_joins(joins)
}

/// `ncclCommSplit`.
pub fn split(parent: ncclComm_t, color: i32, key: i32, out: *mut ncclComm_t) -> NcclResult<()> {
    let p = comm(parent).map_err(fail)?;
    let seq = p.splits.fetch_add(1, Ordering::Relaxed);
    let color = if color < 0 { -1 } else { color };
    join(ShimJoin { kind: JOIN_SPLIT, key: [0; 16], nranks: p.nranks, rank: p.rank, parent: p.id, seq, color, split_key: key, device: p.device }, out)
}

/// `ncclCommShrink`: the ranks not excluded form a new communicator (ordered as before); excluded ranks do
/// not call it.
pub fn shrink(parent: ncclComm_t, exclude: &[i32], out: *mut ncclComm_t) -> NcclResult<()> {
    let p = comm(parent).map_err(fail)?;
    if exclude.iter().any(|&r| r < 0 || r as u32 >= p.nranks) {
        return Err(bad(ncclResult_t::ncclInvalidArgument, format!("ncclCommShrink: excluded ranks {exclude:?} outside [0, {})", p.nranks)));
    }
    if exclude.contains(&(p.rank as i32)) {
        return Err(bad(ncclResult_t::ncclInvalidArgument, "ncclCommShrink: the calling rank excludes itself"));
    }
    let seq = p.shrinks.fetch_add(1, Ordering::Relaxed);
    let mut ex: Vec<i32> = exclude.to_vec();
    ex.sort_unstable();
    ex.dedup();
    let new_rank = p.rank as i32 - ex.iter().filter(|&&r| (r as u32) < p.rank).count() as i32;
    let nranks = p.nranks as i32 - ex.len() as i32;
    // Every surviving rank derives the same id from (parent, shrink number, excluded ranks).
    let mut id = [0u8; 128];
    id[..8].copy_from_slice(&p.id.to_le_bytes());
    id[8..16].copy_from_slice(&seq.to_le_bytes());
    id[16..20].copy_from_slice(b"shrk");
    for (i, r) in ex.iter().take(27).enumerate() {
        id[20 + 4 * i..24 + 4 * i].copy_from_slice(&r.to_le_bytes());
    }
    join(init_join(&id, nranks, new_rank, p.device)?, out)
}

/// `ncclCommDestroy` / `ncclCommAbort`: the handle becomes invalid.
pub fn destroy(h: ncclComm_t) -> NcclResult<()> {
    let c = comm(h)?;
    c.gone.store(true, Ordering::Release);
    if let Some(s) = lock(&LIVE).as_mut() {
        s.remove(&(h as usize));
    }
    let rt = rt()?;
    unsafe { (rt.table.leave)(c.id, c.rank) };
    Ok(())
}

/// `ncclCommGetAsyncError`: a failure the simulator diagnosed for this communicator. Its diagnosis becomes the
/// thread's `ncclGetLastError` message (NCCL's own last error is the warning it logged for the failure).
pub fn async_error(h: ncclComm_t) -> NcclResult<ncclResult_t> {
    let c = comm(h)?;
    let rt = rt()?;
    let mut buf = vec![0 as std::ffi::c_char; 1024];
    let failed = unsafe { (rt.table.comm_error)(c.id, buf.as_mut_ptr(), buf.len()) } != 0;
    if !failed {
        return Ok(ncclResult_t::ncclSuccess);
    }
    let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    export::set_last_error(&msg);
    Ok(if msg.starts_with("mismatched") { ncclResult_t::ncclInvalidUsage } else { ncclResult_t::ncclRemoteError })
}

// ---- operations ----

/// One rank's arguments to a communication call.
pub struct Call {
    pub comm: ncclComm_t,
    pub stream: *mut c_void,
    pub count: usize,
    pub dtype: i32,
    pub send: *const c_void,
    pub recv: *const c_void,
}

fn base(call: &Call, kind: u32) -> NcclResult<(ShimOp, &'static Comm)> {
    let c = comm(call.comm).map_err(fail)?;
    let Some(&size) = usize::try_from(call.dtype).ok().and_then(|d| DTYPE_BYTES.get(d)) else {
        return Err(bad(ncclResult_t::ncclInvalidArgument, format!("invalid datatype {}", call.dtype)));
    };
    let bytes = (call.count as u64)
        .checked_mul(size)
        .ok_or_else(|| bad(ncclResult_t::ncclInvalidArgument, format!("count {} is too large", call.count)))?;
    let op = ShimOp {
        stream: call.stream,
        comm: c.id,
        rank: c.rank,
        kind,
        coll: 0,
        root: 0,
        peer: 0,
        redop: 0,
        dtype: call.dtype,
        count: call.count as u64,
        bytes,
    };
    Ok((op, c))
}

fn queue(op: ShimOp, call: &Call, c: &Comm) -> NcclResult<()> {
    let buffers = ShimBuffers { send: call.send as u64, recv: call.recv as u64, nranks: c.nranks };
    if in_group() {
        GROUP.with(|g| g.borrow_mut().ops.push((op, buffers)));
        Ok(())
    } else {
        submit(&[(op, buffers)]).map_err(fail)
    }
}

/// A collective. `redop` is `None` for data-movement collectives; `root` for rooted ones.
pub fn collective(call: &Call, op: CollOp, redop: Option<i32>, root: Option<i32>) -> NcclResult<()> {
    let (mut s, c) = base(call, OP_COLL)?;
    if call.count > 0 && (call.recv.is_null() && !matches!(op, CollOp::Reduce | CollOp::Gather) || call.send.is_null() && !matches!(op, CollOp::Broadcast | CollOp::Scatter)) {
        return Err(bad(ncclResult_t::ncclInvalidArgument, format!("{op:?} with a NULL buffer")));
    }
    if let Some(r) = redop {
        let valid = (0..NUM_OPS).contains(&r) || lock(&c.redops).contains(&r);
        if !valid {
            return Err(bad(ncclResult_t::ncclInvalidArgument, format!("{op:?} with invalid reduction operation {r}")));
        }
        s.redop = r;
    }
    if let Some(r) = root {
        if r < 0 || r as u32 >= c.nranks {
            return Err(bad(ncclResult_t::ncclInvalidArgument, format!("{op:?} with root {r} outside [0, {})", c.nranks)));
        }
        s.root = r as u32;
    }
    s.coll = coll_op_index(op);
    queue(s, call, c)
}

/// `ncclSend` / `ncclRecv`.
pub fn p2p(call: &Call, peer: i32, send: bool) -> NcclResult<()> {
    let (mut s, c) = base(call, if send { OP_SEND } else { OP_RECV })?;
    if peer < 0 || peer as u32 >= c.nranks {
        let name = if send { "ncclSend" } else { "ncclRecv" };
        return Err(bad(ncclResult_t::ncclInvalidArgument, format!("{name} with peer {peer} outside [0, {})", c.nranks)));
    }
    s.peer = peer as u32;
    queue(s, call, c)
}

/// `ncclRedOpCreatePreMulSum`: a new reduction operation valid on `comm`.
pub fn redop_create(h: ncclComm_t) -> NcclResult<i32> {
    let c = comm(h)?;
    let mut ops = lock(&c.redops);
    let id = (NUM_OPS..i32::MAX).find(|i| !ops.contains(i)).ok_or(ncclResult_t::ncclInternalError)?;
    ops.push(id);
    Ok(id)
}

pub fn redop_destroy(op: i32, h: ncclComm_t) -> NcclResult<()> {
    let c = comm(h)?;
    let mut ops = lock(&c.redops);
    match ops.iter().position(|&o| o == op) {
        Some(i) => {
            ops.swap_remove(i);
            Ok(())
        }
        None => Err(export::error(ncclResult_t::ncclInvalidArgument, format!("reduction operation {op} was not created on this communicator"))),
    }
}

/// `ncclMemAlloc`: device memory from the runtime (accounted on the simulated GPU).
pub fn mem_alloc(out: *mut *mut c_void, size: usize) -> NcclResult<()> {
    if out.is_null() {
        return Err(export::error(ncclResult_t::ncclInvalidArgument, "ncclMemAlloc: ptr is NULL"));
    }
    let rt = rt()?;
    match unsafe { (rt.malloc)(out, size) } {
        0 => Ok(()),
        e => Err(export::error(ncclResult_t::ncclUnhandledCudaError, format!("ncclMemAlloc({size}): cudaMalloc failed with CUDA error {e}"))),
    }
}

pub fn mem_free(p: *mut c_void) -> NcclResult<()> {
    let rt = rt()?;
    match unsafe { (rt.free)(p) } {
        0 => Ok(()),
        e => Err(export::error(ncclResult_t::ncclUnhandledCudaError, format!("ncclMemFree: cudaFree failed with CUDA error {e}"))),
    }
}
