//! GPU models as data: the values a real GPU of each model reports through `cudaDeviceProp` /
//! `cudaDeviceGetAttribute`, and the performance figures the timing models use.
//!
//! STUB — being filled in (presets h100-sxm-80gb, h200-141gb, a100-sxm-80gb, b200 with real values).

use serde::{Deserialize, Serialize};

/// Dense peak throughput per data type, in FLOP/s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PeakFlops {
    pub fp64: f64,
    pub fp32: f64,
    pub tf32: f64,
    pub fp16: f64,
    pub bf16: f64,
    pub fp8: f64,
}

/// One GPU model. Field names carry their units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Preset key, e.g. `h100-sxm-80gb`.
    pub key: String,
    /// `cudaDeviceProp::name`, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    pub compute_capability: [u32; 2],
    pub sm_count: u32,
    /// `totalGlobalMem` as the real GPU reports it.
    pub memory_bytes: u64,
    /// Memory a CUDA context holds on a real GPU before the program allocates anything; allocations fail
    /// once `memory_bytes - context_reserve_bytes` is used.
    pub context_reserve_bytes: u64,
    pub clock_rate_khz: u32,
    pub memory_clock_rate_khz: u32,
    pub memory_bus_width_bits: u32,
    pub l2_cache_bytes: u32,
    pub persisting_l2_cache_max_bytes: u32,
    pub warp_size: u32,
    pub max_threads_per_block: u32,
    pub max_threads_per_sm: u32,
    pub max_blocks_per_sm: u32,
    pub regs_per_block: u32,
    pub regs_per_sm: u32,
    pub shared_mem_per_block_bytes: u32,
    pub shared_mem_per_block_optin_bytes: u32,
    pub shared_mem_per_sm_bytes: u32,
    pub reserved_shared_mem_per_block_bytes: u32,
    pub total_const_mem_bytes: u32,
    pub max_block_dim: [u32; 3],
    pub max_grid_size: [u32; 3],
    pub async_engine_count: u32,
    /// Device-memory bandwidth (bytes/s) a large device-to-device copy or memset achieves.
    pub hbm_bytes_per_s: f64,
    /// Host-to-device bandwidth from pinned memory (bytes/s).
    pub pcie_h2d_bytes_per_s: f64,
    /// Device-to-host bandwidth to pinned memory (bytes/s).
    pub pcie_d2h_bytes_per_s: f64,
    /// Bandwidth of copies from or to pageable (unpinned) host memory (bytes/s).
    pub pageable_bytes_per_s: f64,
    /// NVLink bandwidth per GPU per direction (bytes/s); 0 if the model has none.
    pub nvlink_bytes_per_s: f64,
    pub peak_flops: PeakFlops,
    /// From a command's submission by the host to the earliest moment the GPU can start it (ns).
    pub launch_latency_ns: u64,
}

/// Names of the built-in GPU models.
pub const GPU_PRESETS: &[&str] = &["h100-sxm-80gb"];

/// The built-in GPU model with this key.
pub fn gpu_preset(key: &str) -> Option<GpuSpec> {
    match key {
        "h100-sxm-80gb" => Some(GpuSpec {
            key: key.into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            compute_capability: [9, 0],
            sm_count: 132,
            memory_bytes: 85_029_158_912,
            context_reserve_bytes: 536_870_912,
            clock_rate_khz: 1_980_000,
            memory_clock_rate_khz: 2_619_000,
            memory_bus_width_bits: 5120,
            l2_cache_bytes: 52_428_800,
            persisting_l2_cache_max_bytes: 82_837_504,
            warp_size: 32,
            max_threads_per_block: 1024,
            max_threads_per_sm: 2048,
            max_blocks_per_sm: 32,
            regs_per_block: 65536,
            regs_per_sm: 65536,
            shared_mem_per_block_bytes: 49152,
            shared_mem_per_block_optin_bytes: 232_448,
            shared_mem_per_sm_bytes: 233_472,
            reserved_shared_mem_per_block_bytes: 1024,
            total_const_mem_bytes: 65536,
            max_block_dim: [1024, 1024, 64],
            max_grid_size: [2_147_483_647, 65535, 65535],
            async_engine_count: 3,
            hbm_bytes_per_s: 3.0e12,
            pcie_h2d_bytes_per_s: 53.0e9,
            pcie_d2h_bytes_per_s: 53.0e9,
            pageable_bytes_per_s: 20.0e9,
            nvlink_bytes_per_s: 450.0e9,
            peak_flops: PeakFlops { fp64: 67e12, fp32: 67e12, tf32: 494.7e12, fp16: 989.4e12, bf16: 989.4e12, fp8: 1978.9e12 },
            launch_latency_ns: 2_000,
        }),
        _ => None,
    }
}
