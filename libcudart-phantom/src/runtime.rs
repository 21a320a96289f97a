//! The process's one runtime state: configuration, simulated devices, and the per-thread current device.
//!
//! Initialised on first use. A configuration that cannot be loaded is logged once and every later CUDA call
//! returns `cudaErrorInitializationError` (the state is `Err`, never retried, never a panic).

use crate::export::CudaResult;
use crate::memory::DeviceMemory;
use crate::stream::Stream;
use phantom_cuda_sys::{cudaDeviceProp, cudaError};
use sim_core::config::ClusterConfig;
use sim_core::gpu::GpuSpec;
use sim_core::ktable::KernelTable;
use sim_core::timeline::GpuTimeline;
use sim_core::{SimDuration, SimTime};
use std::cell::Cell;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Ordering state of one device's queues, guarded together with its timeline.
#[derive(Debug)]
pub struct DeviceSched {
    pub timeline: GpuTimeline,
    /// Completion of the last command on any stream of this device.
    pub max_end: SimTime,
    /// Completion of the last command on any *blocking* stream (what the legacy default stream waits for).
    pub blocking_end: SimTime,
    /// Completion of the last command on the legacy default stream (what blocking streams wait for).
    pub legacy_end: SimTime,
    /// Communication operations queued on this device whose completion is not known yet.
    pub net_pending: crate::net::Pending,
}

/// One simulated GPU visible to this process.
pub struct Device {
    /// Ordinal as the application sees it (after `CUDA_VISIBLE_DEVICES`).
    pub ordinal: u32,
    /// Index of the GPU inside its node (before `CUDA_VISIBLE_DEVICES`).
    pub physical: u32,
    pub spec: GpuSpec,
    pub props: cudaDeviceProp,
    pub memory: Mutex<DeviceMemory>,
    pub sched: Mutex<DeviceSched>,
    /// The legacy default stream (handle 0 / `cudaStreamLegacy`).
    pub legacy_stream: Arc<Stream>,
    /// `cudaSetDeviceFlags` value.
    pub flags: AtomicU32,
}

impl Device {
    pub fn sched(&self) -> MutexGuard<'_, DeviceSched> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn memory(&self) -> MutexGuard<'_, DeviceMemory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn launch_latency(&self) -> SimDuration {
        SimDuration::from_nanos(self.spec.launch_latency_ns)
    }
}

pub struct Runtime {
    pub config: ClusterConfig,
    pub devices: Vec<Device>,
    pub kernels: KernelTable,
}

static RUNTIME: OnceLock<Result<Runtime, cudaError>> = OnceLock::new();

thread_local! {
    static CURRENT_DEVICE: Cell<u32> = const { Cell::new(0) };
}

/// The runtime, initialising it on first use.
pub fn rt() -> CudaResult<&'static Runtime> {
    RUNTIME.get_or_init(init).as_ref().map_err(|e| *e)
}

fn init() -> Result<Runtime, cudaError> {
    crate::log::init();
    let config = ClusterConfig::from_env().map_err(|e| {
        tracing::error!("phantom: cannot load the cluster configuration: {e}; every CUDA call will fail with cudaErrorInitializationError");
        cudaError::cudaErrorInitializationError
    })?;
    crate::clock::configure(&config.host);
    crate::interpose::engage();
    // Profiling mode: the real GPU must be open before the devices reserve their address ranges on it.
    crate::profile::init().map_err(|e| {
        tracing::error!("phantom: profiling mode: {e}; every CUDA call will fail with cudaErrorInitializationError");
        cudaError::cudaErrorInitializationError
    })?;
    let mut kernels = KernelTable::default();
    for path in &config.kernels.tables {
        match KernelTable::load(path) {
            Ok(t) => {
                for w in t.warnings() {
                    tracing::warn!("phantom: kernel-time table {}: {w}", path.display());
                }
                kernels.merge(t)
            }
            Err(e) => {
                tracing::error!("phantom: cannot load kernel-time table {}: {e}", path.display());
                return Err(cudaError::cudaErrorInitializationError);
            }
        }
    }
    let visible = visible_devices(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(), config.gpus_per_node);
    let devices = visible
        .into_iter()
        .enumerate()
        .map(|(ordinal, physical)| {
            let ordinal = ordinal as u32;
            let spec = config.gpu.clone();
            Device {
                ordinal,
                physical,
                props: crate::device_props::device_prop(
                    &spec,
                    ordinal,
                    pci_bus_of(physical),
                    sim_core::gpu::gpu_uuid(crate::net::node(), physical),
                ),
                memory: Mutex::new(DeviceMemory::new(ordinal, &spec).traced_as(crate::net::node() * config.gpus_per_node + physical)),
                sched: Mutex::new(DeviceSched {
                    timeline: GpuTimeline::new(spec.sm_count),
                    max_end: SimTime::ZERO,
                    blocking_end: SimTime::ZERO,
                    legacy_end: SimTime::ZERO,
                    net_pending: Vec::new(),
                }),
                legacy_stream: Stream::legacy(ordinal),
                flags: AtomicU32::new(0),
                spec,
            }
        })
        .collect();
    Ok(Runtime { config, devices, kernels })
}

