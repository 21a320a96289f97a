//! `cudaDeviceProp`, `cudaDeviceGetAttribute` and occupancy, computed from a GPU model (`sim_core::gpu`).
//!
//! Every property comes from one place: [`device_prop`] fills the whole structure, and
//! [`attribute_from_prop`] answers each attribute from that structure (or, for the attributes the CUDA 13
//! structure no longer carries, from the model), so the two can never disagree. The values not in the model
//! are the same on every architecture we simulate (sm_80, sm_90, sm_100) and are those a stock Linux x86
//! DGX system reports; `docs/gpus.md` lists the choices.

use phantom_cuda_sys::{cudaDeviceAttr, cudaDeviceProp};
use sim_core::gpu::GpuSpec;
use std::os::raw::c_char;

/// Texture, surface and pitch limits shared by sm_80, sm_90 and sm_100 (elements unless noted).
mod limits {
    pub const MEM_PITCH_BYTES: usize = 2_147_483_647;
    pub const TEXTURE_ALIGNMENT_BYTES: usize = 512;
    pub const TEXTURE_PITCH_ALIGNMENT_BYTES: usize = 32;
    pub const SURFACE_ALIGNMENT_BYTES: usize = 512;
    pub const TEX1D: i32 = 131_072;
    pub const TEX1D_MIPMAP: i32 = 32_768;
    pub const TEX1D_LINEAR: i32 = 268_435_456;
    pub const TEX2D: [i32; 2] = [131_072, 65_536];
    pub const TEX2D_MIPMAP: [i32; 2] = [32_768, 32_768];
    /// Width, height, pitch in bytes.
    pub const TEX2D_LINEAR: [i32; 3] = [131_072, 65_000, 2_097_120];
    pub const TEX2D_GATHER: [i32; 2] = [32_768, 32_768];
    pub const TEX3D: [i32; 3] = [16_384, 16_384, 16_384];
    pub const TEX3D_ALT: [i32; 3] = [8_192, 8_192, 32_768];
    pub const TEX_CUBEMAP: i32 = 32_768;
    pub const TEX1D_LAYERED: [i32; 2] = [32_768, 2_048];
    pub const TEX2D_LAYERED: [i32; 3] = [32_768, 32_768, 2_048];
    pub const TEX_CUBEMAP_LAYERED: [i32; 2] = [32_768, 2_046];
    pub const SURF1D: i32 = 32_768;
    pub const SURF2D: [i32; 2] = [131_072, 65_536];
    pub const SURF3D: [i32; 3] = [16_384, 16_384, 16_384];
    pub const SURF1D_LAYERED: [i32; 2] = [32_768, 2_048];
    pub const SURF2D_LAYERED: [i32; 3] = [32_768, 32_768, 2_048];
    pub const SURF_CUBEMAP: i32 = 32_768;
    pub const SURF_CUBEMAP_LAYERED: [i32; 2] = [32_768, 2_046];
}

/// `cudaFlushGPUDirectRDMAWritesOptionHost`: `cudaDeviceFlushGPUDirectRDMAWrites` is supported.
const RDMA_FLUSH_OPTION_HOST: u32 = 1;
/// `cudaMemHandleTypePosixFileDescriptor`.
const HANDLE_TYPE_POSIX_FD: u32 = 1;
/// PCI vendor id of NVIDIA.
const NVIDIA_PCI_VENDOR: u32 = 0x10de;
/// First PCI bus of the second CPU socket's root complexes on a two-socket DGX (decides the host NUMA node).
const SECOND_SOCKET_FIRST_BUS: u32 = 0x80;

fn flag(b: bool) -> i32 {
    b as i32
}

fn clamp_i32(v: u64) -> i32 {
    v.min(i32::MAX as u64) as i32
}

fn dims<const N: usize>(v: [u32; N]) -> [i32; N] {
    v.map(|x| clamp_i32(x as u64))
}

