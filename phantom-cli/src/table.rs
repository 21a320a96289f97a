//! `phantom table from-torch-profile`: a kernel-time table from a PyTorch profiler trace
//! (docs/kernel-table.md, "Tables from a PyTorch profile").
//!
//! The trace is the Chrome Trace Event JSON that `torch.profiler.profile(...).export_chrome_trace()` writes,
//! optionally gzip-compressed. Every CUDA kernel event (`"cat": "kernel"`) carries the demangled name, `dur` in
//! µs and `args` with `grid`, `block` and `shared memory`; the call that launched it (`cudaLaunchKernel` in
//! the `cuda_runtime` category, `cuLaunchKernelEx` in `cuda_driver`) carries the same `args.correlation`.
//!
//! One table entry per (name, grid, block) with the median duration of its events and their number as the
//! sample count. The trace's `shared memory` is static plus dynamic shared memory, while Phantom's key is the
//! dynamic shared memory of the launch, so the entry's shared memory is `*`; only a configuration seen with
//! several values gets an entry per value as well (which matches when the kernel has no static shared memory).
//! Kernels launched through the driver API are left out: that is how cuBLAS, cuBLASLt and cuDNN launch theirs,
//! and Phantom times those library calls with its own models, never looking such a kernel up.

use crate::args::FromTorchProfileArgs;
use crate::stats::dur;
use serde_json::Value;
use sim_core::gpu::{gpu_preset, gpu_preset_names};
use sim_core::ktable::{name_variants, KernelPattern, KernelTable};
use sim_core::SimDuration;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

/// How a kernel event's launch reached the GPU, from the API call with the same correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// A CUDA runtime call (`cudaLaunchKernel`, ...): what Phantom's `libcudart` sees.
    Runtime,
    /// A driver API call (`cuLaunchKernelEx`, ...): cuBLAS, cuBLASLt, cuDNN (and Triton) launch this way.
    Driver,
    /// The trace has no API event for it.
    Unknown,
}

/// One CUDA kernel event of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelEvent {
    /// Demangled name as the profiler printed it (GNU's demangler).
    pub name: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Static plus dynamic shared memory per block, in bytes (`args["shared memory"]`).
    pub shared_mem_bytes: u32,
    /// Duration in ns (the trace's µs, rounded to the nanosecond).
    pub dur_ns: u64,
    pub launch: Launch,
}

/// Total time and count of one library kernel's events.
#[derive(Clone, Debug, PartialEq)]
pub struct LibraryKernel {
    pub name: String,
    pub events: usize,
    pub total_ns: u64,
}

/// What the conversion found and made.
#[derive(Debug)]
pub struct Conversion {
    pub table: KernelTable,
    /// Kernel events in the trace (all categories `kernel`).
    pub kernel_events: usize,
    /// Kernel events without a usable `grid`, `block` or `dur` (skipped).
    pub unusable_events: usize,
    /// Events that went into the table, and their total duration.
    pub table_events: usize,
    pub table_ns: u64,
    /// Distinct kernel names in the table.
    pub table_kernels: usize,
    /// (name, grid, block) configurations seen with several `shared memory` values.
    pub split_by_shared_memory: usize,
    /// Kernels left out as library kernels, longest total first.
    pub library: Vec<LibraryKernel>,
    /// Memset and copy events (not kernels: Phantom's copy model times them).
    pub memsets: usize,
    pub memcpys: usize,
    /// `deviceProperties[].name` of the trace.
    pub devices: Vec<String>,
}

/// Reads a trace file, gunzipping it when it starts with the gzip magic bytes, and parses its JSON.
pub fn read_trace(path: &Path) -> Result<Value, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: not a readable gzip file: {e}", path.display()))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&text).map_err(|e| format!("{}: not a Chrome trace (JSON): {e}", path.display()))
}

/// The trace's events: `traceEvents` of the JSON object format, or the array of the array format.
fn trace_events(trace: &Value) -> Result<&[Value], String> {
    match trace {
        Value::Array(events) => Ok(events),
        Value::Object(o) => match o.get("traceEvents") {
            Some(Value::Array(events)) => Ok(events),
            _ => Err("not a Chrome trace: no `traceEvents` array".into()),
        },
        _ => Err("not a Chrome trace: neither an object with `traceEvents` nor an array of events".into()),
    }
}

