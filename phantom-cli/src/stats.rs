//! What the ranks' GPUs did, for the summary and the JSON report (docs/launcher.md, "What the ranks add"):
//! every process `phantom run` starts writes `<PHANTOM_STATS_DIR>/<pid>.json` at exit
//! (`libcudart-phantom/src/stats.rs`); this module reads the files, merges them and formats the result.
//! Pure functions apart from [`read`], unit-tested.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The variable that tells each process where to write its file.
pub const STATS_DIR_ENV: &str = "PHANTOM_STATS_DIR";

/// Kernels listed in the report, and in the summary line.
pub const TOP_KERNELS_REPORT: usize = 10;
pub const TOP_KERNELS_SUMMARY: usize = 3;
/// Longest kernel name the summary prints (longer ones are cut, with `…`).
const NAME_CHARS: usize = 60;

/// One GPU as one process saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gpu {
    /// Global index: node × GPUs per node + index in the node.
    pub gpu: u64,
    /// The process's device ordinal (`None` when the process allocated no memory on it).
    pub ordinal: Option<u64>,
    pub kernel_busy_ns: u64,
    pub nccl_ns: u64,
    pub exposed_nccl_ns: u64,
    pub peak_memory_bytes: u64,
}

/// Kernel time per source (ns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BySource {
    pub table: u64,
    pub model: u64,
    pub library: u64,
    pub profiled: u64,
}

impl BySource {
    fn add(&mut self, o: &BySource) {
        self.table += o.table;
        self.model += o.model;
        self.library += o.library;
        self.profiled += o.profiled;
    }
    pub fn total(&self) -> u64 {
        self.table + self.model + self.library + self.profiled
    }
    fn named(&self) -> [(&'static str, u64); 4] {
        [("table", self.table), ("model", self.model), ("library", self.library), ("profiled", self.profiled)]
    }
}

/// A kernel (or library work) by name and time source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub source: String,
    pub count: u64,
    pub total_ns: u64,
}

/// Statistics of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agg {
    pub count: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Agg {
    pub fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ns as f64 / self.count as f64)
    }
    fn merge(&mut self, o: &Agg) {
        if o.count == 0 {
            return;
        }
        self.min_ns = if self.count == 0 { o.min_ns } else { self.min_ns.min(o.min_ns) };
        self.max_ns = self.max_ns.max(o.max_ns);
        self.count += o.count;
        self.total_ns += o.total_ns;
    }
}

/// GPU time summed over `windows` (range, GPU) windows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuWindows {
    pub windows: u64,
    pub kernel_busy_ns: u64,
    pub nccl_ns: u64,
    pub exposed_nccl_ns: u64,
}

impl GpuWindows {
    fn add(&mut self, o: &GpuWindows) {
        self.windows += o.windows;
        self.kernel_busy_ns += o.kernel_busy_ns;
        self.nccl_ns += o.nccl_ns;
        self.exposed_nccl_ns += o.exposed_nccl_ns;
    }

    /// Means per window (per GPU and step): busy, NCCL, exposed NCCL.
    pub fn mean(&self) -> Option<[f64; 3]> {
        let n = self.windows as f64;
        (self.windows > 0).then(|| [self.kernel_busy_ns as f64 / n, self.nccl_ns as f64 / n, self.exposed_nccl_ns as f64 / n])
    }

    fn report(&self) -> Value {
        match self.mean() {
            None => Value::Null,
            Some([b, n, e]) => json!({ "kernel_busy_ns": b, "nccl_ns": n, "exposed_nccl_ns": e }),
        }
    }
}

/// A process's top-level NVTX ranges of one name pattern.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub pattern: String,
    pub count: u64,
    pub first_start: u64,
    /// Every range after the first.
    pub steady: Agg,
    /// GPU time inside the windows of the steady ranges, summed over them and the process's GPUs.
    pub steady_gpu: GpuWindows,
    /// The first ranges (up to 1000): name, start, end (simulated ns).
    pub ranges: Vec<(String, u64, u64)>,
}

/// What one process wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proc {
    pub pid: u64,
    pub rank: Option<u64>,
    pub local_rank: Option<u64>,
    pub node: u64,
    /// The simulated time the process reached (its clocks and its GPU work).
    pub end_ns: u64,
    pub gpus: Vec<Gpu>,
    pub by_source: BySource,
    pub kernels: Vec<Kernel>,
    /// NCCL per kind: (operations, total span ns) of this process's parts.
    pub nccl_by_kind: BTreeMap<String, (u64, u64)>,
    pub unsettled: u64,
    pub groups: Vec<Group>,
    /// Profiling mode, executing process: what ran on the real GPU.
    pub real_gpu: Option<RealGpu>,
    /// Host time charged to the process's threads, by kind (docs/time.md, "Where host time goes").
    pub host: HostNs,
}

