//! Profiling mode (docs/profiling.md; DESIGN.md decision 7, source (a)).
//!
//! `PHANTOM_PROFILE=execute`: this process's GPU work runs on the machine's real GPU through NVIDIA's driver
//! (`phantom_real_gpu`). Device memory is real (the simulated address ranges are reserved on the real GPU and
//! backed page by page as allocations touch them), kernels from the program's fat binaries really run, copies
//! and memsets really move data, and each distinct kernel configuration is timed on the GPU behind a gate
//! (`phantom_real_gpu::gate`) at its first two launches, then refined by samples taken in the running stream
//! (`phantom_real_gpu::running`). That time becomes the kernel's simulated duration, is published to the
//! simulator for the other ranks, and is written at exit as a kernel-time table (`PHANTOM_PROFILE_TABLE`).
//! Capacity is still accounted against the simulated GPU.
//!
//! `PHANTOM_PROFILE=follow`: this process simulates as usual, but a kernel configuration's time comes from the
//! executing processes' measurements (asked of the simulator, which waits for them), before any table or model.

use crate::export::CudaResult;
use crate::stream::Stream;
use dashmap::DashMap;
use once_cell::sync::Lazy;
use rustc_hash::FxBuildHasher;
use phantom_cuda_sys::cudaError;
use phantom_real_gpu::driver::{
    CUdeviceptr, CUevent, CUfunction, CUmemAccessDesc, CUmemAllocationProp, CUmemGenericAllocationHandle, CUmemLocation,
    CUmodule, CUstream, Driver, CU_EVENT_DISABLE_TIMING, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
    CU_MEM_ACCESS_FLAGS_PROT_READWRITE, CU_MEM_ALLOCATION_TYPE_PINNED, CU_MEM_LOCATION_TYPE_DEVICE, CU_STREAM_LEGACY,
    CU_STREAM_NON_BLOCKING, CU_STREAM_PER_THREAD,
};
use phantom_real_gpu::gate::Gate;
use phantom_real_gpu::running::Running;
use sim_core::ktable::{KernelKey, KernelTable};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What this process does in profiling mode (`PHANTOM_PROFILE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No profiling: tables and the model time kernels.
    Off,
    /// Run on the real GPU and measure.
    Execute,
    /// Take the executing processes' measurements.
    Follow,
}

/// `PHANTOM_PROFILE`: `execute` (or `1`, `on`), `follow`, or unset / `off` / `0`.
pub fn parse_mode(v: Option<&str>) -> Result<Mode, String> {
    match v.map(str::trim).unwrap_or("") {
        "" | "0" | "off" => Ok(Mode::Off),
        "1" | "on" | "execute" => Ok(Mode::Execute),
        "follow" => Ok(Mode::Follow),
        other => Err(format!("PHANTOM_PROFILE={other}: expected execute, follow or off")),
    }
}

pub fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| {
        parse_mode(std::env::var("PHANTOM_PROFILE").ok().as_deref()).unwrap_or_else(|e| {
            tracing::error!("phantom: {e}; profiling is off");
            Mode::Off
        })
    })
}

/// How many gated measurements a configuration gets; the smallest is kept. A configuration's first run is
/// often slower than later ones (its code and data are cold, its memory freshly mapped), so the figure is
/// refined once, at the next launch.
pub const SAMPLES: u32 = 2;

/// Running samples kept at most (`PHANTOM_PROFILE_RUNNING_SAMPLES` is capped at this).
pub const MAX_RUNNING: usize = 9;

/// How many running samples (docs/profiling.md, "Running samples") replace a configuration's gated figure
/// with their median (`PHANTOM_PROFILE_RUNNING_SAMPLES`, default 5; 0 keeps the gated figures).
pub fn running_samples() -> u32 {
    static N: OnceLock<u32> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("PHANTOM_PROFILE_RUNNING_SAMPLES").ok().and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(5).min(MAX_RUNNING as u32)
    })
}

/// Launches and library calls, since the last gated measurement, before the GPU counts as running the
/// program's steady work and running samples are taken (`PHANTOM_PROFILE_QUIET_LAUNCHES`, default 256).
pub fn quiet_launches() -> u64 {
    static N: OnceLock<u64> = OnceLock::new();
    *N.get_or_init(|| std::env::var("PHANTOM_PROFILE_QUIET_LAUNCHES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(256))
}

/// A configuration launched this many times after its gated measurements without getting all its running
/// samples settles on those it has (their median), or on its gated figure if it has none.
pub const RUNNING_GIVE_UP: u32 = 256;

/// What is known of one configuration's duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fig {
    pub ns: u64,
    /// Covered gated measurements behind `ns` (0: only a measurement that includes host time: `Gate`).
    pub samples: u32,
    /// The running phase that follows the gated measurements.
    pub running: RunningFig,
}

/// Running samples of one configuration (docs/profiling.md, "Running samples").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RunningFig {
    /// Covered running samples so far, in ns (the first `n`).
    pub ns: [u64; MAX_RUNNING],
    pub n: u32,
    /// Launches since the gated measurements.
    pub launches: u32,
    /// No more samples will change the figure: it is the running samples' median, or the gated figure.
    pub done: bool,
}

impl Fig {
    /// A figure of `samples` gated measurements and no running samples yet.
    pub fn gated(ns: u64, samples: u32) -> Fig {
        Fig { ns, samples, running: RunningFig { done: samples >= SAMPLES && running_samples() == 0, ..Default::default() } }
    }

    /// Its gated measurements are done (the running phase has begun).
    pub fn measured(&self) -> bool {
        self.samples >= SAMPLES
    }

    /// No more measurements will change it.
    pub fn settled(&self) -> bool {
        self.measured() && self.running.done
    }

    /// Every covered measurement behind the figure.
    pub fn count(&self) -> u32 {
        if self.running.done && self.running.n > 0 {
            self.running.n
        } else {
            self.samples
        }
    }

    /// This figure after one more gated measurement.
    pub fn with(old: Option<Fig>, m: phantom_real_gpu::gate::Measured) -> Fig {
        match (old, m.covered) {
            (Some(f), true) if f.samples > 0 => Fig::gated(f.ns.min(m.ns), f.samples + 1),
            (_, true) => Fig::gated(m.ns, 1),
            (Some(f), false) => f,
            (None, false) => Fig::gated(m.ns, 0),
        }
    }

    /// This figure after one more launch in its running phase: [`RUNNING_GIVE_UP`] launches settle it with
    /// the running samples it has (their median), or with its gated figure if it has none.
    fn launched(mut self) -> Fig {
        self.running.launches = self.running.launches.saturating_add(1);
        if self.running.launches >= RUNNING_GIVE_UP && !self.running.done {
            self.finish();
        }
        self
    }

    /// This figure after one more covered running sample of `ns`: the samples' median once there are
    /// [`running_samples`] of them.
    fn sampled(mut self, ns: u64) -> Fig {
        if self.running.done {
            return self;
        }
        let r = &mut self.running;
        r.ns[r.n as usize] = ns;
        r.n += 1;
        if r.n >= running_samples() {
            self.finish();
        }
        self
    }

    fn finish(&mut self) {
        let r = &mut self.running;
        if r.n > 0 {
            let mut v = r.ns[..r.n as usize].to_vec();
            v.sort_unstable();
            self.ns = v[v.len() / 2];
        }
        r.done = true;
    }
}

/// Durations by key: an executing process's own measurements, or the settled figures a following process
/// received from the simulator (and, apart, its latest unsettled answers).
pub struct Figures<K: std::hash::Hash + Eq> {
    figs: Lazy<DashMap<K, Fig, FxBuildHasher>>,
    /// Following process: the latest unsettled answer of each key and how often it was used.
    answers: Lazy<DashMap<K, (u64, u32), FxBuildHasher>>,
}

/// A following process asks the simulator again about a key whose answer was unsettled after this many uses.
pub const ASK_AGAIN_EVERY: u32 = 16;

impl<K: std::hash::Hash + Eq + Clone> Figures<K> {
    const fn new() -> Self {
        Figures { figs: Lazy::new(|| DashMap::with_hasher(FxBuildHasher)), answers: Lazy::new(|| DashMap::with_hasher(FxBuildHasher)) }
    }
    pub fn get(&self, k: &K) -> Option<Fig> {
        self.figs.get(k).map(|f| *f)
    }
    /// Changes the entry of `k` by `f` under its lock: (before, after); nothing for a key without one.
    fn change(&self, k: &K, f: impl FnOnce(Fig) -> Fig) -> Option<(Fig, Fig)> {
        let mut e = self.figs.get_mut(k)?;
        let before = *e;
        *e = f(before);
        Some((before, *e))
    }
    /// Adds a gated measurement under the entry's lock, so that two threads measuring the same configuration at
    /// once both count.
    fn record(&self, k: &K, m: phantom_real_gpu::gate::Measured) -> Fig {
        use dashmap::mapref::entry::Entry;
        match self.figs.entry(k.clone()) {
            Entry::Occupied(mut o) => {
                let f = Fig::with(Some(*o.get()), m);
                o.insert(f);
                f
            }
            Entry::Vacant(v) => *v.insert(Fig::with(None, m)),
        }
    }
    fn settle(&self, k: &K, ns: u64) {
        let mut f = Fig::gated(ns, SAMPLES);
        f.running.done = true;
        self.figs.insert(k.clone(), f);
        self.answers.remove(k);
    }
    /// Following process: the latest unsettled answer for `k`, unless it is time to ask again.
    fn unsettled_answer(&self, k: &K) -> Option<u64> {
        let mut e = self.answers.get_mut(k)?;
        e.1 += 1;
        (!e.1.is_multiple_of(ASK_AGAIN_EVERY)).then_some(e.0)
    }
    fn keep_answer(&self, k: &K, ns: u64) {
        self.answers.insert(k.clone(), (ns, 0));
    }
    fn each(&self, mut f: impl FnMut(&K, Fig)) {
        for e in self.figs.iter() {
            f(e.key(), *e.value());
        }
    }
}

/// Kernel configurations measured on the real GPU.
static KERNELS: Figures<KernelKey> = Figures::new();
/// Library calls measured on the real GPU, by their library-defined key (`RuntimeTable::run_call`).
static CALLS: Figures<String> = Figures::new();

/// The simulator's text for a library call.
pub fn canonical_call(key: &str) -> String {
    format!("call\t{key}")
}

/// A profiled duration: this process's own figure, else (following) the simulator's answer, which may wait
/// for an executing process. Returns the duration and whether it is settled (an unsettled one may change
/// at a later launch: callers must not cache it). Only settled answers are kept.
fn profiled<K: std::hash::Hash + Eq + Clone>(rt: &crate::runtime::Runtime, figs: &Figures<K>, key: &K, text: impl FnOnce() -> String) -> Option<(u64, bool)> {
    if let Some(f) = figs.get(key) {
        return Some((f.ns, f.settled()));
    }
    if mode() != Mode::Follow {
        return None;
    }
    // An executing process refines a figure with running samples after publishing it: a following process
    // uses an unsettled answer for a while, then asks again.
    if let Some(ns) = figs.unsettled_answer(key) {
        return Some((ns, false));
    }
    let (ns, settled) = crate::net::lookup_measurement(rt, &text())?;
    if settled {
        figs.settle(key, ns);
    } else {
        figs.keep_answer(key, ns);
    }
    Some((ns, settled))
}

/// The duration of library call `key` and its source (`shim_abi::SOURCE_*`): profiling (own measurement, or a
/// following process's answer from the simulator), else a kernel-time table's `call` record.
pub fn call_time(rt: &crate::runtime::Runtime, key: &str) -> Option<(u64, u32)> {
    use sim_core::shim_abi::{SOURCE_PROFILED, SOURCE_TABLE};
    if let Some((ns, _)) = profiled(rt, &CALLS, &key.to_string(), || canonical_call(key)) {
        return Some((ns, SOURCE_PROFILED));
    }
    rt.kernels.lookup_call(key).map(|d| (d.as_nanos(), SOURCE_TABLE))
}

/// The simulator's text for a kernel configuration (`ToSim::Measured`, `ToSim::Lookup`): the table's key
/// fields, with the name in its normalised spelling.
pub fn canonical(key: &KernelKey) -> String {
    let d = |v: [u32; 3]| format!("{},{},{}", v[0], v[1], v[2]);
    format!(
        "kernel\t{}\t{}\t{}\t{}",
        sim_core::ktable::normalize_name(&key.name),
        d(key.grid),
        d(key.block),
        key.shared_mem_bytes
    )
}

/// The measured duration of `key`, if profiling has one (see [`profiled`]): (ns, settled). `None` leaves the
/// launch to the kernel tables and the model.
pub fn measured(rt: &crate::runtime::Runtime, key: &KernelKey) -> Option<(u64, bool)> {
    profiled(rt, &KERNELS, key, || canonical(key))
}

/// The simulator's key under which an executing process publishes the host cost of a launch (docs/profiling.md,
/// "Host time of following ranks").
pub const HOST_LAUNCH_KEY: &str = "host\tlaunch";

/// How many launches an executing process times before it publishes their mean host cost
/// (`PHANTOM_PROFILE_HOST_SAMPLES`, default 64); it publishes the mean so far again every
/// [`HOST_REFRESH_CALLS`] launches after that.
fn host_samples() -> u64 {
    static N: OnceLock<u64> = OnceLock::new();
    *N.get_or_init(|| std::env::var("PHANTOM_PROFILE_HOST_SAMPLES").ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(64))
}

/// Launches (or library exports) between two publications of a host figure, and between two questions of a
/// following process.
pub const HOST_REFRESH_CALLS: u64 = 4096;

/// Uses between two questions of a following process that knows no host figure yet.
pub const HOST_ASK_UNKNOWN_CALLS: u64 = 16;

/// The simulator's key under which an executing process publishes NVIDIA's mean host time per library export.
pub const HOST_LIBRARY_KEY: &str = "host\tlibrary";

/// A host cost that an executing process measures and publishes for the following ones (docs/profiling.md,
/// "Host time of following ranks"): its simulator key, and a following process's latest answer.
struct HostFigure {
    key: &'static str,
    /// What is costed, for the log line.
    what: &'static str,
    /// Uses of the figure in this (following) process, and its latest value (0: none yet).
    asked: AtomicU64,
    known: AtomicU64,
    /// Executing process: the sample count at the latest publication (0: none yet).
    published_at: AtomicU64,
}

impl HostFigure {
    const fn new(key: &'static str, what: &'static str) -> Self {
        HostFigure { key, what, asked: AtomicU64::new(0), known: AtomicU64::new(0), published_at: AtomicU64::new(0) }
    }

    /// Executing process in measured host time, with `n` samples so far: publishes `mean` after the first
    /// [`host_samples`] and every [`HOST_REFRESH_CALLS`] after that.
    fn publish_if_due(&self, rt: &crate::runtime::Runtime, n: u64, mean: u64) {
        if mode() != Mode::Execute || crate::clock::mode() != sim_core::config::HostTimeMode::Measured {
            return;
        }
        // At least, not exactly, so many: the count can pass a threshold where nothing publishes (before the
        // runtime is up, or on another thread).
        let last = self.published_at.load(Ordering::Relaxed);
        if publication_due(last, n) && self.published_at.compare_exchange(last, n, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            crate::net::publish_measurement(rt, self.key.to_string(), mean, true);
        }
    }

    /// Following process in measured host time: the latest figure (`None` before an executing process has
    /// published one, and elsewhere). Asked at the first use, which may wait for the executing process's first
    /// samples, and again every [`HOST_REFRESH_CALLS`] uses (a known figure is answered at once); while none is
    /// known (the simulator answers none when the executing processes all wait in it before publishing), every
    /// [`HOST_ASK_UNKNOWN_CALLS`] uses.
    fn latest(&self, rt: &crate::runtime::Runtime) -> Option<u64> {
        if mode() != Mode::Follow || crate::clock::mode() == sim_core::config::HostTimeMode::Deterministic {
            return None;
        }
        let known = self.known.load(Ordering::Relaxed);
        let every = if known == 0 { HOST_ASK_UNKNOWN_CALLS } else { HOST_REFRESH_CALLS };
        if self.asked.fetch_add(1, Ordering::Relaxed).is_multiple_of(every) {
            if let Some((ns, _)) = crate::net::lookup_measurement(rt, self.key).filter(|&(ns, settled)| settled && ns > 0) {
                if known == 0 {
                    tracing::info!("phantom: profiling: {} costs this process's host {ns} ns, as the executing process measured", self.what);
                }
                self.known.store(ns, Ordering::Relaxed);
                return Some(ns);
            }
        }
        (known > 0).then_some(known)
    }
}

/// Whether an executing process with `n` samples publishes its host figure, having last published at `last`
/// samples (0: never): at [`host_samples`], then every [`HOST_REFRESH_CALLS`].
fn publication_due(last: u64, n: u64) -> bool {
    if last == 0 {
        n >= host_samples()
    } else {
        n >= last + HOST_REFRESH_CALLS
    }
}

static LAUNCH_FIGURE: HostFigure = HostFigure::new(HOST_LAUNCH_KEY, "a launch");
static LIBRARY_FIGURE: HostFigure = HostFigure::new(HOST_LIBRARY_KEY, "a library call");

/// Following process in measured host time: what a launch costs the host, as an executing process measured
/// it (the mean of its driver's `cuLaunchKernel` so far, plus `api_call_ns`); `None` where the `[host]` cost
/// applies (see `HostFigure::latest`).
pub fn follower_launch_cost(rt: &crate::runtime::Runtime) -> Option<u64> {
    LAUNCH_FIGURE.latest(rt)
}

/// Executing process, after a library export: publishes NVIDIA's mean host time per export
/// (`clock::library_totals`) when due, for the following processes ([`refresh_follower_library_cost`]).
pub fn after_library_call(rt: &crate::runtime::Runtime) {
    let (sum, n) = crate::clock::library_totals();
    if let Some(mean) = sum.checked_div(n) {
        LIBRARY_FIGURE.publish_if_due(rt, n, mean);
    }
}

/// Following process in measured host time, entering a library export: once an executing process has
/// published what an export costs its host, this process charges that per export in place of the stub's own
/// CPU time (`clock::set_follower_library_cost`).
pub fn refresh_follower_library_cost(rt: &crate::runtime::Runtime) {
    if let Some(ns) = LIBRARY_FIGURE.latest(rt) {
        crate::clock::set_follower_library_cost(ns);
    }
}

/// What a running sample timed.
enum Sampled {
    Kernel(KernelKey),
    /// A library call, by its key.
    Call(String),
}

/// The real GPU of an executing process.
pub struct Exec {
    pub driver: Driver,
    gate: Gate,
    /// Loaded modules by fat binary image address.
    modules: DashMap<usize, usize, FxBuildHasher>,
    /// Kernel functions by host stub address: (CUfunction, dynamic shared memory limit set on it).
    functions: DashMap<usize, (usize, u32), FxBuildHasher>,
    /// Mapped 2 MiB pages of device memory: page address → (allocation handle, allocations touching it).
    pages: Mutex<HashMap<u64, (CUmemGenericAllocationHandle, u32)>>,
    /// Launches that really ran (the gate kernel not included).
    pub real_launches: AtomicU64,
    /// Library calls that really ran.
    pub library_calls: AtomicU64,
    /// Host (wall) time the driver's `cuLaunchKernel` took, and in how many launches: what a launch costs the
    /// host on this machine (reported in the statistics, and charged in measured host time: docs/time.md).
    /// Launches over [`BLOCKED_LAUNCH_NS`] (the driver waited for room in its queue) are counted apart.
    pub launch_host_ns: AtomicU64,
    pub launch_host_count: AtomicU64,
    pub launch_blocked: AtomicU64,
    /// Kernel configurations and library calls measured.
    pub measurements: AtomicU64,
    /// Running samples in flight (docs/profiling.md, "Running samples").
    running: Running<Sampled>,
    /// Launches and library calls since the last gated measurement ([`quiet_launches`]).
    ungated: AtomicU64,
    /// Figures that running samples replaced, with the sums of their gated and running figures (ns).
    pub refined: AtomicU64,
    pub refined_gated_ns: AtomicU64,
    pub refined_ns: AtomicU64,
    /// Bytes of device memory mapped now, and at most.
    pub mapped_bytes: AtomicU64,
    pub mapped_peak: AtomicU64,
}

/// A plain launch that took the host longer than this waited for room in the driver's queue.
pub const BLOCKED_LAUNCH_NS: u64 = 50_000;

/// Granule of real device memory (the driver's allocation granularity on current GPUs).
pub const PAGE: u64 = 2 << 20;

static EXEC: OnceLock<Result<Exec, String>> = OnceLock::new();

thread_local! {
    static CONTEXT_SET: Cell<bool> = const { Cell::new(false) };
}

/// Opens the real GPU when this process executes (called once by runtime initialisation): `Err` with the
/// reason when profiling was asked for and the GPU cannot be used.
pub fn init() -> Result<(), String> {
    if mode() != Mode::Execute {
        return Ok(());
    }
    EXEC.get_or_init(|| {
        let path = phantom_real_gpu::driver::driver_path(std::env::var(phantom_real_gpu::driver::DRIVER_ENV).ok().as_deref())?;
        let driver = Driver::open(&path)?;
        let gate = Gate::new(&driver)?;
        // Wake the GPU's clocks before the first measurement.
        gate.spin(&driver, CU_STREAM_LEGACY, 100_000_000)?;
        driver.check(unsafe { (driver.f.cuCtxSynchronize)() }, "cuCtxSynchronize")?;
        CONTEXT_SET.with(|c| c.set(true));
        crate::clock::set_executing();
        tracing::info!(
            "phantom: profiling on {} ({}); an isolated launch costs the GPU {} ns more than one in a busy stream",
            driver.name,
            path.display(),
            gate.overhead_ns
        );
        unsafe { libc::atexit(write_table_at_exit) };
        Ok(Exec {
            driver,
            gate,
            modules: DashMap::with_hasher(FxBuildHasher),
            functions: DashMap::with_hasher(FxBuildHasher),
            pages: Mutex::new(HashMap::new()),
            real_launches: AtomicU64::new(0),
            library_calls: AtomicU64::new(0),
            launch_host_ns: AtomicU64::new(0),
            launch_host_count: AtomicU64::new(0),
            launch_blocked: AtomicU64::new(0),
            measurements: AtomicU64::new(0),
            running: Running::default(),
            ungated: AtomicU64::new(0),
            refined: AtomicU64::new(0),
            refined_gated_ns: AtomicU64::new(0),
            refined_ns: AtomicU64::new(0),
            mapped_bytes: AtomicU64::new(0),
            mapped_peak: AtomicU64::new(0),
        })
    })
    .as_ref()
    .map(|_| ())
    .map_err(Clone::clone)
}

/// The real GPU, with its context current on the calling thread; `None` unless this process executes.
pub fn gpu() -> Option<&'static Exec> {
    let x = EXEC.get()?.as_ref().ok()?;
    if !CONTEXT_SET.with(|c| c.replace(true)) {
        if let Err(e) = x.driver.make_current() {
            tracing::error!("phantom: {e}");
        }
    }
    Some(x)
}

/// A driver failure as the runtime reports it: logged with what failed, returned as a CUDA error.
fn fail(e: String) -> cudaError {
    tracing::error!("phantom: the real GPU: {e}");
    if e.contains("out of memory") {
        cudaError::cudaErrorMemoryAllocation
    } else {
        cudaError::cudaErrorLaunchFailure
    }
}

impl Exec {
    fn check(&self, rc: i32, what: &str) -> CudaResult<()> {
        self.driver.check(rc, what).map_err(fail)
    }

    // ---- memory ------------------------------------------------------------------------------------------

    /// Reserves `len` bytes of the real GPU's address space (the simulated device's address range).
    pub fn reserve(&self, len: u64) -> Result<u64, String> {
        let mut p: CUdeviceptr = 0;
        self.driver.check(unsafe { (self.driver.f.cuMemAddressReserve)(&mut p, len as usize, PAGE as usize, 0, 0) }, "cuMemAddressReserve")?;
        Ok(p)
    }

    /// Backs `[addr, addr + len)` with real memory: maps every page it touches that is not mapped yet.
    pub fn back(&self, addr: u64, len: u64) -> CudaResult<()> {
        let f = &self.driver.f;
        let prop = CUmemAllocationProp {
            type_: CU_MEM_ALLOCATION_TYPE_PINNED,
            requested_handle_types: 0,
            location: CUmemLocation { type_: CU_MEM_LOCATION_TYPE_DEVICE, id: self.driver.device },
            win32_handle_meta_data: std::ptr::null_mut(),
            compression_type: 0,
            gpu_direct_rdma_capable: 0,
            usage: 0,
            reserved: [0; 4],
        };
        let access = CUmemAccessDesc { location: prop.location, flags: CU_MEM_ACCESS_FLAGS_PROT_READWRITE };
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let first = addr / PAGE * PAGE;
        let mut done = Vec::new();
        let mut page = first;
        while page < addr + len.max(1) {
            if let Some(p) = pages.get_mut(&page) {
                p.1 += 1;
            } else {
                let mut h: CUmemGenericAllocationHandle = 0;
                let r = self
                    .check(unsafe { (f.cuMemCreate)(&mut h, PAGE as usize, &prop, 0) }, "cuMemCreate")
                    .and_then(|_| self.check(unsafe { (f.cuMemMap)(page, PAGE as usize, 0, h, 0) }, "cuMemMap"))
                    .and_then(|_| self.check(unsafe { (f.cuMemSetAccess)(page, PAGE as usize, &access, 1) }, "cuMemSetAccess"));
                if let Err(e) = r {
                    drop(pages);
                    // Undo what this call did.
                    for p in done {
                        self.release_page(p);
                    }
                    return Err(e);
                }
                pages.insert(page, (h, 1));
                let now = self.mapped_bytes.fetch_add(PAGE, Ordering::Relaxed) + PAGE;
                self.mapped_peak.fetch_max(now, Ordering::Relaxed);
            }
            done.push(page);
            page += PAGE;
        }
        Ok(())
    }

    /// Gives back what [`Exec::back`] took for `[addr, addr + len)`: pages no allocation touches any more are
    /// unmapped, after the GPU has finished with them.
    pub fn unback(&self, addr: u64, len: u64) {
        let _ = crate::clock::real_gpu_wait(|| unsafe { (self.driver.f.cuCtxSynchronize)() });
        let mut page = addr / PAGE * PAGE;
        while page < addr + len.max(1) {
            self.release_page(page);
            page += PAGE;
        }
    }

    fn release_page(&self, page: u64) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pages.get_mut(&page) else { return };
        p.1 -= 1;
        if p.1 > 0 {
            return;
        }
        let (h, _) = pages.remove(&page).expect("present");
        let f = &self.driver.f;
        if let Err(e) = self.check(unsafe { (f.cuMemUnmap)(page, PAGE as usize) }, "cuMemUnmap") {
            let _ = e;
        }
        let _ = unsafe { (f.cuMemRelease)(h) };
        self.mapped_bytes.fetch_sub(PAGE, Ordering::Relaxed);
    }

    // ---- streams and events -----------------------------------------------------------------------------

    /// The real stream behind a Phantom stream (created on first use).
    pub fn stream(&self, s: &Stream) -> CudaResult<CUstream> {
        use crate::stream::StreamKind;
        match s.kind {
            StreamKind::Legacy => return Ok(CU_STREAM_LEGACY),
            StreamKind::PerThread => return Ok(CU_STREAM_PER_THREAD),
            StreamKind::User => {}
        }
        if let Some(&h) = s.real.get() {
            return Ok(h as CUstream);
        }
        let mut h: CUstream = std::ptr::null_mut();
        let flags = if s.is_blocking() { 0 } else { CU_STREAM_NON_BLOCKING };
        self.check(unsafe { (self.driver.f.cuStreamCreate)(&mut h, flags) }, "cuStreamCreate")?;
        if s.real.set(h as usize).is_err() {
            // Another thread created one first: keep theirs.
            let _ = unsafe { (self.driver.f.cuStreamDestroy)(h) };
        }
        Ok(*s.real.get().expect("set") as CUstream)
    }

    pub fn destroy_stream(&self, s: &Stream) {
        if let Some(&h) = s.real.get() {
            let _ = unsafe { (self.driver.f.cuStreamDestroy)(h as CUstream) };
        }
    }

    pub fn synchronize_stream(&self, s: &Stream) -> CudaResult<()> {
        let h = self.stream(s)?;
        self.wait_stream(h)
    }

    /// Waits in NVIDIA's driver for the work queued on the real stream `h` (the CPU time that takes is the real
    /// GPU's, `clock::real_gpu_wait`).
    fn wait_stream(&self, h: CUstream) -> CudaResult<()> {
        self.check(crate::clock::real_gpu_wait(|| unsafe { (self.driver.f.cuStreamSynchronize)(h) }), "cuStreamSynchronize")
    }

    pub fn synchronize(&self) -> CudaResult<()> {
        self.check(crate::clock::real_gpu_wait(|| unsafe { (self.driver.f.cuCtxSynchronize)() }), "cuCtxSynchronize")
    }

    /// Records the real event behind `real` (created on first use) on `s`'s real stream.
    pub fn record(&self, real: &OnceLock<usize>, s: &Stream) -> CudaResult<()> {
        let e = match real.get() {
            Some(&e) => e as CUevent,
            None => {
                let mut e: CUevent = std::ptr::null_mut();
                self.check(unsafe { (self.driver.f.cuEventCreate)(&mut e, CU_EVENT_DISABLE_TIMING) }, "cuEventCreate")?;
                if real.set(e as usize).is_err() {
                    let _ = unsafe { (self.driver.f.cuEventDestroy)(e) };
                }
                *real.get().expect("set") as CUevent
            }
        };
        let h = self.stream(s)?;
        self.check(timed(|| unsafe { (self.driver.f.cuEventRecord)(e, h) }), "cuEventRecord")
    }

    /// Makes `s`'s real stream wait for the last real record of an event (nothing if it was never recorded).
    pub fn wait(&self, real: &OnceLock<usize>, s: &Stream) -> CudaResult<()> {
        let Some(&e) = real.get() else { return Ok(()) };
        let h = self.stream(s)?;
        self.check(timed(|| unsafe { (self.driver.f.cuStreamWaitEvent)(h, e as CUevent, 0) }), "cuStreamWaitEvent")
    }

    pub fn destroy_event(&self, real: &OnceLock<usize>) {
        if let Some(&e) = real.get() {
            let _ = unsafe { (self.driver.f.cuEventDestroy)(e as CUevent) };
        }
    }

    // ---- copies -------------------------------------------------------------------------------------------

    /// Copies `bytes` from `src` to `dst` (any of them device memory) on `s`'s real stream; with `wait`, the
    /// host continues once the data has arrived.
    pub fn copy(&self, s: &Stream, dst: u64, src: u64, bytes: u64, wait: bool) -> CudaResult<()> {
        let h = self.stream(s)?;
        self.check(unsafe { (self.driver.f.cuMemcpyAsync)(dst, src, bytes as usize, h) }, "cuMemcpyAsync")?;
        if wait {
            self.wait_stream(h)?;
        }
        Ok(())
    }

    pub fn memset(&self, s: &Stream, dst: u64, value: u8, bytes: u64) -> CudaResult<()> {
        let h = self.stream(s)?;
        self.check(timed(|| unsafe { (self.driver.f.cuMemsetD8Async)(dst, value, bytes as usize, h) }), "cuMemsetD8Async")
    }

    /// Reads device memory (the data of a small communication operation), after all queued work.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> CudaResult<()> {
        self.synchronize()?;
        let h = CU_STREAM_LEGACY;
        self.check(unsafe { (self.driver.f.cuMemcpyAsync)(out.as_mut_ptr() as u64, addr, out.len(), h) }, "cuMemcpyAsync")?;
        self.wait_stream(h)
    }

    /// Writes device memory (what a small communication operation received), after all queued work.
    pub fn write(&self, addr: u64, data: &[u8]) -> CudaResult<()> {
        self.synchronize()?;
        let h = CU_STREAM_LEGACY;
        self.check(unsafe { (self.driver.f.cuMemcpyAsync)(addr, data.as_ptr() as u64, data.len(), h) }, "cuMemcpyAsync")?;
        self.wait_stream(h)
    }

    // ---- kernels ------------------------------------------------------------------------------------------

    /// The real function of a registered kernel, loading its fat binary on first use.
    fn function(&self, host_fun: usize, info: &crate::launch::KernelInfo, shared: u32) -> CudaResult<CUfunction> {
        let f = &self.driver.f;
        let (func, limit) = match self.functions.get(&host_fun).map(|r| *r) {
            Some(v) => v,
            None => {
                if info.image == 0 {
                    tracing::error!("phantom: kernel {} has no fat binary to run on the real GPU", info.name);
                    return Err(cudaError::cudaErrorInvalidDeviceFunction);
                }
                let module = match self.modules.get(&info.image).map(|r| *r) {
                    Some(m) => m,
                    None => {
                        let mut m: CUmodule = std::ptr::null_mut();
                        self.check(unsafe { (f.cuModuleLoadData)(&mut m, info.image as *const c_void) }, "cuModuleLoadData")?;
                        *self.modules.entry(info.image).or_insert(m as usize)
                    }
                };
                let name = CString::new(info.mangled.as_str()).map_err(|_| cudaError::cudaErrorInvalidDeviceFunction)?;
                let mut func: CUfunction = std::ptr::null_mut();
                self.check(
                    unsafe { (f.cuModuleGetFunction)(&mut func, module as CUmodule, name.as_ptr()) },
                    &format!("cuModuleGetFunction({})", info.mangled),
                )?;
                // Lazy loading would otherwise load the function at its first launch, inside the measurement.
                self.check(unsafe { (f.cuFuncLoad)(func) }, &format!("cuFuncLoad({})", info.mangled))?;
                self.functions.insert(host_fun, (func as usize, 0));
                (func as usize, 0)
            }
        };
        // More than 48 KiB of dynamic shared memory needs the limit raised, as cudaFuncSetAttribute did.
        let want = info.max_dynamic_shared.max(shared);
        if want > limit && want > 48 << 10 {
            self.check(
                unsafe { (f.cuFuncSetAttribute)(func as CUfunction, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, want as i32) },
                "cuFuncSetAttribute",
            )?;
            self.functions.insert(host_fun, (func, want));
        }
        Ok(func as CUfunction)
    }

    /// Runs a launch on the real GPU; the first launches of each configuration are measured (behind the gate)
    /// and the figure kept and published.
    ///
    /// # Safety
    /// `args` is what the application passed to the launch: the kernel's parameter array, or null.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn launch(
        &self,
        rt: &crate::runtime::Runtime,
        s: &Stream,
        host_fun: usize,
        info: &crate::launch::KernelInfo,
        real: &crate::launch::RealKey,
        args: *mut *mut c_void,
    ) -> CudaResult<()> {
        let key = &real.key;
        let func = self.function(host_fun, info, key.shared_mem_bytes)?;
        let h = self.stream(s)?;
        let [gx, gy, gz] = key.grid;
        let [bx, by, bz] = key.block;
        let f = &self.driver.f;
        let host_ns = Cell::new(None);
        let run = || {
            let (rc, ns) =
                host_time(|| unsafe { (f.cuLaunchKernel)(func, gx, gy, gz, bx, by, bz, key.shared_mem_bytes, h, args, std::ptr::null_mut()) });
            host_ns.set(ns);
            if rc == 0 {
                Ok(())
            } else {
                self.driver.check(rc, &format!("cuLaunchKernel({})", info.name))
            }
        };
        self.before_work(rt);
        // Once settled, a configuration's figure never changes: the thread remembers it without hashing the name.
        if real.settled.get() {
            run().map_err(fail)?;
        } else {
            match KERNELS.get(key) {
                Some(f) if f.settled() => {
                    real.settled.set(true);
                    run().map_err(fail)?
                }
                Some(f) if f.measured() => {
                    self.run_running(rt, &KERNELS, key, f, h, || Sampled::Kernel(key.clone()), || canonical(key), run).map_err(fail)?;
                }
                _ => {
                    let (m, ()) = self.gated(h, run).map_err(fail)?;
                    self.note(rt, &KERNELS, key, m, &info.name, || canonical(key));
                }
            }
        }
        if let Some(ns) = host_ns.get() {
            self.charge_launch(rt, ns);
        }
        self.real_launches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Charges the host time of one `cuLaunchKernel` (`clock::nvidia_time`). A launch that waited for room in
    /// the driver's queue ([`BLOCKED_LAUNCH_NS`]) is charged the mean of the launches so far instead: the
    /// simulated GPU, not the real one, decides when the simulated host waits.
    ///
    /// In measured host time the mean of the first [`host_samples`] launches, plus `api_call_ns`, is published
    /// for the following processes ([`follower_launch_cost`]).
    fn charge_launch(&self, rt: &crate::runtime::Runtime, ns: u64) {
        if ns > BLOCKED_LAUNCH_NS {
            self.launch_blocked.fetch_add(1, Ordering::Relaxed);
            let mean = self.launch_host_ns.load(Ordering::Relaxed).checked_div(self.launch_host_count.load(Ordering::Relaxed));
            if let Some(mean) = mean {
                crate::clock::nvidia_time(mean);
            }
            // The rest was the real GPU's backlog, not Phantom's work (docs/time.md, "Where host time goes").
            crate::clock::real_gpu_waited(ns.saturating_sub(mean.unwrap_or(0)));
        } else {
            let sum = self.launch_host_ns.fetch_add(ns, Ordering::Relaxed) + ns;
            let n = self.launch_host_count.fetch_add(1, Ordering::Relaxed) + 1;
            crate::clock::nvidia_time(ns);
            LAUNCH_FIGURE.publish_if_due(rt, n, sum / n + rt.config.host.api_call_ns);
        }
    }
}

impl Exec {
    /// Runs a library call's real work on the real GPU (`RuntimeTable::run_call`): measured behind the gate
    /// the first times `key` is seen, then just run. Returns the call's duration in ns.
    ///
    /// # Safety
    /// `run` and `ctx` are what the library passed to `run_call`: `run(ctx, stream)` is safe to call.
    pub unsafe fn run_call(
        &self,
        rt: &crate::runtime::Runtime,
        s: &Stream,
        key: &str,
        run: sim_core::shim_abi::RunCall,
        ctx: *mut c_void,
    ) -> CudaResult<u64> {
        let h = self.stream(s)?;
        // The library's own failure is the library's to report (it logs it and returns its status); the
        // runtime logs only its own and the driver's.
        let library_failed = Cell::new(false);
        let call = || match unsafe { run(ctx, h) } {
            0 => Ok(()),
            status => {
                library_failed.set(true);
                Err(format!("the library call {key} failed with status {status}"))
            }
        };
        let failed = |e: String| if library_failed.get() { cudaError::cudaErrorLaunchFailure } else { fail(e) };
        self.library_calls.fetch_add(1, Ordering::Relaxed);
        self.before_work(rt);
        let k = key.to_string();
        match CALLS.get(&k) {
            Some(f) if f.settled() => {
                call().map_err(failed)?;
                return Ok(f.ns);
            }
            Some(f) if f.measured() => {
                let f = self.run_running(rt, &CALLS, &k, f, h, || Sampled::Call(k.clone()), || canonical_call(key), call).map_err(failed)?;
                return Ok(f.ns);
            }
            _ => {}
        }
        let (m, ()) = self.gated(h, call).map_err(failed)?;
        // Libraries load code on a call's first use, inside the measurement: such a figure is measured again.
        Ok(self.note(rt, &CALLS, &k, m, key, || canonical_call(key)).ns)
    }

    /// Before a launch or library call: counts it towards [`quiet_launches`] (until that many, so that a
    /// steady run's launches only read the counter) and takes in the running samples that have completed.
    fn before_work(&self, rt: &crate::runtime::Runtime) {
        let n = self.ungated.load(Ordering::Relaxed);
        if n < quiet_launches() {
            // Two threads may count one launch: the count only has to get there.
            self.ungated.store(n + 1, Ordering::Relaxed);
        }
        self.collect(rt);
    }

    /// A gated measurement of `work` on `h`; the count towards [`quiet_launches`] starts again.
    fn gated<T>(&self, h: CUstream, work: impl FnOnce() -> Result<T, String>) -> Result<(phantom_real_gpu::gate::Measured, T), String> {
        let r = self.gate.measure(&self.driver, h, work);
        self.ungated.store(0, Ordering::Relaxed);
        r
    }

    /// Runs a launch or library call of a configuration in its running phase (`fig`, as the caller read it):
    /// sampled in the running stream while it needs samples and the GPU runs the program's steady work (no
    /// gated measurement for [`quiet_launches`]), else just run. Returns the configuration's figure for this
    /// launch (a figure that settles here on the samples it has is published as settled).
    #[allow(clippy::too_many_arguments)]
    fn run_running<K: std::hash::Hash + Eq + Clone>(
        &self,
        rt: &crate::runtime::Runtime,
        figs: &Figures<K>,
        key: &K,
        fig: Fig,
        h: CUstream,
        what: impl FnOnce() -> Sampled,
        text: impl FnOnce() -> String,
        run: impl FnOnce() -> Result<(), String>,
    ) -> Result<Fig, String> {
        // `fig` is the entry as the caller read it (entries are never removed).
        let (before, f) = figs.change(key, Fig::launched).unwrap_or((fig, fig));
        if f.settled() {
            self.settled_now(rt, before, f, text);
            run()?;
            return Ok(f);
        }
        if self.ungated.load(Ordering::Relaxed) >= quiet_launches() {
            self.running.sample(&self.driver, h, what(), run)?;
        } else {
            run()?;
        }
        Ok(f)
    }

    /// Takes the running samples whose events have completed into their configurations' figures; a figure
    /// they settle is published (docs/profiling.md, "Running samples").
    fn collect(&self, rt: &crate::runtime::Runtime) {
        if self.running.pending() == 0 {
            return;
        }
        for (what, raw) in self.running.collect(&self.driver) {
            let Some(raw) = raw else { continue };
            let ns = raw.saturating_sub(self.gate.overhead_ns).max(1);
            match what {
                Sampled::Kernel(k) => self.refine(rt, &KERNELS, &k, ns, || canonical(&k)),
                Sampled::Call(k) => self.refine(rt, &CALLS, &k, ns, || canonical_call(&k)),
            }
        }
    }

    fn refine<K: std::hash::Hash + Eq + Clone>(&self, rt: &crate::runtime::Runtime, figs: &Figures<K>, key: &K, ns: u64, text: impl FnOnce() -> String) {
        let Some((before, f)) = figs.change(key, |f| f.sampled(ns)) else { return };
        if f.settled() {
            self.settled_now(rt, before, f, text);
        }
    }

    /// A running phase that ended with `after`: published as settled, and counted when running samples
    /// changed the figure.
    fn settled_now(&self, rt: &crate::runtime::Runtime, before: Fig, after: Fig, text: impl FnOnce() -> String) {
        if before.settled() {
            return;
        }
        if after.running.n > 0 {
            self.refined.fetch_add(1, Ordering::Relaxed);
            self.refined_gated_ns.fetch_add(before.ns, Ordering::Relaxed);
            self.refined_ns.fetch_add(after.ns, Ordering::Relaxed);
        }
        crate::net::publish_measurement(rt, text(), after.ns, true);
    }

    /// Records a measurement of `key` and publishes the figure it gives (a measurement that includes host time
    /// is used for its own launch only, and not published).
    fn note<K: std::hash::Hash + Eq + Clone>(
        &self,
        rt: &crate::runtime::Runtime,
        figs: &Figures<K>,
        key: &K,
        m: phantom_real_gpu::gate::Measured,
        name: &str,
        text: impl FnOnce() -> String,
    ) -> Fig {
        let f = figs.record(key, m);
        if m.covered {
            self.measurements.fetch_add(1, Ordering::Relaxed);
            crate::net::publish_measurement(rt, text(), f.ns, f.settled());
        } else {
            warn_uncovered(name, self.gate.spin_ns());
        }
        // The figure used for this launch: an uncovered measurement stands in until a covered one comes.
        if f.samples == 0 { Fig::gated(m.ns, 0) } else { f }
    }
}

/// Runs a call of NVIDIA's driver that does the work of the current runtime API call (queuing a memset,
/// recording an event) and charges its host time to the calling thread (`clock::nvidia_time`).
fn timed<T>(call: impl FnOnce() -> T) -> T {
    let (r, ns) = host_time(call);
    if let Some(ns) = ns {
        crate::clock::nvidia_time(ns);
    }
    r
}

/// Runs `call`, with the real (wall) time it took, when the monotonic clock could be read.
fn host_time<T>(call: impl FnOnce() -> T) -> (T, Option<u64>) {
    let t0 = crate::interpose::real_monotonic_ns();
    let r = call();
    let ns = t0.zip(crate::interpose::real_monotonic_ns()).map(|(a, b)| b.saturating_sub(a));
    (r, ns)
}

fn warn_uncovered(name: &str, next_spin_ns: u64) {
    static ONCE: AtomicBool = AtomicBool::new(false);
    if !ONCE.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "phantom: profiling: the GPU was idle before {name} was queued, so its measurement includes host time; it is measured again at its next launch, and later gates spin {} µs",
            next_spin_ns / 1000
        );
    }
}

/// What ran on the real GPU, as the JSON object of the statistics file's `real_gpu` field (docs/launcher.md):
/// `None` unless this process executes.
pub fn stats_json() -> Option<String> {
    let x = EXEC.get()?.as_ref().ok()?;
    let device: String = x.driver.name.chars().filter(|c| !matches!(c, '"' | '\\') && !c.is_control()).collect();
    Some(format!(
        "{{\"device\":\"{device}\",\"launches\":{},\"library_calls\":{},\"measurements\":{},\"gate_misses\":{},\"mapped_peak_bytes\":{},\"launch_overhead_ns\":{},\"launch_host_ns\":{},\"launches_blocked\":{},\"refined\":{},\"refined_gated_ns\":{},\"refined_ns\":{}}}",
        x.real_launches.load(Ordering::Relaxed),
        x.library_calls.load(Ordering::Relaxed),
        x.measurements.load(Ordering::Relaxed),
        x.gate.misses.load(Ordering::Relaxed),
        x.mapped_peak.load(Ordering::Relaxed),
        x.gate.overhead_ns,
        x.launch_host_ns.load(Ordering::Relaxed) / x.launch_host_count.load(Ordering::Relaxed).max(1),
        x.launch_blocked.load(Ordering::Relaxed),
        x.refined.load(Ordering::Relaxed),
        x.refined_gated_ns.load(Ordering::Relaxed),
        x.refined_ns.load(Ordering::Relaxed),
    ))
}

/// Which driver an executing process's `dlopen("libcuda.so.1")` gets (the interposed `dlopen`): NVIDIA's
/// libraries (cuBLAS, cuDNN, … from NVIDIA's folders) get NVIDIA's driver, which they run on; every other
/// caller (PyTorch, Python) gets Phantom's, whose answers describe the simulated cluster (PyTorch asks the
/// driver about every simulated device). `None`: not a driver name, let libc open it.
///
/// # Safety
/// `filename` is null or a NUL-terminated string (what `dlopen` was given).
pub unsafe fn redirect_dlopen(filename: *const std::ffi::c_char, flags: i32) -> Option<*mut c_void> {
    if filename.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(filename) }.to_bytes();
    if name != b"libcuda.so.1" && name != b"libcuda.so" {
        return None;
    }
    let real = crate::interpose::real_dlopen()?;
    let caller = caller_file();
    let nvidia = caller.as_deref().is_some_and(is_nvidia_library);
    let path = if nvidia {
        phantom_real_gpu::driver::driver_path(std::env::var(phantom_real_gpu::driver::DRIVER_ENV).ok().as_deref()).ok()?
    } else {
        crate::driver::stub_path()?
    };
    let c = CString::new(path.into_os_string().into_encoded_bytes()).ok()?;
    let flags = if nvidia { flags } else { libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND };
    let h = unsafe { real(c.as_ptr(), flags) };
    (!h.is_null()).then_some(h)
}

/// Whether `path` is one of NVIDIA's libraries (not Phantom's stubs of them, which live beside this runtime).
fn is_nvidia_library(path: &std::path::Path) -> bool {
    const NVIDIA: [&str; 11] = [
        "libcublas", "libcudnn", "libcufft", "libcurand", "libcusolver", "libcusparse", "libnvrtc", "libnvJitLink",
        "libcupti", "libnvidia-", "libcufile",
    ];
    let own_dir = own_file().and_then(|f| f.parent().map(|p| p.to_path_buf()));
    let dir = path.canonicalize().ok().and_then(|p| p.parent().map(|p| p.to_path_buf()));
    if own_dir.is_some() && dir == own_dir {
        return false;
    }
    let base = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    NVIDIA.iter().any(|p| base.starts_with(p))
}

/// The file this runtime was loaded from (symbolic links resolved).
pub fn own_file() -> Option<std::path::PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(own_file as *const c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    std::path::PathBuf::from(unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()).canonicalize().ok()
}

/// The file of the nearest caller outside this runtime (walking the stack with the unwinder).
fn caller_file() -> Option<std::path::PathBuf> {
    extern "C" {
        fn _Unwind_Backtrace(trace: extern "C" fn(*mut c_void, *mut c_void) -> i32, arg: *mut c_void) -> i32;
        fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    }
    struct Walk {
        own: Option<std::path::PathBuf>,
        found: Option<std::path::PathBuf>,
        frames: u32,
    }
    const URC_NO_REASON: i32 = 0;
    const URC_END_OF_STACK: i32 = 5;
    // Called by the C unwinder: nothing may unwind out of it (a panic ends the walk).
    extern "C" fn each(ctx: *mut c_void, arg: *mut c_void) -> i32 {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| frame(ctx, arg))).unwrap_or(URC_END_OF_STACK)
    }
    fn frame(ctx: *mut c_void, arg: *mut c_void) -> i32 {
        let w = unsafe { &mut *(arg as *mut Walk) };
        w.frames += 1;
        if w.frames > 64 {
            return URC_END_OF_STACK;
        }
        let ip = unsafe { _Unwind_GetIP(ctx) };
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        if ip == 0 || unsafe { libc::dladdr(ip as *const c_void, &mut info) } == 0 || info.dli_fname.is_null() {
            return URC_NO_REASON;
        }
        let file = std::path::PathBuf::from(unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned());
        let canon = file.canonicalize().unwrap_or(file);
        if Some(&canon) == w.own.as_ref() {
            return URC_NO_REASON;
        }
        w.found = Some(canon);
        URC_END_OF_STACK
    }
    let mut w = Walk { own: own_file(), found: None, frames: 0 };
    unsafe { _Unwind_Backtrace(each, &mut w as *mut Walk as *mut c_void) };
    w.found
}

/// The measurements of this process as a kernel-time table (`# source: profiling`).
pub fn table(gpu_key: &str, measured_on: &str) -> KernelTable {
    let mut t = KernelTable::default();
    t.set_metadata("source", "profiling");
    t.set_metadata("gpu", gpu_key);
    t.set_metadata("measured-on", measured_on);
    let ns = sim_core::SimDuration::from_nanos;
    KERNELS.each(|k, f| t.insert(k.clone(), ns(f.ns), f.count().max(1)));
    CALLS.each(|k, f| t.insert_call(k, ns(f.ns), f.count().max(1)));
    t
}

/// Writes this process's measurements to `PHANTOM_PROFILE_TABLE` (if set) at exit.
extern "C" fn write_table_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let Ok(path) = std::env::var("PHANTOM_PROFILE_TABLE") else { return };
        if path.trim().is_empty() {
            return;
        }
        let Some(Ok(x)) = EXEC.get() else { return };
        let gpu_key = crate::runtime::rt().map(|rt| rt.config.gpu.key.clone()).unwrap_or_default();
        let t = table(&gpu_key, &x.driver.name);
        if let Err(e) = std::fs::write(&path, t.to_text()) {
            tracing::error!("phantom: cannot write the profiling table {path}: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_modes() {
        assert_eq!(parse_mode(None), Ok(Mode::Off));
        assert_eq!(parse_mode(Some("off")), Ok(Mode::Off));
        assert_eq!(parse_mode(Some("execute")), Ok(Mode::Execute));
        assert_eq!(parse_mode(Some(" 1 ")), Ok(Mode::Execute));
        assert_eq!(parse_mode(Some("follow")), Ok(Mode::Follow));
        assert_eq!(parse_mode(Some("yes")), Err("PHANTOM_PROFILE=yes: expected execute, follow or off".into()));
    }

    #[test]
    fn figures_keep_the_smallest_covered_measurement() {
        use phantom_real_gpu::gate::Measured;
        let m = |ns, covered| Measured { ns, covered };
        // An uncovered measurement stands in until a covered one comes, and never replaces one.
        let f = Fig::with(None, m(9_000, false));
        assert_eq!((f.ns, f.samples), (9_000, 0));
        let f = Fig::with(Some(f), m(5_200, true));
        assert_eq!((f.ns, f.samples), (5_200, 1));
        assert!(!f.measured());
        assert_eq!(Fig::with(Some(f), m(4_000, false)), f);
        let f = Fig::with(Some(f), m(4_900, true));
        assert_eq!((f.ns, f.samples), (4_900, 2));
        assert!(f.measured());
        // The running phase follows (running_samples() is 5 unless the environment says otherwise).
        assert!(!f.settled());
        assert_eq!(Fig::with(Some(Fig::gated(4_900, 1)), m(6_000, true)), Fig::gated(4_900, 2));
    }

    #[test]
    fn running_samples_replace_the_gated_figure_with_their_median() {
        assert_eq!(running_samples(), 5, "PHANTOM_PROFILE_RUNNING_SAMPLES is not set in unit tests");
        let mut f = Fig::gated(10_000, 2).launched();
        assert_eq!(f.running.launches, 1);
        for (i, ns) in [10_600, 10_200, 11_900, 10_400].into_iter().enumerate() {
            f = f.sampled(ns);
            assert_eq!((f.ns, f.running.n, f.settled()), (10_000, i as u32 + 1, false), "the gated figure stands until the fifth sample");
        }
        f = f.sampled(10_300);
        // Median of 10 200, 10 300, 10 400, 10 600, 11 900.
        assert_eq!((f.ns, f.running.n, f.settled(), f.count()), (10_400, 5, true, 5));
        assert_eq!(f.sampled(1), f, "a settled figure takes no more samples");
    }

    #[test]
    fn a_configuration_short_of_running_samples_settles_on_what_it_has() {
        let mut f = Fig::gated(7_000, 2);
        for _ in 0..RUNNING_GIVE_UP - 1 {
            f = f.launched();
        }
        assert!(!f.settled());
        f = f.launched();
        assert_eq!((f.ns, f.settled(), f.count()), (7_000, true, 2));
        // With fewer running samples than asked for, it settles on the ones it has.
        let mut g = Fig::gated(7_000, 2).sampled(7_500).sampled(7_100);
        for _ in 0..RUNNING_GIVE_UP {
            g = g.launched();
        }
        assert_eq!((g.ns, g.settled(), g.count()), (7_500, true, 2));
    }

    #[test]
    fn host_figures_are_published_once_enough_samples_are_in() {
        assert_eq!(host_samples(), 64, "PHANTOM_PROFILE_HOST_SAMPLES is not set in unit tests");
        assert!(!publication_due(0, 63));
        assert!(publication_due(0, 64));
        // A count that passed 64 where nothing could publish still publishes at the next chance.
        assert!(publication_due(0, 70));
        assert!(!publication_due(70, 70 + HOST_REFRESH_CALLS - 1));
        assert!(publication_due(70, 70 + HOST_REFRESH_CALLS));
    }

    #[test]
    fn the_host_keys_are_host_figures() {
        assert!(HOST_LAUNCH_KEY.starts_with(sim_core::engine::measure::HOST_KEY_PREFIX));
        assert!(HOST_LIBRARY_KEY.starts_with(sim_core::engine::measure::HOST_KEY_PREFIX));
    }

    #[test]
    fn measurements_from_several_threads_all_count() {
        use phantom_real_gpu::gate::Measured;
        let figs: Figures<u32> = Figures::new();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let figs = &figs;
                s.spawn(move || {
                    for i in 0..200u64 {
                        figs.record(&7, Measured { ns: 10_000 + t * 200 + i, covered: true });
                    }
                });
            }
        });
        assert_eq!(figs.get(&7), Some(Fig::gated(10_000, 1_600)));
    }

    #[test]
    fn canonical_keys_use_the_normalised_name() {
        let k = KernelKey { name: "void k<(unsigned int)32>(float*)".into(), grid: [4, 1, 1], block: [128, 1, 1], shared_mem_bytes: 0 };
        assert_eq!(canonical(&k), "kernel\tvoid k<32u>(float*)\t4,1,1\t128,1,1\t0");
    }
}