fn category(e: &Value) -> Option<String> {
    e.get("cat").and_then(Value::as_str).map(str::to_ascii_lowercase)
}

fn dim3(v: Option<&Value>) -> Option<[u32; 3]> {
    let a = v?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    let mut d = [0u32; 3];
    for (slot, x) in d.iter_mut().zip(a) {
        *slot = u32::try_from(x.as_u64()?).ok().filter(|&n| n >= 1)?;
    }
    Some(d)
}

/// The kernel events of a trace, each with how it was launched; `Err` when the JSON is not a trace. Events
/// that lack a usable `grid`, `block` or `dur` are counted in the second value.
pub fn kernel_events(trace: &Value) -> Result<(Vec<KernelEvent>, usize), String> {
    let events = trace_events(trace)?;
    let mut launches: HashMap<u64, Launch> = HashMap::new();
    for e in events {
        let launch = match category(e).as_deref() {
            Some("cuda_runtime" | "runtime") => Launch::Runtime,
            Some("cuda_driver" | "driver") => Launch::Driver,
            _ => continue,
        };
        if let Some(c) = e.pointer("/args/correlation").and_then(Value::as_u64) {
            launches.insert(c, launch);
        }
    }
    let mut out = Vec::new();
    let mut unusable = 0;
    for e in events.iter().filter(|e| category(e).as_deref() == Some("kernel")) {
        let args = e.get("args");
        let parsed = (|| {
            let name = e.get("name")?.as_str()?.trim();
            let dur_us = e.get("dur")?.as_f64().filter(|d| d.is_finite() && *d >= 0.0)?;
            let args = args?;
            Some(KernelEvent {
                name: (!name.is_empty()).then(|| name.to_string())?,
                grid: dim3(args.get("grid"))?,
                block: dim3(args.get("block"))?,
                shared_mem_bytes: args.get("shared memory").and_then(Value::as_u64).unwrap_or(0).min(u32::MAX as u64) as u32,
                dur_ns: (dur_us * 1000.0).round() as u64,
                launch: args
                    .get("correlation")
                    .and_then(Value::as_u64)
                    .and_then(|c| launches.get(&c).copied())
                    .unwrap_or(Launch::Unknown),
            })
        })();
        match parsed {
            Some(k) => out.push(k),
            None => unusable += 1,
        }
    }
    Ok((out, unusable))
}

/// Name prefixes of kernels that cuBLAS, cuBLASLt and cuDNN ship (after the return type): the fallback
/// when a trace does not say how a kernel was launched.
const LIBRARY_PREFIXES: [&str; 9] = ["nvjet_", "cudnn", "cublas", "xmma_", "cutlass_", "ampere_", "volta_", "turing_", "hopper_"];

/// Whether a kernel belongs to a library Phantom times with its own models (cuBLAS, cuBLASLt, cuDNN): it
/// was launched through the driver API, or its name is one of those libraries' (`nvjet_…`, `cudnn…`,
/// `sm90_xmma_…`, ...).
pub fn is_library_kernel(k: &KernelEvent) -> bool {
    if k.launch == Launch::Driver {
        return true;
    }
    let (_, short) = name_variants(&k.name);
    if LIBRARY_PREFIXES.iter().any(|p| short.starts_with(p)) {
        return true;
    }
    // cuBLAS and cuDNN kernels named for their architecture: `sm90_xmma_gemm_…`, `sm80_xmma_fprop_…`.
    short
        .strip_prefix("sm")
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .is_some_and(|r| r.len() < short.len() - 2 && r.starts_with("_xmma"))
}

/// The median of `v` (sorted in place); for an even count the mean of the middle two, halves rounded up.
pub fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { v[mid - 1] + (v[mid] - v[mid - 1]).div_ceil(2) })
}

/// The GPU preset whose device name is `device` (`NVIDIA H100 80GB HBM3` → `h100-sxm-80gb`).
pub fn preset_for_device(device: &str) -> Option<&'static str> {
    gpu_preset_names().iter().copied().find(|k| gpu_preset(k).is_some_and(|s| s.name == device))
}

