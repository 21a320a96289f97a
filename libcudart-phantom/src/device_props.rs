//! `cudaDeviceProp` and `cudaDeviceGetAttribute` values from a GPU model. STUB — being filled in.

use phantom_cuda_sys::{cudaDeviceAttr, cudaDeviceProp};
use sim_core::gpu::GpuSpec;

/// The properties a real GPU of this model reports, for device `ordinal` at PCI bus `pci_bus`.
pub fn device_prop(spec: &GpuSpec, _ordinal: u32, pci_bus: u32) -> cudaDeviceProp {
    let mut p = cudaDeviceProp::default();
    for (dst, src) in p.name.iter_mut().zip(spec.name.bytes()) {
        *dst = src as std::os::raw::c_char;
    }
    p.totalGlobalMem = spec.memory_bytes as usize;
    p.multiProcessorCount = spec.sm_count as i32;
    p.major = spec.compute_capability[0] as i32;
    p.minor = spec.compute_capability[1] as i32;
    p.pciBusID = pci_bus as i32;
    p
}

/// `cudaDeviceGetAttribute`; `None` for an attribute this version does not know (→ cudaErrorInvalidValue).
pub fn device_attribute(spec: &GpuSpec, _ordinal: u32, attr: cudaDeviceAttr) -> Option<i32> {
    match attr {
        cudaDeviceAttr::cudaDevAttrMultiProcessorCount => Some(spec.sm_count as i32),
        cudaDeviceAttr::cudaDevAttrComputeCapabilityMajor => Some(spec.compute_capability[0] as i32),
        cudaDeviceAttr::cudaDevAttrComputeCapabilityMinor => Some(spec.compute_capability[1] as i32),
        _ => None,
    }
}

/// Blocks of a kernel that can be resident on one SM at once.
pub fn max_active_blocks_per_sm(spec: &GpuSpec, threads_per_block: u32, regs_per_thread: u32, shared_bytes: u32) -> u32 {
    let by_threads = spec.max_threads_per_sm / threads_per_block.max(1);
    let by_regs = if regs_per_thread == 0 { u32::MAX } else { spec.regs_per_sm / (regs_per_thread * threads_per_block.max(1)).max(1) };
    let by_smem = if shared_bytes == 0 {
        u32::MAX
    } else {
        spec.shared_mem_per_sm_bytes / (shared_bytes + spec.reserved_shared_mem_per_block_bytes)
    };
    spec.max_blocks_per_sm.min(by_threads).min(by_regs).min(by_smem)
}