/// Host time charged to a process's threads (its statistics file's `host_ns`), in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostNs {
    /// The application's own CPU time.
    pub application: u64,
    /// Modelled costs of runtime calls.
    pub call_costs: u64,
    /// NVIDIA's driver's host time in runtime calls (executing processes).
    pub nvidia_driver: u64,
    /// NVIDIA's libraries' host time in library calls (executing processes).
    pub nvidia_libraries: u64,
    /// CPU time Phantom used inside calls, not charged.
    pub phantom: u64,
    /// CPU time an executing process spent inside NVIDIA's synchronising calls waiting for the real GPU, not
    /// charged.
    pub real_gpu_wait: u64,
}

/// What an executing process ran on the real GPU (its statistics file's `real_gpu`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RealGpu {
    pub device: String,
    pub launches: u64,
    pub library_calls: u64,
    pub measurements: u64,
    pub gate_misses: u64,
    /// Mean host time of the driver's launch call in launches that were not measured (ns; 0 when unknown).
    pub launch_host_ns: u64,
    /// Figures that running samples replaced (docs/profiling.md, "Running samples"), and the sums of those
    /// figures' gated and running values (ns).
    pub refined: u64,
    pub refined_gated_ns: u64,
    pub refined_ns: u64,
}

/// The merged statistics of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    /// By rank (processes without `RANK` last), then pid.
    pub procs: Vec<Proc>,
    /// Files that could not be read or parsed.
    pub unreadable: usize,
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// One process's file.
pub fn parse(text: &str) -> Result<Proc, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if v["pid"].as_u64().is_none() {
        return Err("no pid".into());
    }
    let arr = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let gpus = arr("gpus")
        .iter()
        .map(|g| Gpu {
            gpu: u(g, "gpu"),
            ordinal: g["ordinal"].as_u64(),
            kernel_busy_ns: u(g, "kernel_busy_ns"),
            nccl_ns: u(g, "nccl_ns"),
            exposed_nccl_ns: u(g, "exposed_nccl_ns"),
            peak_memory_bytes: u(g, "peak_memory_bytes"),
        })
        .collect();
    let s = &v["kernel_ns_by_source"];
    let by_source = BySource { table: u(s, "table"), model: u(s, "model"), library: u(s, "library"), profiled: u(s, "profiled") };
    let kernels = arr("kernels")
        .iter()
        .map(|k| Kernel {
            name: k["name"].as_str().unwrap_or("").to_string(),
            source: k["source"].as_str().unwrap_or("").to_string(),
            count: u(k, "count"),
            total_ns: u(k, "total_ns"),
        })
        .collect();
    let nccl_by_kind = v["nccl"]["by_kind"]
        .as_object()
        .map(|m| m.iter().map(|(k, t)| (k.clone(), (u(t, "count"), u(t, "time_ns")))).collect())
        .unwrap_or_default();
    let groups = arr("nvtx_top_level")
        .iter()
        .map(|g| {
            let st = &g["steady"];
            let w = &g["steady_gpu"];
            Group {
                steady_gpu: GpuWindows {
                    windows: u(w, "windows"),
                    kernel_busy_ns: u(w, "kernel_busy_ns"),
                    nccl_ns: u(w, "nccl_ns"),
                    exposed_nccl_ns: u(w, "exposed_nccl_ns"),
                },
                pattern: g["pattern"].as_str().unwrap_or("").to_string(),
                count: u(g, "count"),
                first_start: u(g, "first_start"),
                steady: Agg { count: u(st, "count"), total_ns: u(st, "total_ns"), min_ns: u(st, "min_ns"), max_ns: u(st, "max_ns") },
                ranges: g["ranges"]
                    .as_array()
                    .map(|r| r.iter().map(|r| (r["name"].as_str().unwrap_or("").to_string(), u(r, "start"), u(r, "end"))).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(Proc {
        pid: u(&v, "pid"),
        rank: v["rank"].as_u64(),
        local_rank: v["local_rank"].as_u64(),
        node: u(&v, "node"),
        end_ns: u(&v, "end_ns"),
        gpus,
        by_source,
        kernels,
        nccl_by_kind,
        unsettled: u(&v["nccl"], "unsettled"),
        groups,
        host: {
            let h = &v["host_ns"];
            HostNs {
                application: u(h, "application"),
                call_costs: u(h, "call_costs"),
                nvidia_driver: u(h, "nvidia_driver"),
                nvidia_libraries: u(h, "nvidia_libraries"),
                phantom: u(h, "phantom"),
                real_gpu_wait: u(h, "real_gpu_wait"),
            }
        },
        real_gpu: v["real_gpu"].as_object().map(|_| {
            let r = &v["real_gpu"];
            RealGpu {
                device: r["device"].as_str().unwrap_or("").to_string(),
                launches: u(r, "launches"),
                library_calls: u(r, "library_calls"),
                measurements: u(r, "measurements"),
                gate_misses: u(r, "gate_misses"),
                launch_host_ns: u(r, "launch_host_ns"),
                refined: u(r, "refined"),
                refined_gated_ns: u(r, "refined_gated_ns"),
                refined_ns: u(r, "refined_ns"),
            }
        }),
    })
}

/// Reads every `*.json` file of `dir` (a missing directory reads as no files).
pub fn read(dir: &Path) -> RunStats {
    let mut procs = Vec::new();
    let mut unreadable = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read_to_string(&p).map_err(|e| e.to_string()).and_then(|t| parse(&t)) {
            Ok(proc) => procs.push(proc),
            Err(_) => unreadable += 1,
        }
    }
    RunStats::new(procs, unreadable)
}

/// The steps of a run: which top-level NVTX range pattern they are, and their statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Steps {
    pub pattern: String,
    /// Processes that have such ranges.
    pub processes: usize,
    pub min_per_process: u64,
    pub max_per_process: u64,
    /// Every process's steady steps together.
    pub steady: Agg,
    /// The smallest and largest per-process steady mean.
    pub rank_mean_min_ns: Option<f64>,
    pub rank_mean_max_ns: Option<f64>,
    /// GPU time inside the steady steps' windows, every process's together.
    pub steady_gpu: GpuWindows,
}

/// Duration in a unit fitting `ns`: (divisor, unit).
fn unit(ns: f64) -> (f64, &'static str) {
    match ns {
        n if n >= 1e9 => (1e9, "s"),
        n if n >= 1e6 => (1e6, "ms"),
        n if n >= 1e3 => (1e3, "µs"),
        _ => (1.0, "ns"),
    }
}

/// `33.41 ms`, `254.10 µs`, `1.50 s`, `12.00 ns`.
pub fn dur(ns: f64) -> String {
    let (d, u) = unit(ns);
    format!("{:.2} {u}", ns / d)
}

/// `kernels 2.00 ms, NCCL 1.00 ms, exposed NCCL 0.50 ms` (`no NCCL` without NCCL time).
fn gpu_parts(busy: f64, nccl: f64, exposed: f64) -> String {
    if nccl == 0.0 {
        format!("kernels {}, no NCCL", dur(busy))
    } else {
        format!("kernels {}, NCCL {}, exposed NCCL {}", dur(busy), dur(nccl), dur(exposed))
    }
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(NAME_CHARS - 1).collect::<String>())
    }
}

