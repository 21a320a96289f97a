//! Messages between a rank process (the client) and the simulator.
//!
//! On the wire each message is a little-endian `u32` length followed by its bincode encoding. Asynchronous
//! messages (`Submit`, `Clock`, `Measured`, `Leave`) get no reply; every blocking request carries a request
//! number `req` that its one reply repeats. Every message that carries `lbts` promises that no later
//! submission of this process will be ready before that simulated time (DESIGN.md decision 5).

use crate::net::CollOp;
use crate::time::{SimDuration, SimTime};
use serde::{Deserialize, Serialize};

/// A simulated operation, numbered by the process that submitted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpId(pub u64);

/// A communicator, numbered by the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommId(pub u64);

/// When an operation's stream reaches it: no earlier than `floor`, and no earlier than each listed earlier
/// operation's completion plus the local work queued between the two.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub floor: SimTime,
    pub after: Vec<(OpId, SimDuration)>,
}

impl Ready {
    pub fn at(t: SimTime) -> Ready {
        Ready { floor: t, after: Vec::new() }
    }
}

/// What one rank asks of one communicator. Ranks' descriptions of the same operation must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// A collective: the n-th collective call of every rank of the communicator is the same operation.
    Coll { op: CollOp, root: u32, redop: i32 },
    /// Point to point: the n-th send from `a` to `b` meets the n-th receive on `b` from `a`.
    Send { peer: u32 },
    Recv { peer: u32 },
}

/// One rank's part of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpDesc {
    pub kind: OpKind,
    /// `count × sizeof(datatype)` as passed to the NCCL call (see `net::Collective::bytes`).
    pub bytes: u64,
    pub count: u64,
    /// NCCL's `ncclDataType_t` value.
    pub dtype: i32,
}

impl std::fmt::Display for OpDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            OpKind::Coll { op, root, redop } => {
                write!(f, "{op:?}(count={}, datatype={}, redop={redop}", self.count, self.dtype)?;
                if matches!(op, CollOp::Broadcast | CollOp::Reduce | CollOp::Gather | CollOp::Scatter) {
                    write!(f, ", root={root}")?;
                }
                f.write_str(")")
            }
            OpKind::Send { peer } => write!(f, "Send(count={}, datatype={}, peer={peer})", self.count, self.dtype),
            OpKind::Recv { peer } => write!(f, "Recv(count={}, datatype={}, peer={peer})", self.count, self.dtype),
        }
    }
}

/// A rank joining a communicator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Join {
    /// `ncclCommInitRank*`: every rank presents the same unique id (hashed) and rank count.
    Init { key: u128, nranks: u32, rank: u32 },
    /// `ncclCommSplit`: every rank of `parent` calls it (its `seq`-th split); ranks with the same `color`
    /// (≥ 0) form a new communicator ordered by (`key`, parent rank); a negative color joins none.
    Split { parent: CommId, seq: u64, rank: u32, color: i32, key: i32 },
}

/// Where a rank runs and how its NCCL is tuned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Global GPU index (node × GPUs per node + GPU inside the node).
    pub gpu: u32,
    /// `NCCL_ALGO` and `NCCL_PROTO` of the process.
    pub algo: Option<String>,
    pub proto: Option<String>,
}

/// The communicator a rank ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommInfo {
    pub comm: CommId,
    pub rank: u32,
    pub nranks: u32,
}

/// Client to simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToSim {
    /// First message: who this process is (for messages that name it), and whether it executes its GPU work
    /// on a real GPU and publishes kernel measurements (`Measured`; profiling mode).
    Hello { pid: u32, node: u32, label: String, executes: bool },
    /// Progress: the promise only.
    Clock { lbts: SimTime },
    /// Joins a communicator (asynchronous; `id` is numbered by the process, the result is collected with
    /// `JoinWait`).
    Join { id: u64, join: Join, member: Member, lbts: SimTime },
    /// Blocks until the listed joins have completed; answered with `Joined`, one result per join.
    JoinWait { req: u64, ids: Vec<u64> },
    /// Operations queued on streams (asynchronous).
    Submit { ops: Vec<(OpId, CommId, u32, OpDesc, Ready)>, lbts: SimTime },
    /// Blocks until every listed operation has completed; answered with `Done` (completion times in order).
    Wait { req: u64, ops: Vec<OpId> },
    /// The contention-free time of rank `rank`'s part of an operation (`ncclGroupSimulateEnd`); answered
    /// with `Estimate`.
    Estimate { req: u64, comm: CommId, rank: u32, desc: OpDesc },
    /// The input bytes of this process's part of operation `op` (a small operation whose data travels:
    /// `payload::carries_data`); sent just before the `Submit` that holds `op`.
    Payload { op: OpId, data: Vec<u8> },
    /// What this process's part of operation `op` received (after the operation completed: `Wait` first);
    /// answered at once with `Payload` (empty when no data travelled), or `Failed`.
    Fetch { req: u64, op: OpId },
    /// Kernel measurements of an executing process (asynchronous): an opaque canonical key, the kernel's
    /// duration in nanoseconds, and whether it is settled (the process will not measure that key again; an
    /// unsettled figure may still be refined). A later entry for the same key replaces the earlier.
    Measured { entries: Vec<(String, u64, bool)> },
    /// The measured duration of kernel `key`; answered with `Measured`, at once when it is known, else when an
    /// executing process publishes it, or with `None` when none can be expected soon (docs/simulator.md,
    /// "Measurements from executing processes").
    Lookup { req: u64, key: String },
    /// A rank leaves a communicator (`ncclCommDestroy`/`Abort`).
    Leave { comm: CommId, rank: u32 },
    /// The process ends normally.
    Bye,
}