/// Builds the table from a parsed trace; `source` becomes the table's `source` metadata.
pub fn convert(trace: &Value, source: &str) -> Result<Conversion, String> {
    let (events, unusable_events) = kernel_events(trace)?;
    let all = trace_events(trace)?;
    let count_cat = |cat: &str| all.iter().filter(|e| category(e).as_deref() == Some(cat)).count();
    let devices = trace
        .get("deviceProperties")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default();
    if events.is_empty() {
        return Err(if unusable_events > 0 {
            format!("none of the {unusable_events} kernel events has a grid, block and duration")
        } else {
            "no CUDA kernel events (category `kernel`): profile with ProfilerActivity.CUDA".into()
        });
    }

    type Config = (String, [u32; 3], [u32; 3]);
    let mut configs: BTreeMap<Config, BTreeMap<u32, Vec<u64>>> = BTreeMap::new();
    let mut library: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let (mut table_events, mut table_ns) = (0, 0);
    for k in &events {
        if is_library_kernel(k) {
            let l = library.entry(&k.name).or_default();
            l.0 += 1;
            l.1 += k.dur_ns;
            continue;
        }
        table_events += 1;
        table_ns += k.dur_ns;
        configs.entry((k.name.clone(), k.grid, k.block)).or_default().entry(k.shared_mem_bytes).or_default().push(k.dur_ns);
    }

    let mut table = KernelTable::default();
    let mut split_by_shared_memory = 0;
    for ((name, grid, block), by_smem) in configs {
        let pattern = |smem| KernelPattern { name: name.clone(), grid: Some(grid), block: Some(block), shared_mem_bytes: smem };
        let mut insert = |smem, durations: &mut Vec<u64>| {
            let samples = u32::try_from(durations.len()).unwrap_or(u32::MAX);
            let m = median(durations).expect("a configuration has events");
            table.insert(pattern(smem), SimDuration::from_nanos(m), samples);
        };
        if by_smem.len() > 1 {
            split_by_shared_memory += 1;
            for (&smem, durations) in &by_smem {
                insert(Some(smem), &mut durations.clone());
            }
        }
        insert(None, &mut by_smem.into_values().flatten().collect());
    }
    let table_kernels = {
        let mut names: Vec<&str> = events.iter().filter(|k| !is_library_kernel(k)).map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    };
    table.set_metadata("source", source);
    let mut library: Vec<LibraryKernel> =
        library.into_iter().map(|(name, (events, total_ns))| LibraryKernel { name: name.to_string(), events, total_ns }).collect();
    library.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then_with(|| a.name.cmp(&b.name)));
    Ok(Conversion {
        table,
        kernel_events: events.len() + unusable_events,
        unusable_events,
        table_events,
        table_ns,
        table_kernels,
        split_by_shared_memory,
        library,
        memsets: count_cat("gpu_memset"),
        memcpys: count_cat("gpu_memcpy"),
        devices,
    })
}

fn short_name(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(chars - 1).collect::<String>())
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The summary printed on stderr.
pub fn summary_lines(c: &Conversion, trace: &str, output: &str) -> Vec<String> {
    let p = "phantom table:";
    let mut lines = vec![format!(
        "{p} {trace}: {}; in the table: {} of {} ({}), {}",
        plural(c.kernel_events, "kernel event"),
        plural(c.table_events, "event"),
        plural(c.table_kernels, "kernel"),
        dur(c.table_ns as f64),
        plural(c.table.len(), "configuration"),
    )];
    if !c.library.is_empty() {
        let events: usize = c.library.iter().map(|l| l.events).sum();
        let ns: u64 = c.library.iter().map(|l| l.total_ns).sum();
        let top: Vec<String> = c
            .library
            .iter()
            .take(3)
            .map(|l| format!("{} {} ({})", short_name(&l.name, 50), dur(l.total_ns as f64), l.events))
            .collect();
        lines.push(format!(
            "{p} left out: {} of {} ({}) that cuBLAS/cuDNN launch (Phantom times their calls with its library \
             models): {}",
            plural(events, "event"),
            plural(c.library.len(), "library kernel"),
            dur(ns as f64),
            top.join(", ")
        ));
    }
    if c.unusable_events > 0 {
        lines.push(format!("{p} skipped {} without a grid, block or duration", plural(c.unusable_events, "kernel event")));
    }
    if c.split_by_shared_memory > 0 {
        lines.push(format!(
            "{p} {} ran with several shared memory sizes: an entry per size (static + dynamic) and one for any size",
            plural(c.split_by_shared_memory, "configuration")
        ));
    }
    if c.memsets + c.memcpys > 0 {
        lines.push(format!(
            "{p} not kernels: {}, {} (Phantom's copy model times these)",
            plural(c.memsets, "memset"),
            plural(c.memcpys, "copy event")
        ));
    }
    match c.table.gpu() {
        Some(g) => lines.push(format!("{p} wrote {output}: {} entries, gpu {g}", c.table.len())),
        None => lines.push(format!("{p} wrote {output}: {} entries, no gpu (give --gpu)", c.table.len())),
    }
    lines
}

