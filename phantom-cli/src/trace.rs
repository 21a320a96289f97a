//! `phantom run --trace PATH` (docs/trace.md): merges the ranks' trace files (`rank-<pid>.jsonl`, written by
//! libcudart's `trace` module into the directory given in `PHANTOM_TRACE_DIR`) and the simulator's record of
//! every communication operation into one Chrome Trace Event / Perfetto JSON file.
//!
//! One trace process per rank process, one thread per (GPU, stream); complete (`X`) events for kernels,
//! copies, memsets and communication operations. Times are simulated time, in microseconds.

use serde_json::{json, Map, Value};
use sim_core::engine::core::OpSpan;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The variable that tells the ranks where to write their files.
pub const TRACE_DIR_ENV: &str = "PHANTOM_TRACE_DIR";

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

/// The merged trace: `{"traceEvents": [...], "displayTimeUnit": "ns"}`.
pub fn merge(files: &[RankFile], ops: &[OpSpan]) -> (Value, Merged) {
    let spans: HashMap<(u32, u64), &OpSpan> = ops.iter().map(|s| ((s.pid, s.op.0), s)).collect();
    let mut order: Vec<&RankFile> = files.iter().collect();
    order.sort_by_key(|f| (f.rank.unwrap_or(u32::MAX), f.pid));
    let mut events = Vec::new();
    let mut m = Merged {
        processes: order.len(),
        ..Merged::default()
    };
    for (index, f) in order.iter().enumerate() {
        m.bad_lines += f.bad_lines;
        let lanes: BTreeSet<(u64, u64)> = f
            .records
            .iter()
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
                json!({ "sort_index": tid }),
            ));
        }
        for r in &f.records {
            let tid = tids[&(u(r, "gpu"), u(r, "stream"))];
            let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
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
    (json!({ "traceEvents": events, "displayTimeUnit": "ns" }), m)
}

/// Merges the files of `dir` with `ops` and writes the trace to `out`.
pub fn write(out: &Path, dir: &Path, ops: &[OpSpan]) -> Result<Merged, String> {
    let files = read_dir(dir).map_err(|e| {
        format!(
            "cannot read the ranks' trace files in {}: {e}",
            dir.display()
        )
    })?;
    let (trace, m) = merge(&files, ops);
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
            start: SimTime::from_nanos(4000),
            end: SimTime::from_nanos(14_500),
            choice: Some((Algo::Ring, Proto::Simple)),
        }];
        let (t, m) = merge(&[r1, r0], &ops);
        assert_eq!(
            m,
            Merged {
                processes: 2,
                events: 3,
                unfinished: 1,
                bad_lines: 1
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
    fn files_without_a_header_are_ignored() {
        assert_eq!(parse_rank_file(""), None);
        assert_eq!(parse_rank_file("{\"type\":\"kernel\"}\n"), None);
    }
}
