//! Device management: current device, flags, synchronisation, peers, limits, versions.

use crate::export::CudaResult;
use crate::runtime::{current_ordinal, set_current_ordinal, Runtime};
use phantom_cuda_sys::{cudaError, cudaLimit};
use sim_core::SimTime;

/// CUDA version the library reports: that of the headers its ABI was generated from.
pub const RUNTIME_VERSION: i32 = phantom_cuda_sys::CUDART_VERSION as i32;
/// Driver version reported by `cudaDriverGetVersion` (a driver new enough for the runtime).
pub const DRIVER_VERSION: i32 = RUNTIME_VERSION;

pub fn set_device(rt: &Runtime, ordinal: i32) -> CudaResult<()> {
    let dev = rt.device(ordinal)?;
    set_current_ordinal(dev.ordinal);
    Ok(())
}

pub fn get_device(rt: &Runtime) -> CudaResult<i32> {
    rt.current().map(|_| current_ordinal() as i32)
}

/// Blocks the host until all work queued on `ordinal`'s streams has completed.
pub fn synchronize(rt: &Runtime, ordinal: u32) -> CudaResult<SimTime> {
    let dev = rt.device(ordinal as i32)?;
    if let Some(x) = crate::profile::gpu() {
        x.synchronize()?;
    }
    let (end, mut pending) = {
        let mut sched = dev.sched();
        (sched.max_end, std::mem::take(&mut sched.net_pending))
    };
    let end = end.max(crate::net::settle(&mut pending));
    crate::clock::advance_to(end);
    crate::net::report_progress(crate::clock::now());
    Ok(end)
}

/// `cudaDeviceReset`: waits for the device, then frees its allocations and forgets its state.
pub fn reset(rt: &Runtime) -> CudaResult<()> {
    let dev = rt.current()?;
    synchronize(rt, dev.ordinal)?;
    dev.memory().reset();
    Ok(())
}

/// PCI bus id string `domain:bus:device.function`, as `cudaDeviceGetPCIBusId` writes it.
pub fn pci_bus_id(rt: &Runtime, ordinal: i32) -> CudaResult<String> {
    let dev = rt.device(ordinal)?;
    Ok(format!("{:08X}:{:02X}:00.0", 0, crate::runtime::pci_bus_of(dev.physical)))
}

/// `cudaDeviceGetByPCIBusId`: accepts `[domain:]bus:device[.function]` in hex, any case.
pub fn device_by_pci_bus_id(rt: &Runtime, id: &str) -> CudaResult<i32> {
    let parts: Vec<&str> = id.trim().split(':').collect();
    let bus_part = match parts.len() {
        2 => parts[0],
        3 => parts[1],
        _ => return Err(cudaError::cudaErrorInvalidValue),
    };
    let bus = u32::from_str_radix(bus_part, 16).map_err(|_| cudaError::cudaErrorInvalidValue)?;
    rt.devices
        .iter()
        .find(|d| crate::runtime::pci_bus_of(d.physical) == bus)
        .map(|d| d.ordinal as i32)
        .ok_or(cudaError::cudaErrorInvalidDevice)
}

/// Every pair of distinct GPUs in a node can reach each other (NVLink/NVSwitch or PCIe).
pub fn can_access_peer(rt: &Runtime, device: i32, peer: i32) -> CudaResult<bool> {
    rt.device(device)?;
    rt.device(peer)?;
    Ok(device != peer)
}

pub fn limit(limit: cudaLimit) -> CudaResult<usize> {
    Ok(match limit {
        cudaLimit::cudaLimitStackSize => 1024,
        cudaLimit::cudaLimitPrintfFifoSize => 1 << 20,
        cudaLimit::cudaLimitMallocHeapSize => 8 << 20,
        cudaLimit::cudaLimitDevRuntimeSyncDepth => 2,
        cudaLimit::cudaLimitDevRuntimePendingLaunchCount => 2048,
        cudaLimit::cudaLimitMaxL2FetchGranularity => 64,
        cudaLimit::cudaLimitPersistingL2CacheSize => 0,
        _ => return Err(cudaError::cudaErrorUnsupportedLimit),
    })
}
