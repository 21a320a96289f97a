//! Fat binaries, registered kernels and variables, and kernel launches.
//!
//! nvcc's host code registers each fat binary and its kernels at start-up; a `<<<…>>>` launch pushes the
//! configuration, pops it in the generated stub, looks the kernel up with `__cudaGetKernel` and launches it
//! with `__cudaLaunchKernel`. A kernel is identified by its host stub address; its identity for timing is
//! its demangled name plus launch configuration (`sim_core::ktable::KernelKey`).

use crate::export::CudaResult;
use crate::runtime::{Device, Runtime};
use crate::stream::{resolve, Work};
use dashmap::DashMap;
use once_cell::sync::Lazy;
use rustc_hash::{FxBuildHasher, FxHashMap};
use phantom_cuda_sys::{cudaError, cudaStream_t, dim3};
use sim_core::ktable::{KernelKey, TimeSource};
use sim_core::timeline::sms_needed;
use sim_core::{SimDuration, SimTime};
use std::cell::RefCell;
use std::rc::Rc;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

/// A kernel registered by `__cudaRegisterFunction`.
#[derive(Debug, Clone)]
pub struct KernelInfo {
    pub mangled: String,
    pub name: String,
    /// `cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)`.
    pub max_dynamic_shared: u32,
    /// Address of the fat binary image the kernel came from (0 if unknown): what profiling mode loads.
    pub image: usize,
}

/// The magic number of nvcc's fat binary wrapper (`__fatBinC_Wrapper_t`).
const FATBIN_WRAPPER_MAGIC: u32 = 0x466243b1;

/// The image inside nvcc's fat binary wrapper `{ magic, version, data, filename_or_fatbins }` handed to
/// `__cudaRegisterFatBinary`; 0 when `fat` is not such a wrapper.
///
/// # Safety
/// `fat` is null or what nvcc's host code passes to `__cudaRegisterFatBinary`.
pub unsafe fn fatbin_image(fat: *const std::ffi::c_void) -> usize {
    if fat.is_null() {
        return 0;
    }
    #[repr(C)]
    struct Wrapper {
        magic: u32,
        version: u32,
        data: *const u64,
        filename_or_fatbins: *const std::ffi::c_void,
    }
    let w = unsafe { &*(fat as *const Wrapper) };
    if w.magic == FATBIN_WRAPPER_MAGIC {
        w.data as usize
    } else {
        0
    }
}

/// Registered kernels by host stub address (looked up at every launch: a fast hash, not SipHash).
pub static KERNELS: Lazy<DashMap<usize, KernelInfo, FxBuildHasher>> = Lazy::new(|| DashMap::with_hasher(FxBuildHasher));

/// Registered device variables by host shadow address: (device address, size).
pub static VARIABLES: Lazy<DashMap<usize, (u64, u64)>> = Lazy::new(DashMap::new);

/// Pending variable registrations: host shadow address → size; device memory is allocated on first use.
pub static PENDING_VARIABLES: Lazy<DashMap<usize, u64>> = Lazy::new(DashMap::new);

/// Launch counters by time source, for the run report.
pub static LAUNCHES_BY_TABLE: AtomicU64 = AtomicU64::new(0);
pub static LAUNCHES_BY_MODEL: AtomicU64 = AtomicU64::new(0);
pub static LAUNCHES_BY_PROFILE: AtomicU64 = AtomicU64::new(0);

/// Readable kernel name: the demangled C++ name, or the symbol itself when it is not a C++ name.
pub fn demangle(mangled: &str) -> String {
    cpp_demangle::Symbol::new(mangled)
        .ok()
        .and_then(|s| s.demangle(&cpp_demangle::DemangleOptions::default()).ok())
        .unwrap_or_else(|| mangled.to_string())
}

/// # Safety
/// `name` must be null or a NUL-terminated string.
pub unsafe fn register_function(host_fun: usize, name: *const c_char, image: usize) {
    if host_fun == 0 || name.is_null() {
        return;
    }
    let mangled = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
    let name = demangle(&mangled);
    KERNELS.insert(host_fun, KernelInfo { mangled, name, max_dynamic_shared: 0, image });
}

/// The launch configuration nvcc's `<<<…>>>` pushes before calling the kernel's host stub.
#[derive(Clone, Copy, Debug)]
pub struct CallConfig {
    pub grid: dim3,
    pub block: dim3,
    pub shared: usize,
    pub stream: cudaStream_t,
}

thread_local! {
    static CALL_CONFIGS: RefCell<Vec<CallConfig>> = const { RefCell::new(Vec::new()) };
}

