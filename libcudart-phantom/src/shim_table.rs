//! The runtime table other Phantom shims use (`sim_core::shim_abi`), handed out by `cudaGetExportTable`.
//!
//! Each entry converts its C arguments and calls typed code in `net` and `stream`; nothing unwinds.

use crate::export::CudaResult;
use crate::runtime::{api, rt, Cost};
use crate::stream::{self, Stream, Work};
use phantom_cuda_sys::cudaError;
use sim_core::engine::proto::{CommId, CommInfo, FromSim, Join, Member, OpDesc, OpId, OpKind, Ready, ToSim};
use sim_core::shim_abi::*;
use std::cell::RefCell;
use sim_core::{SimDuration, SimTime};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

pub static TABLE: RuntimeTable = RuntimeTable {
    size: std::mem::size_of::<RuntimeTable>(),
    version: RUNTIME_TABLE_VERSION,
    join: join_c,
    submit: submit_c,
    comm_error: comm_error_c,
    estimate: estimate_c,
    leave: leave_c,
    last_message: last_message_c,
    enqueue_work: enqueue_work_c,
    gemm_ns: gemm_ns_c,
    submit_with_buffers: submit_with_buffers_c,
    profile_mode: profile_mode_c,
    run_call: run_call_c,
    call_time: call_time_c,
    enqueue_timed: enqueue_timed_c,
    library_enter: library_enter_c,
    library_exit: library_exit_c,
    host_clock_ns: host_clock_ns_c,
};

thread_local! {
    static LAST_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records why a table call failed (the caller logs it) and returns `code`.
fn fail(code: cudaError, msg: impl Into<String>) -> cudaError {
    LAST_MESSAGE.with(|m| *m.borrow_mut() = msg.into());
    code
}

/// Runs a table entry; a panic becomes a logged `cudaErrorUnknown` (never unwinds into the caller).
fn guarded(name: &'static str, f: impl FnOnce() -> cudaError) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(e) => e.0 as i32,
        Err(payload) => {
            phantom_log::internal_error(name, &*payload);
            cudaError::cudaErrorUnknown.0 as i32
        }
    }
}

/// The simulator, or a failure naming why it cannot be reached.
fn sim(rt: &crate::runtime::Runtime) -> Result<&'static sim_core::engine::client::SimClient, cudaError> {
    crate::net::sim(rt).map_err(|e| fail(cudaError::cudaErrorInitializationError, e))
}

