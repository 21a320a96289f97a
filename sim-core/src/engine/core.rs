//! The conservative coordinator: the simulator's state and rules, without I/O.
//!
//! Rank processes (clients) submit operations with a readiness expression ([`Ready`]) and a promise
//! (`lbts`) that nothing they submit later will be ready earlier. The coordinator matches the ranks' parts of
//! each operation, starts a transfer on the [`Network`] once every part is ready, and advances the network
//! only up to the global lower bound: the minimum promise over the clients that are not blocked. A client
//! blocked in a `Wait` or `Join` cannot submit anything until it is answered, so it does not hold time back.
//! Completion times are therefore final when they are sent (DESIGN.md decision 5).
//!
//! Failures are diagnosed here and delivered as failed operations: mismatched descriptions of the same
//! operation, a rank whose process died or left its communicator before taking part, and a deadlock (every
//! client blocked and nothing left that could make progress). Each produces one line naming rank,
//! communicator and operation, collected in [`Coordinator::failures`].

use super::measure::Measurements;
use super::payload;
use super::proto::{CommId, CommInfo, FromSim, Join, Member, OpDesc, OpId, OpKind, Ready, ToSim};
use crate::config::ClusterConfig;
use crate::net::{Algo, CollOp, Collective, GpuId, LinkUsage, Network, Proto, TransferId, Tuning};
use crate::time::SimTime;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub type ClientId = u32;

/// A process connected to the simulator.
#[derive(Debug)]
struct Client {
    label: String,
    /// The process id from `Hello` (0 until then).
    pid: u32,
    /// Promise: nothing this client submits later is ready before this time.
    lbts: SimTime,
    /// Outstanding blocking requests (`Wait`, `Join`). A parked `Lookup` is not one: the process is inside a
    /// CUDA call that continues with a kernel of its own, so it keeps holding time back at its promise.
    blocked: u32,
    alive: bool,
    /// Runs its GPU work on a real GPU and publishes kernel measurements (`Hello`; profiling mode).
    executes: bool,
    /// Silent for long enough that it is presumably waiting outside CUDA (docs/simulator.md, "Idle
    /// processes"): it does not hold time back until it speaks again.
    idle: bool,
}

#[derive(Debug)]
struct Comm {
    /// Members in rank order: client, GPU.
    members: Vec<(ClientId, GpuId)>,
    tuning: Tuning,
    /// Ranks that destroyed their handle (no later operation can include them).
    left: Vec<bool>,
    /// Per rank: collectives submitted so far.
    coll_seq: Vec<u64>,
    /// (sender, receiver) → sends / receives submitted so far.
    sends: HashMap<(u32, u32), u64>,
    recvs: HashMap<(u32, u32), u64>,
}

/// Which operation a rank's part belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum MatchKey {
    Coll { comm: CommId, seq: u64 },
    P2p { comm: CommId, src: u32, dst: u32, seq: u64 },
}

/// The ranks' parts of one operation.
#[derive(Debug)]
struct Match {
    /// Collectives: one slot per rank. Point to point: [send, recv].
    parts: Vec<Option<(ClientId, OpId)>>,
    /// The first description submitted and who submitted it (later ones must agree).
    first: Option<(u32, OpDesc)>,
    started: bool,
    /// When it started, and the algorithm/protocol chosen (`None` when it stayed local); for the op log.
    started_at: SimTime,
    choice: Option<(Algo, Proto)>,
    /// Why it failed: every part, present or submitted later, fails with this message.
    failed: Option<String>,
    /// Per slot: the part's input bytes, for an operation whose data travels (`payload`).
    inputs: Vec<Option<Vec<u8>>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Pending,
    Running,
    Done(SimTime),
    Failed(SimTime, String),
}

#[derive(Debug)]
struct Op {
    rank: u32,
    comm: CommId,
    desc: OpDesc,
    ready: Ready,
    key: MatchKey,
    status: Status,
}

/// One rank's part of a rendezvous: client, join id, member, and (colour, key) for splits.
type JoinPart = (ClientId, u64, Member, i32, i32);

#[derive(Debug)]
struct Rendezvous {
    /// Parent ranks / init ranks in order, once joined.
    parts: Vec<Option<JoinPart>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RendezvousKey {
    Init(u128),
    Split(CommId, u64),
}

#[derive(Debug)]
struct JoinWaitReq {
    client: ClientId,
    req: u64,
    ids: Vec<u64>,
}

#[derive(Debug)]
struct WaitReq {
    client: ClientId,
    req: u64,
    ops: Vec<OpId>,
}

/// Counters for the run summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoordStats {
    pub communicators: u64,
    pub operations: u64,
    pub simulated_end: SimTime,
    /// Per kind of operation (`AllReduce`, …, `SendRecv`): operations completed and the bytes each rank passed
    /// to NCCL for them (`count × sizeof(datatype)` of the call, summed over operations, counted once per
    /// operation — not per rank).
    pub by_kind: BTreeMap<String, KindTotals>,
}

/// Operations of one kind and their bytes (see [`CoordStats::by_kind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindTotals {
    pub count: u64,
    pub bytes: u64,
}

/// The simulator's state. Feed it messages with [`Coordinator::handle`]; take replies with
/// [`Coordinator::take_outbox`].
pub struct Coordinator {
    net: Network,
    gpus_per_node: u32,
    total_gpus: u32,
    clients: Vec<Client>,
    /// How many clients the run will have, when the launcher knows it.
    expected_clients: Option<usize>,
    comms: Vec<Comm>,
    rendezvous: HashMap<RendezvousKey, Rendezvous>,
    ops: HashMap<(ClientId, OpId), Op>,
    matches: BTreeMap<MatchKey, Match>,
    transfers: HashMap<TransferId, MatchKey>,
    waits: Vec<WaitReq>,
    /// Results of joins, by (client, join id), until collected.
    joined: HashMap<(ClientId, u64), Result<Option<CommInfo>, String>>,
    join_waits: Vec<JoinWaitReq>,
    /// The network has been simulated up to here; nothing may start earlier.
    horizon: SimTime,
    outbox: Vec<(ClientId, FromSim)>,
    failures: Vec<String>,
    stats: CoordStats,
    /// Completed operations, per rank part, when [`Coordinator::record_ops`] asked for them.
    op_log: Option<Vec<OpSpan>>,
    /// Input bytes that arrived before their operation's `Submit`.
    staged: HashMap<(ClientId, OpId), Vec<u8>>,
    /// What each part of a completed operation with data received, until its process fetches it.
    results: HashMap<(ClientId, OpId), Result<Vec<u8>, String>>,
    /// Kernel measurements of executing processes and the lookups waiting for them (profiling mode).
    measurements: Measurements,
}

