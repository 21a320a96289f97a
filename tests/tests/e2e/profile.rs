//! Profiling mode (`PHANTOM_PROFILE=execute`) against a fake GPU: tests/programs/profile_kernels.cu run with
//! `PHANTOM_REAL_DRIVER` pointing at tests/programs/fake_cuda_driver.c, a stand-in for NVIDIA's driver built
//! by `compile_shared`. The fake executes every command synchronously on one clock and times it by a fixed rule
//! (the header of fake_cuda_driver.c): a kernel of G blocks of B threads takes 1000·G + B ns, so what profiling
//! mode measured, and every simulated time that follows from it, is known exactly. Its device memory is real
//! host memory, so data copied to it comes back; at exit it writes its counters to `FAKE_CUDA_STATS`.
//!
//! The simulated timeline follows docs/gpu-model.md and docs/time.md on the `dgx-h100` preset in
//! deterministic host time (as in runtime_timing.rs): a launch costs the host `launch_call_ns`, any other call
//! `api_call_ns`; a command reaches the GPU `launch_latency_ns` after the call that queued it returns; events
//! are markers placed like any other command.

use phantom_tests::{compile, compile_shared, lib_dir, phantom_env, phantom_run_profiled, run_with_timeout, Output, PROGRAM_TIMEOUT};
use sim_core::config::ClusterConfig;
use sim_core::ktable::{KernelKey, KernelPattern, KernelTable, TableRecord};
use sim_core::time::SimDuration;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// profile_kernels.cu's configurations: grids in blocks, one block size, launches per event pair, loops.
const GRIDS: [u32; 3] = [64, 256, 1024];
const BLOCK: u32 = 256;
const REPEATS: u64 = 5;
const LOOPS: u64 = 3;
/// The name the runtime gives `busy(float*, int)` (demangled, with its parameters), and nvcc's mangled name,
/// which is what the driver is asked for.
const BUSY: &str = "busy(float*, int)";
const BUSY_MANGLED: &str = "_Z4busyPfi";

/// The fake GPU's time for a kernel of `grid` blocks of BLOCK threads (fake_cuda_driver.c: 1000 ns per block
/// plus 1 ns per thread of a block).
fn fake_kernel_ns(grid: u32) -> u64 {
    1000 * grid as u64 + BLOCK as u64
}

/// The preset's host and GPU costs: (api_call_ns, launch_call_ns, launch_latency_ns).
fn costs() -> (u64, u64, u64) {
    let c = ClusterConfig::preset("dgx-h100").expect("the dgx-h100 preset");
    (c.host.api_call_ns, c.host.launch_call_ns, c.gpu.launch_latency_ns)
}

fn exe() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("profile_kernels.cu"))
}

fn fake_driver() -> &'static PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| compile_shared("fake_cuda_driver.c"))
}

/// A fresh empty directory under the system's temporary directory.
fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phantom-profile-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    d
}

/// One process's counters from the fake driver (`fake-cuda-<pid>.txt`).
#[derive(Debug)]
struct FakeStats {
    file: PathBuf,
    counters: BTreeMap<String, u64>,
    /// Launches per kernel name (`kernel NAME N` lines).
    kernels: BTreeMap<String, u64>,
}

impl FakeStats {
    fn get(&self, key: &str) -> u64 {
        *self.counters.get(key).unwrap_or_else(|| panic!("no `{key}` in {}: {self:?}", self.file.display()))
    }
}

/// Every `fake-cuda-*.txt` in `dir`: one per process that loaded the fake driver.
fn fake_stats(dir: &Path) -> Vec<FakeStats> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("fake-cuda-") && name.ends_with(".txt")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut counters, mut kernels) = (BTreeMap::new(), BTreeMap::new());
        for line in text.lines() {
            let parsed = line.rsplit_once(' ').and_then(|(key, n)| Some((key, n.parse::<u64>().ok()?)));
            let (key, n) = parsed.unwrap_or_else(|| panic!("{}: bad line `{line}`", path.display()));
            match key.strip_prefix("kernel ") {
                Some(kernel) => kernels.insert(kernel.to_string(), n),
                None => counters.insert(key.to_string(), n),
            };
        }
        all.push(FakeStats { file: path, counters, kernels });
    }
    all.sort_by(|a, b| a.file.cmp(&b.file));
    all
}