/// PCI bus number of the GPU at `index` in a DGX-style node (used by `cudaDeviceGetPCIBusId`).
pub fn pci_bus_of(index: u32) -> u32 {
    sim_core::gpu::pci_bus(index)
}

/// Physical GPU indices visible under `CUDA_VISIBLE_DEVICES`: a comma-separated list of indices; like CUDA,
/// the list ends at the first entry that is not a valid, unused index.
pub fn visible_devices(env: Option<&str>, gpus: u32) -> Vec<u32> {
    let Some(list) = env else { return (0..gpus).collect() };
    let mut out = Vec::new();
    for item in list.split(',') {
        match item.trim().parse::<u32>() {
            Ok(i) if i < gpus && !out.contains(&i) => out.push(i),
            _ => break,
        }
    }
    out
}

impl Runtime {
    pub fn device(&self, ordinal: i32) -> CudaResult<&Device> {
        usize::try_from(ordinal).ok().and_then(|i| self.devices.get(i)).ok_or(cudaError::cudaErrorInvalidDevice)
    }

    /// The calling thread's current device (`cudaSetDevice`); errors if the process sees no device.
    pub fn current(&self) -> CudaResult<&Device> {
        if self.devices.is_empty() {
            return Err(cudaError::cudaErrorNoDevice);
        }
        self.device(current_ordinal() as i32)
    }
}

pub fn current_ordinal() -> u32 {
    CURRENT_DEVICE.with(|c| c.get())
}

pub fn set_current_ordinal(ordinal: u32) {
    CURRENT_DEVICE.with(|c| c.set(ordinal));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_devices_follow_cuda_rules() {
        assert_eq!(visible_devices(None, 8), vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(visible_devices(Some("3,1"), 8), vec![3, 1]);
        assert_eq!(visible_devices(Some("2,9,1"), 8), vec![2]);
        assert_eq!(visible_devices(Some("1,1"), 8), vec![1]);
        assert_eq!(visible_devices(Some(""), 8), Vec::<u32>::new());
        assert_eq!(visible_devices(Some("-1"), 8), Vec::<u32>::new());
    }
}

/// Host cost class of an API call (the modelled cost charged to the calling thread's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    Call,
    Launch,
}

/// Runs a runtime API call on the virtual host clock: accrues the application's time since the previous
/// call, runs `f` with the moment the call hands its work to the GPU (`enter + cost`), then charges the cost.
/// With API tracing on, the call's entry and exit go to the trace (`trace::api_span`).
pub fn api<T>(cost: Cost, f: impl FnOnce(&'static Runtime, SimTime) -> CudaResult<T>) -> CudaResult<T> {
    let rt = rt()?;
    let cost = SimDuration::from_nanos(match cost {
        Cost::Call => rt.config.host.api_call_ns,
        Cost::Launch => crate::profile::follower_launch_cost(rt).unwrap_or(rt.config.host.launch_call_ns),
    });
    let enter = crate::clock::api_enter();
    let r = f(rt, enter + cost);
    if crate::trace::api_on() {
        // Inside the call the clock reads without charging CPU time; the call returns `cost` later.
        crate::trace::api_span(enter, crate::clock::now() + cost);
    }
    crate::clock::api_exit(cost);
    r
}

/// Runs a call that only reads the runtime's state and is made very often (`cudaGetDevice`: PyTorch makes
/// about 12 000 per GPT-2 training step). It is charged `api_call_ns` like any call, but without the clock
/// readings of [`api`]: in measured host time its own few tens of nanoseconds of CPU count as the application's
/// (docs/time.md, "Queries"), where the bracket's clock reads made it 63 ns instead of 11 on the development
/// machine, and more on the H100 machine's virtual CPUs. With API tracing on it takes [`api`]'s path, to be
/// traced.
pub fn query<T>(f: impl FnOnce(&'static Runtime) -> CudaResult<T>) -> CudaResult<T> {
    if crate::trace::api_on() {
        return api(Cost::Call, |rt, _| f(rt));
    }
    let rt = rt()?;
    let r = f(rt);
    crate::clock::charge_call(SimDuration::from_nanos(rt.config.host.api_call_ns));
    r
}
