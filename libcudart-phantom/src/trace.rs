//! The rank side of `phantom run --trace` (docs/trace.md): when `PHANTOM_TRACE_DIR` is set, every kernel,
//! copy, memset and communication operation placed on a stream is appended to an in-memory buffer, and the
//! buffer is written as JSON lines to `<dir>/rank-<pid>.jsonl` whenever it holds [`FLUSH_AT`] records and at
//! process exit (a libc `atexit` handler). A process that dies loses at most the unflushed tail.
//!
//! NVTX ranges and marks (`nvtx.rs`) are recorded here too, with the host thread's virtual times; so are
//! the host API calls (one span per call that the runtime charges host time for, [`ApiCall`]), device memory
//! in use over time ([`memory`]) and the cross-stream dependencies of `cudaStreamWaitEvent` ([`Record::Wait`]).
//!
//! Recording never changes a simulated time: it only copies times the stream placement already decided.
//! With tracing off, the cost is one relaxed atomic load ([`on`]; [`api_on`] for API calls). Communication
//! records carry no times: the simulator knows when each operation started and completed and hands those to
//! the launcher, which joins them to these records by (pid, operation id).

use crate::runtime::{Device, Runtime};
use crate::stream::Stream;
use sim_core::engine::proto::OpId;
use sim_core::ktable::TimeSource;
use sim_core::timeline::CopyEngine;
use sim_core::SimTime;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

/// The variable `phantom run --trace` sets to the directory the rank files go to.
pub const TRACE_DIR_ENV: &str = "PHANTOM_TRACE_DIR";

/// The variable that turns the host API track off (`0`) while tracing (docs/trace.md, "Host API calls").
pub const TRACE_API_ENV: &str = "PHANTOM_TRACE_API";

/// Records buffered before they are written out.
pub const FLUSH_AT: usize = 4096;

/// Device memory samples of one GPU closer than this to the first of their burst are merged
/// (docs/trace.md, "Device memory").
pub const MEMORY_MERGE_NS: u64 = 1_000;

static STATE: crate::flag::LazyFlag = crate::flag::LazyFlag::new();
static API_STATE: crate::flag::LazyFlag = crate::flag::LazyFlag::new();
static TRACER: OnceLock<Option<Tracer>> = OnceLock::new();

/// What moved data on a copy engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyOp {
    Copy(CopyEngine),
    Memset,
}

/// One communication operation's kind as queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommKind {
    Coll(sim_core::net::CollOp),
    Send { peer: u32 },
    Recv { peer: u32 },
}

/// What an NVTX record is (docs/trace.md, "NVTX ranges").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvtxKind {
    /// A push/pop range; `level` is its 0-based nesting level in its domain on its thread.
    Push { level: u32 },
    /// A start/end range with the id `nvtxRangeStart*` returned.
    StartEnd { id: u64 },
    /// An instant (`start == end`).
    Mark,
}

/// Where a command ran: the application's stream handle and the global GPU index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    pub stream: usize,
    pub gpu: u32,
}

impl Lane {
    pub fn of(rt: &Runtime, dev: &Device, stream: &Stream) -> Lane {
        Lane {
            stream: stream.handle,
            gpu: crate::net::node() * rt.config.gpus_per_node + dev.physical,
        }
    }
}