/// The `gpu` metadata and a warning: `--gpu` (a preset key, checked by clap), else the preset whose name is
/// the trace's device name (`deviceProperties`).
fn choose_gpu(arg: Option<&str>, devices: &[String]) -> (Option<String>, Option<String>) {
    let detected: Vec<&str> = devices.iter().filter_map(|d| preset_for_device(d)).collect();
    match arg {
        Some(g) => {
            let warning = detected
                .iter()
                .find(|&&d| d != g)
                .map(|d| format!("the trace was recorded on {} ({d}); the table says --gpu {g}", devices.join(", ")));
            (Some(g.to_string()), warning)
        }
        None => match detected.first() {
            Some(&d) if detected.len() == devices.len() && detected.iter().all(|&x| x == d) => (Some(d.to_string()), None),
            _ => {
                let named = if devices.is_empty() { "none named".into() } else { devices.join(", ") };
                (None, Some(format!("no GPU preset matches the trace's devices ({named}): give --gpu")))
            }
        },
    }
}

/// `phantom table from-torch-profile`: returns the exit code (0, or 1 after an error on stderr).
pub fn from_torch_profile(a: &FromTorchProfileArgs) -> i32 {
    match from_torch_profile_inner(a) {
        Ok(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            0
        }
        Err(e) => {
            eprintln!("phantom table: error: {e}");
            1
        }
    }
}