/// One rank's part of a completed operation, as the simulator ran it (for `phantom run --trace`).
#[derive(Clone, Debug, PartialEq)]
pub struct OpSpan {
    /// The process that submitted it (its `Hello` pid).
    pub pid: u32,
    /// The process's own id for the operation.
    pub op: OpId,
    /// The simulator's number for the operation, the same in every rank's part: operations are numbered
    /// from 1 in completion order.
    pub operation: u64,
    /// When this rank's part was ready (its stream reached it and what it follows had completed); the
    /// operation starts at the latest readiness of its parts (or later, docs/simulator.md).
    pub ready: SimTime,
    /// When every rank was ready and the operation started, and when it completed.
    pub start: SimTime,
    pub end: SimTime,
    /// NCCL's algorithm and protocol as the tuning model chose them; `None` for operations that moved no
    /// data over links (one GPU, zero bytes).
    pub choice: Option<(Algo, Proto)>,
}

const NEVER: SimTime = SimTime::from_nanos(u64::MAX);

impl Coordinator {
    pub fn new(cfg: &ClusterConfig) -> Result<Coordinator, crate::config::ConfigError> {
        Ok(Coordinator {
            net: Network::new(cfg)?,
            gpus_per_node: cfg.gpus_per_node,
            total_gpus: cfg.total_gpus(),
            clients: Vec::new(),
            expected_clients: None,
            comms: Vec::new(),
            rendezvous: HashMap::new(),
            ops: HashMap::new(),
            matches: BTreeMap::new(),
            transfers: HashMap::new(),
            waits: Vec::new(),
            joined: HashMap::new(),
            join_waits: Vec::new(),
            horizon: SimTime::ZERO,
            outbox: Vec::new(),
            failures: Vec::new(),
            stats: CoordStats::default(),
            op_log: None,
            staged: HashMap::new(),
            results: HashMap::new(),
            measurements: Measurements::default(),
        })
    }

    /// The run will have exactly `n` client processes (known to `phantom run -n`): lets a communicator
    /// that waits for a process that never connects be reported as a deadlock.
    pub fn expect_clients(&mut self, n: usize) {
        self.expected_clients = Some(n);
        self.pump();
    }

    /// The run has exactly `n` executing processes (profiling mode): a lookup for a kernel nobody measured yet
    /// waits until all of them have connected before it can be answered `None`.
    pub fn expect_executing(&mut self, n: usize) {
        self.measurements.expect_executing(n);
        self.pump();
    }

    /// Answers `None` to every lookup that has waited for its measurement for at least `limit` of real time
    /// (counted from the first call that saw it waiting; the server calls this on its idle tick).
    pub fn expire_lookups(&mut self, now: Instant, limit: Duration) {
        self.measurements.expire(now, limit, &mut self.outbox);
    }

    /// Distinct kernel keys published by executing processes so far.
    pub fn measurements(&self) -> usize {
        self.measurements.keys()
    }

    /// Lookups answered `None` so far.
    pub fn lookups_unanswered(&self) -> u64 {
        self.measurements.unanswered()
    }

    /// From now on, keep an [`OpSpan`] for every completed operation (costs memory; for traces only).
    pub fn record_ops(&mut self) {
        self.op_log.get_or_insert_with(Vec::new);
    }

    /// From now on, keep every network link's rate over time ([`Network::record_links`]; for traces only).
    pub fn record_links(&mut self) {
        self.net.record_links();
    }

    /// Every link that carried traffic so far, with the samples recorded since the last call.
    pub fn link_usage(&mut self) -> Vec<LinkUsage> {
        self.net.link_usage()
    }