/// The properties a real GPU of this model reports, for device `ordinal` at PCI bus `pci_bus` with UUID `uuid`
/// (`sim_core::gpu::gpu_uuid`).
pub fn device_prop(spec: &GpuSpec, ordinal: u32, pci_bus: u32, uuid: [u8; 16]) -> cudaDeviceProp {
    use limits::*;
    let hopper_or_later = spec.compute_capability[0] >= 9;
    let mut p = cudaDeviceProp::default();
    // Leave the last byte NUL whatever the name's length.
    for (dst, src) in p.name.iter_mut().take(255).zip(spec.name.bytes()) {
        *dst = src as c_char;
    }
    for (dst, src) in p.uuid.bytes.iter_mut().zip(uuid) {
        *dst = src as c_char;
    }
    // luid / luidDeviceNodeMask are Windows-only: zero on Linux.
    p.luidDeviceNodeMask = 0;
    p.totalGlobalMem = spec.memory_bytes as usize;
    p.sharedMemPerBlock = spec.shared_mem_per_block_bytes as usize;
    p.regsPerBlock = spec.regs_per_block as i32;
    p.warpSize = spec.warp_size as i32;
    p.memPitch = MEM_PITCH_BYTES;
    p.maxThreadsPerBlock = spec.max_threads_per_block as i32;
    p.maxThreadsDim = dims(spec.max_block_dim);
    p.maxGridSize = dims(spec.max_grid_size);
    p.totalConstMem = spec.total_const_mem_bytes as usize;
    p.major = spec.compute_capability[0] as i32;
    p.minor = spec.compute_capability[1] as i32;
    p.textureAlignment = TEXTURE_ALIGNMENT_BYTES;
    p.texturePitchAlignment = TEXTURE_PITCH_ALIGNMENT_BYTES;
    p.multiProcessorCount = spec.sm_count as i32;
    p.integrated = 0;
    p.canMapHostMemory = 1;
    p.maxTexture1D = TEX1D;
    p.maxTexture1DMipmap = TEX1D_MIPMAP;
    p.maxTexture2D = TEX2D;
    p.maxTexture2DMipmap = TEX2D_MIPMAP;
    p.maxTexture2DLinear = TEX2D_LINEAR;
    p.maxTexture2DGather = TEX2D_GATHER;
    p.maxTexture3D = TEX3D;
    p.maxTexture3DAlt = TEX3D_ALT;
    p.maxTextureCubemap = TEX_CUBEMAP;
    p.maxTexture1DLayered = TEX1D_LAYERED;
    p.maxTexture2DLayered = TEX2D_LAYERED;
    p.maxTextureCubemapLayered = TEX_CUBEMAP_LAYERED;
    p.maxSurface1D = SURF1D;
    p.maxSurface2D = SURF2D;
    p.maxSurface3D = SURF3D;
    p.maxSurface1DLayered = SURF1D_LAYERED;
    p.maxSurface2DLayered = SURF2D_LAYERED;
    p.maxSurfaceCubemap = SURF_CUBEMAP;
    p.maxSurfaceCubemapLayered = SURF_CUBEMAP_LAYERED;
    p.surfaceAlignment = SURFACE_ALIGNMENT_BYTES;
    p.concurrentKernels = 1;
    p.ECCEnabled = flag(spec.ecc_enabled);
    p.pciBusID = pci_bus as i32;
    // Every GPU of a DGX sits alone on its own bus, as device 0 of domain 0.
    p.pciDeviceID = 0;
    p.pciDomainID = 0;
    p.tccDriver = 0;
    p.asyncEngineCount = spec.async_engine_count as i32;
    p.unifiedAddressing = 1;
    p.memoryBusWidth = spec.memory_bus_width_bits as i32;
    p.l2CacheSize = clamp_i32(spec.l2_cache_bytes as u64);
    p.persistingL2CacheMaxSize = clamp_i32(spec.persisting_l2_cache_max_bytes as u64);
    p.maxThreadsPerMultiProcessor = spec.max_threads_per_sm as i32;
    p.streamPrioritiesSupported = 1;
    p.globalL1CacheSupported = 1;
    p.localL1CacheSupported = 1;
    p.sharedMemPerMultiprocessor = spec.shared_mem_per_sm_bytes as usize;
    p.regsPerMultiprocessor = spec.regs_per_sm as i32;
    p.managedMemory = 1;
    p.isMultiGpuBoard = flag(spec.multi_gpu_board);
    p.multiGpuBoardGroupID = ordinal as i32;
    // x86 hosts: PCIe offers no native host atomics and no access to pageable memory (no HMM/ATS).
    p.hostNativeAtomicSupported = 0;
    p.pageableMemoryAccess = 0;
    p.concurrentManagedAccess = 1;
    p.computePreemptionSupported = 1;
    p.canUseHostPointerForRegisteredMem = 1;
    p.cooperativeLaunch = 1;
    p.sharedMemPerBlockOptin = spec.shared_mem_per_block_optin_bytes as usize;
    p.pageableMemoryAccessUsesHostPageTables = 0;
    p.directManagedMemAccessFromHost = 0;
    p.maxBlocksPerMultiProcessor = spec.max_blocks_per_sm as i32;
    p.accessPolicyMaxWindowSize = clamp_i32(spec.access_policy_max_window_bytes as u64);
    p.reservedSharedMemPerBlock = spec.reserved_shared_mem_per_block_bytes as usize;
    p.hostRegisterSupported = 1;
    p.sparseCudaArraySupported = 1;
    p.hostRegisterReadOnlySupported = 1;
    p.timelineSemaphoreInteropSupported = 1;
    p.memoryPoolsSupported = 1;
    p.gpuDirectRDMASupported = 1;
    p.gpuDirectRDMAFlushWritesOptions = RDMA_FLUSH_OPTION_HOST;
    // cudaGPUDirectRDMAWritesOrderingNone, as on x86 hosts.
    p.gpuDirectRDMAWritesOrdering = 0;
    p.memoryPoolSupportedHandleTypes = HANDLE_TYPE_POSIX_FD;
    p.deferredMappingCudaArraySupported = 1;
    p.ipcEventSupported = 1;
    p.clusterLaunch = flag(hopper_or_later);
    p.unifiedFunctionPointers = 0;
    // cudaDeviceNumaConfigNone: device memory is not a NUMA node of the host.
    p.deviceNumaConfig = 0;
    p.deviceNumaId = -1;
    p.mpsEnabled = 0;
    p.hostNumaId = flag(pci_bus >= SECOND_SOCKET_FIRST_BUS);
    p.gpuPciDeviceID = (spec.pci_device_id as u32) << 16 | NVIDIA_PCI_VENDOR;
    p.gpuPciSubsystemID = spec.pci_subsystem_id;
    p.hostNumaMultinodeIpcSupported = 0;
    p
}

