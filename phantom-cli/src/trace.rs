//! `phantom run --trace PATH` (docs/trace.md): merges the ranks' trace files (`rank-<pid>.jsonl`, written by
//! libcudart's `trace` module into the directory given in `PHANTOM_TRACE_DIR`) and the simulator's record of
//! every communication operation into one Chrome Trace Event / Perfetto JSON file.
//!
//! One trace process per rank process, one thread per (GPU, stream); complete (`X`) events for kernels,
//! copies, memsets and communication operations. NVTX ranges and marks go on one thread per (host thread,
//! NVTX domain) that used them, listed before the streams: push/pop ranges as complete events, start/end
//! ranges as async (`b`/`e`) pairs (they need not nest), marks as instant (`i`) events; category `nvtx`.
//! Flow arrows (`s`/`f`) join the ranks' spans of one communication operation, from the rank that was
//! ready last to every other rank. One more process, `network`, holds a counter (`C`) track per link that
//! carried traffic: its rate in GB/s over time, as the simulator recorded it.
//! Times are simulated time, in microseconds.

use serde_json::{json, Map, Value};
use sim_core::engine::core::OpSpan;
use sim_core::engine::server::RunSummary;
use sim_core::net::LinkUsage;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The variable that tells the ranks where to write their files.
pub const TRACE_DIR_ENV: &str = "PHANTOM_TRACE_DIR";

/// The trace process of the network's link counters: above any Linux process id (at most 2^22), below
/// 2^31 for viewers that read ids as signed 32-bit integers.
pub const NETWORK_PID: u32 = 0x7fff_0000;

/// The counter series of a link track (Perfetto names the track `<link> GB/s`).
pub const LINK_SERIES: &str = "GB/s";

/// What one rank process wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankFile {
    pub pid: u32,
    /// `RANK` of the process, when it had one.
    pub rank: Option<u32>,
    pub node: u32,
    /// The records after the header, in file order.
    pub records: Vec<Value>,
    /// Lines that did not parse (a process killed while writing loses its last line).
    pub bad_lines: usize,
}

/// What the merge produced, for the launcher's message.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Merged {
    pub processes: usize,
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
}

/// Parses one rank file's text.
pub fn parse_rank_file(text: &str) -> Option<RankFile> {
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next()?).ok()?;
    if head.get("type")?.as_str()? != "process" {
        return None;
    }
    let mut f = RankFile {
        pid: head.get("pid")?.as_u64()? as u32,
        rank: head.get("rank").and_then(Value::as_u64).map(|r| r as u32),
        node: head.get("node").and_then(Value::as_u64).unwrap_or(0) as u32,
        ..RankFile::default()
    };
    for l in lines.filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => f.records.push(v),
            _ => f.bad_lines += 1,
        }
    }
    Some(f)
}