unsafe extern "C" fn join_c(joins: *const ShimJoin, n: usize, out: *mut ShimCommInfo) -> i32 {
    guarded("phantom runtime table: join", || {
        if n == 0 {
            return cudaError::cudaSuccess;
        }
        if joins.is_null() || out.is_null() {
            return fail(cudaError::cudaErrorInvalidValue, "null argument");
        }
        let joins = unsafe { std::slice::from_raw_parts(joins, n) };
        let _traced = crate::trace::ApiCall::enter(match (n, joins[0].kind) {
            (1, JOIN_SPLIT) => "ncclCommSplit",
            (1, _) => "ncclCommInitRank",
            _ => "ncclGroupEnd",
        });
        match join(joins) {
            Ok(infos) => {
                for (i, info) in infos.into_iter().enumerate() {
                    unsafe { out.add(i).write(info) };
                }
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    })
}

/// `NCCL_ALGO` / `NCCL_PROTO` of this process.
fn tuning_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn join(joins: &[ShimJoin]) -> CudaResult<Vec<ShimCommInfo>> {
    let rt = rt()?;
    let sim = sim(rt)?;
    let ids: Vec<u64> = joins.iter().map(|_| crate::net::next_id()).collect();
    api(Cost::Call, |rt, _| {
        for (j, id) in joins.iter().zip(&ids) {
            let member = Member {
                gpu: crate::net::gpu_of(rt, j.device)?,
                algo: tuning_env("NCCL_ALGO"),
                proto: tuning_env("NCCL_PROTO"),
            };
            let join = match j.kind {
                JOIN_INIT => Join::Init { key: u128::from_le_bytes(j.key), nranks: j.nranks, rank: j.rank },
                JOIN_SPLIT => Join::Split { parent: CommId(j.parent), seq: j.seq, rank: j.rank, color: j.color, key: j.split_key },
                k => return Err(fail(cudaError::cudaErrorInvalidValue, format!("unknown join kind {k}"))),
            };
            sim.send(ToSim::Join { id: *id, join, member, lbts: crate::clock::now() })
                .map_err(|e| fail(cudaError::cudaErrorUnknown, e))?;
        }
        Ok(())
    })?;
    let reply = sim.request(|req| ToSim::JoinWait { req, ids: ids.clone() }).map_err(|e| fail(cudaError::cudaErrorUnknown, e))?;
    let FromSim::Joined { infos, .. } = reply else {
        return Err(fail(cudaError::cudaErrorUnknown, format!("unexpected simulator reply {reply:?}")));
    };
    let mut failure = None;
    let out = infos
        .into_iter()
        .map(|r| match r {
            Ok(Some(CommInfo { comm, rank, nranks })) => ShimCommInfo { status: JOINED, comm: comm.0, rank, nranks },
            Ok(None) => ShimCommInfo { status: JOINED_NONE, ..Default::default() },
            Err(why) => {
                failure.get_or_insert(why);
                ShimCommInfo { status: JOIN_FAILED, ..Default::default() }
            }
        })
        .collect();
    if let Some(mut why) = failure {
        if sim.is_embedded() && why.contains("never joined") {
            why.push_str(&format!(
                " (this process simulates alone because {} is not set: start runs of several processes with `phantom run`)",
                sim_core::engine::client::SIM_ENV
            ));
        }
        fail(cudaError::cudaSuccess, why);
    }
    Ok(out)
}

/// The simulator's description of one rank's part.
fn desc(op: &ShimOp) -> CudaResult<OpDesc> {
    let kind = match op.kind {
        OP_COLL => OpKind::Coll {
            op: coll_op_from_index(op.coll).ok_or_else(|| fail(cudaError::cudaErrorInvalidValue, format!("unknown collective {}", op.coll)))?,
            root: op.root,
            redop: op.redop,
        },
        OP_SEND => OpKind::Send { peer: op.peer },
        OP_RECV => OpKind::Recv { peer: op.peer },
        k => return Err(fail(cudaError::cudaErrorInvalidValue, format!("unknown operation kind {k}"))),
    };
    Ok(OpDesc { kind, bytes: op.bytes, count: op.count, dtype: op.dtype })
}

unsafe extern "C" fn submit_c(ops: *const ShimOp, n: usize) -> i32 {
    guarded("phantom runtime table: submit", || {
        if n == 0 {
            return cudaError::cudaSuccess;
        }
        if ops.is_null() {
            return fail(cudaError::cudaErrorInvalidValue, "null argument");
        }
        let ops = unsafe { std::slice::from_raw_parts(ops, n) };
        let _traced = crate::trace::ApiCall::enter(call_name(ops));
        crate::export::status(submit(ops, None))
    })
}

unsafe extern "C" fn submit_with_buffers_c(ops: *const ShimOp, buffers: *const ShimBuffers, n: usize) -> i32 {
    guarded("phantom runtime table: submit_with_buffers", || {
        if n == 0 {
            return cudaError::cudaSuccess;
        }
        if ops.is_null() || buffers.is_null() {
            return fail(cudaError::cudaErrorInvalidValue, "null argument");
        }
        let ops = unsafe { std::slice::from_raw_parts(ops, n) };
        let buffers = unsafe { std::slice::from_raw_parts(buffers, n) };
        let _traced = crate::trace::ApiCall::enter(call_name(ops));
        crate::export::status(submit(ops, Some(buffers)))
    })
}

/// The NCCL call that submitted `ops`, as the host API track names it (docs/trace.md): the operation's
/// function when there is one, `ncclGroupEnd` for a group of several.
fn call_name(ops: &[ShimOp]) -> &'static str {
    use sim_core::net::CollOp::*;
    let [op] = ops else { return "ncclGroupEnd" };
    match (op.kind, coll_op_from_index(op.coll)) {
        (OP_SEND, _) => "ncclSend",
        (OP_RECV, _) => "ncclRecv",
        (OP_COLL, Some(AllReduce)) => "ncclAllReduce",
        (OP_COLL, Some(AllGather)) => "ncclAllGather",
        (OP_COLL, Some(ReduceScatter)) => "ncclReduceScatter",
        (OP_COLL, Some(Broadcast)) => "ncclBroadcast",
        (OP_COLL, Some(Reduce)) => "ncclReduce",
        (OP_COLL, Some(AllToAll)) => "ncclAlltoAll",
        (OP_COLL, Some(Gather)) => "ncclGather",
        (OP_COLL, Some(Scatter)) => "ncclScatter",
        _ => "nccl",
    }
}

/// For an operation whose data travels (`payload::carries_data`): sends this rank's input bytes to the
/// simulator and marks the receive buffer as filled by the operation (`crate::data`). A larger operation
/// makes its receive buffer forget what it held.
///
/// In an executing process (profiling mode) device memory is real: the input is read from the GPU, and the
/// receive buffer is returned as `(address, bytes)` so that the caller writes the result to the GPU once the
/// operation has completed. Larger operations leave the real buffers as they are.
fn carry_data(id: OpId, d: &OpDesc, rank: u32, b: &ShimBuffers) -> CudaResult<Option<(u64, u64)>> {
    use sim_core::engine::payload;
    let (input, output) = payload::sizes(d, rank, b.nranks);
    if let Some(x) = crate::profile::gpu() {
        if !payload::carries_data(d, b.nranks) {
            return Ok(None);
        }
        if input > 0 && b.send != 0 {
            let mut data = vec![0u8; input as usize];
            x.read(b.send, &mut data)?;
            crate::net::send_payload(id, data).map_err(|e| fail(cudaError::cudaErrorUnknown, e))?;
        }
        return Ok((output > 0 && b.recv != 0).then_some((b.recv, output)));
    }
    if !payload::carries_data(d, b.nranks) {
        if b.recv != 0 {
            crate::data::clear(b.recv, output);
        }
        return Ok(None);
    }
    // A send buffer that holds nothing remembered is zeros: no payload says so (and costs nothing, which is
    // what keeps a benchmark's sweep of small sizes as cheap as before).
    if input > 0 && b.send != 0 && crate::data::holds(b.send, input) {
        let mut data = vec![0u8; input as usize];
        crate::data::read(b.send, &mut data);
        crate::net::send_payload(id, data).map_err(|e| fail(cudaError::cudaErrorUnknown, e))?;
    }
    if output > 0 && b.recv != 0 {
        crate::data::received(b.recv, output, id);
    }
    Ok(None)
}

/// Queues one group of operations: operations on the same stream all start from the stream's state before
/// the group (NCCL runs a group's operations together), and the stream then waits for all of them.
fn submit(ops: &[ShimOp], buffers: Option<&[ShimBuffers]>) -> CudaResult<()> {
    let rt = rt()?;
    let sim = sim(rt)?;
    api(Cost::Launch, |rt, submit| {
        let mut streams: Vec<(Arc<Stream>, Ready, Vec<OpId>)> = Vec::new();
        let mut batch = Vec::with_capacity(ops.len());
        let mut real_results = Vec::new();
        for op in ops {
            let s = stream::resolve(op.stream as phantom_cuda_sys::cudaStream_t)?;
            let d = desc(op)?;
            let i = match streams.iter().position(|(t, ..)| Arc::ptr_eq(t, &s)) {
                Some(i) => i,
                None => {
                    let ready = s.ready(rt.device(s.device as i32)?, submit).map_err(|e| {
                        fail(e, "NCCL operations cannot be captured into CUDA graphs by Phantom yet")
                    })?;
                    streams.push((s, ready, Vec::new()));
                    streams.len() - 1
                }
            };
            let id = OpId(crate::net::next_id());
            if crate::trace::on() {
                let kind = match d.kind {
                    OpKind::Coll { op, .. } => crate::trace::CommKind::Coll(op),
                    OpKind::Send { peer } => crate::trace::CommKind::Send { peer },
                    OpKind::Recv { peer } => crate::trace::CommKind::Recv { peer },
                };
                let s = &streams[i].0;
                let lane = crate::trace::Lane::of(rt, rt.device(s.device as i32)?, s);
                crate::trace::record(crate::trace::Record::Comm { lane, op: id, kind, bytes: op.bytes, comm: op.comm, rank: op.rank });
            }
            streams[i].2.push(id);
            if crate::stats::on() {
                crate::stats::nccl_queued(crate::net::gpu_of(rt, streams[i].0.device as i32)?, streams[i].0.handle, id, &d.kind, &streams[i].1);
            }
            if let Some(b) = buffers.and_then(|b| b.get(batch.len())) {
                if let Some((addr, len)) = carry_data(id, &d, op.rank, b)? {
                    real_results.push((id, addr, len));
                }
            }
            batch.push((id, CommId(op.comm), op.rank, d, streams[i].1.clone()));
        }
        for (id, comm, ..) in &batch {
            crate::net::track(*id, *comm);
        }
        sim.send(ToSim::Submit { ops: batch, lbts: crate::clock::now() }).map_err(|e| fail(cudaError::cudaErrorUnknown, e))?;
        // Profiling mode: the real GPU's receive buffers get the results (waiting, in real time only, for the
        // other ranks' parts).
        if let Some(x) = crate::profile::gpu().filter(|_| !real_results.is_empty()) {
            for (id, addr, len) in real_results {
                let data = crate::net::received(id);
                if !data.is_empty() {
                    x.write(addr, &data[..data.len().min(len as usize)])?;
                }
            }
        }
        for (s, _, ids) in &streams {
            s.wait_for_ops(ids);
            rt.device(s.device as i32)?.sched().net_pending.extend(ids.iter().map(|id| (*id, sim_core::SimDuration::ZERO)));
        }
        Ok(())
    })
}

unsafe extern "C" fn comm_error_c(comm: u64, buf: *mut c_char, len: usize) -> i32 {
    guarded("phantom runtime table: comm_error", || match crate::net::comm_error(comm) {
        Some(msg) => {
            unsafe { copy_message(&msg, buf, len) };
            cudaError(1)
        }
        None => cudaError::cudaSuccess,
    })
}

unsafe extern "C" fn estimate_c(op: *const ShimOp, out_ns: *mut u64) -> i32 {
    guarded("phantom runtime table: estimate", || {
        if op.is_null() || out_ns.is_null() {
            return fail(cudaError::cudaErrorInvalidValue, "null argument");
        }
        let op = unsafe { *op };
        let r = (|| {
            let rt = rt()?;
            let sim = sim(rt)?;
            let desc = desc(&op)?;
            match sim.request(|req| ToSim::Estimate { req, comm: CommId(op.comm), rank: op.rank, desc }) {
                Ok(FromSim::Estimate { ns, .. }) => Ok(ns),
                Ok(FromSim::Failed { message, .. }) => Err(fail(cudaError::cudaErrorInvalidValue, message)),
                Ok(other) => Err(fail(cudaError::cudaErrorUnknown, format!("unexpected simulator reply {other:?}"))),
                Err(e) => Err(fail(cudaError::cudaErrorUnknown, e)),
            }
        })();
        match r {
            Ok(ns) => {
                unsafe { out_ns.write(ns) };
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    })
}

unsafe extern "C" fn leave_c(comm: u64, rank: u32) -> i32 {
    guarded("phantom runtime table: leave", || {
        let r = (|| {
            let rt = rt()?;
            let sim = sim(rt)?;
            sim.send(ToSim::Leave { comm: CommId(comm), rank }).map_err(|e| fail(cudaError::cudaErrorUnknown, e))
        })();
        crate::export::status(r)
    })
}

unsafe extern "C" fn last_message_c(buf: *mut c_char, len: usize) -> usize {
    std::panic::catch_unwind(|| LAST_MESSAGE.with(|m| unsafe { copy_message(&m.borrow(), buf, len) })).unwrap_or(0)
}

unsafe extern "C" fn enqueue_work_c(stream: *mut c_void, duration_ns: u64, sms: u32, name: *const c_char) -> i32 {
    unsafe { enqueue_timed_c(stream, duration_ns, sms, name, SOURCE_MODEL) }
}

unsafe extern "C" fn enqueue_timed_c(stream: *mut c_void, duration_ns: u64, sms: u32, name: *const c_char, source: u32) -> i32 {
    guarded("phantom runtime table: enqueue_timed", || {
        let name = if name.is_null() {
            String::from("work")
        } else {
            unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
        };
        let source = match source {
            SOURCE_PROFILED => Some(sim_core::ktable::TimeSource::Profiled),
            SOURCE_TABLE => Some(sim_core::ktable::TimeSource::Table),
            _ => None,
        };
        let _traced = crate::trace::ApiCall::named(&name);
        crate::export::status(enqueue_work(stream, SimDuration::from_nanos(duration_ns), sms, &name, source))
    })
}

// Clock bookkeeping, and the host cost of an export shared between executing and following processes
// (`profile::after_library_call`, `profile::refresh_follower_library_cost`); nothing unwinds out.
unsafe extern "C" fn library_enter_c() {
    let _ = std::panic::catch_unwind(|| {
        if let Ok(rt) = rt() {
            crate::profile::refresh_follower_library_cost(rt);
        }
        crate::clock::library_enter();
    });
}

unsafe extern "C" fn library_exit_c(nvidia_ns: u64) {
    let _ = std::panic::catch_unwind(|| {
        crate::clock::library_exit(nvidia_ns);
        if let Ok(rt) = rt() {
            crate::profile::after_library_call(rt);
        }
    });
}

unsafe extern "C" fn host_clock_ns_c() -> u64 {
    crate::interpose::real_monotonic_ns().unwrap_or(0)
}

unsafe extern "C" fn profile_mode_c() -> u32 {
    // A panic (none is expected) reads as "not profiling" rather than unwinding into the library.
    std::panic::catch_unwind(|| match crate::profile::mode() {
        crate::profile::Mode::Off => PROFILE_OFF,
        crate::profile::Mode::Execute => PROFILE_EXECUTE,
        crate::profile::Mode::Follow => PROFILE_FOLLOW,
    })
    .unwrap_or(PROFILE_OFF)
}

/// A library-call key from C: trimmed, non-empty, without tabs.
unsafe fn call_key(key: *const c_char) -> Result<String, cudaError> {
    if key.is_null() {
        return Err(fail(cudaError::cudaErrorInvalidValue, "null library-call key"));
    }
    let k = unsafe { std::ffi::CStr::from_ptr(key) }.to_string_lossy().trim().to_string();
    if k.is_empty() || k.contains('\t') {
        return Err(fail(cudaError::cudaErrorInvalidValue, format!("bad library-call key {k:?}")));
    }
    Ok(k)
}

unsafe extern "C" fn run_call_c(stream: *mut c_void, key: *const c_char, run: RunCall, ctx: *mut c_void, out_ns: *mut u64) -> i32 {
    guarded("phantom runtime table: run_call", || {
        let r = (|| {
            let key = unsafe { call_key(key) }?;
            let x = crate::profile::gpu().ok_or_else(|| fail(cudaError::cudaErrorNotSupported, "this process does not execute on a real GPU"))?;
            let rt = rt()?;
            let s = stream::resolve(stream as phantom_cuda_sys::cudaStream_t)?;
            // SAFETY: `run` and `ctx` come from the library that called `run_call`, as the table's contract says.
            unsafe { x.run_call(rt, &s, &key, run, ctx) }
        })();
        match r {
            Ok(ns) => {
                if !out_ns.is_null() {
                    unsafe { out_ns.write(ns) };
                }
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    })
}

unsafe extern "C" fn call_time_c(key: *const c_char, out_ns: *mut u64, out_source: *mut u32) -> i32 {
    guarded("phantom runtime table: call_time", || {
        let r = (|| {
            let key = unsafe { call_key(key) }?;
            let rt = rt()?;
            Ok::<_, cudaError>(crate::profile::call_time(rt, &key))
        })();
        match r {
            Ok(Some((ns, source))) => {
                if !out_ns.is_null() {
                    unsafe { out_ns.write(ns) };
                }
                if !out_source.is_null() {
                    unsafe { out_source.write(source) };
                }
                cudaError::cudaSuccess
            }
            Ok(None) => cudaError(1),
            Err(e) => e,
        }
    })
}

/// Places library work (a cuBLAS GEMM, ...) on a stream like a kernel launch; `source` is what timed it
/// (`None`: the library's own model).
fn enqueue_work(stream: *mut c_void, duration: SimDuration, sms: u32, name: &str, source: Option<sim_core::ktable::TimeSource>) -> CudaResult<()> {
    api(Cost::Launch, |rt, submit| {
        let s = stream::resolve(stream as phantom_cuda_sys::cudaStream_t)?;
        let dev = rt.device(s.device as i32)?;
        let sms = if sms == 0 { dev.spec.sm_count } else { sms.min(dev.spec.sm_count) };
        let (start, end) = s.enqueue(dev, submit, SimTime::ZERO, Work::Kernel { duration, sms });
        crate::data::note_launch();
        crate::stats::library(crate::trace::Lane::of(rt, dev, &s).gpu, name, source, start, end);
        // A captured command is recorded into the graph (times zero), not run.
        if crate::trace::on() && end != SimTime::ZERO {
            let lane = crate::trace::Lane::of(rt, dev, &s);
            crate::trace::record(crate::trace::Record::Library { lane, name: crate::trace::intern(name), start, end });
        }
        tracing::debug!("{name}: {} ns on device {} ({start:?}..{end:?})", duration.as_nanos(), dev.ordinal);
        Ok(())
    })
}

unsafe extern "C" fn gemm_ns_c(stream: *mut c_void, gemm: *const ShimGemm, out_ns: *mut u64) -> i32 {
    guarded("phantom runtime table: gemm_ns", || {
        if gemm.is_null() || out_ns.is_null() {
            return fail(cudaError::cudaErrorInvalidValue, "null argument");
        }
        let shim = unsafe { *gemm };
        let r = (|| {
            let g = shim
                .gemm()
                .ok_or_else(|| fail(cudaError::cudaErrorInvalidValue, format!("unknown precision {}", shim.precision)))?;
            let rt = rt()?;
            let s = stream::resolve(stream as phantom_cuda_sys::cudaStream_t)?;
            let dev = rt.device(s.device as i32)?;
            g.time_ns(&dev.spec).map_err(|e| fail(cudaError::cudaErrorNotSupported, e))
        })();
        match r {
            Ok(ns) => {
                unsafe { out_ns.write(ns) };
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    })
}