    /// The operations completed since the last call (empty unless [`Coordinator::record_ops`] was called).
    pub fn take_op_log(&mut self) -> Vec<OpSpan> {
        self.op_log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether some process waits for an answer that simulated time must first reach.
    pub fn has_waiters(&self) -> bool {
        !self.waits.is_empty() || !self.join_waits.is_empty()
    }

    /// Clients that hold simulated time back: alive, not blocked, not idle, promise below what a waiter
    /// needs. (The server declares those it has not heard from for a while idle.)
    pub fn holding_back(&self) -> Vec<ClientId> {
        let gvt = self.gvt();
        (0..self.clients.len() as ClientId)
            .filter(|&c| {
                let s = &self.clients[c as usize];
                s.alive && s.blocked == 0 && !s.idle && s.lbts == gvt
            })
            .collect()
    }

    /// `client` has been silent while others wait: it is presumably waiting for them outside CUDA (an MPI
    /// or TCP barrier), so it stops holding simulated time back until its next message. What it submits
    /// later starts no earlier than the time the network has reached by then. A client that waits for a
    /// measurement (`Lookup`) is inside a CUDA call, not outside: it is never declared idle.
    pub fn set_idle(&mut self, client: ClientId) {
        if self.measurements.is_parked(client) {
            return;
        }
        if let Some(c) = self.clients.get_mut(client as usize) {
            c.idle = true;
        }
        self.pump();
    }

    /// A new client; its first message should be `Hello`.
    pub fn connect(&mut self) -> ClientId {
        self.clients.push(Client {
            label: format!("client {}", self.clients.len()),
            pid: 0,
            lbts: SimTime::ZERO,
            blocked: 0,
            alive: true,
            executes: false,
            idle: false,
        });
        let id = (self.clients.len() - 1) as ClientId;
        self.outbox.push((id, FromSim::Welcome { client: id }));
        id
    }

    /// The client's connection closed. Without a `Bye` first, the process died: every operation that
    /// needs one of its ranks fails.
    pub fn disconnect(&mut self, client: ClientId, clean: bool) {
        let Some(c) = self.clients.get_mut(client as usize) else { return };
        if !c.alive {
            return;
        }
        c.alive = false;
        self.measurements.forget(client);
        if !clean {
            let label = c.label.clone();
            self.fail_missing(|_, cl| cl == client, &format!("{label} exited"));
        }
        self.pump();
    }

    pub fn take_outbox(&mut self) -> Vec<(ClientId, FromSim)> {
        std::mem::take(&mut self.outbox)
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn stats(&self) -> CoordStats {
        self.stats.clone()
    }

    pub fn net(&self) -> &Network {
        &self.net
    }

    /// Handles one message from `client`, then advances the simulation as far as it safely can.
    pub fn handle(&mut self, client: ClientId, msg: ToSim) {
        if self.clients.get(client as usize).is_none_or(|c| !c.alive) {
            return;
        }
        self.clients[client as usize].idle = false;
        match msg {
            ToSim::Hello { pid, node, label, executes } => {
                self.clients[client as usize].pid = pid;
                self.clients[client as usize].executes = executes;
                self.clients[client as usize].label =
                    if label.is_empty() { format!("pid {pid} (node {node})") } else { label };
            }
            ToSim::Clock { lbts } => self.promise(client, lbts),
            ToSim::Join { id, join, member, lbts } => {
                self.promise(client, lbts);
                self.join(client, id, join, member);
            }
            ToSim::JoinWait { req, ids } => {
                self.clients[client as usize].blocked += 1;
                self.join_waits.push(JoinWaitReq { client, req, ids });
            }
            ToSim::Submit { ops, lbts } => {
                self.promise(client, lbts);
                for (id, comm, rank, desc, ready) in ops {
                    self.submit(client, id, comm, rank, desc, ready);
                }
            }
            ToSim::Wait { req, ops } => {
                self.clients[client as usize].blocked += 1;
                self.waits.push(WaitReq { client, req, ops });
            }
            ToSim::Estimate { req, comm, rank, desc } => {
                let reply = match self.comms.get(comm.0 as usize) {
                    Some(c) if rank < c.members.len() as u32 => {
                        // The operation as `start` hands it to the network: a send or receive is between its
                        // two ranks, and what crosses no link costs nothing.
                        let coll = collective(c, rank, &desc);
                        if stays_local(&coll) {
                            FromSim::Estimate { req, ns: 0, algo: "local".into(), proto: "local".into() }
                        } else {
                            let plan = self.net.plan(&coll, &c.tuning);
                            FromSim::Estimate {
                                req,
                                ns: plan.isolated.as_nanos(),
                                algo: plan.algo.to_string(),
                                proto: plan.proto.to_string(),
                            }
                        }
                    }
                    Some(_) => FromSim::Failed { req, message: format!("rank {rank} is not in communicator {}", comm.0) },
                    None => FromSim::Failed { req, message: format!("unknown communicator {}", comm.0) },
                };
                self.outbox.push((client, reply));
            }
            ToSim::Payload { op, data } => {
                self.staged.insert((client, op), data);
            }
            ToSim::Fetch { req, op } => {
                let reply = match self.fetch(client, op) {
                    Ok(data) => FromSim::Payload { req, data },
                    Err(message) => FromSim::Failed { req, message },
                };
                self.outbox.push((client, reply));
            }
            ToSim::Measured { entries } => self.measurements.publish(entries, &mut self.outbox),
            ToSim::Lookup { req, key } => self.measurements.lookup(client, req, key, &mut self.outbox),
            ToSim::Leave { comm, rank } => {
                if let Some(c) = self.comms.get_mut(comm.0 as usize) {
                    if let Some(l) = c.left.get_mut(rank as usize) {
                        *l = true;
                    }
                    let who = self.rank_label(comm, rank);
                    self.fail_missing(|k, _| k.0 == comm && k.1 == rank, &format!("{who} destroyed the communicator"));
                }
            }
            ToSim::Bye => {
                self.clients[client as usize].alive = false;
                self.measurements.forget(client);
            }
        }
        self.pump();
    }

    /// What `client`'s part of operation `op` received: empty when no data travelled with it (some part sent
    /// none, or the part receives nothing). Only after the operation completed (the client waits first).
    fn fetch(&mut self, client: ClientId, op: OpId) -> Result<Vec<u8>, String> {
        if let Some(r) = self.results.remove(&(client, op)) {
            return r;
        }
        match self.ops.get(&(client, op)).map(|o| &o.status) {
            Some(Status::Done(_)) => Ok(Vec::new()),
            Some(Status::Failed(_, why)) => Err(why.clone()),
            Some(_) => Err(format!("operation {} has not completed", op.0)),
            None => Err(format!("unknown operation {}", op.0)),
        }
    }

    /// At the completion of an operation for which some part sent bytes: what each part receives. A part that
    /// sent none holds zeros (its process remembers nothing there); when no part sent any, every part receives
    /// zeros and nothing is kept.
    fn keep_results(&mut self, m: &Match) {
        let Some((_, desc)) = m.first else { return };
        if m.inputs.iter().all(Option::is_none) {
            return;
        }
        let n = m.parts.len() as u32;
        let inputs: Vec<Vec<u8>> = m
            .inputs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.clone().unwrap_or_else(|| {
                    // Collectives: slot = rank; point to point: the sender's slot 0 (a receive reads nothing).
                    let need = match desc.kind {
                        OpKind::Coll { .. } => payload::sizes(&desc, i as u32, n).0,
                        _ if i == 0 => desc.bytes,
                        _ => 0,
                    };
                    vec![0; need as usize]
                })
            })
            .collect();
        let outputs = payload::outputs(&desc, &inputs).map_err(|e| format!("the data of {desc} cannot be combined: {e}"));
        for (slot, part) in m.parts.iter().enumerate() {
            if let Some(part) = part {
                let r = match &outputs {
                    Ok(o) => Ok(o.get(slot).cloned().unwrap_or_default()),
                    Err(e) => Err(e.clone()),
                };
                self.results.insert(*part, r);
            }
        }
    }

    fn promise(&mut self, client: ClientId, lbts: SimTime) {
        let c = &mut self.clients[client as usize];
        c.lbts = c.lbts.max(lbts);
    }

    fn rank_label(&self, comm: CommId, rank: u32) -> String {
        match self.comms.get(comm.0 as usize).and_then(|c| c.members.get(rank as usize)) {
            Some(&(client, gpu)) => format!(
                "rank {rank} of communicator {} ({}, GPU {} of node {})",
                comm.0,
                self.clients[client as usize].label,
                gpu.0 % self.gpus_per_node,
                gpu.0 / self.gpus_per_node
            ),
            None => format!("rank {rank} of communicator {}", comm.0),
        }
    }

    // ---- communicators ----

