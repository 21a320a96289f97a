//! `phantom run --trace PATH` (docs/trace.md): merges the ranks' trace files (`rank-<pid>.jsonl`, written by
//! libcudart's `trace` module into the directory given in `PHANTOM_TRACE_DIR`) and the simulator's record of
//! every communication operation into one Chrome Trace Event / Perfetto JSON file.
//!
//! One trace process per rank process, one thread per (GPU, stream); complete (`X`) events for kernels,
//! copies, memsets and communication operations. Host threads get a thread each (listed before the
//! streams): the host API calls (complete events, category `api`) and the NVTX ranges of NVTX's default
//! domain share it; a named NVTX domain gets a thread of its own. Push/pop ranges are complete events,
//! start/end ranges async (`b`/`e`) pairs (they need not nest), marks instant (`i`) events; category `nvtx`.
//! Each GPU's device memory in use is a counter (`C`) track of its process. Flow arrows (`s`/`f`) join the
//! ranks' spans of one communication operation, from the rank that was ready last to every other rank, and,
//! for `cudaStreamWaitEvent`, the work an event waited for to the waiting stream's next work. One more
//! process, `network`, holds a counter track per link that carried traffic: its rate in GB/s over time, as
//! the simulator recorded it. Times are simulated time, in microseconds.
//!
//! The merge streams: each rank file is read twice, line by line (its tracks, then its events), and events
//! are written as they are made; what it keeps is per operation (the arrows) and, for a file with stream
//! waits, the start and end of its spans. Its work is linear in the records but for sorting those.

use serde_json::{json, Map, Value};
use sim_core::engine::core::OpSpan;
use sim_core::engine::server::RunSummary;
use sim_core::net::LinkUsage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// The variable that tells the ranks where to write their files.
pub const TRACE_DIR_ENV: &str = "PHANTOM_TRACE_DIR";

/// The trace process of the network's link counters: above any Linux process id (at most 2^22), below
/// 2^31 for viewers that read ids as signed 32-bit integers.
pub const NETWORK_PID: u32 = 0x7fff_0000;

/// The counter series of a link track (Perfetto names the track `<link> GB/s`).
pub const LINK_SERIES: &str = "GB/s";

/// The counter series of a GPU's memory track, `GPU <g> memory` (10^6 bytes).
pub const MEMORY_SERIES: &str = "MB";

/// What one rank process wrote: its header, and where to read its records.
#[derive(Clone, Debug, PartialEq)]
pub struct RankFile {
    pub pid: u32,
    /// `RANK` of the process, when it had one.
    pub rank: Option<u32>,
    pub node: u32,
    source: Source,
}

#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// A file's text held in memory (the unit tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Text(String),
    File(PathBuf),
}

/// What the merge produced, for the launcher's message.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Merged {
    pub processes: usize,
    /// Records that became events (spans, NVTX records, API calls, memory samples).
    pub events: usize,
    /// Communication operations queued whose completion the simulator never reported (failed, or the run
    /// stopped first): left out of the trace.
    pub unfinished: usize,
    pub bad_lines: usize,
    /// Flow arrows between the ranks' spans of an operation.
    pub flows: usize,
    /// Link counter tracks, and their samples.
    pub links: usize,
    pub link_samples: usize,
    /// Host API call spans.
    pub api_calls: usize,
    /// Device memory counter samples.
    pub memory_samples: usize,
    /// Arrows of stream waits (`cudaStreamWaitEvent`).
    pub waits: usize,
}

/// The header line's pid, rank and node.
fn header(line: &[u8]) -> Option<(u32, Option<u32>, u32)> {
    let head: Value = serde_json::from_slice(line).ok()?;
    if head.get("type")?.as_str()? != "process" {
        return None;
    }
    Some((
        head.get("pid")?.as_u64()? as u32,
        head.get("rank").and_then(Value::as_u64).map(|r| r as u32),
        head.get("node").and_then(Value::as_u64).unwrap_or(0) as u32,
    ))
}

/// A rank file held in memory (`text`); `None` without a valid header line.
#[cfg(test)]
pub fn parse_rank_file(text: &str) -> Option<RankFile> {
    let (pid, rank, node) = header(text.lines().next()?.as_bytes())?;
    Some(RankFile { pid, rank, node, source: Source::Text(text.to_string()) })
}

/// The rank file at `path` (only its header is read now); `None` without a valid header line.
pub fn open_rank_file(path: &Path) -> io::Result<Option<RankFile>> {
    let mut first = Vec::new();
    io::BufReader::new(std::fs::File::open(path)?).read_until(b'\n', &mut first)?;
    Ok(header(&first).map(|(pid, rank, node)| RankFile { pid, rank, node, source: Source::File(path.into()) }))
}

impl RankFile {
    /// Calls `f` with every record after the header, in file order, reading the file afresh; returns how
    /// many lines did not parse (a process killed while writing loses its last line).
    pub fn scan(&self, mut f: impl FnMut(&Value)) -> io::Result<usize> {
        let mut bad = 0;
        {
            let mut one = |l: &[u8]| {
                if l.iter().all(u8::is_ascii_whitespace) {
                    return;
                }
                match serde_json::from_slice::<Value>(l) {
                    Ok(v) if v.is_object() => f(&v),
                    _ => bad += 1,
                }
            };
            match &self.source {
                Source::Text(t) => t.lines().skip(1).for_each(|l| one(l.as_bytes())),
                Source::File(p) => {
                    let mut r = io::BufReader::new(std::fs::File::open(p)?);
                    let mut line = Vec::new();
                    let mut first = true;
                    loop {
                        line.clear();
                        if r.read_until(b'\n', &mut line)? == 0 {
                            break;
                        }
                        if !std::mem::take(&mut first) {
                            one(&line);
                        }
                    }
                }
            }
        }
        Ok(bad)
    }
}