impl RunStats {
    pub fn new(mut procs: Vec<Proc>, unreadable: usize) -> RunStats {
        procs.sort_by_key(|p| (p.rank.is_none(), p.rank, p.pid));
        RunStats { procs, unreadable }
    }

    /// The step pattern: among the top-level NVTX range patterns, the one with the most ranges over all
    /// processes; ties go to the one that started first, then by name.
    pub fn step_pattern(&self) -> Option<String> {
        let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for g in self.procs.iter().flat_map(|p| &p.groups) {
            let e = by.entry(&g.pattern).or_insert((0, u64::MAX));
            e.0 += g.count;
            e.1 = e.1.min(g.first_start);
        }
        by.into_iter()
            .filter(|(_, (n, _))| *n > 0)
            .min_by_key(|(p, (n, first))| (std::cmp::Reverse(*n), *first, p.to_string()))
            .map(|(p, _)| p.to_string())
    }

    /// A process's group of the step pattern.
    fn steps_of<'a>(p: &'a Proc, pattern: &str) -> Option<&'a Group> {
        p.groups.iter().find(|g| g.pattern == pattern)
    }

    pub fn steps(&self) -> Option<Steps> {
        let pattern = self.step_pattern()?;
        let groups: Vec<&Group> = self.procs.iter().filter_map(|p| Self::steps_of(p, &pattern)).collect();
        let mut steady = Agg::default();
        let mut steady_gpu = GpuWindows::default();
        for g in &groups {
            steady.merge(&g.steady);
            steady_gpu.add(&g.steady_gpu);
        }
        let means: Vec<f64> = groups.iter().filter_map(|g| g.steady.mean_ns()).collect();
        Some(Steps {
            pattern,
            processes: groups.len(),
            min_per_process: groups.iter().map(|g| g.count).min().unwrap_or(0),
            max_per_process: groups.iter().map(|g| g.count).max().unwrap_or(0),
            steady,
            rank_mean_min_ns: means.iter().copied().reduce(f64::min),
            rank_mean_max_ns: means.iter().copied().reduce(f64::max),
            steady_gpu,
        })
    }

    /// Kernels by total time over all processes (same name and source merged), longest first.
    pub fn top_kernels(&self, n: usize) -> Vec<Kernel> {
        let mut m: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
        for k in self.procs.iter().flat_map(|p| &p.kernels) {
            let e = m.entry((&k.name, &k.source)).or_default();
            e.0 += k.count;
            e.1 += k.total_ns;
        }
        let mut v: Vec<Kernel> = m
            .into_iter()
            .map(|((name, source), (count, total_ns))| Kernel { name: name.into(), source: source.into(), count, total_ns })
            .collect();
        v.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then_with(|| a.name.cmp(&b.name)));
        v.truncate(n);
        v
    }

    pub fn by_source(&self) -> BySource {
        let mut s = BySource::default();
        for p in &self.procs {
            s.add(&p.by_source);
        }
        s
    }

    /// Every (process, GPU) entry.
    fn gpus(&self) -> impl Iterator<Item = (&Proc, &Gpu)> {
        self.procs.iter().flat_map(|p| p.gpus.iter().map(move |g| (p, g)))
    }

    /// (GPUs with kernel or NCCL time, total busy, total NCCL, total exposed).
    pub fn gpu_time(&self) -> (usize, u64, u64, u64) {
        let active: Vec<&Gpu> = self.gpus().map(|(_, g)| g).filter(|g| g.kernel_busy_ns > 0 || g.nccl_ns > 0).collect();
        (
            active.len(),
            active.iter().map(|g| g.kernel_busy_ns).sum(),
            active.iter().map(|g| g.nccl_ns).sum(),
            active.iter().map(|g| g.exposed_nccl_ns).sum(),
        )
    }

    pub fn unsettled(&self) -> u64 {
        self.procs.iter().map(|p| p.unsettled).sum()
    }

    /// NCCL per kind over all processes: (operation parts, total span ns).
    pub fn nccl_by_kind(&self) -> BTreeMap<String, (u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (k, (n, t)) in self.procs.iter().flat_map(|p| &p.nccl_by_kind) {
            let e = m.entry(k.clone()).or_default();
            e.0 += n;
            e.1 += t;
        }
        m
    }

    /// (GPUs that allocated memory, mean peak, the largest peak and whose it is).
    fn memory(&self) -> Option<(usize, f64, u64, &Proc, &Gpu)> {
        let with: Vec<(&Proc, &Gpu)> = self.gpus().filter(|(_, g)| g.peak_memory_bytes > 0).collect();
        let &(p, g) = with.iter().max_by_key(|(p, g)| (g.peak_memory_bytes, std::cmp::Reverse((p.rank, p.pid, g.gpu))))?;
        let mean = with.iter().map(|(_, g)| g.peak_memory_bytes as f64).sum::<f64>() / with.len() as f64;
        Some((with.len(), mean, g.peak_memory_bytes, p, g))
    }

    /// The summary's lines about the ranks' GPUs (none when no process wrote a file).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = self.steps() {
            let per = if s.min_per_process == s.max_per_process {
                format!("{}", s.min_per_process)
            } else {
                format!("{} to {}", s.min_per_process, s.max_per_process)
            };
            let per = if s.processes < self.procs.len() {
                format!("{per} per rank ({} of {} processes)", s.processes, self.procs.len())
            } else {
                format!("{per} per rank")
            };
            let steady = match (s.steady.mean_ns(), s.rank_mean_min_ns, s.rank_mean_max_ns) {
                (Some(mean), Some(lo), Some(hi)) => {
                    let (d, u) = unit(mean);
                    format!("steady step mean {:.2} {u} (min {:.2}, max {:.2} across ranks)", mean / d, lo / d, hi / d)
                }
                _ => "no steady steps (the first step of each rank is not counted)".into(),
            };
            out.push(format!("phantom: steps (NVTX \"{}\"): {per}; {steady}", s.pattern));
            if let Some([b, n, e]) = s.steady_gpu.mean() {
                out.push(format!("phantom: GPU time per steady step (mean per GPU): {}", gpu_parts(b, n, e)));
            }
        }
        let (gpus, busy, nccl, exposed) = self.gpu_time();
        if gpus > 0 {
            let n = gpus as f64;
            out.push(format!(
                "phantom: GPU time over the run (mean of {gpus} GPU{}): {}",
                if gpus == 1 { "" } else { "s" },
                gpu_parts(busy as f64 / n, nccl as f64 / n, exposed as f64 / n)
            ));
        }
        let top = self.top_kernels(TOP_KERNELS_SUMMARY);
        if !top.is_empty() {
            let items: Vec<String> = top
                .iter()
                .map(|k| {
                    format!(
                        "{} {} ({}, {} launch{})",
                        short(&k.name),
                        dur(k.total_ns as f64),
                        k.source,
                        k.count,
                        if k.count == 1 { "" } else { "es" }
                    )
                })
                .collect();
            out.push(format!("phantom: top kernels: {}", items.join(", ")));
        }
        let src = self.by_source();
        let total = src.total();
        if total > 0 {
            let items: Vec<String> = src
                .named()
                .iter()
                .filter(|(_, ns)| *ns > 0)
                .map(|(name, ns)| format!("{name} {} ({:.1} %)", dur(*ns as f64), percent(*ns, total)))
                .collect();
            out.push(format!("phantom: kernel time by source: {}", items.join(", ")));
        }
        if let Some((gpus, mean, max, p, g)) = self.memory() {
            let whose = match p.rank {
                Some(r) => format!("rank {r}, GPU {}", g.gpu),
                None => format!("pid {}, GPU {}", p.pid, g.gpu),
            };
            out.push(format!(
                "phantom: peak device memory: max {} ({whose}), mean {} over {gpus} GPU{}",
                crate::summary::bytes(max),
                crate::summary::bytes(mean.round() as u64),
                if gpus == 1 { "" } else { "s" }
            ));
        }
        out
    }

    /// The report's fields about the ranks' GPUs (docs/launcher.md, "The JSON report").
    pub fn report(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let pattern = self.step_pattern();
        m.insert(
            "steps".into(),
            match self.steps() {
                None => Value::Null,
                Some(s) => json!({
                    "pattern": s.pattern,
                    "processes": s.processes,
                    "per_process": { "min": s.min_per_process, "max": s.max_per_process },
                    "steady": {
                        "count": s.steady.count,
                        "mean_ns": s.steady.mean_ns(),
                        "min_ns": (s.steady.count > 0).then_some(s.steady.min_ns),
                        "max_ns": (s.steady.count > 0).then_some(s.steady.max_ns),
                        "rank_mean_min_ns": s.rank_mean_min_ns,
                        "rank_mean_max_ns": s.rank_mean_max_ns,
                        "gpu_time_per_step": s.steady_gpu.report(),
                    },
                }),
            },
        );
        let (gpus, busy, nccl, exposed) = self.gpu_time();
        m.insert(
            "gpu_time".into(),
            json!({
                "gpus": gpus,
                "kernel_busy_ns": busy,
                "nccl_ns": nccl,
                "exposed_nccl_ns": exposed,
                "unsettled_nccl_operations": self.unsettled(),
            }),
        );
        let top: Vec<Value> = self
            .top_kernels(TOP_KERNELS_REPORT)
            .into_iter()
            .map(|k| json!({ "name": k.name, "source": k.source, "count": k.count, "total_ns": k.total_ns }))
            .collect();
        m.insert("top_kernels".into(), Value::Array(top));
        let src = self.by_source();
        let total = src.total();
        let by: Map<String, Value> = src
            .named()
            .iter()
            .map(|(name, ns)| (name.to_string(), json!({ "ns": ns, "percent": percent(*ns, total) })))
            .collect();
        m.insert("kernel_time_by_source".into(), Value::Object(by));
        let kinds: Map<String, Value> = self
            .nccl_by_kind()
            .into_iter()
            .map(|(k, (n, t))| (k, json!({ "parts": n, "time_ns": t })))
            .collect();
        m.insert("nccl_time_by_kind".into(), Value::Object(kinds));
        m.insert(
            "peak_device_memory".into(),
            match self.memory() {
                None => json!({ "gpus": 0, "max_bytes": 0, "mean_bytes": 0.0 }),
                Some((gpus, mean, max, ..)) => json!({ "gpus": gpus, "max_bytes": max, "mean_bytes": mean }),
            },
        );
        let per: Vec<Value> = self.procs.iter().map(|p| proc_report(p, pattern.as_deref())).collect();
        m.insert("per_rank".into(), Value::Array(per));
        m.insert("statistics_files".into(), json!({ "read": self.procs.len(), "unreadable": self.unreadable }));
        m
    }
}