    fn join(&mut self, client: ClientId, req: u64, join: Join, member: Member) {
        let gpus = self.total_gpus;
        if member.gpu >= gpus {
            let msg = format!(
                "{} uses GPU {} of node {}, but the cluster has {} nodes of {} GPUs (set the node count with --nodes or PHANTOM_NODES)",
                self.clients[client as usize].label,
                member.gpu % self.gpus_per_node,
                member.gpu / self.gpus_per_node,
                gpus / self.gpus_per_node,
                self.gpus_per_node
            );
            self.answer_join(client, req, Err(msg));
            return;
        }
        let (key, nranks, rank, color, sort_key) = match join {
            Join::Init { key, nranks, rank } => (RendezvousKey::Init(key), nranks, rank, 0, 0),
            Join::Split { parent, seq, rank, color, key } => match self.comms.get(parent.0 as usize) {
                Some(p) => (RendezvousKey::Split(parent, seq), p.members.len() as u32, rank, color, key),
                None => {
                    self.answer_join(client, req, Err(format!("ncclCommSplit on unknown communicator {}", parent.0)));
                    return;
                }
            },
        };
        if nranks == 0 || rank >= nranks {
            self.answer_join(client, req, Err(format!("rank {rank} is not below the rank count {nranks}")));
            return;
        }
        let rv = self.rendezvous.entry(key).or_insert_with(|| Rendezvous { parts: vec![None; nranks as usize] });
        if rv.parts.len() != nranks as usize {
            let n = rv.parts.len();
            self.answer_join(client, req, Err(format!("rank {rank} initialises a communicator of {nranks} ranks with a unique id other ranks used for {n} ranks")));
            return;
        }
        if rv.parts[rank as usize].is_some() {
            self.answer_join(client, req, Err(format!("rank {rank} joined the same communicator twice")));
            return;
        }
        rv.parts[rank as usize] = Some((client, req, member, color, sort_key));
        if rv.parts.iter().all(Option::is_some) {
            let rv = self.rendezvous.remove(&key).expect("present");
            let parts: Vec<_> = rv.parts.into_iter().map(|p| p.expect("complete")).collect();
            self.form_communicators(parts);
        }
    }

    /// Every rank has joined: creates the communicator(s) (one per split colour) and answers each rank.
    fn form_communicators(&mut self, parts: Vec<JoinPart>) {
        let mut colors: BTreeMap<i32, Vec<(i32, usize)>> = BTreeMap::new();
        for (i, p) in parts.iter().enumerate() {
            if p.3 >= 0 {
                colors.entry(p.3).or_default().push((p.4, i));
            } else {
                self.answer_join(p.0, p.1, Ok(None));
            }
        }
        for (_, mut group) in colors {
            group.sort();
            let id = CommId(self.comms.len() as u64);
            let lead = &parts[group[0].1].2;
            let tuning = Tuning::from_env_values(lead.algo.as_deref(), lead.proto.as_deref()).unwrap_or_else(|e| {
                self.failures.push(format!("communicator {}: ignoring NCCL_ALGO/NCCL_PROTO: {e}", id.0));
                Tuning::default()
            });
            let n = group.len();
            self.comms.push(Comm {
                members: group.iter().map(|&(_, i)| (parts[i].0, GpuId(parts[i].2.gpu))).collect(),
                tuning,
                left: vec![false; n],
                coll_seq: vec![0; n],
                sends: HashMap::new(),
                recvs: HashMap::new(),
            });
            self.stats.communicators += 1;
            for (rank, &(_, i)) in group.iter().enumerate() {
                let info = CommInfo { comm: id, rank: rank as u32, nranks: n as u32 };
                self.answer_join(parts[i].0, parts[i].1, Ok(Some(info)));
            }
        }
    }

    fn answer_join(&mut self, client: ClientId, id: u64, r: Result<Option<CommInfo>, String>) {
        if let Err(message) = &r {
            self.failures.push(message.clone());
        }
        self.joined.insert((client, id), r);
    }

    fn answer_join_waits(&mut self) {
        let mut i = 0;
        while i < self.join_waits.len() {
            let w = &self.join_waits[i];
            if !w.ids.iter().all(|id| self.joined.contains_key(&(w.client, *id))) {
                i += 1;
                continue;
            }
            let w = self.join_waits.swap_remove(i);
            let infos = w.ids.iter().map(|id| self.joined.remove(&(w.client, *id)).expect("checked")).collect();
            let c = &mut self.clients[w.client as usize];
            c.blocked = c.blocked.saturating_sub(1);
            self.outbox.push((w.client, FromSim::Joined { req: w.req, infos }));
        }
    }

    // ---- operations ----