/// The three entries profiling must record: `busy` in each configuration, with the fake GPU's time, measured
/// once.
fn expected_entries() -> Vec<(KernelKey, u64)> {
    GRIDS
        .iter()
        .map(|&g| {
            let key = KernelKey { name: BUSY.into(), grid: [g, 1, 1], block: [BLOCK, 1, 1], shared_mem_bytes: 0 };
            (key, fake_kernel_ns(g))
        })
        .collect()
}

/// Asserts that `table` holds exactly the three measured configurations of `busy` (any spelling the runtime's
/// lookup finds for the launch's name) and nothing else.
fn assert_profiled_entries(table: &KernelTable, what: &str) {
    let entries: Vec<(KernelPattern, TableRecord)> = table.iter().collect();
    assert_eq!(entries.len(), GRIDS.len(), "{what}: one entry per configuration: {entries:#?}");
    for (key, ns) in expected_entries() {
        let record = table.lookup_record(&key).unwrap_or_else(|| panic!("{what}: no entry for {key:?}: {entries:#?}"));
        assert_eq!(record.duration, SimDuration::from_nanos(ns), "{what}: {key:?}");
        // Each configuration runs more than twice: measured at its first two launches (profile::SAMPLES), then
        // settled.
        assert_eq!(record.samples, 2, "{what}: {key:?} is measured twice");
        // Recorded for exactly this configuration, not as a wildcard.
        let (pattern, _) = entries
            .iter()
            .find(|(p, _)| p.grid == Some(key.grid))
            .unwrap_or_else(|| panic!("{what}: no entry with grid {:?}: {entries:#?}", key.grid));
        assert_eq!((pattern.block, pattern.shared_mem_bytes), (Some(key.block), Some(0)), "{what}: {pattern:?}");
    }
}

/// What test 1's run produced, shared with the others.
struct Profiled {
    out: Output,
    table: KernelTable,
    /// The table as the runtime wrote it.
    table_text: String,
    stats: FakeStats,
}

/// profile_kernels in profiling mode on the fake GPU (one process, no launcher).
fn profiled() -> &'static Profiled {
    static RUN: OnceLock<Profiled> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempdir("execute");
        let stats_dir = dir.join("stats");
        std::fs::create_dir_all(&stats_dir).unwrap();
        let table_path = dir.join("t.table");
        let mut cmd = Command::new(exe());
        phantom_env(&mut cmd);
        cmd.env_remove("PHANTOM_KERNEL_TABLE")
            .env("PHANTOM_CLUSTER", "dgx-h100")
            .env("PHANTOM_PROFILE", "execute")
            .env("PHANTOM_REAL_DRIVER", fake_driver())
            .env("PHANTOM_PROFILE_TABLE", &table_path)
            .env("FAKE_CUDA_STATS", &stats_dir);
        let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
        out.assert_clean_success();
        assert_eq!(out.value("done"), "1", "{}", out.describe());
        let table_text = std::fs::read_to_string(&table_path)
            .unwrap_or_else(|e| panic!("no profile table at {}: {e}\n{}", table_path.display(), out.describe()));
        let table = KernelTable::parse(&table_text).unwrap_or_else(|e| panic!("profile table: {e}\n{table_text}"));
        let mut stats = fake_stats(&stats_dir);
        assert_eq!(stats.len(), 1, "one process loaded the fake driver: {stats:#?}");
        let stats = stats.pop().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        Profiled { out, table, table_text, stats }
    })
}