/// Every `rank-*.jsonl` of `dir` (headers read, records read by the merge).
pub fn read_dir(dir: &Path) -> io::Result<Vec<RankFile>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("rank-") && name.ends_with(".jsonl") {
            if let Some(f) = open_rank_file(&p)? {
                files.push(f);
            }
        }
    }
    Ok(files)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// How a stream is named: its `cudaStream_t` value as the application sees it.
fn stream_name(handle: u64) -> String {
    match handle {
        1 => "stream 0 (legacy default)".into(),
        2 => "stream 2 (per-thread default)".into(),
        h => format!("stream {h:#x}"),
    }
}

fn metadata(name: &str, pid: u32, tid: u64, args: Value) -> Value {
    json!({"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args})
}

/// Where the events go: the `traceEvents` array, written as they come.
struct Sink<W: Write> {
    w: W,
    n: usize,
}

impl<W: Write> Sink<W> {
    fn push(&mut self, e: &Value) -> io::Result<()> {
        if self.n > 0 {
            self.w.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.w, e)?;
        self.n += 1;
        Ok(())
    }
}

/// One rank's span of a communication operation, for the flow arrows.
struct Part {
    operation: u64,
    /// The process's place in the trace (rank order).
    index: usize,
    pid: u32,
    tid: u64,
    name: String,
    ready: u64,
    start: u64,
    end: u64,
}

/// A (GPU, stream) of a process.
type LaneKey = (u64, u64);

/// What the first reading of a rank file finds: its tracks.
struct Tracks {
    /// The streams, numbered from 1 in (GPU, stream) order.
    lanes: BTreeMap<LaneKey, u64>,
    /// GPUs the process queued work on or allocated memory of.
    gpus: BTreeSet<u64>,
    hosts: HostTracks,
    /// Communication operation id → its stream (for waits on events recorded behind one).
    op_lanes: HashMap<u64, LaneKey>,
    /// Whether the file has stream waits (then the merge keeps its spans' times).
    waits: bool,
    bad_lines: usize,
}

fn tracks(f: &RankFile) -> io::Result<Tracks> {
    let (mut lanes, mut gpus, mut keys) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let (mut names, mut op_lanes, mut waits) = (HashMap::new(), HashMap::new(), false);
    let bad_lines = f.scan(|r| {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if r.get("stream").is_some() {
            let lane = (u(r, "gpu"), u(r, "stream"));
            lanes.insert(lane);
            gpus.insert(lane.0);
            if kind == "comm" {
                op_lanes.insert(u(r, "op"), lane);
            }
        }
        match kind {
            "nvtx_range" | "nvtx_mark" => {
                keys.insert(host_key(r));
            }
            "api" => {
                keys.insert((u(r, "tid"), None));
            }
            "nvtx_thread" => {
                if let Some(n) = r.get("name").and_then(Value::as_str) {
                    names.insert(u(r, "tid"), n.to_string());
                }
            }
            "memory" => {
                gpus.insert(u(r, "gpu"));
            }
            "wait" => waits = true,
            _ => {}
        }
    })?;
    let lanes: BTreeMap<LaneKey, u64> = lanes.into_iter().enumerate().map(|(i, l)| (l, i as u64 + 1)).collect();
    let first = lanes.len() as u64 + 1;
    let tids = keys.into_iter().enumerate().map(|(i, k)| (k, first + i as u64)).collect();
    Ok(Tracks { lanes, gpus, hosts: HostTracks { tids, names }, op_lanes, waits, bad_lines })
}

/// What a stream wait waited for (a `wait` record).
enum After {
    /// The event's completion time: the end of the work queued before its record.
    Time(u64),
    /// The communication operation the event was recorded behind (this process's operation id).
    Op(u64),
}

/// A `wait` record: stream `to` waits for an event recorded on stream `from`; its later work starts at `at`
/// at the earliest.
struct Wait {
    from: LaneKey,
    to: LaneKey,
    after: After,
    at: u64,
}

/// The merged trace: `{"traceEvents": [...], "displayTimeUnit": "ns"}` (for tests; [`write`] streams it).
#[cfg(test)]
pub fn merge(files: &[RankFile], ops: &[OpSpan], links: &[LinkUsage]) -> (Value, Merged) {
    let mut buf = Vec::new();
    let m = merge_into(files, ops, links, &mut buf).expect("merging into memory");
    (serde_json::from_slice(&buf).expect("the merge writes JSON"), m)
}

/// Writes the merged trace to `w` as it is made.
pub fn merge_into(files: &[RankFile], ops: &[OpSpan], links: &[LinkUsage], w: impl Write) -> io::Result<Merged> {
    let spans: HashMap<(u32, u64), &OpSpan> = ops.iter().map(|s| ((s.pid, s.op.0), s)).collect();
    let mut order: Vec<&RankFile> = files.iter().collect();
    order.sort_by_key(|f| (f.rank.unwrap_or(u32::MAX), f.pid));
    let mut sink = Sink { w, n: 0 };
    sink.w.write_all(b"{\"traceEvents\":[")?;
    let mut parts = Vec::new();
    let mut flow_id = 0u64;
    let mut m = Merged { processes: order.len(), ..Merged::default() };
    for (index, f) in order.iter().enumerate() {
        let t = tracks(f)?;
        m.bad_lines += t.bad_lines;
        process_metadata(f, index, &t, &mut sink)?;
        // Start and end of the spans of each stream (tid), for the stream waits.
        let mut slices: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        let mut waits = Vec::new();
        let mut failed = Ok(());
        f.scan(|r| {
            if failed.is_ok() {
                failed = record_events(r, f.pid, index, &t, &spans, &mut m, &mut parts, &mut slices, &mut waits, &mut sink);
            }
        })?;
        failed?;
        m.waits += stream_waits(f.pid, &t, &spans, slices, waits, &mut flow_id, &mut sink)?;
    }
    m.flows = flow_arrows(parts, &mut flow_id, &mut sink)?;
    let (tracks, samples) = link_counters(links, order.len(), &mut sink)?;
    m.links = tracks;
    m.link_samples = samples;
    sink.w.write_all(b"],\"displayTimeUnit\":\"ns\"}")?;
    Ok(m)
}

/// The process's name and order, and its threads' names and order (host threads first, then streams).
fn process_metadata<W: Write>(f: &RankFile, index: usize, t: &Tracks, sink: &mut Sink<W>) -> io::Result<()> {
    let who = f.rank.map_or(format!("pid {}", f.pid), |r| format!("rank {r}"));
    let gpu_list = t.gpus.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let name = match t.gpus.len() {
        0 => format!("{who} (node {})", f.node),
        1 => format!("{who} (node {}, GPU {gpu_list})", f.node),
        _ => format!("{who} (node {}, GPUs {gpu_list})", f.node),
    };
    sink.push(&metadata("process_name", f.pid, 0, json!({ "name": name })))?;
    sink.push(&metadata("process_sort_index", f.pid, 0, json!({ "sort_index": index })))?;
    let streams = t.lanes.len() as u64;
    for (key, &tid) in &t.hosts.tids {
        sink.push(&metadata("thread_name", f.pid, tid, json!({ "name": t.hosts.name(f.pid, key) })))?;
        sink.push(&metadata("thread_sort_index", f.pid, tid, json!({ "sort_index": tid - streams })))?;
    }
    for (&(gpu, stream), &tid) in &t.lanes {
        let mut tname = stream_name(stream);
        if t.gpus.len() > 1 {
            tname.push_str(&format!(" (GPU {gpu})"));
        }
        sink.push(&metadata("thread_name", f.pid, tid, json!({ "name": tname })))?;
        sink.push(&metadata("thread_sort_index", f.pid, tid, json!({ "sort_index": tid + t.hosts.tids.len() as u64 })))?;
    }
    Ok(())
}

/// The events of one record of process `pid` (the `index`-th in rank order).
#[allow(clippy::too_many_arguments)]
fn record_events<W: Write>(
    r: &Value,
    pid: u32,
    index: usize,
    t: &Tracks,
    spans: &HashMap<(u32, u64), &OpSpan>,
    m: &mut Merged,
    parts: &mut Vec<Part>,
    slices: &mut HashMap<u64, Vec<(u64, u64)>>,
    waits: &mut Vec<Wait>,
    sink: &mut Sink<W>,
) -> io::Result<()> {
    let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
    let name_of = |default: &str| r.get("name").and_then(Value::as_str).unwrap_or(default).to_string();
    let (name, cat, start, end, args) = match kind {
        k if k.starts_with("nvtx") => {
            if let Some(e) = nvtx_events(r, pid, &t.hosts) {
                for e in &e {
                    sink.push(e)?;
                }
                m.events += 1;
            }
            return Ok(());
        }
        "api" => {
            let Some(&tid) = t.hosts.tids.get(&(u(r, "tid"), None)) else { return Ok(()) };
            let (start, end) = (u(r, "start"), u(r, "end"));
            sink.push(&json!({
                "ph": "X", "name": name_of("api"), "cat": "api", "pid": pid, "tid": tid,
                "ts": us(start), "dur": us(end.saturating_sub(start)),
            }))?;
            m.api_calls += 1;
            m.events += 1;
            return Ok(());
        }
        "memory" => {
            sink.push(&json!({
                "ph": "C", "name": format!("GPU {} memory", u(r, "gpu")), "cat": "memory", "pid": pid, "tid": 0,
                "ts": us(u(r, "time")), "args": { MEMORY_SERIES: u(r, "bytes") as f64 / 1e6 },
            }))?;
            m.memory_samples += 1;
            m.events += 1;
            return Ok(());
        }
        "wait" => {
            let after = match r.get("after_op").and_then(Value::as_u64) {
                Some(op) => After::Op(op),
                None => After::Time(u(r, "after")),
            };
            waits.push(Wait {
                from: (u(r, "from_gpu"), u(r, "from_stream")),
                to: (u(r, "to_gpu"), u(r, "to_stream")),
                after,
                at: u(r, "at"),
            });
            return Ok(());
        }
        "kernel" => {
            let mut a = Map::new();
            for k in ["grid", "block", "shared", "source"] {
                a.insert(k.into(), r.get(k).cloned().unwrap_or(Value::Null));
            }
            (name_of("kernel"), "kernel", u(r, "start"), u(r, "end"), a)
        }
        "copy" => {
            let what = r.get("kind").and_then(Value::as_str).unwrap_or("copy");
            let mut a = Map::new();
            a.insert("bytes".into(), json!(u(r, "bytes")));
            let (name, cat) = if what == "memset" { ("memset".into(), "memset") } else { (format!("memcpy {what}"), "memcpy") };
            (name, cat, u(r, "start"), u(r, "end"), a)
        }
        "comm" => {
            let Some(s) = spans.get(&(pid, u(r, "op"))) else {
                m.unfinished += 1;
                return Ok(());
            };
            let mut a = Map::new();
            for k in ["bytes", "comm", "rank", "peer", "op"] {
                if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
                    a.insert(k.into(), v.clone());
                }
            }
            if let Some((algo, proto)) = s.choice {
                a.insert("algorithm".into(), json!(algo.to_string()));
                a.insert("protocol".into(), json!(proto.to_string()));
            }
            let name = r.get("kind").and_then(Value::as_str).unwrap_or("comm").to_string();
            (name, "nccl", s.start.as_nanos(), s.end.as_nanos(), a)
        }
        _ => return Ok(()),
    };
    let Some(&tid) = t.lanes.get(&(u(r, "gpu"), u(r, "stream"))) else { return Ok(()) };
    if kind == "comm" {
        let s = spans[&(pid, u(r, "op"))];
        parts.push(Part {
            operation: s.operation,
            index,
            pid,
            tid,
            name: name.clone(),
            ready: s.ready.as_nanos(),
            start,
            end,
        });
    }
    if t.waits && end > start {
        slices.entry(tid).or_default().push((start, end));
    }
    sink.push(&json!({
        "ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid,
        "ts": us(start), "dur": us(end.saturating_sub(start)), "args": Value::Object(args),
    }))?;
    m.events += 1;
    Ok(())
}

/// The middle of a span (µs): flow events bind to the span that encloses them.
fn middle(start: u64, end: u64) -> f64 {
    us(start) + us(end - start) / 2.0
}

/// A flow arrow from the middle of span `from` on thread `from_tid` to the middle of span `to` on `to_tid`:
/// a flow start (`s`) and a flow end (`f`, `"bp": "e"`: bound to the enclosing span) with a new id.
#[allow(clippy::too_many_arguments)]
fn arrow<W: Write>(
    sink: &mut Sink<W>,
    id: &mut u64,
    name: &str,
    cat: &str,
    (from_pid, from_tid, from): (u32, u64, (u64, u64)),
    (to_pid, to_tid, to): (u32, u64, (u64, u64)),
) -> io::Result<()> {
    *id += 1;
    sink.push(&json!({
        "ph": "s", "id": *id, "name": name, "cat": cat, "pid": from_pid, "tid": from_tid, "ts": middle(from.0, from.1),
    }))?;
    sink.push(&json!({
        "ph": "f", "bp": "e", "id": *id, "name": name, "cat": cat, "pid": to_pid, "tid": to_tid, "ts": middle(to.0, to.1),
    }))
}

/// The arrows of a process's stream waits: from the span the event waited for (the last span of the
/// recording stream ending by the event's completion, or the span of the communication operation it was
/// recorded behind) to the first span of the waiting stream starting at or after both the wait and that
/// completion. Spans of no length are not ends; waits with no span at either end get no arrow. Returns the
/// number of arrows.
fn stream_waits<W: Write>(
    pid: u32,
    t: &Tracks,
    spans: &HashMap<(u32, u64), &OpSpan>,
    mut slices: HashMap<u64, Vec<(u64, u64)>>,
    waits: Vec<Wait>,
    id: &mut u64,
    sink: &mut Sink<W>,
) -> io::Result<usize> {
    for s in slices.values_mut() {
        // A stream runs its commands in order: sorted by start, its spans are sorted by end too.
        s.sort_unstable();
    }
    let mut n = 0;
    for w in waits {
        let source = match w.after {
            After::Time(done) => t.lanes.get(&w.from).and_then(|&tid| {
                let list = slices.get(&tid)?;
                let i = list.partition_point(|s| s.1 <= done);
                Some((tid, *list.get(i.checked_sub(1)?)?, done))
            }),
            After::Op(op) => spans.get(&(pid, op)).and_then(|s| {
                let lane = t.op_lanes.get(&op).copied().unwrap_or(w.from);
                let (start, end) = (s.start.as_nanos(), s.end.as_nanos());
                (end > start).then_some((*t.lanes.get(&lane)?, (start, end), end))
            }),
        };
        let Some((from_tid, from, done)) = source else { continue };
        let Some(&to_tid) = t.lanes.get(&w.to).filter(|&&to| to != from_tid) else { continue };
        let Some(list) = slices.get(&to_tid) else { continue };
        let after = w.at.max(done);
        let Some(&to) = list.get(list.partition_point(|s| s.0 < after)) else { continue };
        arrow(sink, id, "cudaStreamWaitEvent", "stream_wait", (pid, from_tid, from), (pid, to_tid, to))?;
        n += 1;
    }
    Ok(n)
}

/// Arrows from the span of the rank that was ready last (the one the others waited for; the first in rank
/// order among equals) to every other rank's span of the same operation: a flow start (`s`) in the middle
/// of the source span and a flow end (`f`, `"bp": "e"`: bound to the enclosing span) in the middle of each
/// other span, one flow id per arrow. Spans of no length get none. Returns the number of arrows.
fn flow_arrows<W: Write>(mut parts: Vec<Part>, id: &mut u64, sink: &mut Sink<W>) -> io::Result<usize> {
    parts.sort_by_key(|p| (p.operation, p.index, p.tid));
    let mut n = 0;
    for op in parts.chunk_by(|a, b| a.operation == b.operation) {
        let Some(src) = op.iter().rev().max_by_key(|p| p.ready) else {
            continue;
        };
        if src.end <= src.start {
            continue;
        }
        for dst in op.iter().filter(|p| !std::ptr::eq(*p, src) && p.end > p.start) {
            arrow(sink, id, &src.name, "nccl", (src.pid, src.tid, (src.start, src.end)), (dst.pid, dst.tid, (dst.start, dst.end)))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The `network` process (sorted after the `ranks` rank processes) with one counter track per link that
/// has samples: `{"ph": "C", "name": <link>, "args": {"GB/s": rate}}` at every sample. Returns the number
/// of tracks and of samples.
fn link_counters<W: Write>(links: &[LinkUsage], ranks: usize, sink: &mut Sink<W>) -> io::Result<(usize, usize)> {
    let sampled: Vec<&LinkUsage> = links.iter().filter(|l| !l.samples.is_empty()).collect();
    if sampled.is_empty() {
        return Ok((0, 0));
    }
    sink.push(&metadata("process_name", NETWORK_PID, 0, json!({ "name": "network" })))?;
    sink.push(&metadata("process_sort_index", NETWORK_PID, 0, json!({ "sort_index": ranks })))?;
    let mut samples = 0;
    for l in &sampled {
        for &(t, rate) in &l.samples {
            sink.push(&json!({
                "ph": "C", "name": l.name, "cat": "network", "pid": NETWORK_PID, "tid": 0, "ts": us(t.as_nanos()),
                "args": { LINK_SERIES: rate / 1e9 },
            }))?;
        }
        samples += l.samples.len();
    }
    Ok((sampled.len(), samples))
}

/// A host thread's track: an OS thread id and an NVTX domain (`None`: NVTX's default domain, whose ranges
/// share the track with the thread's API calls).
type HostKey = (u64, Option<String>);

/// The host thread tracks of one process, numbered after its streams.
struct HostTracks {
    tids: BTreeMap<HostKey, u64>,
    /// Names the application gave its threads (`nvtxNameOsThread`).
    names: HashMap<u64, String>,
}

impl HostTracks {
    /// `host thread 1234 (main)`: the application's name for the thread, else `main` for the process's
    /// main thread; `, NVTX domain D` for a named domain.
    fn name(&self, pid: u32, (tid, domain): &HostKey) -> String {
        let mut n = format!("host thread {tid}");
        match self.names.get(tid) {
            Some(given) => n.push_str(&format!(" ({given})")),
            None if *tid == pid as u64 => n.push_str(" (main)"),
            None => {}
        }
        if let Some(d) = domain {
            n.push_str(&format!(", NVTX domain {d}"));
        }
        n
    }

    fn tid(&self, r: &Value) -> Option<u64> {
        self.tids.get(&host_key(r)).copied()
    }
}

fn host_key(r: &Value) -> HostKey {
    let domain = r.get("domain").and_then(Value::as_str).map(String::from);
    (u(r, "tid"), domain)
}

/// The trace events of one NVTX record (none for a thread name).
fn nvtx_events(r: &Value, pid: u32, hosts: &HostTracks) -> Option<Vec<Value>> {
    let tid = hosts.tid(r)?;
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let mut args = Map::new();
    if let Some(d) = r.get("domain").filter(|d| d.is_string()) {
        args.insert("domain".into(), d.clone());
    }
    let (start, end) = (u(r, "start"), u(r, "end"));
    match r.get("type").and_then(Value::as_str)? {
        "nvtx_mark" => Some(vec![json!({
            "ph": "i", "s": "t", "name": name, "cat": "nvtx", "pid": pid, "tid": tid,
            "ts": us(u(r, "time")), "args": Value::Object(args),
        })]),
        "nvtx_range" => match r.get("id").and_then(Value::as_u64) {
            // Start/end ranges need not nest: an async pair, keyed by the range id.
            Some(id) => {
                args.insert("id".into(), json!(id));
                let args = Value::Object(args);
                Some(vec![
                    json!({"ph": "b", "name": name, "cat": "nvtx", "id": id, "pid": pid, "tid": tid,
                           "ts": us(start), "args": args}),
                    json!({"ph": "e", "name": name, "cat": "nvtx", "id": id, "pid": pid, "tid": tid,
                           "ts": us(end)}),
                ])
            }
            None => {
                args.insert("level".into(), json!(u(r, "level")));
                Some(vec![json!({
                    "ph": "X", "name": name, "cat": "nvtx", "pid": pid, "tid": tid,
                    "ts": us(start), "dur": us(end.saturating_sub(start)), "args": Value::Object(args),
                })])
            }
        },
        _ => None,
    }
}

/// Merges the files of `dir` with the simulator's operations and links and writes the trace to `out`.
pub fn write(out: &Path, dir: &Path, sim: &RunSummary) -> Result<Merged, String> {
    let files = read_dir(dir).map_err(|e| format!("cannot read the ranks' trace files in {}: {e}", dir.display()))?;
    let fail = |e: &dyn std::fmt::Display| format!("cannot write the trace {}: {e}", out.display());
    let file = std::fs::File::create(out).map_err(|e| fail(&e))?;
    let mut w = io::BufWriter::new(file);
    let m = merge_into(&files, &sim.ops, &sim.links, &mut w).map_err(|e| fail(&e))?;
    w.flush().map_err(|e| fail(&e))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::engine::proto::OpId;
    use sim_core::net::{Algo, Proto};
    use sim_core::SimTime;

    const RANK1: &str = r#"{"type":"process","pid":200,"rank":1,"node":0}
{"type":"kernel","stream":1,"gpu":1,"name":"add(float*)","grid":[4,1,1],"block":[256,1,1],"shared":0,"source":"model","start":1000,"end":3500}
{"type":"copy","stream":1,"gpu":1,"kind":"HtoD","bytes":4096,"start":3500,"end":4000}
{"type":"comm","stream":87960930222081,"gpu":1,"op":1,"kind":"AllReduce","bytes":1048576,"comm":0,"rank":1,"peer":null}
{"type":"comm","stream":87960930222081,"gpu":1,"op":2,"kind":"AllReduce","bytes":1048576,"comm":0,"rank":1,"peer":null}
{"type":"kernel","stream":1,"gpu":1,"na"#;

    #[test]
    fn merge_names_processes_and_streams_and_joins_simulator_times() {
        let r1 = parse_rank_file(RANK1).unwrap();
        let mut records = 0;
        let bad = r1.scan(|_| records += 1).unwrap();
        assert_eq!((r1.pid, r1.rank, records, bad), (200, Some(1), 4, 1));
        let r0 =
            parse_rank_file("{\"type\":\"process\",\"pid\":300,\"rank\":0,\"node\":0}\n").unwrap();
        let ops = [OpSpan {
            pid: 200,
            op: OpId(1),
            operation: 1,
            ready: SimTime::from_nanos(4000),
            start: SimTime::from_nanos(4000),
            end: SimTime::from_nanos(14_500),
            choice: Some((Algo::Ring, Proto::Simple)),
        }];
        let (t, m) = merge(&[r1, r0], &ops, &[]);
        assert_eq!(
            m,
            Merged {
                processes: 2,
                events: 3,
                unfinished: 1,
                bad_lines: 1,
                ..Merged::default()
            }
        );
        assert_eq!(t["displayTimeUnit"], "ns");
        let ev = t["traceEvents"].as_array().unwrap();
        let meta = |name: &str, pid: u32| -> Vec<&Value> {
            ev.iter()
                .filter(|e| e["ph"] == "M" && e["name"] == name && e["pid"] == pid)
                .collect()
        };
        // Rank 0 sorts first, and has no GPU work.
        assert_eq!(
            meta("process_name", 300)[0]["args"]["name"],
            "rank 0 (node 0)"
        );
        assert_eq!(meta("process_sort_index", 300)[0]["args"]["sort_index"], 0);
        assert_eq!(
            meta("process_name", 200)[0]["args"]["name"],
            "rank 1 (node 0, GPU 1)"
        );
        let threads: Vec<_> = meta("thread_name", 200)
            .iter()
            .map(|e| (e["tid"].as_u64().unwrap(), e["args"]["name"].clone()))
            .collect();
        assert_eq!(
            threads,
            [
                (1, json!("stream 0 (legacy default)")),
                (2, json!("stream 0x500000000001"))
            ]
        );
        let x: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 3);
        assert_eq!(
            (
                x[0]["name"].as_str(),
                x[0]["cat"].as_str(),
                x[0]["tid"].as_u64()
            ),
            (Some("add(float*)"), Some("kernel"), Some(1))
        );
        assert_eq!(
            (x[0]["ts"].as_f64(), x[0]["dur"].as_f64()),
            (Some(1.0), Some(2.5))
        );
        assert_eq!(
            x[0]["args"],
            json!({"grid": [4, 1, 1], "block": [256, 1, 1], "shared": 0, "source": "model"})
        );
        assert_eq!(
            (x[1]["name"].as_str(), x[1]["args"]["bytes"].as_u64()),
            (Some("memcpy HtoD"), Some(4096))
        );
        assert_eq!(
            (
                x[2]["name"].as_str(),
                x[2]["cat"].as_str(),
                x[2]["tid"].as_u64()
            ),
            (Some("AllReduce"), Some("nccl"), Some(2))
        );
        assert_eq!(
            (x[2]["ts"].as_f64(), x[2]["dur"].as_f64()),
            (Some(4.0), Some(10.5))
        );
        assert_eq!(
            x[2]["args"],
            json!({"bytes": 1048576, "comm": 0, "rank": 1, "op": 1, "algorithm": "Ring", "protocol": "Simple"})
        );
    }

    #[test]
    fn nvtx_records_become_host_thread_tracks_before_the_streams() {
        let text = r#"{"type":"process","pid":500,"rank":0,"node":0}
{"type":"nvtx_thread","tid":501,"name":"loader"}
{"type":"kernel","stream":1,"gpu":0,"name":"k","grid":[1,1,1],"block":[32,1,1],"shared":0,"source":"table","start":4000,"end":5000}
{"type":"nvtx_range","tid":500,"domain":null,"name":"inner","level":1,"start":2000,"end":3000}
{"type":"nvtx_range","tid":500,"domain":null,"name":"step 0","level":0,"start":1000,"end":6000}
{"type":"nvtx_mark","tid":500,"domain":null,"name":"here","time":2500}
{"type":"nvtx_range","tid":501,"domain":"my.lib","name":"load","id":7,"start":500,"end":7000}
"#;
        let (t, m) = merge(&[parse_rank_file(text).unwrap()], &[], &[]);
        assert_eq!(m.events, 5);
        let ev = t["traceEvents"].as_array().unwrap();
        let meta = |name: &str| -> Vec<(u64, Value)> {
            ev.iter()
                .filter(|e| e["ph"] == "M" && e["name"] == name)
                .map(|e| (e["tid"].as_u64().unwrap(), e["args"].clone()))
                .collect()
        };
        // The kernel's GPU is the only one named (NVTX records have none).
        assert_eq!(meta("process_name")[0].1["name"], "rank 0 (node 0, GPU 0)");
        let mut threads = meta("thread_name");
        threads.sort_by_key(|t| t.0);
        assert_eq!(
            threads,
            [
                (1, json!({"name": "stream 0 (legacy default)"})),
                (2, json!({"name": "host thread 500 (main)"})),
                (
                    3,
                    json!({"name": "host thread 501 (loader), NVTX domain my.lib"})
                ),
            ]
        );
        let mut sort = meta("thread_sort_index");
        sort.sort_by_key(|t| t.0);
        let sort: Vec<u64> = sort
            .iter()
            .map(|t| t.1["sort_index"].as_u64().unwrap())
            .collect();
        assert_eq!(sort, [3, 1, 2], "host threads first");
        let nvtx: Vec<&Value> = ev.iter().filter(|e| e["cat"] == "nvtx").collect();
        assert_eq!(
            nvtx[0],
            &json!({"ph": "X", "name": "inner", "cat": "nvtx", "pid": 500, "tid": 2, "ts": 2.0, "dur": 1.0,
                    "args": {"level": 1}})
        );
        assert_eq!(
            (nvtx[1]["name"].as_str(), nvtx[1]["dur"].as_f64()),
            (Some("step 0"), Some(5.0))
        );
        assert_eq!(
            nvtx[2],
            &json!({"ph": "i", "s": "t", "name": "here", "cat": "nvtx", "pid": 500, "tid": 2, "ts": 2.5,
                    "args": {}})
        );
        assert_eq!(
            nvtx[3],
            &json!({"ph": "b", "name": "load", "cat": "nvtx", "id": 7, "pid": 500, "tid": 3, "ts": 0.5,
                    "args": {"domain": "my.lib", "id": 7}})
        );
        assert_eq!(
            nvtx[4],
            &json!({"ph": "e", "name": "load", "cat": "nvtx", "id": 7, "pid": 500, "tid": 3, "ts": 7.0})
        );
    }

    #[test]
    fn arrows_join_an_operations_spans_and_links_become_counters() {
        // Three ranks of one all-reduce (rank 2 ready last), and a send from rank 0 to rank 1.
        let file = |pid: u32, rank: u32, ops: &str| {
            let mut text = format!("{{\"type\":\"process\",\"pid\":{pid},\"rank\":{rank},\"node\":0}}\n");
            for (op, kind) in ops.split(',').enumerate() {
                text.push_str(&format!(
                    "{{\"type\":\"comm\",\"stream\":5,\"gpu\":{rank},\"op\":{},\"kind\":\"{kind}\",\"bytes\":8,\
                     \"comm\":0,\"rank\":{rank},\"peer\":null}}\n",
                    op + 1
                ));
            }
            parse_rank_file(&text).unwrap()
        };
        let files = [file(10, 0, "AllReduce,Send"), file(11, 1, "AllReduce,Recv"), file(12, 2, "AllReduce")];
        let span = |pid: u32, op: u64, operation: u64, ready: u64, start: u64, end: u64| OpSpan {
            pid,
            op: OpId(op),
            operation,
            ready: SimTime::from_nanos(ready),
            start: SimTime::from_nanos(start),
            end: SimTime::from_nanos(end),
            choice: None,
        };
        let ops = [
            span(10, 1, 1, 1_000, 5_000, 9_000),
            span(11, 1, 1, 5_000, 5_000, 9_000),
            span(12, 1, 1, 5_000, 5_000, 9_000),
            span(10, 2, 2, 9_000, 9_000, 9_000),
            span(11, 2, 2, 12_000, 12_000, 20_000),
        ];
        let links = [
            LinkUsage {
                name: "node0 gpu0 → nvswitch".into(),
                capacity: 370.8e9,
                bytes: 1_000,
                busy: sim_core::SimDuration::from_nanos(4_000),
                samples: vec![(SimTime::from_nanos(5_000), 250e6), (SimTime::from_nanos(9_000), 0.0)],
            },
            LinkUsage { name: "node0 gpu1 → nvswitch".into(), ..LinkUsage::default() },
        ];
        let (t, m) = merge(&files, &ops, &links);
        assert_eq!((m.events, m.flows, m.links, m.link_samples), (5, 2, 1, 2));
        let ev = t["traceEvents"].as_array().unwrap();
        let flows: Vec<(&str, u64, u64, f64)> = ev
            .iter()
            .filter(|e| e["ph"] == "s" || e["ph"] == "f")
            .map(|e| (e["ph"].as_str().unwrap(), e["id"].as_u64().unwrap(), e["pid"].as_u64().unwrap(), e["ts"].as_f64().unwrap()))
            .collect();
        // Rank 1 is the first of the two ranks ready last: arrows from it to ranks 0 and 2, in the middle of
        // the spans. The send and receive: the receive (rank 1) was ready last, but the send has no length.
        assert_eq!(flows, [("s", 1, 11, 7.0), ("f", 1, 10, 7.0), ("s", 2, 11, 7.0), ("f", 2, 12, 7.0)]);
        let mut ends = ev.iter().filter(|e| e["ph"] == "f");
        assert!(ends.all(|e| e["bp"] == "e" && e["cat"] == "nccl" && e["name"] == "AllReduce"));
        let network = |name: &str| ev.iter().find(|e| e["ph"] == "M" && e["name"] == name && e["pid"] == NETWORK_PID);
        assert_eq!(network("process_name").unwrap()["args"], json!({"name": "network"}));
        assert_eq!(network("process_sort_index").unwrap()["args"], json!({"sort_index": 3}), "after the 3 ranks");
        let counters: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "C").collect();
        let counter = |ts: f64, rate: f64| {
            json!({"ph": "C", "name": "node0 gpu0 → nvswitch", "cat": "network", "pid": NETWORK_PID, "tid": 0, "ts": ts,
                   "args": {"GB/s": rate}})
        };
        assert_eq!(counters, [&counter(5.0, 0.25), &counter(9.0, 0.0)]);
        // Without link samples there is no network process.
        let (t, m) = merge(&files, &ops, &links[1..]);
        assert_eq!(m.links, 0);
        assert!(!t["traceEvents"].as_array().unwrap().iter().any(|e| e["pid"] == NETWORK_PID));
    }

    #[test]
    fn api_calls_share_the_host_thread_track_and_memory_becomes_a_counter() {
        let text = r#"{"type":"process","pid":500,"rank":0,"node":0}
{"type":"memory","gpu":1,"time":1000,"bytes":1048576}
{"type":"api","tid":500,"name":"cudaMalloc","start":1000,"end":1100}
{"type":"nvtx_range","tid":500,"domain":null,"name":"step","level":0,"start":900,"end":5000}
{"type":"api","tid":501,"name":"ncclAllReduce","start":1200,"end":3200}
{"type":"kernel","stream":1,"gpu":1,"name":"k","grid":[1,1,1],"block":[32,1,1],"shared":0,"source":"table","start":4000,"end":5000}
{"type":"memory","gpu":1,"time":6000,"bytes":0}
"#;
        let (t, m) = merge(&[parse_rank_file(text).unwrap()], &[], &[]);
        assert_eq!((m.events, m.api_calls, m.memory_samples), (6, 2, 2));
        let ev = t["traceEvents"].as_array().unwrap();
        let mut threads: Vec<(u64, Value)> = ev
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
            .map(|e| (e["tid"].as_u64().unwrap(), e["args"]["name"].clone()))
            .collect();
        threads.sort_by_key(|t| t.0);
        assert_eq!(
            threads,
            [(1, json!("stream 0 (legacy default)")), (2, json!("host thread 500 (main)")), (3, json!("host thread 501"))]
        );
        let api: Vec<&Value> = ev.iter().filter(|e| e["cat"] == "api").collect();
        assert_eq!(
            api,
            [
                &json!({"ph": "X", "name": "cudaMalloc", "cat": "api", "pid": 500, "tid": 2, "ts": 1.0, "dur": 0.1}),
                &json!({"ph": "X", "name": "ncclAllReduce", "cat": "api", "pid": 500, "tid": 3, "ts": 1.2, "dur": 2.0}),
            ]
        );
        // The NVTX range is on the main thread's track with its API call.
        assert!(ev.iter().any(|e| e["cat"] == "nvtx" && e["tid"] == 2));
        let counters: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "C").collect();
        assert_eq!(
            counters,
            [
                &json!({"ph": "C", "name": "GPU 1 memory", "cat": "memory", "pid": 500, "tid": 0, "ts": 1.0,
                        "args": {"MB": 1.048576}}),
                &json!({"ph": "C", "name": "GPU 1 memory", "cat": "memory", "pid": 500, "tid": 0, "ts": 6.0,
                        "args": {"MB": 0.0}}),
            ]
        );
    }

    #[test]
    fn stream_waits_become_arrows_from_the_awaited_span_to_the_next_span_of_the_waiting_stream() {
        // Stream 7 runs k1 (1..3 µs) and k2 (3..4 µs), the event is recorded after k1 (complete at 3 µs);
        // stream 8 waits at 3.5 µs and runs k3 from 5 µs. An event recorded behind all-reduce op 1 on stream 7
        // (simulator: 10..20 µs) is waited for by stream 8 from 6 µs; its next work starts at 20 µs. A wait
        // whose waiting stream runs nothing later, and one on the recording stream itself, get no arrow.
        let text = r#"{"type":"process","pid":600,"rank":0,"node":0}
{"type":"kernel","stream":7,"gpu":0,"name":"k1","source":"table","start":1000,"end":3000}
{"type":"kernel","stream":7,"gpu":0,"name":"k2","source":"table","start":3000,"end":4000}
{"type":"wait","from_stream":7,"from_gpu":0,"to_stream":8,"to_gpu":0,"after":3000,"at":3500}
{"type":"kernel","stream":8,"gpu":0,"name":"k3","source":"table","start":5000,"end":6000}
{"type":"comm","stream":7,"gpu":0,"op":1,"kind":"AllReduce","bytes":8,"comm":0,"rank":0,"peer":null}
{"type":"wait","from_stream":7,"from_gpu":0,"to_stream":8,"to_gpu":0,"after_op":1,"at":6000}
{"type":"kernel","stream":8,"gpu":0,"name":"k4","source":"table","start":20000,"end":22000}
{"type":"wait","from_stream":7,"from_gpu":0,"to_stream":8,"to_gpu":0,"after":22000,"at":22000}
{"type":"wait","from_stream":8,"from_gpu":0,"to_stream":8,"to_gpu":0,"after":22000,"at":22000}
"#;
        let ops = [OpSpan {
            pid: 600,
            op: OpId(1),
            operation: 1,
            ready: SimTime::from_nanos(10_000),
            start: SimTime::from_nanos(10_000),
            end: SimTime::from_nanos(20_000),
            choice: None,
        }];
        let (t, m) = merge(&[parse_rank_file(text).unwrap()], &ops, &[]);
        assert_eq!((m.waits, m.flows), (2, 0));
        let ev = t["traceEvents"].as_array().unwrap();
        let flows: Vec<(&str, u64, u64, f64)> = ev
            .iter()
            .filter(|e| e["ph"] == "s" || e["ph"] == "f")
            .map(|e| (e["ph"].as_str().unwrap(), e["id"].as_u64().unwrap(), e["tid"].as_u64().unwrap(), e["ts"].as_f64().unwrap()))
            .collect();
        // Stream 7 is thread 1, stream 8 thread 2: k1 → k3, all-reduce → k4.
        assert_eq!(flows, [("s", 1, 1, 2.0), ("f", 1, 2, 5.5), ("s", 2, 1, 15.0), ("f", 2, 2, 21.0)]);
        assert!(ev
            .iter()
            .filter(|e| e["ph"] == "s" || e["ph"] == "f")
            .all(|e| e["cat"] == "stream_wait" && e["name"] == "cudaStreamWaitEvent" && (e["ph"] == "s" || e["bp"] == "e")));
    }

    #[test]
    fn files_are_read_line_by_line_from_disk() {
        let dir = std::env::temp_dir().join(format!("phantom-cli-trace-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rank-200.jsonl"), RANK1).unwrap();
        std::fs::write(dir.join("rank-201.jsonl"), "not a header\n").unwrap();
        std::fs::write(dir.join("other.jsonl"), RANK1).unwrap();
        let files = read_dir(&dir).unwrap();
        assert_eq!(files.len(), 1);
        let (from_disk, m) = merge(&files, &[], &[]);
        let (in_memory, m2) = merge(&[parse_rank_file(RANK1).unwrap()], &[], &[]);
        assert_eq!((from_disk, m), (in_memory, m2));
        assert_eq!((m.events, m.bad_lines, m.unfinished), (2, 1, 2));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn files_without_a_header_are_ignored() {
        assert_eq!(parse_rank_file(""), None);
        assert_eq!(parse_rank_file("{\"type\":\"kernel\"}\n"), None);
    }
}