/// Reads every `rank-*.jsonl` of `dir`.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<RankFile>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("rank-") && name.ends_with(".jsonl") {
            if let Some(f) = parse_rank_file(&std::fs::read_to_string(&p)?) {
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

/// The merged trace: `{"traceEvents": [...], "displayTimeUnit": "ns"}`.
pub fn merge(files: &[RankFile], ops: &[OpSpan], links: &[LinkUsage]) -> (Value, Merged) {
    let spans: HashMap<(u32, u64), &OpSpan> = ops.iter().map(|s| ((s.pid, s.op.0), s)).collect();
    let mut order: Vec<&RankFile> = files.iter().collect();
    order.sort_by_key(|f| (f.rank.unwrap_or(u32::MAX), f.pid));
    let mut events = Vec::new();
    let mut parts = Vec::new();
    let mut m = Merged {
        processes: order.len(),
        ..Merged::default()
    };
    for (index, f) in order.iter().enumerate() {
        m.bad_lines += f.bad_lines;
        let lanes: BTreeSet<(u64, u64)> = f
            .records
            .iter()
            .filter(|r| r.get("stream").is_some())
            .map(|r| (u(r, "gpu"), u(r, "stream")))
            .collect();
        let gpus: BTreeSet<u64> = lanes.iter().map(|l| l.0).collect();
        let tids: BTreeMap<(u64, u64), u64> = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, i as u64 + 1))
            .collect();
        let who = f
            .rank
            .map_or(format!("pid {}", f.pid), |r| format!("rank {r}"));
        let gpu_list = gpus
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let name = match gpus.len() {
            0 => format!("{who} (node {})", f.node),
            1 => format!("{who} (node {}, GPU {gpu_list})", f.node),
            _ => format!("{who} (node {}, GPUs {gpu_list})", f.node),
        };
        events.push(metadata("process_name", f.pid, 0, json!({ "name": name })));
        events.push(metadata(
            "process_sort_index",
            f.pid,
            0,
            json!({ "sort_index": index }),
        ));
        let hosts = host_tracks(f, tids.len() as u64 + 1);
        for (key, &tid) in &hosts.tids {
            events.push(metadata(
                "thread_name",
                f.pid,
                tid,
                json!({ "name": hosts.name(f.pid, key) }),
            ));
            let sort = tid - tids.len() as u64;
            events.push(metadata(
                "thread_sort_index",
                f.pid,
                tid,
                json!({ "sort_index": sort }),
            ));
        }
        for (&(gpu, stream), &tid) in &tids {
            let mut tname = stream_name(stream);
            if gpus.len() > 1 {
                tname.push_str(&format!(" (GPU {gpu})"));
            }
            events.push(metadata(
                "thread_name",
                f.pid,
                tid,
                json!({ "name": tname }),
            ));
            events.push(metadata(
                "thread_sort_index",
                f.pid,
                tid,
                json!({ "sort_index": tid + hosts.tids.len() as u64 }),
            ));
        }
        for r in &f.records {
            let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
            if kind.starts_with("nvtx") {
                if let Some(e) = nvtx_events(r, f.pid, &hosts) {
                    events.extend(e);
                    m.events += 1;
                }
                continue;
            }
            let tid = tids[&(u(r, "gpu"), u(r, "stream"))];
            let (name, cat, start, end, args) = match kind {
                "kernel" => {
                    let mut a = Map::new();
                    for k in ["grid", "block", "shared", "source"] {
                        a.insert(k.into(), r.get(k).cloned().unwrap_or(Value::Null));
                    }
                    let name = r
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("kernel")
                        .to_string();
                    (name, "kernel", u(r, "start"), u(r, "end"), a)
                }
                "copy" => {
                    let what = r.get("kind").and_then(Value::as_str).unwrap_or("copy");
                    let mut a = Map::new();
                    a.insert("bytes".into(), json!(u(r, "bytes")));
                    let (name, cat) = if what == "memset" {
                        ("memset".into(), "memset")
                    } else {
                        (format!("memcpy {what}"), "memcpy")
                    };
                    (name, cat, u(r, "start"), u(r, "end"), a)
                }
                "comm" => {
                    let Some(s) = spans.get(&(f.pid, u(r, "op"))) else {
                        m.unfinished += 1;
                        continue;
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
                    let name = r
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("comm")
                        .to_string();
                    parts.push(Part {
                        operation: s.operation,
                        index,
                        pid: f.pid,
                        tid,
                        name: name.clone(),
                        ready: s.ready.as_nanos(),
                        start: s.start.as_nanos(),
                        end: s.end.as_nanos(),
                    });
                    (name, "nccl", s.start.as_nanos(), s.end.as_nanos(), a)
                }
                _ => continue,
            };
            events.push(json!({
                "ph": "X", "name": name, "cat": cat, "pid": f.pid, "tid": tid,
                "ts": us(start), "dur": us(end.saturating_sub(start)), "args": Value::Object(args),
            }));
            m.events += 1;
        }
    }
    m.flows = flow_arrows(parts, &mut events);
    let (tracks, samples) = link_counters(links, order.len(), &mut events);
    m.links = tracks;
    m.link_samples = samples;
    (json!({ "traceEvents": events, "displayTimeUnit": "ns" }), m)
}

/// The middle of a span (µs): flow events bind to the span that encloses them.
fn middle(start: u64, end: u64) -> f64 {
    us(start) + us(end - start) / 2.0
}