fn proc_report(p: &Proc, pattern: Option<&str>) -> Value {
    let gpus: Vec<Value> = p
        .gpus
        .iter()
        .map(|g| {
            json!({
                "gpu": g.gpu,
                "ordinal": g.ordinal,
                "kernel_busy_ns": g.kernel_busy_ns,
                "nccl_ns": g.nccl_ns,
                "exposed_nccl_ns": g.exposed_nccl_ns,
                "peak_memory_bytes": g.peak_memory_bytes,
            })
        })
        .collect();
    let steps = pattern.and_then(|pat| RunStats::steps_of(p, pat)).map(|g| {
        let durations: Vec<Value> = g
            .ranges
            .iter()
            .map(|(name, s, e)| json!({ "name": name, "start_ns": s, "ns": e.saturating_sub(*s) }))
            .collect();
        json!({
            "pattern": g.pattern,
            "count": g.count,
            "durations": durations,
            "steady": {
                "count": g.steady.count,
                "mean_ns": g.steady.mean_ns(),
                "min_ns": (g.steady.count > 0).then_some(g.steady.min_ns),
                "max_ns": (g.steady.count > 0).then_some(g.steady.max_ns),
                "gpu_time_per_step": g.steady_gpu.report(),
            },
        })
    });
    let s = p.by_source;
    json!({
        "rank": p.rank,
        "local_rank": p.local_rank,
        "node": p.node,
        "pid": p.pid,
        "gpus": gpus,
        "kernel_ns_by_source": { "table": s.table, "model": s.model, "library": s.library, "profiled": s.profiled },
        "host_ns": {
            "application": p.host.application,
            "call_costs": p.host.call_costs,
            "nvidia_driver": p.host.nvidia_driver,
            "nvidia_libraries": p.host.nvidia_libraries,
            "phantom": p.host.phantom,
            "real_gpu_wait": p.host.real_gpu_wait,
        },
        "steps": steps,
        "unsettled_nccl_operations": p.unsettled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as `libcudart-phantom/src/stats.rs` writes it.
    fn file(pid: u64, rank: u64, steps: &[u64], kernel_ns: u64, peak: u64) -> String {
        let mut t = 0;
        let ranges: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let r = format!("{{\"name\":\"step {i}\",\"start\":{t},\"end\":{}}}", t + d);
                t += d;
                r
            })
            .collect();
        let steady = &steps[1..];
        format!(
            "{{\"version\":1,\"pid\":{pid},\"rank\":{rank},\"local_rank\":{rank},\"node\":0,\
             \"host_ns\":{{\"application\":{pid}000,\"call_costs\":20,\"nvidia_driver\":30,\"nvidia_libraries\":40,\"phantom\":50,\"real_gpu_wait\":60}},\
             \"gpus\":[{{\"gpu\":{rank},\"ordinal\":0,\"kernel_busy_ns\":{kernel_ns},\"nccl_ns\":400,\"exposed_nccl_ns\":100,\"peak_memory_bytes\":{peak}}}],\
             \"kernel_ns_by_source\":{{\"table\":{kernel_ns},\"model\":100,\"library\":300,\"profiled\":0}},\
             \"kernels\":[{{\"name\":\"gemm\",\"source\":\"table\",\"count\":2,\"total_ns\":{kernel_ns}}},\
             {{\"name\":\"relu\",\"source\":\"model\",\"count\":1,\"total_ns\":100}},\
             {{\"name\":\"cublasLtMatmul\",\"source\":\"library\",\"count\":3,\"total_ns\":300}}],\
             \"nccl\":{{\"by_kind\":{{\"AllReduce\":{{\"count\":2,\"time_ns\":400}}}},\"unsettled\":0}},\
             \"nvtx_top_level\":[{{\"pattern\":\"init\",\"count\":1,\"first_start\":0,\"steady\":{{\"count\":0,\"total_ns\":0,\"min_ns\":0,\"max_ns\":0}},\"ranges\":[]}},\
             {{\"pattern\":\"step N\",\"count\":{},\"first_start\":0,\"steady\":{{\"count\":{},\"total_ns\":{},\"min_ns\":{},\"max_ns\":{}}},\
             \"steady_gpu\":{{\"windows\":{},\"kernel_busy_ns\":{},\"nccl_ns\":{},\"exposed_nccl_ns\":{}}},\"ranges\":[{}]}}],\
             \"nvtx_dropped\":0}}\n",
            steps.len(),
            steady.len(),
            steady.iter().sum::<u64>(),
            steady.iter().min().unwrap(),
            steady.iter().max().unwrap(),
            steady.len(),
            kernel_ns / 10,
            200,
            50,
            ranges.join(",")
        )
    }

    fn two_ranks() -> RunStats {
        let a = parse(&file(11, 1, &[50_000_000, 33_400_000, 33_420_000], 2_000_000, 4_000_000)).unwrap();
        let b = parse(&file(10, 0, &[50_000_000, 33_450_000, 33_450_000], 3_000_000, 5_000_000)).unwrap();
        RunStats::new(vec![a, b], 1)
    }

    #[test]
    fn parse_and_order() {
        let s = two_ranks();
        assert_eq!(s.procs.iter().map(|p| p.rank).collect::<Vec<_>>(), [Some(0), Some(1)]);
        let p = &s.procs[0];
        assert_eq!(p.gpus[0], Gpu { gpu: 0, ordinal: Some(0), kernel_busy_ns: 3_000_000, nccl_ns: 400, exposed_nccl_ns: 100, peak_memory_bytes: 5_000_000 });
        assert_eq!(p.nccl_by_kind["AllReduce"], (2, 400));
        assert_eq!(p.groups[1].ranges[1], ("step 1".to_string(), 50_000_000, 83_450_000));
        assert!(parse("{}").is_err());
        assert!(parse("{\"pid\":").is_err());
    }

    #[test]
    fn steps_are_the_most_frequent_pattern() {
        let s = two_ranks();
        assert_eq!(s.step_pattern().as_deref(), Some("step N"));
        let st = s.steps().unwrap();
        assert_eq!(st.processes, 2);
        assert_eq!((st.min_per_process, st.max_per_process), (3, 3));
        assert_eq!(st.steady, Agg { count: 4, total_ns: 133_720_000, min_ns: 33_400_000, max_ns: 33_450_000 });
        assert_eq!(st.rank_mean_min_ns, Some(33_410_000.0));
        assert_eq!(st.rank_mean_max_ns, Some(33_450_000.0));
        // A tie goes to the pattern that started first.
        let mut t = two_ranks();
        for p in &mut t.procs {
            p.groups[0].count = 3;
            p.groups[1].first_start = 5;
        }
        assert_eq!(t.step_pattern().as_deref(), Some("init"));
        assert_eq!(RunStats::default().steps(), None);
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            two_ranks().lines(),
            [
                "phantom: steps (NVTX \"step N\"): 3 per rank; steady step mean 33.43 ms (min 33.41, max 33.45 across ranks)",
                "phantom: GPU time per steady step (mean per GPU): kernels 125.00 µs, NCCL 100.00 ns, exposed NCCL 25.00 ns",
                "phantom: GPU time over the run (mean of 2 GPUs): kernels 2.50 ms, NCCL 400.00 ns, exposed NCCL 100.00 ns",
                "phantom: top kernels: gemm 5.00 ms (table, 4 launches), cublasLtMatmul 600.00 ns (library, 6 launches), relu 200.00 ns (model, 2 launches)",
                "phantom: kernel time by source: table 5.00 ms (100.0 %), model 200.00 ns (0.0 %), library 600.00 ns (0.0 %)",
                "phantom: peak device memory: max 5.00 MB (rank 0, GPU 0), mean 4.50 MB over 2 GPUs",
            ]
        );
        assert!(RunStats::default().lines().is_empty());
        // One step per rank: nothing steady; a process without steps is counted out.
        let mut one = two_ranks();
        for p in &mut one.procs {
            p.groups[1].count = 1;
            p.groups[1].steady = Agg::default();
        }
        one.procs[1].groups.clear();
        one.procs[0].groups.remove(0);
        assert_eq!(
            one.lines()[0],
            "phantom: steps (NVTX \"step N\"): 1 per rank (1 of 2 processes); no steady steps (the first step of each rank is not counted)"
        );
        assert_eq!(short(&"x".repeat(80)).chars().count(), NAME_CHARS);
        assert_eq!(dur(254_100.0), "254.10 µs");
        assert_eq!(dur(1.5e9), "1.50 s");
    }

    #[test]
    fn profiled_time_is_in_the_source_line_when_nonzero() {
        let mut s = two_ranks();
        s.procs[0].by_source.profiled = 1_000_000;
        s.procs[1].by_source.profiled = 3_000_000;
        s.procs[0].kernels.push(Kernel { name: "flash_fwd".into(), source: "profiled".into(), count: 4, total_ns: 4_000_000 });
        let l = s.lines();
        assert!(l.contains(
            &"phantom: kernel time by source: table 5.00 ms (55.6 %), model 200.00 ns (0.0 %), library 600.00 ns (0.0 %), \
              profiled 4.00 ms (44.4 %)"
                .to_string()
        ), "{l:#?}");
        assert!(l.iter().any(|l| l.contains("flash_fwd 4.00 ms (profiled, 4 launches)")), "{l:#?}");
        let r = Value::Object(s.report());
        assert_eq!(r["kernel_time_by_source"]["profiled"]["ns"], 4_000_000);
        assert_eq!(r["per_rank"][1]["kernel_ns_by_source"]["profiled"], 3_000_000);
        // Host time by kind, per rank (rank 1 is pid 11).
        assert_eq!(r["per_rank"][1]["host_ns"]["application"], 11_000);
        assert_eq!(r["per_rank"][1]["host_ns"]["nvidia_libraries"], 40);
        assert_eq!(r["per_rank"][1]["host_ns"]["real_gpu_wait"], 60);
        assert_eq!(parse(&file(1, 0, &[5, 6], 7, 8).replace("\"profiled\":0", "\"profiled\":9")).unwrap().by_source.profiled, 9);
    }

    #[test]
    fn report_fields() {
        let r = Value::Object(two_ranks().report());
        assert_eq!(r["steps"]["pattern"], "step N");
        assert_eq!(r["steps"]["steady"]["count"], 4);
        assert_eq!(r["steps"]["steady"]["mean_ns"], 33_430_000.0);
        assert_eq!(r["steps"]["steady"]["min_ns"], 33_400_000);
        assert_eq!(r["steps"]["steady"]["rank_mean_max_ns"], 33_450_000.0);
        assert_eq!(r["steps"]["steady"]["gpu_time_per_step"], json!({ "kernel_busy_ns": 125_000.0, "nccl_ns": 100.0, "exposed_nccl_ns": 25.0 }));
        assert_eq!(r["gpu_time"], json!({ "gpus": 2, "kernel_busy_ns": 5_000_000, "nccl_ns": 800, "exposed_nccl_ns": 200, "unsettled_nccl_operations": 0 }));
        assert_eq!(r["top_kernels"][0], json!({ "name": "gemm", "source": "table", "count": 4, "total_ns": 5_000_000 }));
        assert_eq!(r["top_kernels"].as_array().unwrap().len(), 3);
        assert_eq!(r["kernel_time_by_source"]["library"]["ns"], 600);
        assert_eq!(r["kernel_time_by_source"]["profiled"]["percent"], 0.0);
        assert_eq!(r["nccl_time_by_kind"]["AllReduce"], json!({ "parts": 4, "time_ns": 800 }));
        assert_eq!(r["peak_device_memory"], json!({ "gpus": 2, "max_bytes": 5_000_000, "mean_bytes": 4_500_000.0 }));
        assert_eq!(r["statistics_files"], json!({ "read": 2, "unreadable": 1 }));
        let r1 = &r["per_rank"][1];
        assert_eq!(r1["rank"], 1);
        assert_eq!(r1["pid"], 11);
        assert_eq!(r1["gpus"][0]["peak_memory_bytes"], 4_000_000);
        assert_eq!(r1["steps"]["count"], 3);
        assert_eq!(r1["steps"]["durations"][2], json!({ "name": "step 2", "start_ns": 83_400_000, "ns": 33_420_000 }));
        assert_eq!(r1["steps"]["steady"]["mean_ns"], 33_410_000.0);
        assert_eq!(r1["steps"]["steady"]["gpu_time_per_step"]["kernel_busy_ns"], 100_000.0);
        assert_eq!(r1["kernel_ns_by_source"]["model"], 100);
        let empty = Value::Object(RunStats::default().report());
        assert_eq!(empty["steps"], Value::Null);
        assert_eq!(empty["per_rank"], json!([]));
    }

    #[test]
    fn read_skips_other_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("10.json"), file(10, 0, &[5, 6], 7, 8)).unwrap();
        std::fs::write(d.path().join("11.json"), "{\"pid\":").unwrap();
        std::fs::write(d.path().join("12.json.tmp"), "partial").unwrap();
        let s = read(d.path());
        assert_eq!((s.procs.len(), s.unreadable), (1, 1));
        assert_eq!(read(&d.path().join("missing")), RunStats::default());
    }
}