fn from_torch_profile_inner(a: &FromTorchProfileArgs) -> Result<Vec<String>, String> {
    let trace = read_trace(&a.trace)?;
    let file = a.trace.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let source = format!("phantom table from-torch-profile {file} (median of each configuration's kernel events)");
    let mut c = convert(&trace, &source).map_err(|e| format!("{}: {e}", a.trace.display()))?;
    let (gpu, warning) = choose_gpu(a.gpu.as_deref(), &c.devices);
    if let Some(g) = gpu {
        c.table.set_metadata("gpu", &g);
    }
    std::fs::write(&a.output, c.table.to_text()).map_err(|e| format!("{}: {e}", a.output.display()))?;
    let mut lines = summary_lines(&c, &a.trace.display().to_string(), &a.output.display().to_string());
    if let Some(w) = warning {
        lines.push(format!("phantom table: warning: {w}"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sim_core::ktable::KernelKey;
    use std::io::Write;

    fn kernel(name: &str, grid: [u32; 3], block: [u32; 3], smem: u32, dur_us: f64, correlation: u64) -> Value {
        json!({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": 7, "ts": 1.0, "dur": dur_us,
               "args": {"correlation": correlation, "registers per thread": 32, "shared memory": smem,
                        "grid": grid, "block": block, "stream": 7}})
    }

    fn launch(cat: &str, name: &str, correlation: u64) -> Value {
        json!({"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": 1, "ts": 0.5, "dur": 3.0,
               "args": {"correlation": correlation}})
    }

    const LN: &str = "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float, false>(int, float, float const*, float const*, float const*, float*, float*, float*)";
    const FILL: &str = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)";
    const GEMM: &str = "nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT";

    /// A trace in torch.profiler's shape: layer norm ×3 (one config), fill in two configs (2 events + 1),
    /// a cuBLAS GEMM launched through the driver, a memset, and CPU events.
    fn sample() -> Value {
        json!({
            "schemaVersion": 1,
            "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3", "numSms": 132}],
            "traceEvents": [
                {"ph": "X", "cat": "cpu_op", "name": "aten::layer_norm", "pid": 1, "tid": 1, "ts": 0.0, "dur": 50.0, "args": {}},
                launch("cuda_runtime", "cudaLaunchKernel", 10), kernel(LN, [8192, 1, 1], [256, 1, 1], 24, 21.5, 10),
                launch("cuda_runtime", "cudaLaunchKernel", 11), kernel(LN, [8192, 1, 1], [256, 1, 1], 24, 20.25, 11),
                launch("cuda_runtime", "cudaLaunchKernel", 12), kernel(LN, [8192, 1, 1], [256, 1, 1], 24, 30.0, 12),
                launch("cuda_runtime", "cudaLaunchKernel", 13), kernel(FILL, [1, 1, 1], [128, 1, 1], 0, 1.001, 13),
                launch("cuda_runtime", "cudaLaunchKernel", 14), kernel(FILL, [1, 1, 1], [128, 1, 1], 0, 1.002, 14),
                launch("cuda_runtime", "cudaLaunchKernel", 15), kernel(FILL, [768, 1, 1], [128, 1, 1], 0, 2.4, 15),
                launch("cuda_driver", "cuLaunchKernelEx", 16), kernel(GEMM, [132, 1, 1], [384, 1, 1], 221420, 53.8, 16),
                {"ph": "X", "cat": "gpu_memset", "name": "Memset (Device)", "pid": 0, "tid": 7, "ts": 2.0, "dur": 1.0, "args": {}},
            ]
        })
    }

    fn key(name: &str, grid: [u32; 3], block: [u32; 3], smem: u32) -> KernelKey {
        KernelKey { name: name.into(), grid, block, shared_mem_bytes: smem }
    }

    #[test]
    fn parses_kernel_events_and_their_launch() {
        let (events, unusable) = kernel_events(&sample()).unwrap();
        assert_eq!(unusable, 0);
        assert_eq!(events.len(), 7);
        assert_eq!(
            events[0],
            KernelEvent { name: LN.into(), grid: [8192, 1, 1], block: [256, 1, 1], shared_mem_bytes: 24, dur_ns: 21_500, launch: Launch::Runtime }
        );
        assert_eq!(events[3].dur_ns, 1_001);
        assert_eq!(events[6].launch, Launch::Driver);
        // The JSON array format, and events without an API call
        let (events, _) = kernel_events(&json!([kernel("k", [1, 1, 1], [1, 1, 1], 0, 1.0, 99)])).unwrap();
        assert_eq!(events[0].launch, Launch::Unknown);
    }

    #[test]
    fn one_entry_per_configuration_with_the_median() {
        let c = { let mut c = convert(&sample(), "test").unwrap(); c.table.set_metadata("gpu", "h100-sxm-80gb"); c };
        assert_eq!((c.kernel_events, c.unusable_events, c.table_events, c.table_kernels), (7, 0, 6, 2));
        assert_eq!(c.table_ns, 21_500 + 20_250 + 30_000 + 1_001 + 1_002 + 2_400);
        assert_eq!((c.memsets, c.memcpys, c.split_by_shared_memory), (1, 0, 0));
        assert_eq!(c.devices, ["NVIDIA H100 80GB HBM3"]);
        assert_eq!(
            c.table.to_text(),
            format!(
                "# phantom kernel-time table v1\n# gpu: h100-sxm-80gb\n# source: test\n\
                 kernel\t{LN}\t8192,1,1\t256,1,1\t*\t21500\t3\n\
                 kernel\t{FILL}\t1,1,1\t128,1,1\t*\t1002\t2\n\
                 kernel\t{FILL}\t768,1,1\t128,1,1\t*\t2400\t1\n"
            )
        );
        // Whatever dynamic shared memory Phantom's launch asks for (the trace's 24 bytes include static ones)
        let t = &c.table;
        assert_eq!(t.lookup(&key(LN, [8192, 1, 1], [256, 1, 1], 0)), Some(SimDuration::from_nanos(21_500)));
        assert_eq!(t.lookup(&key(LN, [4096, 1, 1], [256, 1, 1], 0)), None);
        // Phantom's runtime spells `1ul` as `(unsigned long)1` (cpp_demangle); the table matches it.
        let phantom_fill = FILL.replace("1ul", "(unsigned long)1");
        assert_eq!(t.lookup(&key(&phantom_fill, [768, 1, 1], [128, 1, 1], 0)), Some(SimDuration::from_nanos(2_400)));
        // The text reads back as the same table.
        assert_eq!(&KernelTable::parse(&t.to_text()).unwrap(), t);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [7]), Some(7));
        assert_eq!(median(&mut [30, 10, 20]), Some(20));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(3)); // (2 + 3) / 2 = 2.5 → 3
        assert_eq!(median(&mut [10, 14]), Some(12));
        assert_eq!(median(&mut [u64::MAX, u64::MAX - 2]), Some(u64::MAX - 1));
    }

    #[test]
    fn library_kernels_are_left_out_and_listed() {
        let c = convert(&sample(), "test").unwrap();
        assert_eq!(c.library, [LibraryKernel { name: GEMM.into(), events: 1, total_ns: 53_800 }]);
        assert!(!c.table.to_text().contains("nvjet"));
        assert_eq!(c.table.gpu(), None);
        // Without launch events, by name: cuBLAS's and cuDNN's kernels, not PyTorch's own flash attention.
        let ev = |name: &str| KernelEvent { name: name.into(), grid: [1; 3], block: [1; 3], shared_mem_bytes: 0, dur_ns: 1, launch: Launch::Unknown };
        for lib in [
            GEMM,
            "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas",
            "sm80_xmma_fprop_implicit_gemm_indexed_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x32_stage4_warpsize2x2x1_g1_tensor16x8x16_kernel",
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0",
            "void cudnn::fusion::convert_dq_to_16bits<true>(void const*, void*)",
            "void cublasLt::splitKreduce_kernel<32, 16, int, float, float>(cublasLt::cublasSplitKParams<float>)",
            "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_tn",
        ] {
            assert!(is_library_kernel(&ev(lib)), "{lib}");
        }
        for own in [
            LN,
            "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, cutlass::bfloat16_t> >(Flash_fwd_params)",
            "void cutlass::Kernel<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8>(cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8::Params)",
            "sm_kernel",
            "sm90_",
        ] {
            assert!(!is_library_kernel(&ev(own)), "{own}");
        }
        // A driver-launched kernel is a library's whatever its name.
        assert!(is_library_kernel(&KernelEvent { launch: Launch::Driver, ..ev("triton_poi_fused_add_0") }));
    }

    #[test]
    fn several_shared_memory_sizes_get_an_entry_each() {
        let trace = json!({"traceEvents": [
            kernel("softmax", [64, 1, 1], [128, 1, 1], 1024, 10.0, 1),
            kernel("softmax", [64, 1, 1], [128, 1, 1], 1024, 12.0, 2),
            kernel("softmax", [64, 1, 1], [128, 1, 1], 4096, 40.0, 3),
        ]});
        let c = convert(&trace, "t").unwrap();
        assert_eq!(c.split_by_shared_memory, 1);
        let t = &c.table;
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(&key("softmax", [64, 1, 1], [128, 1, 1], 1024)), Some(SimDuration::from_nanos(11_000)));
        assert_eq!(t.lookup(&key("softmax", [64, 1, 1], [128, 1, 1], 4096)), Some(SimDuration::from_nanos(40_000)));
        assert_eq!(t.lookup(&key("softmax", [64, 1, 1], [128, 1, 1], 512)), Some(SimDuration::from_nanos(12_000)));
        assert_eq!(t.lookup_record(&key("softmax", [64, 1, 1], [128, 1, 1], 512)).unwrap().samples, 3);
    }

    #[test]
    fn reads_plain_and_gzipped_traces() {
        let dir = tempfile::tempdir().unwrap();
        let text = serde_json::to_vec(&sample()).unwrap();
        let plain = dir.path().join("t.json");
        std::fs::write(&plain, &text).unwrap();
        // Compressed, whatever the file is called
        let gz = dir.path().join("t.json.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_trace(&plain).unwrap(), sample());
        assert_eq!(read_trace(&gz).unwrap(), sample());
        // A truncated gzip file
        let bytes = std::fs::read(&gz).unwrap();
        std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_trace(&gz).unwrap_err().contains("not a readable gzip file"), "{}", read_trace(&gz).unwrap_err());
    }

    #[test]
    fn errors_for_what_is_not_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, "# phantom kernel-time table v1\n").unwrap();
        let e = read_trace(&p).unwrap_err();
        assert!(e.starts_with(&format!("{}: not a Chrome trace (JSON): ", p.display())), "{e}");
        assert!(read_trace(&dir.path().join("missing.json")).unwrap_err().contains("missing.json: "));
        let err = |v: Value| convert(&v, "t").unwrap_err();
        assert_eq!(err(json!({"schemaVersion": 1})), "not a Chrome trace: no `traceEvents` array");
        assert_eq!(err(json!(42)), "not a Chrome trace: neither an object with `traceEvents` nor an array of events");
        assert_eq!(
            err(json!({"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 1}]})),
            "no CUDA kernel events (category `kernel`): profile with ProfilerActivity.CUDA"
        );
        assert_eq!(
            err(json!({"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "ts": 0, "dur": 1, "args": {"grid": [1, 1]}}]})),
            "none of the 1 kernel events has a grid, block and duration"
        );
        // Unusable events next to good ones are counted, not fatal.
        let c = convert(
            &json!({"traceEvents": [kernel("k", [1, 1, 1], [0, 1, 1], 0, 1.0, 1), kernel("k", [1, 1, 1], [1, 1, 1], 0, 1.0, 2)]}),
            "t",
        )
        .unwrap();
        assert_eq!((c.kernel_events, c.unusable_events, c.table.len()), (2, 1, 1));
    }

    #[test]
    fn gpu_from_the_option_or_the_trace() {
        let h100 = vec!["NVIDIA H100 80GB HBM3".to_string()];
        assert_eq!(preset_for_device("NVIDIA H100 80GB HBM3"), Some("h100-sxm-80gb"));
        assert_eq!(choose_gpu(None, &h100), (Some("h100-sxm-80gb".into()), None));
        assert_eq!(choose_gpu(Some("h100-sxm-80gb"), &h100), (Some("h100-sxm-80gb".into()), None));
        let (g, w) = choose_gpu(Some("h200-141gb"), &h100);
        assert_eq!(g.as_deref(), Some("h200-141gb"));
        assert!(w.unwrap().contains("recorded on NVIDIA H100 80GB HBM3 (h100-sxm-80gb)"));
        let (g, w) = choose_gpu(None, &["NVIDIA GeForce RTX 4090".to_string()]);
        assert_eq!(g, None);
        assert_eq!(w.unwrap(), "no GPU preset matches the trace's devices (NVIDIA GeForce RTX 4090): give --gpu");
        assert_eq!(choose_gpu(None, &[]).0, None);
        assert_eq!(choose_gpu(Some("b200"), &[]), (Some("b200".into()), None));
    }

    #[test]
    fn summary_names_what_was_left_out() {
        let c = { let mut c = convert(&sample(), "test").unwrap(); c.table.set_metadata("gpu", "h100-sxm-80gb"); c };
        let lines = summary_lines(&c, "p.json", "p.table");
        assert_eq!(
            lines,
            [
                "phantom table: p.json: 7 kernel events; in the table: 6 events of 2 kernels (76.15 µs), 3 configurations",
                "phantom table: left out: 1 event of 1 library kernel (53.80 µs) that cuBLAS/cuDNN launch (Phantom times their calls with its library models): nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT 53.80 µs (1)",
                "phantom table: not kernels: 1 memset, 0 copy events (Phantom's copy model times these)",
                "phantom table: wrote p.table: 3 entries, gpu h100-sxm-80gb",
            ]
        );
    }
}