/// `cudaDeviceGetAttribute`; `None` for an attribute this version does not know (→ cudaErrorInvalidValue).
pub fn device_attribute(spec: &GpuSpec, ordinal: u32, attr: cudaDeviceAttr) -> Option<i32> {
    let prop = device_prop(spec, ordinal, sim_core::gpu::pci_bus(ordinal), sim_core::gpu::gpu_uuid(0, ordinal));
    attribute_from_prop(spec, &prop, attr)
}

/// `cudaDeviceGetAttribute` for a device whose properties are `prop` (made by [`device_prop`] from `spec`);
/// `None` for a value that is no attribute of CUDA 13 (→ cudaErrorInvalidValue).
pub fn attribute_from_prop(
    spec: &GpuSpec,
    p: &cudaDeviceProp,
    attr: cudaDeviceAttr,
) -> Option<i32> {
    type A = cudaDeviceAttr;
    let hopper_or_later = spec.compute_capability[0] >= 9;
    let size = |v: usize| clamp_i32(v as u64);
    let v = match attr {
        A::cudaDevAttrMaxThreadsPerBlock => p.maxThreadsPerBlock,
        A::cudaDevAttrMaxBlockDimX => p.maxThreadsDim[0],
        A::cudaDevAttrMaxBlockDimY => p.maxThreadsDim[1],
        A::cudaDevAttrMaxBlockDimZ => p.maxThreadsDim[2],
        A::cudaDevAttrMaxGridDimX => p.maxGridSize[0],
        A::cudaDevAttrMaxGridDimY => p.maxGridSize[1],
        A::cudaDevAttrMaxGridDimZ => p.maxGridSize[2],
        A::cudaDevAttrMaxSharedMemoryPerBlock => size(p.sharedMemPerBlock),
        A::cudaDevAttrTotalConstantMemory => size(p.totalConstMem),
        A::cudaDevAttrWarpSize => p.warpSize,
        A::cudaDevAttrMaxPitch => size(p.memPitch),
        A::cudaDevAttrMaxRegistersPerBlock => p.regsPerBlock,
        A::cudaDevAttrClockRate => clamp_i32(spec.clock_rate_khz as u64),
        A::cudaDevAttrTextureAlignment => size(p.textureAlignment),
        A::cudaDevAttrGpuOverlap => 1,
        A::cudaDevAttrMultiProcessorCount => p.multiProcessorCount,
        A::cudaDevAttrKernelExecTimeout => 0,
        A::cudaDevAttrIntegrated => p.integrated,
        A::cudaDevAttrCanMapHostMemory => p.canMapHostMemory,
        // cudaComputeModeDefault.
        A::cudaDevAttrComputeMode => 0,
        A::cudaDevAttrMaxTexture1DWidth => p.maxTexture1D,
        A::cudaDevAttrMaxTexture2DWidth => p.maxTexture2D[0],
        A::cudaDevAttrMaxTexture2DHeight => p.maxTexture2D[1],
        A::cudaDevAttrMaxTexture3DWidth => p.maxTexture3D[0],
        A::cudaDevAttrMaxTexture3DHeight => p.maxTexture3D[1],
        A::cudaDevAttrMaxTexture3DDepth => p.maxTexture3D[2],
        A::cudaDevAttrMaxTexture2DLayeredWidth => p.maxTexture2DLayered[0],
        A::cudaDevAttrMaxTexture2DLayeredHeight => p.maxTexture2DLayered[1],
        A::cudaDevAttrMaxTexture2DLayeredLayers => p.maxTexture2DLayered[2],
        A::cudaDevAttrSurfaceAlignment => size(p.surfaceAlignment),
        A::cudaDevAttrConcurrentKernels => p.concurrentKernels,
        A::cudaDevAttrEccEnabled => p.ECCEnabled,
        A::cudaDevAttrPciBusId => p.pciBusID,
        A::cudaDevAttrPciDeviceId => p.pciDeviceID,
        A::cudaDevAttrTccDriver => p.tccDriver,
        A::cudaDevAttrMemoryClockRate => clamp_i32(spec.memory_clock_rate_khz as u64),
        A::cudaDevAttrGlobalMemoryBusWidth => p.memoryBusWidth,
        A::cudaDevAttrL2CacheSize => p.l2CacheSize,
        A::cudaDevAttrMaxThreadsPerMultiProcessor => p.maxThreadsPerMultiProcessor,
        A::cudaDevAttrAsyncEngineCount => p.asyncEngineCount,
        A::cudaDevAttrUnifiedAddressing => p.unifiedAddressing,
        A::cudaDevAttrMaxTexture1DLayeredWidth => p.maxTexture1DLayered[0],
        A::cudaDevAttrMaxTexture1DLayeredLayers => p.maxTexture1DLayered[1],
        A::cudaDevAttrMaxTexture2DGatherWidth => p.maxTexture2DGather[0],
        A::cudaDevAttrMaxTexture2DGatherHeight => p.maxTexture2DGather[1],
        A::cudaDevAttrMaxTexture3DWidthAlt => p.maxTexture3DAlt[0],
        A::cudaDevAttrMaxTexture3DHeightAlt => p.maxTexture3DAlt[1],
        A::cudaDevAttrMaxTexture3DDepthAlt => p.maxTexture3DAlt[2],
        A::cudaDevAttrPciDomainId => p.pciDomainID,
        A::cudaDevAttrTexturePitchAlignment => size(p.texturePitchAlignment),
        A::cudaDevAttrMaxTextureCubemapWidth => p.maxTextureCubemap,
        A::cudaDevAttrMaxTextureCubemapLayeredWidth => p.maxTextureCubemapLayered[0],
        A::cudaDevAttrMaxTextureCubemapLayeredLayers => p.maxTextureCubemapLayered[1],
        A::cudaDevAttrMaxSurface1DWidth => p.maxSurface1D,
        A::cudaDevAttrMaxSurface2DWidth => p.maxSurface2D[0],
        A::cudaDevAttrMaxSurface2DHeight => p.maxSurface2D[1],
        A::cudaDevAttrMaxSurface3DWidth => p.maxSurface3D[0],
        A::cudaDevAttrMaxSurface3DHeight => p.maxSurface3D[1],
        A::cudaDevAttrMaxSurface3DDepth => p.maxSurface3D[2],
        A::cudaDevAttrMaxSurface1DLayeredWidth => p.maxSurface1DLayered[0],
        A::cudaDevAttrMaxSurface1DLayeredLayers => p.maxSurface1DLayered[1],
        A::cudaDevAttrMaxSurface2DLayeredWidth => p.maxSurface2DLayered[0],
        A::cudaDevAttrMaxSurface2DLayeredHeight => p.maxSurface2DLayered[1],
        A::cudaDevAttrMaxSurface2DLayeredLayers => p.maxSurface2DLayered[2],
        A::cudaDevAttrMaxSurfaceCubemapWidth => p.maxSurfaceCubemap,
        A::cudaDevAttrMaxSurfaceCubemapLayeredWidth => p.maxSurfaceCubemapLayered[0],
        A::cudaDevAttrMaxSurfaceCubemapLayeredLayers => p.maxSurfaceCubemapLayered[1],
        A::cudaDevAttrMaxTexture1DLinearWidth => limits::TEX1D_LINEAR,
        A::cudaDevAttrMaxTexture2DLinearWidth => p.maxTexture2DLinear[0],
        A::cudaDevAttrMaxTexture2DLinearHeight => p.maxTexture2DLinear[1],
        A::cudaDevAttrMaxTexture2DLinearPitch => p.maxTexture2DLinear[2],
        A::cudaDevAttrMaxTexture2DMipmappedWidth => p.maxTexture2DMipmap[0],
        A::cudaDevAttrMaxTexture2DMipmappedHeight => p.maxTexture2DMipmap[1],
        A::cudaDevAttrComputeCapabilityMajor => p.major,
        A::cudaDevAttrComputeCapabilityMinor => p.minor,
        A::cudaDevAttrMaxTexture1DMipmappedWidth => p.maxTexture1DMipmap,
        A::cudaDevAttrStreamPrioritiesSupported => p.streamPrioritiesSupported,
        A::cudaDevAttrGlobalL1CacheSupported => p.globalL1CacheSupported,
        A::cudaDevAttrLocalL1CacheSupported => p.localL1CacheSupported,
        A::cudaDevAttrMaxSharedMemoryPerMultiprocessor => size(p.sharedMemPerMultiprocessor),
        A::cudaDevAttrMaxRegistersPerMultiprocessor => p.regsPerMultiprocessor,
        A::cudaDevAttrManagedMemory => p.managedMemory,
        A::cudaDevAttrIsMultiGpuBoard => p.isMultiGpuBoard,
        A::cudaDevAttrMultiGpuBoardGroupID => p.multiGpuBoardGroupID,
        A::cudaDevAttrHostNativeAtomicSupported => p.hostNativeAtomicSupported,
        A::cudaDevAttrSingleToDoublePrecisionPerfRatio => {
            clamp_i32(spec.single_to_double_perf_ratio as u64)
        }
        A::cudaDevAttrPageableMemoryAccess => p.pageableMemoryAccess,
        A::cudaDevAttrConcurrentManagedAccess => p.concurrentManagedAccess,
        A::cudaDevAttrComputePreemptionSupported => p.computePreemptionSupported,
        A::cudaDevAttrCanUseHostPointerForRegisteredMem => p.canUseHostPointerForRegisteredMem,
        // 92–94: the driver's first-generation stream memory-operation attributes (still answered: 1).
        A::cudaDevAttrReserved92 | A::cudaDevAttrReserved93 | A::cudaDevAttrReserved94 => 1,
        A::cudaDevAttrCooperativeLaunch => p.cooperativeLaunch,
        // 96: multi-device cooperative launch, which CUDA 13 no longer offers.
        A::cudaDevAttrReserved96 => 0,
        A::cudaDevAttrMaxSharedMemoryPerBlockOptin => size(p.sharedMemPerBlockOptin),
        A::cudaDevAttrCanFlushRemoteWrites => 0,
        A::cudaDevAttrHostRegisterSupported => p.hostRegisterSupported,
        A::cudaDevAttrPageableMemoryAccessUsesHostPageTables => {
            p.pageableMemoryAccessUsesHostPageTables
        }
        A::cudaDevAttrDirectManagedMemAccessFromHost => p.directManagedMemAccessFromHost,
        A::cudaDevAttrMaxBlocksPerMultiprocessor => p.maxBlocksPerMultiProcessor,
        A::cudaDevAttrMaxPersistingL2CacheSize => p.persistingL2CacheMaxSize,
        A::cudaDevAttrMaxAccessPolicyWindowSize => p.accessPolicyMaxWindowSize,
        A::cudaDevAttrReservedSharedMemoryPerBlock => size(p.reservedSharedMemPerBlock),
        A::cudaDevAttrSparseCudaArraySupported => p.sparseCudaArraySupported,
        A::cudaDevAttrHostRegisterReadOnlySupported => p.hostRegisterReadOnlySupported,
        A::cudaDevAttrTimelineSemaphoreInteropSupported => p.timelineSemaphoreInteropSupported,
        A::cudaDevAttrMemoryPoolsSupported => p.memoryPoolsSupported,
        A::cudaDevAttrGPUDirectRDMASupported => p.gpuDirectRDMASupported,
        A::cudaDevAttrGPUDirectRDMAFlushWritesOptions => p.gpuDirectRDMAFlushWritesOptions as i32,
        A::cudaDevAttrGPUDirectRDMAWritesOrdering => p.gpuDirectRDMAWritesOrdering,
        A::cudaDevAttrMemoryPoolSupportedHandleTypes => p.memoryPoolSupportedHandleTypes as i32,
        A::cudaDevAttrClusterLaunch => p.clusterLaunch,
        A::cudaDevAttrDeferredMappingCudaArraySupported => p.deferredMappingCudaArraySupported,
        // 122, 123: 64-bit stream memory operations and wait-value NOR; 124: dma-buf export.
        A::cudaDevAttrReserved122 | A::cudaDevAttrReserved123 | A::cudaDevAttrReserved124 => 1,
        A::cudaDevAttrIpcEventSupport => p.ipcEventSupported,
        A::cudaDevAttrMemSyncDomainCount => clamp_i32(spec.mem_sync_domain_count as u64),
        // 127: tensor-map (TMA) access, Hopper and later.
        A::cudaDevAttrReserved127 => flag(hopper_or_later),
        // 128: fabric memory handles (need a multi-node NVLink fabric; a DGX has none).
        A::cudaDevAttrReserved128 => 0,
        // 129: unified function pointers.
        A::cudaDevAttrReserved129 => p.unifiedFunctionPointers,
        A::cudaDevAttrNumaConfig => p.deviceNumaConfig,
        A::cudaDevAttrNumaId => p.deviceNumaId,
        // 132: NVSwitch multicast and reductions (NVLS).
        A::cudaDevAttrReserved132 => flag(spec.multicast_supported),
        A::cudaDevAttrMpsEnabled => p.mpsEnabled,
        A::cudaDevAttrHostNumaId => p.hostNumaId,
        A::cudaDevAttrD3D12CigSupported => 0,
        A::cudaDevAttrVulkanCigSupported => 0,
        // Both are unsigned 32-bit values the API hands back in an int.
        A::cudaDevAttrGpuPciDeviceId => p.gpuPciDeviceID as i32,
        A::cudaDevAttrGpuPciSubsystemId => p.gpuPciSubsystemID as i32,
        // 141: host NUMA locations with the virtual memory management API.
        A::cudaDevAttrReserved141 => 1,
        A::cudaDevAttrHostNumaMemoryPoolsSupported => 1,
        A::cudaDevAttrHostNumaMultinodeIpcSupported => p.hostNumaMultinodeIpcSupported,
        A::cudaDevAttrHostMemoryPoolsSupported => 1,
        // 145: host locations with the virtual memory management API.
        A::cudaDevAttrReserved145 => 1,
        A::cudaDevAttrOnlyPartialHostNativeAtomicSupported => 0,
        A::cudaDevAttrAtomicReductionSupported => 0,
        // All modelled GPUs present one locality domain holding every SM.
        A::cudaDevAttrLocalityDomainCount => 1,
        A::cudaDevAttrLocalityDomainMultiprocessorCount => p.multiProcessorCount,
        // No oversized shared-memory mode beyond the opt-in limit on these GPUs.
        A::cudaDevAttrOversizedSharedMemoryPerBlock => size(p.sharedMemPerBlockOptin),
        A::cudaDevAttrCigStreamsSupported => 0,
        // No "large" tensor-map allocation class on these GPUs: the documented "no distinction" answer.
        A::cudaDevAttrTensorMapLargeTensorMinSize => i32::MAX,
        _ => return None,
    };
    Some(v)
}