/// Arrows from the span of the rank that was ready last (the one the others waited for; the first in rank
/// order among equals) to every other rank's span of the same operation: a flow start (`s`) in the middle
/// of the source span and a flow end (`f`, `"bp": "e"`: bound to the enclosing span) in the middle of each
/// other span, one flow id per arrow. Spans of no length get none. Returns the number of arrows.
fn flow_arrows(mut parts: Vec<Part>, events: &mut Vec<Value>) -> usize {
    parts.sort_by_key(|p| (p.operation, p.index, p.tid));
    let mut id = 0u64;
    for op in parts.chunk_by(|a, b| a.operation == b.operation) {
        let Some(src) = op.iter().rev().max_by_key(|p| p.ready) else {
            continue;
        };
        if src.end <= src.start {
            continue;
        }
        for dst in op.iter().filter(|p| !std::ptr::eq(*p, src) && p.end > p.start) {
            id += 1;
            events.push(json!({
                "ph": "s", "id": id, "name": src.name, "cat": "nccl", "pid": src.pid, "tid": src.tid,
                "ts": middle(src.start, src.end),
            }));
            events.push(json!({
                "ph": "f", "bp": "e", "id": id, "name": src.name, "cat": "nccl", "pid": dst.pid, "tid": dst.tid,
                "ts": middle(dst.start, dst.end),
            }));
        }
    }
    id as usize
}

/// The `network` process (sorted after the `ranks` rank processes) with one counter track per link that
/// has samples: `{"ph": "C", "name": <link>, "args": {"GB/s": rate}}` at every sample. Returns the number
/// of tracks and of samples.
fn link_counters(links: &[LinkUsage], ranks: usize, events: &mut Vec<Value>) -> (usize, usize) {
    let sampled: Vec<&LinkUsage> = links.iter().filter(|l| !l.samples.is_empty()).collect();
    if sampled.is_empty() {
        return (0, 0);
    }
    events.push(metadata("process_name", NETWORK_PID, 0, json!({ "name": "network" })));
    events.push(metadata("process_sort_index", NETWORK_PID, 0, json!({ "sort_index": ranks })));
    let mut samples = 0;
    for l in &sampled {
        for &(t, rate) in &l.samples {
            events.push(json!({
                "ph": "C", "name": l.name, "cat": "network", "pid": NETWORK_PID, "tid": 0, "ts": us(t.as_nanos()),
                "args": { LINK_SERIES: rate / 1e9 },
            }));
        }
        samples += l.samples.len();
    }
    (sampled.len(), samples)
}

/// An NVTX track: a host thread (OS thread id) and an NVTX domain (`None`: the default domain).
type HostKey = (u64, Option<String>);

/// The NVTX tracks of one process, numbered after its streams.
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

/// The process's NVTX tracks, numbered from `first` in (thread, domain) order.
fn host_tracks(f: &RankFile, first: u64) -> HostTracks {
    let mut keys = BTreeSet::new();
    let mut names = HashMap::new();
    for r in &f.records {
        match r.get("type").and_then(Value::as_str) {
            Some("nvtx_range" | "nvtx_mark") => {
                keys.insert(host_key(r));
            }
            Some("nvtx_thread") => {
                if let Some(n) = r.get("name").and_then(Value::as_str) {
                    names.insert(u(r, "tid"), n.to_string());
                }
            }
            _ => {}
        }
    }
    let tids = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, first + i as u64))
        .collect();
    HostTracks { tids, names }
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
    let files = read_dir(dir).map_err(|e| {
        format!(
            "cannot read the ranks' trace files in {}: {e}",
            dir.display()
        )
    })?;
    let (trace, m) = merge(&files, &sim.ops, &sim.links);
    let fail = |e: &dyn std::fmt::Display| format!("cannot write the trace {}: {e}", out.display());
    let file = std::fs::File::create(out).map_err(|e| fail(&e))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, &trace).map_err(|e| fail(&e))?;
    std::io::Write::flush(&mut w).map_err(|e| fail(&e))?;
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
        assert_eq!(
            (r1.pid, r1.rank, r1.records.len(), r1.bad_lines),
            (200, Some(1), 4, 1)
        );
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
    fn files_without_a_header_are_ignored() {
        assert_eq!(parse_rank_file(""), None);
        assert_eq!(parse_rank_file("{\"type\":\"kernel\"}\n"), None);
    }
}
