//! This process's side of the network: its link to the simulator, communication operations queued on
//! streams, and their completion times once the simulator has decided them.
//!
//! A communication operation's completion depends on other ranks, so a stream that has one queued has a
//! *pending* tail: known local work plus "after operation X completes". Further communication operations
//! and event records/waits carry that expression along without blocking; anything that needs a concrete
//! time (local work on the stream, a synchronisation, a query) first *settles* it — asks the simulator,
//! which answers once no rank can change the answer any more (docs/simulator.md).

use crate::export::CudaResult;
use crate::runtime::Runtime;
use sim_core::engine::client::{SimClient, SIM_ENV};
use sim_core::engine::proto::{CommId, FromSim, OpId, ToSim};
use sim_core::{SimDuration, SimTime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Operations a stream or event still waits for: (operation, local work queued after it).
pub type Pending = Vec<(OpId, SimDuration)>;

static SIM: OnceLock<Result<SimClient, String>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct Book {
    /// Completion times the simulator has sent.
    done: HashMap<OpId, SimTime>,
    /// The communicator of each operation not yet completed.
    comm_of: HashMap<OpId, CommId>,
    /// First failure of each communicator.
    comm_errors: HashMap<u64, String>,
}

static BOOK: OnceLock<Mutex<Book>> = OnceLock::new();

fn book() -> MutexGuard<'static, Book> {
    BOOK.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// The node this process's GPUs belong to: `PHANTOM_NODE` (set by `phantom run -n`), else torchrun's
/// `GROUP_RANK`, else an MPI or Slurm rank (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`, `PMIX_RANK`,
/// `SLURM_PROCID`) divided by the cluster's GPUs per node (one rank per GPU, as `mpirun -np N` places them);
/// `None` outside any launcher.
pub fn launcher_node() -> Option<u32> {
    static NODE: OnceLock<Option<u32>> = OnceLock::new();
    *NODE.get_or_init(|| {
        sim_core::config::launcher_node(
            |k| std::env::var(k).ok(),
            || sim_core::config::ClusterConfig::from_env().map(|c| c.gpus_per_node).unwrap_or(8),
        )
    })
}

/// The node this process's GPUs belong to (node 0 outside any launcher).
pub fn node() -> u32 {
    launcher_node().unwrap_or(0)
}

/// The host name processes of a simulated node see (`gethostname`): the machine's name with the node
/// appended, so that programs that count ranks per host (nccl-tests, MPI programs) see one host per
/// simulated node. Outside any launcher the machine's own name.
pub fn host_name(real: &str) -> String {
    match launcher_node() {
        Some(n) => format!("{real}-phantom-node{n}"),
        None => real.to_string(),
    }
}

/// The global index of the GPU behind device `ordinal` (node × GPUs per node + index in the node).
pub fn gpu_of(rt: &Runtime, ordinal: i32) -> CudaResult<u32> {
    let dev = rt.device(ordinal)?;
    Ok(node() * rt.config.gpus_per_node + dev.physical)
}

/// The simulator: the one `phantom run` started (`PHANTOM_SIM`), or one embedded in this process.
pub fn sim(rt: &Runtime) -> Result<&'static SimClient, String> {
    SIM.get_or_init(|| {
        let executes = crate::profile::mode() == crate::profile::Mode::Execute;
        let hello = ToSim::Hello { pid: std::process::id(), node: node(), label: label(), executes };
        let client = match std::env::var(SIM_ENV) {
            Ok(addr) if !addr.trim().is_empty() => SimClient::connect(addr.trim(), hello),
            _ => SimClient::embedded(&rt.config, hello),
        };
        if let Err(e) = &client {
            tracing::error!("phantom: {e}");
        }
        client
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// How the simulator names this process in its messages.
fn label() -> String {
    let pid = std::process::id();
    match std::env::var("RANK") {
        Ok(r) => format!("process {pid} (RANK {r}, node {})", node()),
        Err(_) => format!("process {pid} (node {})", node()),
    }
}

/// Whether this process reaches a simulator that `phantom run` started (shared with other processes).
fn shared_simulator() -> bool {
    std::env::var(SIM_ENV).is_ok_and(|a| !a.trim().is_empty())
}

/// Profiling mode, executing process: tells the simulator a kernel configuration's measured time (`settled`:
/// it will not be measured again), for the following processes. Nothing to do without a shared simulator.
pub fn publish_measurement(rt: &Runtime, key: String, ns: u64, settled: bool) {
    if !shared_simulator() {
        return;
    }
    if let Ok(sim) = sim(rt) {
        if let Err(e) = sim.send(ToSim::Measured { entries: vec![(key, ns, settled)] }) {
            tracing::warn!("phantom: cannot publish a measurement: {e}");
        }
    }
}

/// Profiling mode, following process: the measured time of a kernel configuration, waiting for an executing
/// process to measure it; `None` when the simulator says none will (docs/profiling.md). With the duration:
/// whether it is settled.
pub fn lookup_measurement(rt: &Runtime, key: &str) -> Option<(u64, bool)> {
    if !shared_simulator() {
        return None;
    }
    let sim = sim(rt).ok()?;
    // Waiting is done in real time only: the host's virtual clock does not move.
    match sim.request(|req| ToSim::Lookup { req, key: key.to_string() }) {
        Ok(FromSim::Measured { ns, settled, .. }) => ns.map(|ns| (ns, settled)),
        Ok(other) => {
            tracing::warn!("phantom: unexpected answer to a measurement lookup: {other:?}");
            None
        }
        Err(e) => {
            tracing::warn!("phantom: measurement lookup failed: {e}");
            None
        }
    }
}

pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Records that `op` belongs to `comm` (for failure reports).
pub fn track(op: OpId, comm: CommId) {
    book().comm_of.insert(op, comm);
}

/// The first failure of an operation of `comm`, if any.
pub fn comm_error(comm: u64) -> Option<String> {
    book().comm_errors.get(&comm).cloned()
}

/// The time at which everything in `pending` is complete, asking the simulator (and blocking until it
/// can answer) for operations whose completion is not known yet. `pending` is emptied.
pub fn settle(pending: &mut Pending) -> SimTime {
    if pending.is_empty() {
        return SimTime::ZERO;
    }
    let unknown: Vec<OpId> = {
        let b = book();
        let mut v: Vec<OpId> = pending.iter().map(|p| p.0).filter(|op| !b.done.contains_key(op)).collect();
        v.sort();
        v.dedup();
        v
    };
    if !unknown.is_empty() {
        fetch(&unknown);
    }
    let b = book();
    let t = pending
        .iter()
        .map(|(op, off)| b.done.get(op).map_or(SimTime::ZERO, |t| *t + *off))
        .max()
        .unwrap_or(SimTime::ZERO);
    pending.clear();
    t
}

/// Blocks until the simulator has decided `ops`, and records the answers.
fn fetch(ops: &[OpId]) {
    let Some(Ok(sim)) = SIM.get() else {
        // No simulator was ever reached, so these operations were never submitted.
        let mut b = book();
        for op in ops {
            b.done.insert(*op, SimTime::ZERO);
        }
        return;
    };
    let reply = sim.request(|req| ToSim::Wait { req, ops: ops.to_vec() });
    let mut b = book();
    match reply {
        Ok(FromSim::Done { times, failures, .. }) => {
            for (op, t) in ops.iter().zip(times) {
                b.done.insert(*op, t);
                crate::stats::nccl_done(*op, t);
            }
            for (op, why) in failures {
                let comm = b.comm_of.get(&op).map(|c| c.0).unwrap_or(u64::MAX);
                if let std::collections::hash_map::Entry::Vacant(e) = b.comm_errors.entry(comm) {
                    tracing::error!("phantom: NCCL operation failed on communicator {comm}: {why}");
                    e.insert(why);
                }
            }
        }
        other => {
            let why = match other {
                Err(e) => e,
                Ok(m) => format!("unexpected simulator reply {m:?}"),
            };
            tracing::error!("phantom: cannot learn when NCCL operations complete: {why}");
            for op in ops {
                let comm = b.comm_of.get(op).map(|c| c.0).unwrap_or(u64::MAX);
                b.comm_errors.entry(comm).or_insert_with(|| why.clone());
                b.done.insert(*op, SimTime::ZERO);
            }
        }
    }
    for op in ops {
        b.comm_of.remove(op);
    }
}

/// Sends the input bytes of this process's part of `op` (before the `Submit` that holds it).
pub fn send_payload(op: OpId, data: Vec<u8>) -> Result<(), String> {
    match SIM.get() {
        Some(Ok(sim)) => sim.send(ToSim::Payload { op, data }),
        _ => Err("no simulator".into()),
    }
}

/// What this process's part of `op` received (empty when no data travelled): waits for the operation to
/// complete, then asks the simulator once. A failure is logged and reads as no data.
pub fn received(op: OpId) -> Vec<u8> {
    if !book().done.contains_key(&op) {
        fetch(&[op]);
    }
    let Some(Ok(sim)) = SIM.get() else { return Vec::new() };
    match sim.request(|req| ToSim::Fetch { req, op }) {
        Ok(FromSim::Payload { data, .. }) => data,
        Ok(FromSim::Failed { message, .. }) => {
            tracing::warn!("phantom: the data of NCCL operation {} is not available: {message}", op.0);
            Vec::new()
        }
        other => {
            tracing::warn!("phantom: the data of NCCL operation {} is not available: {other:?}", op.0);
            Vec::new()
        }
    }
}

/// Tells the simulator how far this process has got (so ranks waiting for it can be answered), at most
/// once per `PROGRESS_QUANTUM` of simulated time. Only for multi-process runs.
pub fn report_progress(now: SimTime) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const PROGRESS_QUANTUM: u64 = 20_000;
    let Some(Ok(sim)) = SIM.get() else { return };
    if sim.is_embedded() {
        return;
    }
    let last = LAST.load(Ordering::Relaxed);
    if now.as_nanos() < last.saturating_add(PROGRESS_QUANTUM) {
        return;
    }
    LAST.store(now.as_nanos(), Ordering::Relaxed);
    let _ = sim.send(ToSim::Clock { lbts: now });
}