pub fn push_config(c: CallConfig) {
    CALL_CONFIGS.with(|s| s.borrow_mut().push(c));
}

pub fn pop_config() -> Option<CallConfig> {
    CALL_CONFIGS.with(|s| s.borrow_mut().pop())
}

fn dims(d: dim3) -> [u32; 3] {
    [d.x, d.y, d.z]
}

/// Checks a launch configuration against the device's limits (`cudaErrorInvalidConfiguration`).
pub fn validate(dev: &Device, grid: dim3, block: dim3, shared: usize, info: &KernelInfo) -> CudaResult<()> {
    let s = &dev.spec;
    let g = dims(grid);
    let b = dims(block);
    let threads = b.iter().map(|&x| x as u64).product::<u64>();
    let shared_limit = (s.shared_mem_per_block_bytes as usize).max(info.max_dynamic_shared as usize);
    let ok = g.iter().all(|&x| x >= 1)
        && b.iter().all(|&x| x >= 1)
        && g.iter().zip(s.max_grid_size).all(|(&x, m)| x <= m)
        && b.iter().zip(s.max_block_dim).all(|(&x, m)| x <= m)
        && threads <= s.max_threads_per_block as u64
        && shared <= shared_limit;
    if ok {
        Ok(())
    } else {
        Err(cudaError::cudaErrorInvalidConfiguration)
    }
}

/// Registers assumed for a kernel whose binary Phantom does not inspect.
pub const ASSUMED_REGS_PER_THREAD: u32 = 32;

/// How long a launch takes, which source said so, the blocks that fit on one SM, and whether the answer is
/// final (a profiled figure that is not settled yet may change at a later launch: `profile::SAMPLES` gated
/// measurements, then running samples; docs/profiling.md).
pub fn kernel_time(rt: &Runtime, dev: &Device, key: &KernelKey) -> (SimDuration, TimeSource, u32, bool) {
    let threads = key.block.iter().product::<u32>();
    let resident = crate::device_props::max_active_blocks_per_sm(
        &dev.spec,
        threads,
        ASSUMED_REGS_PER_THREAD,
        key.shared_mem_bytes,
    )
    .max(1);
    if let Some((ns, settled)) = crate::profile::measured(rt, key) {
        return (SimDuration::from_nanos(ns), TimeSource::Profiled, resident, settled);
    }
    match rt.kernels.lookup(key) {
        Some(d) => (d, TimeSource::Table, resident, true),
        None => (rt.config.kernels.fallback.kernel_time(&dev.spec, key, resident), TimeSource::Model, resident, true),
    }
}

/// Bumped whenever a kernel's attributes change, so cached launch decisions are re-validated.
pub static ATTRIBUTE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// What a launch configuration of a kernel was found to cost, cached per thread (the kernel-time table and
/// the GPU model are fixed for the life of the process).
#[derive(Clone, Copy)]
struct Decision {
    epoch: u64,
    duration: SimDuration,
    sms: u32,
    source: TimeSource,
}

type LaunchKey = (usize, u32, [u32; 3], [u32; 3], u32);

/// Executing process: a launch configuration this thread ran for real, validated, with whether its measured
/// figure has settled (then a launch just runs, without looking the kernel's name up again).
pub struct RealKey {
    pub key: KernelKey,
    pub settled: std::cell::Cell<bool>,
}

thread_local! {
    static DECISIONS: RefCell<FxHashMap<LaunchKey, Decision>> = RefCell::new(FxHashMap::default());
    /// Executing process: the validated kernel key of each launch configuration this thread ran for real (the
    /// epoch it was validated in), so that a launch neither validates twice nor copies the kernel's name.
    static REAL_KEYS: RefCell<FxHashMap<LaunchKey, (u64, Rc<RealKey>)>> = RefCell::new(FxHashMap::default());
}