/// The launches profile_kernels makes: one warm-up launch and REPEATS per configuration, then LOOPS rounds of
/// all three.
fn program_launches() -> u64 {
    GRIDS.len() as u64 * (1 + REPEATS + LOOPS)
}

/// The keys whose printed values must not depend on where the kernel times came from.
fn timing_keys() -> Vec<String> {
    GRIDS.iter().map(|g| format!("grid_{g}_ms")).chain(["loop_host_ms".to_string()]).collect()
}

fn ms(out: &Output, key: &str) -> f64 {
    out.value(key).parse().unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// `expected_ns` as the program prints it (`%.4f` milliseconds).
fn printed_ms(expected_ns: u64) -> f64 {
    (expected_ns as f64 / 1e6 * 1e4).round() / 1e4
}

#[test]
fn profiling_measures_each_configuration_once_on_the_gpu() {
    let p = profiled();
    let (api, launch, latency) = costs();

    // The table: written at exit, from profiling, one entry per configuration with the fake GPU's time.
    assert_eq!(p.table.metadata("source"), Some("profiling"), "{}", p.table_text);
    assert_profiled_entries(&p.table, "PHANTOM_PROFILE_TABLE");

    // Every launch ran on the (fake) GPU, once: the measured launch is the executed one.
    let launches = program_launches();
    assert_eq!(p.out.value("launches"), launches.to_string());
    assert_eq!(p.stats.get("launches"), launches, "{:?}", p.stats);
    assert_eq!(p.stats.kernels, BTreeMap::from([(BUSY_MANGLED.to_string(), launches)]), "{:?}", p.stats);
    // Each of the three measurements went behind a gate (real-gpu/src/gate.rs).
    // Two gated measurements per configuration, besides the gates that calibrate the overhead.
    assert!(p.stats.get("spins") >= 2 * GRIDS.len() as u64, "{:?}", p.stats);

    // Device memory is the GPU's: the 4 MiB round trip went through it and came back.
    assert_eq!(p.out.value("roundtrip_ok"), "1");
    let x_bytes = GRIDS[2] as u64 * BLOCK as u64 * 4;
    assert!(p.stats.get("memcpy_bytes") >= 2 * (4 << 20), "{:?}", p.stats);
    assert!(p.stats.get("mapped_peak_bytes") >= x_bytes + (4 << 20), "{:?}", p.stats);

    // The simulated timeline uses the measured times. Each kernel is longer than a launch call, so the GPU is
    // the bottleneck: the first kernel starts one launch call after the opening event (which is a marker) and
    // the others follow back to back.
    for g in GRIDS {
        let kernel = fake_kernel_ns(g);
        assert!(kernel > launch, "grid {g}: {kernel} ns must exceed the {launch} ns launch call");
        assert_eq!(ms(&p.out, &format!("grid_{g}_ms")), printed_ms(REPEATS * kernel + launch), "grid {g}");
    }
    // Host clock around the loop: the first kernel starts one launch call plus the launch latency after the
    // loop starts, the 9 kernels run back to back, and cudaStreamSynchronize returns one api call after the
    // last one ends.
    let loop_gpu: u64 = LOOPS * GRIDS.iter().map(|&g| fake_kernel_ns(g)).sum::<u64>();
    assert_eq!(ms(&p.out, "loop_host_ms"), printed_ms(launch + latency + loop_gpu + api));
}

#[test]
fn a_recorded_table_replays_the_profiled_times() {
    let p = profiled();
    let dir = tempdir("replay");
    let stats_dir = dir.join("stats");
    std::fs::create_dir_all(&stats_dir).unwrap();
    let table = dir.join("t.table");
    std::fs::write(&table, &p.table_text).unwrap();
    let mut cmd = Command::new(exe());
    phantom_env(&mut cmd);
    // The driver is named and counted but must not be loaded: without PHANTOM_PROFILE nothing runs on a GPU.
    cmd.env_remove("PHANTOM_PROFILE")
        .env_remove("PHANTOM_PROFILE_TABLE")
        .env("PHANTOM_CLUSTER", "dgx-h100")
        .env("PHANTOM_KERNEL_TABLE", &table)
        .env("PHANTOM_REAL_DRIVER", fake_driver())
        .env("FAKE_CUDA_STATS", &stats_dir);
    let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
    out.assert_clean_success();
    assert_eq!(out.value("done"), "1", "{}", out.describe());
    for key in timing_keys() {
        assert_eq!(out.value(&key), p.out.value(&key), "{key}: the table's times are the profiled ones");
    }
    assert_eq!(out.value("launches"), p.out.value("launches"));
    // Simulated memory: a copy over 1 MiB delivers zeros.
    assert_eq!(out.value("roundtrip_ok"), "0");
    let stats = fake_stats(&stats_dir);
    assert!(stats.is_empty(), "the driver was loaded without profiling: {stats:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_the_designated_rank_runs_on_the_gpu() {
    const RANKS: u32 = 4;
    let p = profiled();
    let dir = tempdir("launcher");
    let stats_dir = dir.join("stats");
    std::fs::create_dir_all(&stats_dir).unwrap();
    let table_path = dir.join("run.table");
    let mut cmd = phantom_run_profiled(&dir, fake_driver(), RANKS, "deterministic");
    cmd.env("FAKE_CUDA_STATS", &stats_dir).arg("--profile-table").arg(&table_path).arg("--").arg(exe());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());

    // Only rank 0 (the default of --profile-ranks) loaded the driver, and ran all its launches there.
    let stats = fake_stats(&stats_dir);
    assert_eq!(stats.len(), 1, "exactly one process used the GPU: {stats:#?}\n{}", out.describe());
    let launches = program_launches();
    assert_eq!(out.value("r0_launches"), launches.to_string(), "{}", out.describe());
    assert_eq!(stats[0].get("launches"), launches, "{:?}", stats[0]);
    assert_eq!(out.value("r0_roundtrip_ok"), "1", "rank 0's memory is the GPU's");

    // Every rank sees the profiled times: the followers use rank 0's measurements.
    for rank in 0..RANKS {
        let key = |k: &str| format!("r{rank}_{k}");
        assert_eq!(out.value(&key("done")), "1", "{}", out.describe());
        assert_eq!(out.value(&key("launches")), launches.to_string());
        for k in timing_keys() {
            assert_eq!(out.value(&key(&k)), p.out.value(&k), "rank {rank}: {k}");
        }
        if rank != 0 {
            assert_eq!(out.value(&key("roundtrip_ok")), "0", "rank {rank} runs on simulated memory");
        }
    }

    // The merged table holds the three measurements.
    let table = KernelTable::load(&table_path).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    assert_profiled_entries(&table, "--profile-table");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Running samples (docs/profiling.md, "Running samples"): once a configuration has its two gated
/// measurements, its next launches are timed in the running stream, and the median of five replaces the gated
/// figure. The fake GPU here is always behind the host (`FAKE_CUDA_BUSY`: every event is still pending when
/// first asked, so every running sample is covered) and runs a kernel 10 % slower when no gate has just woken it
/// (`FAKE_CUDA_RUNNING_PERCENT`), so each table figure is the fake's time plus 10 % (integer division): 64 256 →
/// 70 681 ns, and so on. Each configuration has 7 launches after its gated two (profile_kernels.cu), enough for
/// five samples however late their events are read; `PHANTOM_PROFILE_QUIET_LAUNCHES=0` lets sampling begin at
/// once. The follower (rank 1) takes the settled figures through the simulator.
#[test]
fn running_samples_replace_the_gated_figures() {
    let dir = tempdir("running");
    let table_path = dir.join("run.table");
    let mut cmd = phantom_run_profiled(&dir, fake_driver(), 2, "deterministic");
    cmd.env("FAKE_CUDA_BUSY", "1")
        .env("FAKE_CUDA_RUNNING_PERCENT", "10")
        .env("PHANTOM_PROFILE_QUIET_LAUNCHES", "0")
        .arg("--profile-table")
        .arg(&table_path)
        .arg("--")
        .arg(exe());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let table = KernelTable::load(&table_path).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    assert_eq!(table.len(), GRIDS.len(), "{}", table.to_text());
    for (key, ns) in expected_entries() {
        let record = table.lookup_record(&key).unwrap_or_else(|| panic!("no entry for {key:?}: {}", table.to_text()));
        assert_eq!(record.duration, SimDuration::from_nanos(ns + ns * 10 / 100), "{key:?}");
        assert_eq!(record.samples, 5, "{key:?}: five running samples");
    }
    assert!(
        out.stderr.contains("running samples replaced 3 figures (+10.0 % of their gated time)"),
        "{}",
        out.describe()
    );
    for rank in 0..2 {
        assert_eq!(out.value(&format!("r{rank}_done")), "1", "{}", out.describe());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// In measured host time an executing rank charges what its driver's launches took, and publishes their mean
/// for the following ranks, which charge it for their own launches (docs/profiling.md, "Host time of following
/// ranks"). The fake driver's launch busy-waits 40 µs; rank 0 publishes after 4 launches; the report's host time
/// by kind shows 40 µs per launch on both ranks, where the `[host]` cost is 2 µs. The fake's
/// `cuStreamSynchronize` busy-waits 30 ms, as NVIDIA's spins while the GPU finishes: rank 0 reports that CPU time
/// as waiting for the real GPU, not as Phantom's own (docs/time.md, "Where host time goes").
#[test]
fn following_ranks_charge_the_launch_cost_the_executing_rank_measured() {
    const SPIN_NS: u64 = 40_000;
    const SYNC_NS: u64 = 30_000_000;
    let _ = profiled();
    let dir = tempdir("host-launch");
    let report = dir.join("report.json");
    let mut cmd = phantom_run_profiled(&dir, fake_driver(), 2, "measured");
    cmd.env("FAKE_CUDA_LAUNCH_HOST_NS", SPIN_NS.to_string())
        .env("FAKE_CUDA_STREAM_SYNC_HOST_NS", SYNC_NS.to_string())
        .env("PHANTOM_PROFILE_HOST_SAMPLES", "4")
        .arg("--report")
        .arg(&report)
        .arg("--")
        .arg(exe());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()));
    let r: serde_json::Value = serde_json::from_str(&text).expect("the report is JSON");
    let launches = program_launches();
    let host = |rank: usize, kind: &str| r["per_rank"][rank]["host_ns"][kind].as_u64().unwrap_or_else(|| panic!("{kind}: {text}"));
    // Rank 0 ran every launch on the (fake) GPU: at least 40 µs of driver time each, charged.
    assert!(host(0, "nvidia_driver") >= launches * SPIN_NS, "rank 0: {}", r["per_rank"][0]["host_ns"]);
    // Rank 1 ran none, and charged rank 0's mean for each launch (and each memset, which costs a launch): at
    // least 40 µs each, against the 2 µs of the dgx-h100 preset.
    assert_eq!(host(1, "nvidia_driver"), 0);
    assert!(host(1, "call_costs") >= launches * SPIN_NS, "rank 1: {}", r["per_rank"][1]["host_ns"]);
    assert!(host(1, "call_costs") < 100 * launches * SPIN_NS, "rank 1: {}", r["per_rank"][1]["host_ns"]);
    // The program's cudaStreamSynchronize and its two blocking cudaMemcpy each wait in cuStreamSynchronize on
    // rank 0: 3 × 30 ms of busy-waiting, of which the thread's CPU time is a little less (all of it on an idle
    // machine; a loaded one may preempt the thread, so the bound is one wait's worth); none of it is Phantom's
    // own. Rank 1 waits for no real GPU.
    assert!(host(0, "real_gpu_wait") >= SYNC_NS, "rank 0: {}", r["per_rank"][0]["host_ns"]);
    assert!(host(0, "phantom") < SYNC_NS, "rank 0: {}", r["per_rank"][0]["host_ns"]);
    assert_eq!(host(1, "real_gpu_wait"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A table that profiling mode recorded on a real H100 (calibration/profiling/h100-sxm-80gb/: the table, and the
/// output of the same program profiled there in deterministic host time, `calibration/profiling/device-run.sh`)
/// replays on this CPU-only machine: every printed time equals the profiled run's within 1 % (in fact exactly:
/// the printed resolution is 0.1 µs and both runs give every launch the same duration).
#[test]
fn a_table_recorded_on_an_h100_replays_its_profiled_times() {
    let dir = phantom_tests::workspace_root().join("calibration/profiling/h100-sxm-80gb");
    let log = std::fs::read_to_string(dir.join("profile_kernels.txt")).expect("the H100 run's output");
    let section = log
        .split("== ")
        .find(|s| s.starts_with("Phantom profiling, deterministic host time"))
        .expect("the deterministic profiling run in profile_kernels.txt");
    let profiled: BTreeMap<&str, f64> = section
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k, v.trim().parse::<f64>().ok()?)))
        .collect();
    let mut cmd = Command::new(exe());
    phantom_env(&mut cmd);
    cmd.env("PHANTOM_CLUSTER", "dgx-h100").env("PHANTOM_KERNEL_TABLE", dir.join("profile_kernels.table"));
    let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
    out.assert_clean_success();
    for key in timing_keys() {
        let want = profiled[key.as_str()];
        let got: f64 = out.value(&key).parse().unwrap();
        assert!((got - want).abs() <= 0.01 * want, "{key}: replay {got} ms, profiled on the H100 {want} ms");
        assert_eq!(got, want, "{key}");
    }
    assert_eq!(out.value("roundtrip_ok"), "0", "no real memory without profiling");
}

/// Phantom's runtime interposes `dlopen` (to route an executing process's `libcuda.so.1`), which must not change
/// where anything else is found: glibc searches the *calling* library's RUNPATH, so a library that dlopens a
/// dependency found only through its own `$ORIGIN` RUNPATH still finds it with the runtime preloaded.
#[test]
fn the_interposed_dlopen_keeps_the_callers_search_path() {
    let src = phantom_tests::workspace_root().join("tests/programs/runpath");
    let dir = tempdir("runpath");
    std::fs::create_dir_all(dir.join("dep")).unwrap();
    let cc = |args: &[&str]| {
        let mut cmd = Command::new("cc");
        cmd.args(args).current_dir(&dir);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        assert!(out.success(), "cc {args:?}: {}", out.describe());
    };
    let s = |f: &str| src.join(f).display().to_string();
    cc(&["-shared", "-fPIC", "-o", "dep/libphantom_runpath_dep.so", &s("dep.c")]);
    cc(&["-shared", "-fPIC", "-o", "libphantom_runpath_caller.so", &s("caller.c"), "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/dep"]);
    cc(&["-o", "main", &s("main.c"), "-L.", "-lphantom_runpath_caller", "-Wl,-rpath,$ORIGIN"]);
    for preload in [None, Some(lib_dir().join("libcudart.so.13"))] {
        let mut cmd = Command::new(dir.join("main"));
        if let Some(p) = &preload {
            cmd.env("LD_PRELOAD", p);
        }
        let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
        assert!(out.success(), "preload {preload:?}: {}", out.describe());
        assert_eq!(out.stdout.trim(), "dlopen=ok", "preload {preload:?}");
    }
}