/// Simulator to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromSim {
    Welcome { client: u32 },
    /// Per join: the communicator (`None` for a split with a negative colour), or why it failed.
    Joined { req: u64, infos: Vec<Result<Option<CommInfo>, String>> },
    Done { req: u64, times: Vec<SimTime>, failures: Vec<(OpId, String)> },
    Estimate { req: u64, ns: u64, algo: String, proto: String },
    /// The bytes a `Fetch` asked for.
    Payload { req: u64, data: Vec<u8> },
    Failed { req: u64, message: String },
    /// A `Lookup`'s answer: the kernel's measured duration in nanoseconds and whether it is settled, or `None`
    /// (use the kernel table or the model; `settled` is then true).
    Measured { req: u64, ns: Option<u64>, settled: bool },
}

impl FromSim {
    /// The request this message answers (`None` for `Welcome`).
    pub fn req(&self) -> Option<u64> {
        match self {
            FromSim::Welcome { .. } => None,
            FromSim::Joined { req, .. }
            | FromSim::Done { req, .. }
            | FromSim::Estimate { req, .. }
            | FromSim::Payload { req, .. }
            | FromSim::Failed { req, .. }
            | FromSim::Measured { req, .. } => Some(*req),
        }
    }
}

/// Writes one framed message.
pub fn write_msg<W: std::io::Write, M: Serialize>(w: &mut W, msg: &M) -> std::io::Result<()> {
    let body = bincode::serialize(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "message too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&body)
}

/// Largest message accepted (a submit batch of many thousands of operations fits).
const MAX_MSG: usize = 64 << 20;

/// Reads one framed message; `Ok(None)` at a clean end of stream.
pub fn read_msg<R: std::io::Read, M: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<Option<M>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MSG {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    bincode::deserialize(&body).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ToSim::Submit {
            ops: vec![(
                OpId(7),
                CommId(3),
                2,
                OpDesc { kind: OpKind::Coll { op: CollOp::AllReduce, root: 0, redop: 0 }, bytes: 4096, count: 1024, dtype: 7 },
                Ready { floor: SimTime::from_nanos(5), after: vec![(OpId(6), SimDuration::from_nanos(9))] },
            )],
            lbts: SimTime::from_nanos(4),
        };
        let mut buf = Vec::new();
        write_msg(&mut buf, &m).unwrap();
        let lookup = ToSim::Lookup { req: 3, key: "sm90 gemm 128x256x64".into() };
        write_msg(&mut buf, &lookup).unwrap();
        write_msg(&mut buf, &ToSim::Bye).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_msg::<_, ToSim>(&mut r).unwrap(), Some(m));
        assert_eq!(read_msg::<_, ToSim>(&mut r).unwrap(), Some(lookup));
        assert_eq!(read_msg::<_, ToSim>(&mut r).unwrap(), Some(ToSim::Bye));
        assert_eq!(read_msg::<_, ToSim>(&mut r).unwrap(), None);
    }

    #[test]
    fn a_measurement_answers_its_lookup() {
        assert_eq!(FromSim::Measured { req: 12, ns: None, settled: true }.req(), Some(12));
    }

    #[test]
    fn descriptions_name_the_operation() {
        let d = OpDesc { kind: OpKind::Coll { op: CollOp::Broadcast, root: 3, redop: 0 }, bytes: 8, count: 2, dtype: 7 };
        assert_eq!(d.to_string(), "Broadcast(count=2, datatype=7, redop=0, root=3)");
    }
}