/// One recorded command: small and `Copy`, so recording only pushes it (kernel names are looked up when
/// the buffer is written).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Record {
    Kernel {
        lane: Lane,
        /// The kernel's host stub (key of `launch::KERNELS`).
        host_fun: usize,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        source: TimeSource,
        start: SimTime,
        end: SimTime,
    },
    Copy {
        lane: Lane,
        op: CopyOp,
        bytes: u64,
        start: SimTime,
        end: SimTime,
    },
    /// Work a library model placed on a stream (a cuBLAS/cuBLASLt GEMM, a cuDNN graph: the runtime table's
    /// `enqueue_work`), shown as a kernel named by the library.
    Library {
        lane: Lane,
        name: NameId,
        start: SimTime,
        end: SimTime,
    },
    Comm {
        lane: Lane,
        op: OpId,
        kind: CommKind,
        bytes: u64,
        comm: u64,
        rank: u32,
    },
    /// A completed NVTX range or a mark, in the virtual time of host thread `tid` (the OS thread id; for a
    /// start/end range, the thread that started it). `domain` is `None` for NVTX's default domain.
    Nvtx {
        tid: u32,
        domain: Option<NameId>,
        name: NameId,
        kind: NvtxKind,
        start: SimTime,
        end: SimTime,
    },
    /// `nvtxNameOsThread*`: the application's name for host thread `tid`.
    NvtxThreadName { tid: u32, name: NameId },
    /// One host API call of thread `tid`, from its entry to its exit in the thread's virtual time.
    Api {
        tid: u32,
        name: ApiName,
        start: SimTime,
        end: SimTime,
    },
    /// Device memory in use (charged bytes, docs/gpu-model.md "Device memory") on global GPU `gpu` from `time`.
    Memory { gpu: u32, time: SimTime, bytes: u64 },
    /// `cudaStreamWaitEvent`: stream `to` waits for what the event's last record on stream `from` completes
    /// after; the waiting stream's later work starts no earlier than `at` (and than `after`).
    Wait {
        from: Lane,
        to: Lane,
        after: WaitAfter,
        at: SimTime,
    },
}

/// What a stream waiting for an event waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitAfter {
    /// The event's completion, known when it was recorded: the end of the work queued before it.
    Time(SimTime),
    /// The communication operation (of this process) that the event was recorded behind, whose completion
    /// the simulator knows.
    Op(OpId),
}

/// The name of a host API call: an export's name, or one a runtime-table entry gives (interned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiName {
    Export(&'static str),
    Named(NameId),
}

/// Names in the trace (library work, NVTX ranges and domains), interned so that a [`Record`] stays `Copy`: an
/// index into the process's name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameId(pub u32);

#[derive(Default)]
struct Names {
    ids: HashMap<Box<str>, u32>,
    list: Vec<Box<str>>,
}

static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();

fn names() -> std::sync::MutexGuard<'static, Names> {
    NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// The id of `s` in the name table (added on first use).
pub fn intern(s: &str) -> NameId {
    let mut n = names();
    if let Some(&id) = n.ids.get(s) {
        return NameId(id);
    }
    let id = n.list.len() as u32;
    n.list.push(s.into());
    n.ids.insert(s.into(), id);
    NameId(id)
}

/// The text of an interned name.
pub fn name_text(id: NameId) -> String {
    let n = names();
    n.list
        .get(id.0 as usize)
        .map_or_else(String::new, |s| s.to_string())
}

/// How many names the table holds (ids below it are valid).
pub fn names_known() -> usize {
    names().list.len()
}

struct Tracer {
    path: std::path::PathBuf,
    buf: Mutex<Vec<Record>>,
    /// The open file, after its header line; `None` until the first write (or after a failed open).
    file: Mutex<Option<std::fs::File>>,
}

/// Whether tracing is on. After the first call: one relaxed load.
#[inline]
pub fn on() -> bool {
    STATE.get(init)
}

/// Whether host API calls are traced: tracing is on and `PHANTOM_TRACE_API` is not `0`. After the first
/// call: one relaxed load.
#[inline]
pub fn api_on() -> bool {
    API_STATE.get(|| {
        let wanted = std::env::var(TRACE_API_ENV).map_or(true, |v| !matches!(v.trim(), "0" | "false" | "off" | "no"));
        wanted && on()
    })
}

fn init() -> bool {
    let t = TRACER.get_or_init(|| {
        let dir = std::env::var_os(TRACE_DIR_ENV).filter(|d| !d.is_empty())?;
        let path = std::path::Path::new(&dir).join(format!("rank-{}.jsonl", std::process::id()));
        // SAFETY: `flush_at_exit` is a plain `extern "C" fn()` that never unwinds.
        unsafe { libc::atexit(flush_at_exit) };
        Some(Tracer {
            path,
            buf: Mutex::new(Vec::with_capacity(FLUSH_AT)),
            file: Mutex::new(None),
        })
    });
    t.is_some()
}