    fn submit(&mut self, client: ClientId, id: OpId, comm: CommId, rank: u32, desc: OpDesc, mut ready: Ready) {
        ready.floor = ready.floor.max(self.horizon);
        let Some(c) = self.comms.get_mut(comm.0 as usize) else {
            self.reject(client, id, comm, rank, desc, ready, format!("unknown communicator {}", comm.0));
            return;
        };
        let n = c.members.len() as u32;
        if rank >= n || c.members[rank as usize].0 != client {
            self.reject(client, id, comm, rank, desc, ready, format!("rank {rank} of communicator {} is not this process's", comm.0));
            return;
        }
        let (key, slot, slots) = match desc.kind {
            OpKind::Coll { .. } => {
                let seq = &mut c.coll_seq[rank as usize];
                *seq += 1;
                (MatchKey::Coll { comm, seq: *seq - 1 }, rank as usize, n as usize)
            }
            OpKind::Send { peer } | OpKind::Recv { peer } if peer >= n => {
                self.reject(client, id, comm, rank, desc, ready, format!("peer {peer} is not a rank of communicator {} ({n} ranks)", comm.0));
                return;
            }
            OpKind::Send { peer } => {
                let seq = c.sends.entry((rank, peer)).or_insert(0);
                *seq += 1;
                (MatchKey::P2p { comm, src: rank, dst: peer, seq: *seq - 1 }, 0, 2)
            }
            OpKind::Recv { peer } => {
                let seq = c.recvs.entry((peer, rank)).or_insert(0);
                *seq += 1;
                (MatchKey::P2p { comm, src: peer, dst: rank, seq: *seq - 1 }, 1, 2)
            }
        };
        self.ops.insert((client, id), Op { rank, comm, desc, ready, key, status: Status::Pending });
        let m = self.matches.entry(key).or_insert_with(|| Match {
            parts: vec![None; slots],
            first: None,
            started: false,
            started_at: SimTime::ZERO,
            choice: None,
            failed: None,
            inputs: vec![None; slots],
        });
        m.parts[slot] = Some((client, id));
        if let Some(data) = self.staged.remove(&(client, id)) {
            m.inputs[slot] = Some(data);
        }
        let mismatch = match m.first {
            None => {
                m.first = Some((rank, desc));
                None
            }
            Some((r0, d0)) if !agrees(&d0, &desc) => Some((r0, d0)),
            Some(_) => None,
        };
        if let Some((r0, d0)) = mismatch {
            let what = match key {
                MatchKey::Coll { seq, .. } => format!("as collective #{seq}"),
                MatchKey::P2p { seq, .. } => format!("as point-to-point operation #{seq} between these ranks"),
            };
            let msg = format!(
                "mismatched operation: {} called {desc} {what}, but {} called {d0}",
                self.rank_label(comm, rank),
                self.rank_label(comm, r0)
            );
            self.fail_match(key, &msg);
            return;
        }
        if let Some(why) = self.matches[&key].failed.clone() {
            let at = self.horizon;
            if let Some(op) = self.ops.get_mut(&(client, id)) {
                op.status = Status::Failed(at, why);
            }
            return;
        }
        // A rank that can no longer take part (left, or its process died) fails the operation now.
        let missing_gone = self.matches[&key].parts.iter().enumerate().find_map(|(i, p)| {
            if p.is_some() {
                return None;
            }
            let r = part_rank(key, i);
            let (cl, _) = self.comms[comm.0 as usize].members[r as usize];
            let gone = self.comms[comm.0 as usize].left[r as usize] || !self.clients[cl as usize].alive;
            gone.then_some(r)
        });
        if let Some(r) = missing_gone {
            let msg = format!("{} is gone (process exited or communicator destroyed) and cannot take part in {desc}", self.rank_label(comm, r));
            self.fail_match(key, &msg);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(&mut self, client: ClientId, id: OpId, comm: CommId, rank: u32, desc: OpDesc, ready: Ready, msg: String) {
        self.failures.push(msg.clone());
        let key = MatchKey::Coll { comm, seq: u64::MAX };
        self.ops.insert((client, id), Op { rank, comm, desc, ready, key, status: Status::Failed(self.horizon, msg) });
    }

    /// Fails every part of `key` (present now or submitted later), with one failure line.
    fn fail_match(&mut self, key: MatchKey, msg: &str) {
        self.failures.push(msg.to_string());
        let at = self.horizon;
        if let Some(m) = self.matches.get_mut(&key) {
            m.failed.get_or_insert_with(|| msg.to_string());
            for (c, id) in m.parts.iter().flatten() {
                if let Some(op) = self.ops.get_mut(&(*c, *id)) {
                    if matches!(op.status, Status::Pending) {
                        op.status = Status::Failed(at, msg.to_string());
                    }
                }
            }
        }
    }

    /// Fails every unstarted operation that still waits for a rank selected by `gone(comm, rank)`.
    fn fail_missing(&mut self, gone: impl Fn((CommId, u32), ClientId) -> bool, why: &str) {
        let mut doomed = Vec::new();
        for (key, m) in &self.matches {
            if m.started || m.failed.is_some() {
                continue;
            }
            let comm = match *key {
                MatchKey::Coll { comm, .. } | MatchKey::P2p { comm, .. } => comm,
            };
            let c = &self.comms[comm.0 as usize];
            for (i, p) in m.parts.iter().enumerate() {
                let r = part_rank(*key, i);
                if p.is_none() && gone((comm, r), c.members[r as usize].0) {
                    let desc = m.first.map(|(_, d)| d.to_string()).unwrap_or_default();
                    doomed.push((*key, format!("{why} before {} called {desc}", self.rank_label(comm, r))));
                    break;
                }
            }
        }
        for (key, msg) in doomed {
            self.fail_match(key, &msg);
        }
    }

    /// When `op` becomes ready, if every operation it follows has finished.
    fn ready_time(&self, client: ClientId, op: &Op) -> Option<Result<SimTime, String>> {
        let mut t = op.ready.floor;
        for (dep, off) in &op.ready.after {
            match self.ops.get(&(client, *dep)).map(|d| &d.status) {
                Some(Status::Done(end)) => t = t.max(*end + *off),
                Some(Status::Failed(_, why)) => return Some(Err(why.clone())),
                Some(_) => return None,
                // Unknown to the simulator (never submitted): treat as complete.
                None => {}
            }
        }
        Some(Ok(t))
    }

    /// The earliest unstarted operation whose parts are all present and ready: (start, key).
    fn next_start(&mut self) -> Option<(SimTime, MatchKey)> {
        let mut best: Option<(SimTime, MatchKey)> = None;
        let mut failed_deps = Vec::new();
        for (key, m) in &self.matches {
            if m.started || m.failed.is_some() || m.parts.iter().any(Option::is_none) {
                continue;
            }
            let mut start = self.horizon;
            let mut ok = true;
            for (c, id) in m.parts.iter().flatten() {
                let op = &self.ops[&(*c, *id)];
                match self.ready_time(*c, op) {
                    Some(Ok(t)) => start = start.max(t),
                    Some(Err(why)) => {
                        failed_deps.push((*key, why));
                        ok = false;
                        break;
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && best.is_none_or(|(b, _)| start < b) {
                best = Some((start, *key));
            }
        }
        for (key, why) in failed_deps {
            const EARLIER: &str = "an earlier operation on the same stream failed: ";
            let msg = if why.starts_with(EARLIER) { why } else { format!("{EARLIER}{why}") };
            self.fail_match(key, &msg);
        }
        best
    }

    /// The global lower bound: no client that can still submit will submit anything ready before it.
    fn gvt(&self) -> SimTime {
        self.clients.iter().filter(|c| c.alive && c.blocked == 0 && !c.idle).map(|c| c.lbts).min().unwrap_or(NEVER)
    }

    /// Starts what can start and completes what finishes, up to the global lower bound; then answers waits
    /// and looks for a deadlock.
    fn pump(&mut self) {
        loop {
            let gvt = self.gvt();
            let start = self.next_start();
            let net = self.net.next_event();
            match (start, net) {
                (Some((ts, key)), n) if ts <= gvt && n.is_none_or(|n| ts < n) => {
                    self.complete(ts);
                    self.start(ts, key);
                }
                (_, Some(tn)) if tn <= gvt => self.complete(tn),
                _ => break,
            }
        }
        self.answer_waits();
        self.answer_join_waits();
        self.check_deadlock();
        self.give_up_lookups();
    }

    /// Answers `None` to the lookups still waiting for a measurement when none can come soon: every executing
    /// process the run has connected and none is both alive and free (not blocked in a `Wait` or `JoinWait`).
    fn give_up_lookups(&mut self) {
        if !self.measurements.has_parked() {
            return;
        }
        let mut executing = self.clients.iter().filter(|c| c.executes);
        let connected = executing.clone().count();
        let can_publish = executing.any(|c| c.alive && c.blocked == 0);
        self.measurements.give_up(connected, can_publish, &mut self.outbox);
    }

    /// Advances the network to `t` and records what completed.
    fn complete(&mut self, t: SimTime) {
        for (tid, end) in self.net.advance(t) {
            if let Some(key) = self.transfers.remove(&tid) {
                self.finish(key, end);
            }
        }
        self.horizon = self.horizon.max(t);
    }

    fn finish(&mut self, key: MatchKey, end: SimTime) {
        let Some(m) = self.matches.remove(&key) else { return };
        self.keep_results(&m);
        let operation = self.stats.operations + 1;
        for (c, id) in m.parts.into_iter().flatten() {
            if self.op_log.is_some() {
                let pid = self.clients.get(c as usize).map_or(0, |cl| cl.pid);
                let ready = self.ops.get(&(c, id)).and_then(|op| self.ready_time(c, op)).and_then(Result::ok);
                let span = OpSpan { pid, op: id, operation, ready: ready.unwrap_or(m.started_at), start: m.started_at, end, choice: m.choice };
                if let Some(log) = self.op_log.as_mut() {
                    log.push(span);
                }
            }
            if let Some(op) = self.ops.get_mut(&(c, id)) {
                op.status = Status::Done(end);
            }
        }
        self.stats.operations += 1;
        self.stats.simulated_end = self.stats.simulated_end.max(end);
        if let Some((_, desc)) = m.first {
            let kind = match desc.kind {
                OpKind::Coll { op, .. } => format!("{op:?}"),
                OpKind::Send { .. } | OpKind::Recv { .. } => "SendRecv".to_string(),
            };
            let t = self.stats.by_kind.entry(kind).or_default();
            t.count += 1;
            t.bytes += desc.bytes;
        }
    }

    fn start(&mut self, at: SimTime, key: MatchKey) {
        let (c0, id0) = self.matches[&key].parts[0].expect("complete match");
        let (comm, desc) = {
            let op = &self.ops[&(c0, id0)];
            (op.comm, op.desc)
        };
        let m = self.matches.get_mut(&key).expect("present");
        m.started = true;
        m.started_at = at;
        for (c, id) in m.parts.iter().flatten() {
            if let Some(op) = self.ops.get_mut(&(*c, *id)) {
                op.status = Status::Running;
            }
        }
        let c = &self.comms[comm.0 as usize];
        let coll = match key {
            MatchKey::Coll { .. } => collective(c, 0, &desc),
            MatchKey::P2p { src, dst, .. } => Collective {
                op: CollOp::SendRecv,
                bytes: desc.bytes,
                gpus: vec![c.members[src as usize].1, c.members[dst as usize].1],
                root: 0,
            },
        };
        if stays_local(&coll) {
            self.finish(key, at);
            return;
        }
        let (tid, algo, proto) = self.net.start_choosing(at, &coll, &c.tuning);
        if let Some(m) = self.matches.get_mut(&key) {
            m.choice = Some((algo, proto));
        }
        self.transfers.insert(tid, key);
    }

    fn answer_waits(&mut self) {
        let mut i = 0;
        while i < self.waits.len() {
            let w = &self.waits[i];
            let mut times = Vec::with_capacity(w.ops.len());
            let mut failures = Vec::new();
            let mut done = true;
            for id in &w.ops {
                match self.ops.get(&(w.client, *id)).map(|o| &o.status) {
                    Some(Status::Done(t)) => times.push(*t),
                    Some(Status::Failed(t, why)) => {
                        times.push(*t);
                        failures.push((*id, why.clone()));
                    }
                    Some(_) => {
                        done = false;
                        break;
                    }
                    None => times.push(self.horizon),
                }
            }
            if !done {
                i += 1;
                continue;
            }
            let w = self.waits.swap_remove(i);
            let c = &mut self.clients[w.client as usize];
            c.blocked = c.blocked.saturating_sub(1);
            if let Some(&latest) = times.iter().max() {
                c.lbts = c.lbts.max(latest);
            }
            self.outbox.push((w.client, FromSim::Done { req: w.req, times, failures }));
        }
    }

    /// Every live client is blocked and nothing can move: reports each stuck wait and fails it.
    fn check_deadlock(&mut self) {
        let stuck_waits = !self.waits.is_empty();
        let stuck_joins = !self.join_waits.is_empty()
            && !self.rendezvous.is_empty()
            && self.expected_clients.is_some_and(|n| self.clients.len() >= n);
        // Only when every live process is blocked in a wait: an idle one may still be on its way.
        let all_blocked = self.clients.iter().all(|c| !c.alive || c.blocked > 0);
        if !(stuck_waits || stuck_joins) || !all_blocked || self.net.next_event().is_some() {
            return;
        }
        if self.next_start().is_some() {
            return;
        }
        // Joins that can never complete.
        if stuck_joins {
            let keys: Vec<_> = self.rendezvous.keys().copied().collect();
            for k in keys {
                let rv = self.rendezvous.remove(&k).expect("present");
                let missing: Vec<usize> = rv.parts.iter().enumerate().filter(|(_, p)| p.is_none()).map(|(i, _)| i).collect();
                let what = match k {
                    RendezvousKey::Init(_) => format!("communicator initialisation ({} ranks)", rv.parts.len()),
                    RendezvousKey::Split(p, s) => format!("ncclCommSplit #{s} of communicator {}", p.0),
                };
                let msg = format!("deadlock: {what} waits for ranks {missing:?}, which never joined");
                for (c, id, ..) in rv.parts.into_iter().flatten() {
                    self.answer_join(c, id, Err(msg.clone()));
                }
            }
            self.answer_join_waits();
        }
        // Operations that waits need and that can never start.
        let mut blamed = Vec::new();
        for w in &self.waits {
            for id in &w.ops {
                if let Some(op) = self.ops.get(&(w.client, *id)) {
                    if matches!(op.status, Status::Pending) {
                        blamed.push(self.blame(w.client, *id, 0));
                    }
                }
            }
        }
        blamed.sort();
        blamed.dedup();
        for (key, msg) in blamed.into_iter().flatten() {
            self.fail_match(key, &format!("deadlock: {msg}"));
        }
        self.answer_waits();
    }

    /// Why a pending operation cannot start: the operation actually stuck (following dependencies) and a
    /// description naming the ranks that never called it.
    fn blame(&self, client: ClientId, id: OpId, depth: u32) -> Option<(MatchKey, String)> {
        let op = self.ops.get(&(client, id))?;
        if depth < 64 {
            for (dep, _) in &op.ready.after {
                if let Some(d) = self.ops.get(&(client, *dep)) {
                    if matches!(d.status, Status::Pending) {
                        return self.blame(client, *dep, depth + 1);
                    }
                }
            }
        }
        let m = self.matches.get(&op.key)?;
        let missing: Vec<u32> = m.parts.iter().enumerate().filter(|(_, p)| p.is_none()).map(|(i, _)| part_rank(op.key, i)).collect();
        let who = self.rank_label(op.comm, op.rank);
        let what = match op.key {
            MatchKey::Coll { seq, .. } => format!("collective #{seq}"),
            MatchKey::P2p { seq, .. } => format!("point-to-point operation #{seq}"),
        };
        let msg = if missing.is_empty() {
            format!("{who} waits in {} ({what}), which depends on an operation that can never run", op.desc)
        } else {
            format!("{who} waits in {} ({what}); ranks {missing:?} of communicator {} never called it", op.desc, op.comm.0)
        };
        Some((op.key, msg))
    }
}

/// The communicator rank that fills slot `i` of a match.
fn part_rank(key: MatchKey, i: usize) -> u32 {
    match key {
        MatchKey::Coll { .. } => i as u32,
        MatchKey::P2p { src, dst, .. } => {
            if i == 0 {
                src
            } else {
                dst
            }
        }
    }
}

/// Whether two ranks' descriptions are parts of the same operation.
fn agrees(a: &OpDesc, b: &OpDesc) -> bool {
    match (a.kind, b.kind) {
        (OpKind::Coll { .. }, OpKind::Coll { .. }) => a == b,
        // A send and its receive: same size and type.
        _ => a.bytes == b.bytes && a.dtype == b.dtype,
    }
}

/// The network's view of `rank`'s part of an operation on `comm`: a collective over every member, a send or
/// receive between its two ranks ([sender, receiver]).
fn collective(c: &Comm, rank: u32, desc: &OpDesc) -> Collective {
    let gpu = |r: u32| c.members.get(r as usize).map_or(GpuId(u32::MAX), |m| m.1);
    let (op, root, gpus) = match desc.kind {
        OpKind::Coll { op, root, .. } => (op, root, c.members.iter().map(|m| m.1).collect()),
        OpKind::Send { peer } => (CollOp::SendRecv, 0, vec![gpu(rank), gpu(peer)]),
        OpKind::Recv { peer } => (CollOp::SendRecv, 0, vec![gpu(peer), gpu(rank)]),
    };
    Collective { op, bytes: desc.bytes, gpus, root }
}

/// Nothing crosses a link (NCCL returns at once for zero bytes; one rank, or a send to itself, copies
/// locally): the operation completes when it starts.
fn stays_local(c: &Collective) -> bool {
    c.bytes == 0 || c.gpus.len() < 2 || c.gpus.windows(2).all(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    //! Lookups of kernel measurements against the coordinator's client states (the rules in isolation are
    //! tested in `measure`; matching and timing in `tests/engine.rs`).
    use super::*;

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }

    fn allreduce(bytes: u64) -> OpDesc {
        OpDesc { kind: OpKind::Coll { op: CollOp::AllReduce, root: 0, redop: 0 }, bytes, count: bytes / 4, dtype: 7 }
    }

    /// A coordinator with one client per entry (executing or following), each holding rank r of one
    /// communicator on GPU r.
    fn world(executes: &[bool]) -> (Coordinator, Vec<ClientId>, CommId) {
        let n = executes.len() as u32;
        let mut c = Coordinator::new(&ClusterConfig::try_preset("dgx-h100").unwrap()).unwrap();
        c.expect_clients(n as usize);
        let ids: Vec<ClientId> = (0..n).map(|_| c.connect()).collect();
        for (r, (&id, &executes)) in ids.iter().zip(executes).enumerate() {
            c.handle(id, ToSim::Hello { pid: 100 + r as u32, node: 0, label: String::new(), executes });
            let member = Member { gpu: r as u32, algo: None, proto: None };
            c.handle(id, ToSim::Join { id: 1, join: Join::Init { key: 42, nranks: n, rank: r as u32 }, member, lbts: t(0) });
        }
        for &id in &ids {
            c.handle(id, ToSim::JoinWait { req: 1, ids: vec![1] });
        }
        let comm = c.take_outbox().into_iter().find_map(|(_, m)| match m {
            FromSim::Joined { infos, .. } => Some(infos[0].clone().unwrap().unwrap().comm),
            _ => None,
        });
        (c, ids, comm.expect("every rank joined"))
    }

    fn submit(c: &mut Coordinator, client: ClientId, rank: u32, comm: CommId, bytes: u64) {
        c.handle(client, ToSim::Submit { ops: vec![(OpId(1), comm, rank, allreduce(bytes), Ready::at(t(1_000)))], lbts: t(1_000) });
    }

    fn lookup(c: &mut Coordinator, client: ClientId, req: u64, key: &str) {
        c.handle(client, ToSim::Lookup { req, key: key.into() });
    }

    fn measured(entries: &[(&str, u64)]) -> ToSim {
        ToSim::Measured { entries: entries.iter().map(|&(k, ns)| (k.to_string(), ns, true)).collect() }
    }

    /// The `Measured` answers in the outbox: (client, req, ns).
    fn answers(c: &mut Coordinator) -> Vec<(ClientId, u64, Option<u64>)> {
        c.take_outbox()
            .into_iter()
            .filter_map(|(to, m)| match m {
                FromSim::Measured { req, ns, .. } => Some((to, req, ns)),
                _ => None,
            })
            .collect()
    }

    fn done_times(c: &mut Coordinator) -> Vec<(ClientId, Vec<SimTime>)> {
        c.take_outbox()
            .into_iter()
            .filter_map(|(to, m)| match m {
                FromSim::Done { times, .. } => Some((to, times)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lookup_waits_for_the_measurement_and_a_known_key_is_answered_at_once() {
        let (mut c, ids, _) = world(&[true, false]);
        lookup(&mut c, ids[1], 5, "gemm");
        assert_eq!(answers(&mut c), []);
        c.handle(ids[0], measured(&[("softmax", 300), ("gemm", 1_000), ("gemm", 1_200)]));
        assert_eq!(answers(&mut c), [(ids[1], 5, Some(1_200))]);
        lookup(&mut c, ids[1], 6, "softmax");
        assert_eq!(answers(&mut c), [(ids[1], 6, Some(300))]);
        assert_eq!((c.measurements(), c.lookups_unanswered()), (2, 0));
    }

    #[test]
    fn without_executing_processes_a_lookup_is_answered_none_at_once() {
        let (mut c, ids, _) = world(&[false, false]);
        lookup(&mut c, ids[0], 1, "gemm");
        assert_eq!(answers(&mut c), [(ids[0], 1, None)]);
        assert_eq!(c.lookups_unanswered(), 1);
    }

    /// The executing rank blocks in a wait for an all-reduce the parked follower has not called yet: no
    /// measurement can come, so the follower is answered `None`; its parked lookup changed no completion time.
    #[test]
    fn a_lookup_is_answered_none_when_the_executing_process_blocks_in_a_wait() {
        let (mut c, ids, comm) = world(&[true, false]);
        lookup(&mut c, ids[1], 3, "gemm");
        submit(&mut c, ids[0], 0, comm, 1 << 20);
        assert_eq!(answers(&mut c), [], "the executing process still runs");
        c.handle(ids[0], ToSim::Wait { req: 2, ops: vec![OpId(1)] });
        assert_eq!(answers(&mut c), [(ids[1], 3, None)]);
        assert!(c.failures().is_empty(), "a follower in a lookup is not a deadlock");
        submit(&mut c, ids[1], 1, comm, 1 << 20);
        c.handle(ids[1], ToSim::Wait { req: 4, ops: vec![OpId(1)] });
        let got = done_times(&mut c);

        let (mut r, rids, rcomm) = world(&[true, false]);
        submit(&mut r, rids[0], 0, rcomm, 1 << 20);
        r.handle(rids[0], ToSim::Wait { req: 2, ops: vec![OpId(1)] });
        submit(&mut r, rids[1], 1, rcomm, 1 << 20);
        r.handle(rids[1], ToSim::Wait { req: 4, ops: vec![OpId(1)] });
        let want = done_times(&mut r);
        assert_eq!(want.len(), 2);
        assert_eq!(got, want);
    }

    #[test]
    fn a_lookup_is_answered_none_when_the_executing_process_says_bye() {
        let (mut c, ids, _) = world(&[true, false, false]);
        lookup(&mut c, ids[1], 1, "gemm");
        lookup(&mut c, ids[2], 7, "gemm");
        assert_eq!(answers(&mut c), []);
        c.handle(ids[0], ToSim::Bye);
        assert_eq!(answers(&mut c), [(ids[1], 1, None), (ids[2], 7, None)]);
        assert_eq!(c.lookups_unanswered(), 2);
    }

    #[test]
    fn expiry_answers_only_lookups_older_than_the_limit() {
        let (mut c, ids, _) = world(&[true, false, false]);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        lookup(&mut c, ids[1], 1, "gemm");
        c.expire_lookups(t0, ms(500));
        lookup(&mut c, ids[2], 2, "gemm");
        c.expire_lookups(t0 + ms(300), ms(500));
        assert_eq!(answers(&mut c), []);
        c.expire_lookups(t0 + ms(500), ms(500));
        assert_eq!(answers(&mut c), [(ids[1], 1, None)]);
        c.handle(ids[0], measured(&[("gemm", 40)]));
        assert_eq!(answers(&mut c), [(ids[2], 2, Some(40))]);
        assert_eq!((c.measurements(), c.lookups_unanswered()), (1, 1));
    }

    #[test]
    fn a_lookup_waits_for_every_expected_executing_process() {
        let (mut c, ids, comm) = world(&[true, false]);
        c.expect_executing(2);
        lookup(&mut c, ids[1], 1, "gemm");
        submit(&mut c, ids[0], 0, comm, 1 << 20);
        c.handle(ids[0], ToSim::Wait { req: 2, ops: vec![OpId(1)] });
        assert_eq!(answers(&mut c), [], "the second executing process may still connect and measure it");
        // It connects and measures.
        let late = c.connect();
        c.handle(late, ToSim::Hello { pid: 7, node: 0, label: String::new(), executes: true });
        assert_eq!(answers(&mut c), []);
        c.handle(late, measured(&[("gemm", 900)]));
        assert_eq!(answers(&mut c), [(ids[1], 1, Some(900))]);
    }

    /// A follower waiting for a measurement is inside a CUDA call: it keeps holding simulated time back and is
    /// never declared idle (which would let what it submits next start late).
    #[test]
    fn a_follower_in_a_lookup_is_never_idle() {
        let (mut c, ids, comm) = world(&[true, false, false]);
        lookup(&mut c, ids[2], 1, "gemm");
        submit(&mut c, ids[0], 0, comm, 1 << 20);
        submit(&mut c, ids[1], 1, comm, 1 << 20);
        c.handle(ids[1], ToSim::Wait { req: 2, ops: vec![OpId(1)] });
        assert!(c.has_waiters());
        assert_eq!(c.holding_back(), vec![ids[2]]);
        c.set_idle(ids[2]);
        assert_eq!(c.holding_back(), vec![ids[2]]);
        // Once answered, it is an ordinary silent process again.
        c.handle(ids[0], measured(&[("gemm", 10)]));
        assert_eq!(answers(&mut c), [(ids[2], 1, Some(10))]);
        c.set_idle(ids[2]);
        assert_eq!(c.holding_back(), vec![ids[0]], "the executing process's promise is the bound now");
    }
}