/// Validates a launch and times it: from the per-thread cache, or by table lookup / the fallback model.
fn decide(rt: &Runtime, dev: &Device, host_fun: usize, grid: dim3, block: dim3, shared: usize) -> CudaResult<Decision> {
    let key: LaunchKey = (host_fun, dev.ordinal, dims(grid), dims(block), shared as u32);
    let epoch = ATTRIBUTE_EPOCH.load(Ordering::Relaxed);
    if let Some(d) = DECISIONS.with(|c| c.borrow().get(&key).copied()) {
        if d.epoch == epoch {
            return Ok(d);
        }
    }
    let info = KERNELS.get(&host_fun).map(|r| r.clone()).ok_or(cudaError::cudaErrorInvalidDeviceFunction)?;
    validate(dev, grid, block, shared, &info)?;
    let kkey = KernelKey { name: info.name, grid: key.2, block: key.3, shared_mem_bytes: key.4 };
    let (duration, source, resident, settled) = kernel_time(rt, dev, &kkey);
    let blocks = kkey.grid.iter().map(|&x| x as u64).product::<u64>();
    let d = Decision { epoch, duration, sms: sms_needed(blocks, resident, dev.spec.sm_count), source };
    if settled {
        DECISIONS.with(|c| c.borrow_mut().insert(key, d));
    }
    Ok(d)
}

/// Runs a launch on the real GPU of an executing process (profiling mode), which also measures the
/// configuration its first `profile::SAMPLES` times. A launch into a stream capture is recorded, not run.
#[allow(clippy::too_many_arguments)]
fn run_for_real(
    rt: &Runtime,
    dev: &Device,
    stream: &crate::stream::Stream,
    host_fun: usize,
    grid: dim3,
    block: dim3,
    shared: usize,
    args: *mut *mut std::ffi::c_void,
) -> CudaResult<()> {
    let Some(x) = crate::profile::gpu() else { return Ok(()) };
    if stream.is_capturing() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| tracing::warn!("phantom: profiling: CUDA graphs are timed but not run on the real GPU"));
        return Ok(());
    }
    let info = KERNELS.get(&host_fun).ok_or(cudaError::cudaErrorInvalidDeviceFunction)?;
    let launch: LaunchKey = (host_fun, dev.ordinal, dims(grid), dims(block), shared as u32);
    let epoch = ATTRIBUTE_EPOCH.load(Ordering::Relaxed);
    // `try_with`: a thread that launches while its thread-locals are torn down validates every time.
    let known = REAL_KEYS.try_with(|c| c.borrow().get(&launch).filter(|(e, _)| *e == epoch).map(|(_, k)| k.clone())).ok().flatten();
    let key = match known {
        Some(k) => k,
        None => {
            validate(dev, grid, block, shared, &info)?;
            let key = KernelKey { name: info.name.clone(), grid: launch.2, block: launch.3, shared_mem_bytes: launch.4 };
            let k = Rc::new(RealKey { key, settled: std::cell::Cell::new(false) });
            let _ = REAL_KEYS.try_with(|c| c.borrow_mut().insert(launch, (epoch, k.clone())));
            k
        }
    };
    // SAFETY: `args` is the application's parameter array for this launch.
    unsafe { x.launch(rt, stream, host_fun, &info, &key, args) }
}

/// Launches the kernel registered for `host_fun`; `submit` is when the launch call hands it to the GPU.
/// `args` are the kernel's arguments, used only when the launch runs on a real GPU (profiling mode).
#[allow(clippy::too_many_arguments)]
pub fn launch(
    rt: &Runtime,
    submit: SimTime,
    host_fun: usize,
    grid: dim3,
    block: dim3,
    shared: usize,
    stream: cudaStream_t,
    args: *mut *mut std::ffi::c_void,
) -> CudaResult<()> {
    let stream = resolve(stream)?;
    let dev = rt.device(stream.device as i32)?;
    run_for_real(rt, dev, &stream, host_fun, grid, block, shared, args)?;
    let d = decide(rt, dev, host_fun, grid, block, shared)?;
    match d.source {
        TimeSource::Table => LAUNCHES_BY_TABLE.fetch_add(1, Ordering::Relaxed),
        TimeSource::Profiled => LAUNCHES_BY_PROFILE.fetch_add(1, Ordering::Relaxed),
        TimeSource::Model => LAUNCHES_BY_MODEL.fetch_add(1, Ordering::Relaxed),
    };
    let (start, end) = stream.enqueue(dev, submit, SimTime::ZERO, Work::Kernel { duration: d.duration, sms: d.sms });
    crate::data::note_launch();
    crate::stats::kernel(crate::trace::Lane::of(rt, dev, &stream).gpu, host_fun, d.source, start, end);
    // A captured launch is recorded into the graph (times zero), not run.
    if crate::trace::on() && end != SimTime::ZERO {
        crate::trace::record(crate::trace::Record::Kernel {
            lane: crate::trace::Lane::of(rt, dev, &stream),
            host_fun,
            grid: dims(grid),
            block: dims(block),
            shared: shared as u32,
            source: d.source,
            start,
            end,
        });
    }
    Ok(())
}