fn round_up(v: u32, unit: u32) -> u32 {
    v.div_ceil(unit.max(1)) * unit.max(1)
}

fn round_down(v: u32, unit: u32) -> u32 {
    v / unit.max(1) * unit.max(1)
}

/// Blocks of a kernel that can be resident on one SM at once, by the occupancy rules of the hardware:
/// the per-SM block and warp limits; registers allocated per warp in units of `reg_alloc_unit`, with the
/// warps that fit rounded down to `warp_alloc_granularity`; shared memory allocated per block in units of
/// `shared_mem_alloc_unit_bytes` after adding the system's reserved bytes, against the largest carve-out.
/// `regs_per_thread == 0` means "registers do not limit". 0 when the block cannot launch at all.
pub fn max_active_blocks_per_sm(
    spec: &GpuSpec,
    threads_per_block: u32,
    regs_per_thread: u32,
    shared_bytes: u32,
) -> u32 {
    if threads_per_block == 0
        || threads_per_block > spec.max_threads_per_block
        || regs_per_thread > spec.max_regs_per_thread
        || shared_bytes > spec.shared_mem_per_block_optin_bytes
    {
        return 0;
    }
    let warps_per_block = threads_per_block.div_ceil(spec.warp_size);
    let by_warps = spec.max_warps_per_sm() / warps_per_block;

    let by_regs = if regs_per_thread == 0 {
        u32::MAX
    } else {
        let regs_per_warp = round_up(regs_per_thread * spec.warp_size, spec.reg_alloc_unit);
        if regs_per_warp * warps_per_block > spec.regs_per_block {
            return 0;
        }
        let warps = round_down(
            spec.regs_per_sm / regs_per_warp,
            spec.warp_alloc_granularity,
        );
        warps / warps_per_block
    };

    let smem_per_block = round_up(
        shared_bytes + spec.reserved_shared_mem_per_block_bytes,
        spec.shared_mem_alloc_unit_bytes,
    );
    let by_smem = spec
        .shared_mem_per_sm_bytes
        .checked_div(smem_per_block)
        .unwrap_or(u32::MAX);

    spec.max_blocks_per_sm
        .min(by_warps)
        .min(by_regs)
        .min(by_smem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::gpu::{gpu_preset, GPU_PRESETS};

    fn h100() -> GpuSpec {
        gpu_preset("h100-sxm-80gb").unwrap()
    }

    fn attr(spec: &GpuSpec, a: cudaDeviceAttr) -> i32 {
        device_attribute(spec, 0, a).unwrap_or_else(|| panic!("{a:?} unanswered"))
    }

    fn name_of(p: &cudaDeviceProp) -> String {
        let bytes: Vec<u8> = p
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn h100_props_are_what_a_dgx_h100_reports() {
        let p = device_prop(&h100(), 3, 0x5d, sim_core::gpu::gpu_uuid(0, 3));
        assert_eq!(name_of(&p), "NVIDIA H100 80GB HBM3");
        assert_eq!(p.totalGlobalMem, 85_017_493_504);
        assert_eq!((p.major, p.minor), (9, 0));
        assert_eq!(p.multiProcessorCount, 132);
        assert_eq!(p.sharedMemPerBlock, 49_152);
        assert_eq!(p.sharedMemPerBlockOptin, 232_448);
        assert_eq!(p.sharedMemPerMultiprocessor, 233_472);
        assert_eq!(p.reservedSharedMemPerBlock, 1_024);
        assert_eq!(p.regsPerBlock, 65_536);
        assert_eq!(p.regsPerMultiprocessor, 65_536);
        assert_eq!(p.warpSize, 32);
        assert_eq!(p.maxThreadsPerBlock, 1024);
        assert_eq!(p.maxThreadsDim, [1024, 1024, 64]);
        assert_eq!(p.maxGridSize, [2_147_483_647, 65_535, 65_535]);
        assert_eq!(p.maxThreadsPerMultiProcessor, 2048);
        assert_eq!(p.maxBlocksPerMultiProcessor, 32);
        assert_eq!(p.totalConstMem, 65_536);
        assert_eq!(p.l2CacheSize, 52_428_800);
        assert_eq!(p.memoryBusWidth, 5120);
        assert_eq!(p.memPitch, 2_147_483_647);
        assert_eq!(p.textureAlignment, 512);
        assert_eq!(p.texturePitchAlignment, 32);
        assert_eq!(p.maxTexture2D, [131_072, 65_536]);
        assert_eq!(p.maxTexture3D, [16_384, 16_384, 16_384]);
        assert_eq!(p.pciBusID, 0x5d);
        assert_eq!((p.pciDeviceID, p.pciDomainID), (0, 0));
        assert_eq!(p.gpuPciDeviceID, 0x2330_10de);
        assert_eq!(p.ECCEnabled, 1);
        assert_eq!(p.unifiedAddressing, 1);
        assert_eq!(p.managedMemory, 1);
        assert_eq!(p.concurrentManagedAccess, 1);
        assert_eq!(p.pageableMemoryAccess, 0);
        assert_eq!(p.hostNativeAtomicSupported, 0);
        assert_eq!(p.canMapHostMemory, 1);
        assert_eq!(p.concurrentKernels, 1);
        assert_eq!(p.asyncEngineCount, 3);
        assert_eq!(p.memoryPoolsSupported, 1);
        assert_eq!(p.cooperativeLaunch, 1);
        assert_eq!(p.clusterLaunch, 1);
        assert_eq!(p.integrated, 0);
        assert_eq!(p.tccDriver, 0);
        assert_eq!(p.deviceNumaId, -1);
        assert_eq!(p.hostNumaId, 0);
        assert_eq!(p.multiGpuBoardGroupID, 3);
        assert_eq!(p.luid, [0; 8]);
        assert_eq!(p.reserved, [0; 56]);
        assert_eq!(device_prop(&h100(), 4, 0x9a, sim_core::gpu::gpu_uuid(0, 4)).hostNumaId, 1);
    }

    #[test]
    fn uuids_are_stable_and_distinct() {
        let a = device_prop(&h100(), 0, 0x18, sim_core::gpu::gpu_uuid(0, 0)).uuid;
        let b = device_prop(&h100(), 1, 0x2a, sim_core::gpu::gpu_uuid(0, 1)).uuid;
        assert_eq!(a, device_prop(&h100(), 0, 0x18, sim_core::gpu::gpu_uuid(0, 0)).uuid);
        assert_ne!(a, b);
        assert_eq!(
            sim_core::gpu::gpu_uuid(0, 1),
            [b'P', b'H', b'N', b'T', 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn a100_props() {
        let a100 = gpu_preset("a100-sxm-80gb").unwrap();
        let p = device_prop(&a100, 0, 0x07, sim_core::gpu::gpu_uuid(0, 0));
        assert_eq!(name_of(&p), "NVIDIA A100-SXM4-80GB");
        assert_eq!((p.major, p.minor), (8, 0));
        assert_eq!(p.multiProcessorCount, 108);
        assert_eq!(p.sharedMemPerMultiprocessor, 167_936);
        assert_eq!(p.sharedMemPerBlockOptin, 166_912);
        assert_eq!(p.l2CacheSize, 41_943_040);
        assert_eq!(p.clusterLaunch, 0);
        assert_eq!(attr(&a100, cudaDeviceAttr::cudaDevAttrClockRate), 1_410_000);
        assert_eq!(
            attr(&a100, cudaDeviceAttr::cudaDevAttrMemSyncDomainCount),
            1
        );
        assert_eq!(attr(&a100, cudaDeviceAttr::cudaDevAttrReserved127), 0);
    }

    #[test]
    fn attributes_agree_with_props() {
        let s = h100();
        type A = cudaDeviceAttr;
        assert_eq!(attr(&s, A::cudaDevAttrMultiProcessorCount), 132);
        assert_eq!(attr(&s, A::cudaDevAttrComputeCapabilityMajor), 9);
        assert_eq!(attr(&s, A::cudaDevAttrComputeCapabilityMinor), 0);
        assert_eq!(attr(&s, A::cudaDevAttrClockRate), 1_980_000);
        assert_eq!(attr(&s, A::cudaDevAttrMemoryClockRate), 2_619_000);
        assert_eq!(
            attr(&s, A::cudaDevAttrMaxSharedMemoryPerBlockOptin),
            232_448
        );
        assert_eq!(
            attr(&s, A::cudaDevAttrMaxSharedMemoryPerMultiprocessor),
            233_472
        );
        assert_eq!(attr(&s, A::cudaDevAttrMaxBlocksPerMultiprocessor), 32);
        assert_eq!(attr(&s, A::cudaDevAttrL2CacheSize), 52_428_800);
        assert_eq!(attr(&s, A::cudaDevAttrComputeMode), 0);
        assert_eq!(attr(&s, A::cudaDevAttrKernelExecTimeout), 0);
        assert_eq!(attr(&s, A::cudaDevAttrSingleToDoublePrecisionPerfRatio), 2);
        assert_eq!(attr(&s, A::cudaDevAttrMemSyncDomainCount), 4);
        assert_eq!(attr(&s, A::cudaDevAttrReserved132), 1);
        assert_eq!(attr(&s, A::cudaDevAttrGpuPciDeviceId), 0x2330_10de);
        assert_eq!(attr(&s, A::cudaDevAttrPciBusId), 0x18);
        assert_eq!(
            attr(&s, A::cudaDevAttrLocalityDomainMultiprocessorCount),
            132
        );
        assert_eq!(
            attr(&s, A::cudaDevAttrTensorMapLargeTensorMinSize),
            i32::MAX
        );
        assert_eq!(attr(&s, A::cudaDevAttrMaxTexture1DLinearWidth), 268_435_456);
        assert_eq!(device_attribute(&s, 0, A::cudaDevAttrMax), None);
        assert_eq!(device_attribute(&s, 0, cudaDeviceAttr(44)), None);
        assert_eq!(device_attribute(&s, 0, cudaDeviceAttr(0)), None);
        assert_eq!(device_attribute(&s, 0, cudaDeviceAttr(10_000)), None);
    }

    /// Every value below `cudaDevAttrMax` that the bindings name is answered; the gaps in the numbering are
    /// not. (The list of gaps is what CUDA 13.5's headers leave out.)
    #[test]
    fn exactly_the_named_attributes_are_answered() {
        let gaps = [
            0, 44, 102, 103, 104, 105, 107, 110, 136, 137, 146, 152, 153, 154, 155, 156, 158, 159,
        ];
        for &key in GPU_PRESETS {
            let s = gpu_preset(key).unwrap();
            for v in 0..=cudaDeviceAttr::cudaDevAttrMax.0 {
                let got = device_attribute(&s, 0, cudaDeviceAttr(v));
                let named = !gaps.contains(&v) && v != cudaDeviceAttr::cudaDevAttrMax.0;
                assert_eq!(got.is_some(), named, "{key}: attribute {v}");
            }
        }
    }

    #[test]
    fn occupancy_on_h100() {
        let s = h100();
        assert_eq!(max_active_blocks_per_sm(&s, 256, 32, 0), 8);
        assert_eq!(max_active_blocks_per_sm(&s, 1024, 64, 0), 1);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 48 * 1024), 4);
        // Block limit: 32 blocks of one warp each.
        assert_eq!(max_active_blocks_per_sm(&s, 32, 0, 0), 32);
        assert_eq!(max_active_blocks_per_sm(&s, 64, 32, 0), 32);
        // Warp limit: 64 warps / 3 warps per block (96 threads) = 21.
        assert_eq!(max_active_blocks_per_sm(&s, 96, 0, 0), 21);
        // Registers round up per warp: 33 regs → 1056 → 1280 per warp → 51 warps → 48 (granularity 4).
        assert_eq!(max_active_blocks_per_sm(&s, 256, 33, 0), 6);
        // 128 regs: 4096 per warp, 16 warps per SM.
        assert_eq!(max_active_blocks_per_sm(&s, 128, 128, 0), 4);
        // 255 regs: 8192 per warp (rounded), 8 warps → one 256-thread block.
        assert_eq!(max_active_blocks_per_sm(&s, 256, 255, 0), 1);
        // Too many registers for one block.
        assert_eq!(max_active_blocks_per_sm(&s, 1024, 65, 0), 0);
        assert_eq!(max_active_blocks_per_sm(&s, 32, 256, 0), 0);
        // Shared memory rounds up to 128 bytes after the 1 KiB reservation: (1+1024)→1152 → 202 blocks,
        // so the block limit decides.
        assert_eq!(max_active_blocks_per_sm(&s, 32, 0, 1), 32);
        // (113 KiB + 1 KiB) fits exactly twice in 228 KiB; (114 KiB + 1 KiB) only once.
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 100 * 1024), 2);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 113 * 1024), 2);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 114 * 1024), 1);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 232_448), 1);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 232_449), 0);
        // Invalid block sizes.
        assert_eq!(max_active_blocks_per_sm(&s, 0, 32, 0), 0);
        assert_eq!(max_active_blocks_per_sm(&s, 1025, 32, 0), 0);
    }

    #[test]
    fn occupancy_on_a100() {
        let s = gpu_preset("a100-sxm-80gb").unwrap();
        assert_eq!(max_active_blocks_per_sm(&s, 256, 32, 0), 8);
        // 48 KiB + 1 KiB per block: 164 KiB / 49 KiB = 3.
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 48 * 1024), 3);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 166_912), 1);
        assert_eq!(max_active_blocks_per_sm(&s, 128, 0, 166_913), 0);
    }
}