/// Appends `r` (call only when [`on`] said so); writes the buffer out when it is full.
pub fn record(r: Record) {
    let Some(Some(t)) = TRACER.get() else { return };
    let full = {
        let mut b = t.buf.lock().unwrap_or_else(|e| e.into_inner());
        b.push(r);
        (b.len() >= FLUSH_AT).then(|| std::mem::replace(&mut *b, Vec::with_capacity(FLUSH_AT)))
    };
    if let Some(batch) = full {
        t.write(&batch);
    }
}

/// Writes whatever is buffered (also called at exit), memory samples still being merged included.
pub fn flush() {
    let Some(Some(t)) = TRACER.get() else { return };
    let bursts = std::mem::take(&mut *lock(&MEMORY));
    for b in bursts {
        for r in b.samples().into_iter().flatten() {
            record(r);
        }
    }
    let batch = std::mem::take(&mut *t.buf.lock().unwrap_or_else(|e| e.into_inner()));
    t.write(&batch);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host API call open on a thread: its name and, once the runtime charged it, its first entry and last
/// exit in the thread's virtual time.
#[derive(Clone, Copy, Debug)]
struct Frame {
    name: ApiName,
    span: Option<(SimTime, SimTime)>,
}

thread_local! {
    static FRAME: Cell<Option<Frame>> = const { Cell::new(None) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's OS thread id (cached).
fn tid() -> u32 {
    // SAFETY: a system call without arguments.
    let sys = || unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    TID.try_with(|t| {
        if t.get() == 0 {
            t.set(sys());
        }
        t.get()
    })
    .unwrap_or_else(|_| sys())
}

/// One host API call being traced on the calling thread: opened where the call enters the library (the
/// exports' `crate::export::guard`, the runtime-table entries), recorded when dropped if the runtime
/// charged it host time ([`api_span`], from `runtime::api`). Calls answered without the runtime's clock
/// (`cudaGetLastError`, `__cudaPushCallConfiguration`, ...) take no simulated time and are not recorded.
#[must_use]
pub struct ApiCall(Option<Option<Frame>>);

impl ApiCall {
    /// Opens the call of export `name` when API tracing is on; with it off, one relaxed load.
    #[inline]
    pub fn enter(name: &'static str) -> ApiCall {
        if !api_on() {
            return ApiCall(None);
        }
        ApiCall::open(ApiName::Export(name))
    }

    /// Opens a call named `name` (interned) when API tracing is on.
    pub fn named(name: &str) -> ApiCall {
        if !api_on() {
            return ApiCall(None);
        }
        ApiCall::open(ApiName::Named(intern(name)))
    }

    #[cold]
    fn open(name: ApiName) -> ApiCall {
        match FRAME.try_with(|f| f.replace(Some(Frame { name, span: None }))) {
            Ok(outer) => ApiCall(Some(outer)),
            Err(_) => ApiCall(None),
        }
    }
}

impl Drop for ApiCall {
    fn drop(&mut self) {
        let Some(outer) = self.0.take() else { return };
        let Ok(Some(mine)) = FRAME.try_with(|f| f.replace(outer)) else { return };
        let Some((start, end)) = mine.span else { return };
        // A call made from inside another one (an export calling an export) counts for both.
        if outer.is_some() {
            api_span(start, end);
        }
        record(Record::Api { tid: tid(), name: mine.name, start, end });
    }
}

/// The runtime charged the calling thread's open API call from `start` to `end` (virtual time); a call that
/// enters the runtime several times spans from its first entry to its last exit. Nothing without an open call.
pub fn api_span(start: SimTime, end: SimTime) {
    let _ = FRAME.try_with(|f| {
        if let Some(mut fr) = f.get() {
            fr.span = Some(match fr.span {
                Some((s, e)) => (s.min(start), e.max(end)),
                None => (start, end),
            });
            f.set(Some(fr));
        }
    });
}

/// Memory samples of one GPU being merged: the first sample's time, the highest value and the last value
/// (with its time) since.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Burst {
    gpu: u32,
    start: SimTime,
    max: u64,
    last: (SimTime, u64),
}

impl Burst {
    /// What the burst leaves in the trace: its highest value from its start and, if it ended lower, the last
    /// value from the moment it was reached.
    fn samples(&self) -> [Option<Record>; 2] {
        let at = |time, bytes| Record::Memory { gpu: self.gpu, time, bytes };
        let end = (self.last.1 != self.max).then(|| at(self.last.0.max(self.start), self.last.1));
        [Some(at(self.start, self.max)), end]
    }
}

static MEMORY: Mutex<Vec<Burst>> = Mutex::new(Vec::new());

/// Device memory in use on global GPU `gpu` changed to `bytes` at `time` (call only when [`on`] said so).
/// Samples of a GPU less than [`MEMORY_MERGE_NS`] after the first of their burst are merged into it, so a
/// GPU gets at most two samples per microsecond of simulated time and at most two per change.
pub fn memory(gpu: u32, time: SimTime, bytes: u64) {
    let done = merge_memory(&mut lock(&MEMORY), gpu, time, bytes);
    if let Some(b) = done {
        for r in b.samples().into_iter().flatten() {
            record(r);
        }
    }
}

/// Adds a sample to `bursts`; returns the GPU's burst it closed, if any.
fn merge_memory(bursts: &mut Vec<Burst>, gpu: u32, time: SimTime, bytes: u64) -> Option<Burst> {
    let fresh = Burst { gpu, start: time, max: bytes, last: (time, bytes) };
    let Some(b) = bursts.iter_mut().find(|b| b.gpu == gpu) else {
        bursts.push(fresh);
        return None;
    };
    if time >= b.start && time.as_nanos() < b.start.as_nanos() + MEMORY_MERGE_NS {
        b.max = b.max.max(bytes);
        b.last = (time.max(b.last.0), bytes);
        None
    } else {
        Some(std::mem::replace(b, fresh))
    }
}

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(flush);
}

impl Tracer {
    fn write(&self, batch: &[Record]) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A process that recorded nothing (it only asked whether API calls are traced) leaves no file.
        if file.is_none() && batch.is_empty() {
            return;
        }
        if file.is_none() {
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path);
            match opened {
                Ok(mut f) => {
                    let _ = f.write_all(header().as_bytes());
                    *file = Some(f);
                }
                Err(e) => {
                    tracing::error!(
                        "phantom: cannot write the trace file {}: {e}",
                        self.path.display()
                    );
                    return;
                }
            }
        }
        let mut out = String::with_capacity(batch.len() * 160);
        for r in batch {
            line(&mut out, r);
        }
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(out.as_bytes());
        }
    }
}

/// The file's first line: who this process is.
fn header() -> String {
    let rank = std::env::var("RANK")
        .ok()
        .and_then(|r| r.trim().parse::<u32>().ok());
    let rank = rank.map_or("null".to_string(), |r| r.to_string());
    format!(
        "{{\"type\":\"process\",\"pid\":{},\"rank\":{rank},\"node\":{}}}\n",
        std::process::id(),
        crate::net::node()
    )
}

/// `s` as a JSON string literal.
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn source_name(s: TimeSource) -> &'static str {
    match s {
        TimeSource::Table => "table",
        TimeSource::Model => "model",
        TimeSource::Profiled => "profiled",
    }
}

fn copy_name(op: CopyOp) -> &'static str {
    match op {
        CopyOp::Copy(CopyEngine::HostToDevice) => "HtoD",
        CopyOp::Copy(CopyEngine::DeviceToHost) => "DtoH",
        CopyOp::Copy(CopyEngine::DeviceToDevice) => "DtoD",
        CopyOp::Memset => "memset",
    }
}

/// One JSON line for `r` (times in nanoseconds of simulated time).
fn line(out: &mut String, r: &Record) {
    match *r {
        Record::Kernel {
            lane,
            host_fun,
            grid,
            block,
            shared,
            source,
            start,
            end,
        } => {
            let name = crate::launch::KERNELS
                .get(&host_fun)
                .map(|k| k.name.clone())
                .unwrap_or_else(|| format!("kernel {host_fun:#x}"));
            let _ = write!(
                out,
                "{{\"type\":\"kernel\",\"stream\":{},\"gpu\":{},\"name\":",
                lane.stream, lane.gpu
            );
            json_str(out, &name);
            let _ = writeln!(
                out,
                ",\"grid\":[{},{},{}],\"block\":[{},{},{}],\"shared\":{shared},\"source\":\"{}\",\"start\":{},\"end\":{}}}",
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                source_name(source),
                start.as_nanos(),
                end.as_nanos()
            );
        }
        Record::Copy {
            lane,
            op,
            bytes,
            start,
            end,
        } => {
            let _ = writeln!(
                out,
                "{{\"type\":\"copy\",\"stream\":{},\"gpu\":{},\"kind\":\"{}\",\"bytes\":{bytes},\"start\":{},\"end\":{}}}",
                lane.stream,
                lane.gpu,
                copy_name(op),
                start.as_nanos(),
                end.as_nanos()
            );
        }
        Record::Library { lane, name, start, end } => {
            let _ = write!(out, "{{\"type\":\"kernel\",\"stream\":{},\"gpu\":{},\"name\":", lane.stream, lane.gpu);
            json_str(out, &name_text(name));
            let _ = writeln!(out, ",\"source\":\"library\",\"start\":{},\"end\":{}}}", start.as_nanos(), end.as_nanos());
        }
        Record::Comm {
            lane,
            op,
            kind,
            bytes,
            comm,
            rank,
        } => {
            let (name, peer) = match kind {
                CommKind::Coll(c) => (format!("{c:?}"), None),
                CommKind::Send { peer } => ("Send".to_string(), Some(peer)),
                CommKind::Recv { peer } => ("Recv".to_string(), Some(peer)),
            };
            let peer = peer.map_or("null".to_string(), |p| p.to_string());
            let _ = writeln!(
                out,
                "{{\"type\":\"comm\",\"stream\":{},\"gpu\":{},\"op\":{},\"kind\":\"{name}\",\"bytes\":{bytes},\"comm\":{comm},\"rank\":{rank},\"peer\":{peer}}}",
                lane.stream, lane.gpu, op.0
            );
        }
        Record::Nvtx {
            tid,
            domain,
            name,
            kind,
            start,
            end,
        } => {
            let ty = if kind == NvtxKind::Mark {
                "nvtx_mark"
            } else {
                "nvtx_range"
            };
            let _ = write!(out, "{{\"type\":\"{ty}\",\"tid\":{tid},\"domain\":");
            match domain {
                Some(d) => json_str(out, &name_text(d)),
                None => out.push_str("null"),
            }
            out.push_str(",\"name\":");
            json_str(out, &name_text(name));
            let _ = match kind {
                NvtxKind::Push { level } => write!(
                    out,
                    ",\"level\":{level},\"start\":{},\"end\":{}",
                    start.as_nanos(),
                    end.as_nanos()
                ),
                NvtxKind::StartEnd { id } => write!(
                    out,
                    ",\"id\":{id},\"start\":{},\"end\":{}",
                    start.as_nanos(),
                    end.as_nanos()
                ),
                NvtxKind::Mark => write!(out, ",\"time\":{}", start.as_nanos()),
            };
            out.push_str("}\n");
        }
        Record::NvtxThreadName { tid, name } => {
            let _ = write!(out, "{{\"type\":\"nvtx_thread\",\"tid\":{tid},\"name\":");
            json_str(out, &name_text(name));
            out.push_str("}\n");
        }
        Record::Api { tid, name, start, end } => {
            let _ = write!(out, "{{\"type\":\"api\",\"tid\":{tid},\"name\":");
            match name {
                ApiName::Export(n) => json_str(out, n),
                ApiName::Named(id) => json_str(out, &name_text(id)),
            }
            let _ = writeln!(out, ",\"start\":{},\"end\":{}}}", start.as_nanos(), end.as_nanos());
        }
        Record::Memory { gpu, time, bytes } => {
            let _ = writeln!(out, "{{\"type\":\"memory\",\"gpu\":{gpu},\"time\":{},\"bytes\":{bytes}}}", time.as_nanos());
        }
        Record::Wait { from, to, after, at } => {
            let _ = write!(
                out,
                "{{\"type\":\"wait\",\"from_stream\":{},\"from_gpu\":{},\"to_stream\":{},\"to_gpu\":{},",
                from.stream, from.gpu, to.stream, to.gpu
            );
            let _ = match after {
                WaitAfter::Time(t) => write!(out, "\"after\":{}", t.as_nanos()),
                WaitAfter::Op(op) => write!(out, "\"after_op\":{}", op.0),
            };
            let _ = writeln!(out, ",\"at\":{}}}", at.as_nanos());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_escaped_names() {
        let mut out = String::new();
        json_str(&mut out, "k<\"a\\b\">\n");
        assert_eq!(out, r#""k<\"a\\b\">\u000a""#);
        let mut out = String::new();
        let lane = Lane { stream: 1, gpu: 3 };
        line(
            &mut out,
            &Record::Copy {
                lane,
                op: CopyOp::Memset,
                bytes: 64,
                start: SimTime::from_nanos(5),
                end: SimTime::from_nanos(9),
            },
        );
        line(
            &mut out,
            &Record::Comm {
                lane,
                op: OpId(7),
                kind: CommKind::Send { peer: 2 },
                bytes: 8,
                comm: 0,
                rank: 1,
            },
        );
        line(
            &mut out,
            &Record::Library { lane, name: intern("cublasLtMatmul"), start: SimTime::from_nanos(9), end: SimTime::from_nanos(20) },
        );
        assert_eq!(
            out,
            "{\"type\":\"copy\",\"stream\":1,\"gpu\":3,\"kind\":\"memset\",\"bytes\":64,\"start\":5,\"end\":9}\n\
             {\"type\":\"comm\",\"stream\":1,\"gpu\":3,\"op\":7,\"kind\":\"Send\",\"bytes\":8,\"comm\":0,\"rank\":1,\"peer\":2}\n\
             {\"type\":\"kernel\",\"stream\":1,\"gpu\":3,\"name\":\"cublasLtMatmul\",\"source\":\"library\",\"start\":9,\"end\":20}\n"
        );
    }

    #[test]
    fn api_memory_and_wait_lines() {
        let mut out = String::new();
        let t = SimTime::from_nanos;
        line(&mut out, &Record::Api { tid: 9, name: ApiName::Export("cudaMemcpyAsync"), start: t(100), end: t(200) });
        line(&mut out, &Record::Api { tid: 9, name: ApiName::Named(intern("cublasGemmEx")), start: t(200), end: t(2200) });
        line(&mut out, &Record::Memory { gpu: 3, time: t(5), bytes: 1 << 20 });
        let (from, to) = (Lane { stream: 7, gpu: 0 }, Lane { stream: 8, gpu: 0 });
        line(&mut out, &Record::Wait { from, to, after: WaitAfter::Time(t(4000)), at: t(4000) });
        line(&mut out, &Record::Wait { from, to, after: WaitAfter::Op(OpId(12)), at: t(2100) });
        assert_eq!(
            out,
            "{\"type\":\"api\",\"tid\":9,\"name\":\"cudaMemcpyAsync\",\"start\":100,\"end\":200}\n\
             {\"type\":\"api\",\"tid\":9,\"name\":\"cublasGemmEx\",\"start\":200,\"end\":2200}\n\
             {\"type\":\"memory\",\"gpu\":3,\"time\":5,\"bytes\":1048576}\n\
             {\"type\":\"wait\",\"from_stream\":7,\"from_gpu\":0,\"to_stream\":8,\"to_gpu\":0,\"after\":4000,\"at\":4000}\n\
             {\"type\":\"wait\",\"from_stream\":7,\"from_gpu\":0,\"to_stream\":8,\"to_gpu\":0,\"after_op\":12,\"at\":2100}\n"
        );
    }

    #[test]
    fn memory_samples_within_a_microsecond_merge_into_their_peak_and_last_value() {
        let t = SimTime::from_nanos;
        let mut bursts = Vec::new();
        let mut out = Vec::new();
        let mut add = |gpu, time, bytes| {
            if let Some(b) = merge_memory(&mut bursts, gpu, t(time), bytes) {
                out.extend(b.samples().into_iter().flatten());
            }
        };
        // An isolated sample keeps its time; a malloc/free pair 100 ns apart leaves the peak, then the value
        // after the free; GPUs merge separately; a sample earlier than the burst (another thread's clock)
        // starts a new one.
        add(0, 1_000, 512);
        add(0, 5_000, 512 + 4096);
        add(1, 5_050, 1024);
        add(0, 5_100, 512);
        add(0, 5_900, 512 + 8192);
        add(0, 5_999, 512);
        add(0, 6_000, 1024);
        add(0, 5_500, 0);
        let mut rest: Vec<Record> = bursts.iter().flat_map(|b| b.samples().into_iter().flatten()).collect();
        out.append(&mut rest);
        let m = |gpu, time, bytes| Record::Memory { gpu, time: t(time), bytes };
        assert_eq!(
            out,
            [m(0, 1_000, 512), m(0, 5_000, 512 + 8192), m(0, 5_999, 512), m(0, 6_000, 1024), m(0, 5_500, 0), m(1, 5_050, 1024)]
        );
    }

    #[test]
    fn an_api_call_spans_its_first_entry_to_its_last_exit_and_nests() {
        let t = SimTime::from_nanos;
        let frame = || FRAME.with(|f| f.get());
        // No call open: nothing is kept.
        api_span(t(1), t(2));
        assert!(frame().is_none());
        // An open call (as `ApiCall::open` leaves it) collects the runtime's entries and exits.
        let outer = ApiCall::open(ApiName::Export("cudaMallocPitch"));
        assert!(matches!(frame(), Some(Frame { span: None, .. })));
        api_span(t(100), t(200));
        {
            let _inner = ApiCall::open(ApiName::Export("cudaMalloc"));
            api_span(t(300), t(400));
            assert_eq!(frame().unwrap().span, Some((t(300), t(400))));
        }
        // The inner call's span also counts for the outer one.
        assert_eq!(frame().unwrap().span, Some((t(100), t(400))));
        assert_eq!(frame().unwrap().name, ApiName::Export("cudaMallocPitch"));
        drop(outer);
        assert!(frame().is_none());
    }

    #[test]
    fn nvtx_lines() {
        let mut out = String::new();
        let step = intern("step \"0\"");
        let t = SimTime::from_nanos;
        for (domain, kind, start, end) in [
            (None, NvtxKind::Push { level: 1 }, 100, 350),
            (
                Some(intern("my.domain")),
                NvtxKind::StartEnd { id: 3 },
                50,
                400,
            ),
            (None, NvtxKind::Mark, 200, 200),
        ] {
            let r = Record::Nvtx {
                tid: 77,
                domain,
                name: step,
                kind,
                start: t(start),
                end: t(end),
            };
            line(&mut out, &r);
        }
        line(
            &mut out,
            &Record::NvtxThreadName {
                tid: 77,
                name: intern("main"),
            },
        );
        assert_eq!(
            out,
            "{\"type\":\"nvtx_range\",\"tid\":77,\"domain\":null,\"name\":\"step \\\"0\\\"\",\"level\":1,\"start\":100,\"end\":350}\n\
             {\"type\":\"nvtx_range\",\"tid\":77,\"domain\":\"my.domain\",\"name\":\"step \\\"0\\\"\",\"id\":3,\"start\":50,\"end\":400}\n\
             {\"type\":\"nvtx_mark\",\"tid\":77,\"domain\":null,\"name\":\"step \\\"0\\\"\",\"time\":200}\n\
             {\"type\":\"nvtx_thread\",\"tid\":77,\"name\":\"main\"}\n"
        );
    }
}
