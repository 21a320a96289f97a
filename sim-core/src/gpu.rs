//! GPU models as data: the values a real GPU of each model reports through `cudaDeviceProp` /
//! `cudaDeviceGetAttribute`, and the performance figures the timing models use.
//!
//! Each preset is a plain value; `docs/gpus.md` says where every figure comes from and how sure it is.
//! Values that are the same for every architecture we model (texture limits, alignments) live with the code
//! that reports them (`libcudart-phantom`'s `device_props`), not here.

use serde::{Deserialize, Serialize};

/// Dense peak throughput per data type, in FLOP/s (tensor cores where the type has them, no sparsity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PeakFlops {
    pub fp64: f64,
    pub fp32: f64,
    pub tf32: f64,
    pub fp16: f64,
    pub bf16: f64,
    /// 0 where the model has no FP8 support.
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
    /// `[major, minor]`, e.g. `[9, 0]`.
    pub compute_capability: [u32; 2],
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// `totalGlobalMem` as the real GPU reports it (bytes).
    pub memory_bytes: u64,
    /// Memory a CUDA context holds on a real GPU before the program allocates anything (bytes); allocations
    /// fail once `memory_bytes - context_reserve_bytes` is used.
    pub context_reserve_bytes: u64,
    /// Peak SM clock (kHz), `cudaDevAttrClockRate`.
    pub clock_rate_khz: u32,
    /// Peak memory clock (kHz), `cudaDevAttrMemoryClockRate`.
    pub memory_clock_rate_khz: u32,
    /// Memory bus width (bits).
    pub memory_bus_width_bits: u32,
    /// L2 cache size (bytes).
    pub l2_cache_bytes: u32,
    /// Largest L2 set-aside for persisting accesses (bytes), `persistingL2CacheMaxSize`.
    pub persisting_l2_cache_max_bytes: u32,
    /// Largest access-policy window (bytes), `accessPolicyMaxWindowSize`.
    pub access_policy_max_window_bytes: u32,
    /// Threads per warp.
    pub warp_size: u32,
    /// Threads per block.
    pub max_threads_per_block: u32,
    /// Resident threads per SM.
    pub max_threads_per_sm: u32,
    /// Resident blocks per SM.
    pub max_blocks_per_sm: u32,
    /// 32-bit registers available to one block.
    pub regs_per_block: u32,
    /// 32-bit registers per SM.
    pub regs_per_sm: u32,
    /// Registers one thread may use at most.
    pub max_regs_per_thread: u32,
    /// Registers are allocated per warp in multiples of this many (registers).
    pub reg_alloc_unit: u32,
    /// Warps are allocated registers in groups of this many (warps) when the register file limits occupancy.
    pub warp_alloc_granularity: u32,
    /// Shared memory a block may use without opting in (bytes).
    pub shared_mem_per_block_bytes: u32,
    /// Shared memory a block may use after `cudaFuncSetAttribute(MaxDynamicSharedMemorySize)` (bytes).
    pub shared_mem_per_block_optin_bytes: u32,
    /// Shared memory per SM at the largest carve-out (bytes).
    pub shared_mem_per_sm_bytes: u32,
    /// Shared memory the system reserves for every resident block (bytes).
    pub reserved_shared_mem_per_block_bytes: u32,
    /// Shared memory is allocated to a block in multiples of this many (bytes).
    pub shared_mem_alloc_unit_bytes: u32,
    /// Constant memory (bytes).
    pub total_const_mem_bytes: u32,
    /// Block dimensions, `[x, y, z]` (threads).
    pub max_block_dim: [u32; 3],
    /// Grid dimensions, `[x, y, z]` (blocks).
    pub max_grid_size: [u32; 3],
    /// Copy engines that can run concurrently with kernels.
    pub async_engine_count: u32,
    /// 16-bit PCI device id (the vendor is always NVIDIA, 0x10de).
    pub pci_device_id: u16,
    /// PCI subsystem id and subsystem vendor id combined, as `cudaDevAttrGpuPciSubsystemId` reports it
    /// (`subsystem << 16 | subsystem_vendor`).
    pub pci_subsystem_id: u32,
    /// ECC on device memory is enabled (the default on data-center parts).
    pub ecc_enabled: bool,
    /// The board carries more than one GPU (`isMultiGpuBoard`).
    pub multi_gpu_board: bool,
    /// Memory synchronization domains (`cudaDevAttrMemSyncDomainCount`); 1 before Hopper.
    pub mem_sync_domain_count: u32,
    /// NVLink switch multicast/reduction (NVLS) is available, as in an NVSwitch system.
    pub multicast_supported: bool,
    /// FP32 : FP64 non-tensor throughput ratio (`cudaDevAttrSingleToDoublePrecisionPerfRatio`).
    pub single_to_double_perf_ratio: u32,
    /// Device-memory bandwidth (bytes/s) a large device-to-device copy or memset achieves (below the
    /// data-sheet peak, which is `2 * memory_clock * bus_width / 8`).
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
    /// The fraction of `peak_flops` a compute-bound cuBLAS / cuBLASLt GEMM sustains (`sim_core::blas`): greater
    /// than 0, at most 1. Default [`crate::blas::GEMM_EFFICIENCY`] (0.75) where a cluster file or preset does not
    /// give it; `phantom calibrate --gemm` measures it (docs/calibration.md).
    #[serde(default = "default_gemm_efficiency")]
    pub gemm_efficiency: f64,
}

fn default_gemm_efficiency() -> f64 {
    crate::blas::GEMM_EFFICIENCY
}

impl GpuSpec {
    /// Data-sheet peak device-memory bandwidth (bytes/s): double data rate over the whole bus.
    pub fn peak_memory_bytes_per_s(&self) -> f64 {
        2.0 * self.memory_clock_rate_khz as f64 * 1e3 * self.memory_bus_width_bits as f64 / 8.0
    }

    /// Warps resident on one SM at most.
    pub fn max_warps_per_sm(&self) -> u32 {
        self.max_threads_per_sm / self.warp_size
    }
}

/// Names of the built-in GPU models.
pub const GPU_PRESETS: &[&str] = &["h100-sxm-80gb", "h200-141gb", "a100-sxm-80gb", "b200"];

/// Names of the built-in GPU models (the same list as [`GPU_PRESETS`]).
pub fn gpu_preset_names() -> &'static [&'static str] {
    GPU_PRESETS
}

const MIB: u64 = 1 << 20;
const KIB: u32 = 1 << 10;

/// The built-in GPU model with this key.
pub fn gpu_preset(key: &str) -> Option<GpuSpec> {
    let spec = match key {
        "h100-sxm-80gb" => h100_sxm_80gb(),
        "h200-141gb" => h200_141gb(),
        "a100-sxm-80gb" => a100_sxm_80gb(),
        "b200" => b200(),
        _ => return None,
    };
    Some(GpuSpec {
        key: key.into(),
        ..spec
    })
}

/// H100 SXM5 80 GB as in a DGX/HGX H100 (PCIe Gen5 host link, NVLink 4 through NVSwitch).
fn h100_sxm_80gb() -> GpuSpec {
    GpuSpec {
        key: String::new(),
        name: "NVIDIA H100 80GB HBM3".into(),
        compute_capability: [9, 0],
        sm_count: 132,
        // Measured on an H100 SXM5 80 GB (driver 580.159.04, torch 2.11): `totalGlobalMem`, and what
        // `cudaMemGetInfo` reported free right after torch initialised its context, 552 402 944 bytes less
        // (calibration/torch/h100-sxm-80gb/env.txt).
        memory_bytes: 85_017_493_504,
        context_reserve_bytes: 552_402_944,
        clock_rate_khz: 1_980_000,
        memory_clock_rate_khz: 2_619_000,
        memory_bus_width_bits: 5120,
        l2_cache_bytes: 50 * KIB * KIB,
        persisting_l2_cache_max_bytes: 82_837_504,
        access_policy_max_window_bytes: 134_213_632,
        warp_size: 32,
        max_threads_per_block: 1024,
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        regs_per_block: 65536,
        regs_per_sm: 65536,
        max_regs_per_thread: 255,
        reg_alloc_unit: 256,
        warp_alloc_granularity: 4,
        shared_mem_per_block_bytes: 48 * KIB,
        shared_mem_per_block_optin_bytes: 227 * KIB,
        shared_mem_per_sm_bytes: 228 * KIB,
        reserved_shared_mem_per_block_bytes: KIB,
        shared_mem_alloc_unit_bytes: 128,
        total_const_mem_bytes: 64 * KIB,
        max_block_dim: [1024, 1024, 64],
        max_grid_size: [2_147_483_647, 65535, 65535],
        async_engine_count: 3,
        pci_device_id: 0x2330,
        pci_subsystem_id: 0x16c1_10de,
        ecc_enabled: true,
        multi_gpu_board: false,
        mem_sync_domain_count: 4,
        multicast_supported: true,
        single_to_double_perf_ratio: 2,
        hbm_bytes_per_s: 3.0e12,
        pcie_h2d_bytes_per_s: 53.0e9,
        pcie_d2h_bytes_per_s: 53.0e9,
        pageable_bytes_per_s: 20.0e9,
        nvlink_bytes_per_s: 450.0e9,
        peak_flops: PeakFlops {
            fp64: 67e12,
            fp32: 67e12,
            tf32: 494.7e12,
            fp16: 989.4e12,
            bf16: 989.4e12,
            fp8: 1978.9e12,
        },
        launch_latency_ns: 2_000,
        gemm_efficiency: crate::blas::GEMM_EFFICIENCY,
    }
}

/// H200 SXM 141 GB: the H100 die with 141 GB of HBM3e on a 6144-bit bus.
fn h200_141gb() -> GpuSpec {
    GpuSpec {
        name: "NVIDIA H200".into(),
        memory_bytes: 150_754_820_096,
        memory_clock_rate_khz: 3_201_000,
        memory_bus_width_bits: 6144,
        pci_device_id: 0x2335,
        pci_subsystem_id: 0x18be_10de,
        // 4.8 TB/s data sheet; ~90% of it for a large copy, as on H100.
        hbm_bytes_per_s: 4.3e12,
        ..h100_sxm_80gb()
    }
}

/// A100 SXM4 80 GB as in a DGX A100 (PCIe Gen4 host link, NVLink 3 through NVSwitch).
fn a100_sxm_80gb() -> GpuSpec {
    GpuSpec {
        key: String::new(),
        name: "NVIDIA A100-SXM4-80GB".into(),
        compute_capability: [8, 0],
        sm_count: 108,
        memory_bytes: 85_097_971_712,
        context_reserve_bytes: 512 * MIB,
        clock_rate_khz: 1_410_000,
        memory_clock_rate_khz: 1_593_000,
        memory_bus_width_bits: 5120,
        l2_cache_bytes: 40 * KIB * KIB,
        persisting_l2_cache_max_bytes: 30 * KIB * KIB,
        access_policy_max_window_bytes: 134_213_632,
        warp_size: 32,
        max_threads_per_block: 1024,
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        regs_per_block: 65536,
        regs_per_sm: 65536,
        max_regs_per_thread: 255,
        reg_alloc_unit: 256,
        warp_alloc_granularity: 4,
        shared_mem_per_block_bytes: 48 * KIB,
        shared_mem_per_block_optin_bytes: 163 * KIB,
        shared_mem_per_sm_bytes: 164 * KIB,
        reserved_shared_mem_per_block_bytes: KIB,
        shared_mem_alloc_unit_bytes: 128,
        total_const_mem_bytes: 64 * KIB,
        max_block_dim: [1024, 1024, 64],
        max_grid_size: [2_147_483_647, 65535, 65535],
        async_engine_count: 3,
        pci_device_id: 0x20b2,
        pci_subsystem_id: 0x147f_10de,
        ecc_enabled: true,
        multi_gpu_board: false,
        mem_sync_domain_count: 1,
        multicast_supported: false,
        single_to_double_perf_ratio: 2,
        // 2.04 TB/s data sheet; ~88% of it for a large copy.
        hbm_bytes_per_s: 1.8e12,
        pcie_h2d_bytes_per_s: 25.0e9,
        pcie_d2h_bytes_per_s: 25.0e9,
        pageable_bytes_per_s: 12.0e9,
        nvlink_bytes_per_s: 300.0e9,
        peak_flops: PeakFlops {
            fp64: 19.5e12,
            fp32: 19.5e12,
            tf32: 156e12,
            fp16: 312e12,
            bf16: 312e12,
            fp8: 0.0,
        },
        launch_latency_ns: 2_000,
        gemm_efficiency: crate::blas::GEMM_EFFICIENCY,
    }
}

/// B200 as in a DGX/HGX B200 (two dies presented as one device, PCIe Gen5 host link, NVLink 5).
fn b200() -> GpuSpec {
    GpuSpec {
        name: "NVIDIA B200".into(),
        compute_capability: [10, 0],
        sm_count: 148,
        memory_bytes: 191_466_323_968,
        clock_rate_khz: 1_965_000,
        memory_clock_rate_khz: 3_996_000,
        memory_bus_width_bits: 8192,
        l2_cache_bytes: 126 * KIB * KIB,
        async_engine_count: 4,
        pci_device_id: 0x2901,
        pci_subsystem_id: 0x1999_10de,
        // 8 TB/s data sheet; ~90% of it for a large copy.
        hbm_bytes_per_s: 7.2e12,
        nvlink_bytes_per_s: 900.0e9,
        peak_flops: PeakFlops {
            fp64: 37e12,
            fp32: 75e12,
            tf32: 1.1e15,
            fp16: 2.25e15,
            bf16: 2.25e15,
            fp8: 4.5e15,
        },
        ..h100_sxm_80gb()
    }
}

/// PCI bus number of the GPU at `index` of a node: a DGX's buses for the first 8 (`cudaDeviceGetPCIBusId`,
/// `cudaDeviceProp::pciBusID` and NVML's PCI info all name this bus).
pub fn pci_bus(index: u32) -> u32 {
    const DGX_BUSES: [u32; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];
    DGX_BUSES.get(index as usize).copied().unwrap_or(0x100 + index)
}

/// A stable, made-up UUID for GPU `index` of node `node`, as the runtime (`cudaDeviceProp::uuid`) and NVML
/// report it: bytes 0..4 spell `PHNT`, RFC 4122 version-4 and variant bits set, the node in bytes 9..12 and the
/// GPU's index in the node (not its CUDA ordinal: `CUDA_VISIBLE_DEVICES` does not change a GPU's UUID) in the
/// last four.
pub fn gpu_uuid(node: u32, index: u32) -> [u8; 16] {
    let n = node.to_be_bytes();
    let i = index.to_be_bytes();
    [b'P', b'H', b'N', b'T', 0x00, 0x00, 0x40, 0x00, 0x80, n[1], n[2], n[3], i[0], i[1], i[2], i[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn h100_has_real_values() {
        let s = gpu_preset("h100-sxm-80gb").unwrap();
        assert_eq!(s.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(s.compute_capability, [9, 0]);
        assert_eq!(s.sm_count, 132);
        assert_eq!(s.memory_bytes, 85_017_493_504);
        assert!(s.memory_bytes > 79 * GIB && s.memory_bytes < 80 * GIB);
        assert_eq!(s.clock_rate_khz, 1_980_000);
        assert_eq!(s.l2_cache_bytes, 52_428_800);
        assert_eq!(s.shared_mem_per_sm_bytes, 233_472);
        assert_eq!(s.shared_mem_per_block_optin_bytes, 232_448);
        assert_eq!(s.context_reserve_bytes, 552_402_944);
        assert_eq!(s.launch_latency_ns, 2_000);
        assert_eq!(s.pci_device_id, 0x2330);
        // 2 * 2619 MHz * 5120 bit / 8 = 3.352 TB/s.
        assert_eq!(s.peak_memory_bytes_per_s(), 3_352_320_000_000.0);
        assert_eq!(s.hbm_bytes_per_s, 3.0e12);
        assert_eq!(s.max_warps_per_sm(), 64);
    }

    #[test]
    fn h200_is_an_h100_with_more_memory() {
        let s = gpu_preset("h200-141gb").unwrap();
        let h100 = gpu_preset("h100-sxm-80gb").unwrap();
        assert_eq!(s.name, "NVIDIA H200");
        assert_eq!(s.compute_capability, [9, 0]);
        assert_eq!(s.sm_count, 132);
        assert_eq!(s.memory_bytes, 150_754_820_096);
        assert_eq!(s.memory_bus_width_bits, 6144);
        // 2 * 3201 MHz * 6144 bit / 8 = 4.917 TB/s (sold as 4.8 TB/s).
        assert_eq!(s.peak_memory_bytes_per_s(), 4_916_736_000_000.0);
        assert_eq!(s.shared_mem_per_sm_bytes, h100.shared_mem_per_sm_bytes);
        assert_eq!(s.peak_flops, h100.peak_flops);
    }

    #[test]
    fn a100_has_real_values() {
        let s = gpu_preset("a100-sxm-80gb").unwrap();
        assert_eq!(s.name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(s.compute_capability, [8, 0]);
        assert_eq!(s.sm_count, 108);
        assert_eq!(s.memory_bytes, 85_097_971_712);
        assert_eq!(s.clock_rate_khz, 1_410_000);
        assert_eq!(s.l2_cache_bytes, 41_943_040);
        assert_eq!(s.shared_mem_per_sm_bytes, 167_936);
        assert_eq!(s.shared_mem_per_block_optin_bytes, 166_912);
        assert_eq!(s.mem_sync_domain_count, 1);
        assert_eq!(s.peak_flops.fp8, 0.0);
        assert_eq!(s.pcie_h2d_bytes_per_s, 25.0e9);
    }

    #[test]
    fn b200_has_real_values() {
        let s = gpu_preset("b200").unwrap();
        assert_eq!(s.name, "NVIDIA B200");
        assert_eq!(s.compute_capability, [10, 0]);
        assert_eq!(s.sm_count, 148);
        assert_eq!(s.memory_bytes, 191_466_323_968);
        assert!(s.memory_bytes > 178 * GIB && s.memory_bytes < 180 * GIB);
        assert_eq!(s.memory_bus_width_bits, 8192);
        assert_eq!(s.nvlink_bytes_per_s, 900.0e9);
    }

    #[test]
    fn every_preset_round_trips_and_is_consistent() {
        assert_eq!(
            gpu_preset_names(),
            ["h100-sxm-80gb", "h200-141gb", "a100-sxm-80gb", "b200"]
        );
        for &key in GPU_PRESETS {
            let s = gpu_preset(key).unwrap_or_else(|| panic!("{key} listed but unknown"));
            assert_eq!(s.key, key);
            assert!(s.name.starts_with("NVIDIA "), "{key}");
            assert!(
                s.name.len() < 256,
                "{key}: name must fit cudaDeviceProp::name"
            );
            assert!(
                s.shared_mem_per_block_bytes <= s.shared_mem_per_block_optin_bytes,
                "{key}"
            );
            assert!(
                s.shared_mem_per_block_optin_bytes <= s.shared_mem_per_sm_bytes,
                "{key}"
            );
            assert_eq!(
                s.shared_mem_per_block_optin_bytes + s.reserved_shared_mem_per_block_bytes,
                s.shared_mem_per_sm_bytes,
                "{key}: one opted-in block fills the SM"
            );
            assert!(s.regs_per_block <= s.regs_per_sm, "{key}");
            assert!(s.max_threads_per_block <= s.max_threads_per_sm, "{key}");
            assert_eq!(s.max_threads_per_sm % s.warp_size, 0, "{key}");
            assert_eq!(s.max_block_dim[0], s.max_threads_per_block, "{key}");
            assert!(s.persisting_l2_cache_max_bytes > 0, "{key}");
            assert!(s.context_reserve_bytes < s.memory_bytes / 16, "{key}");
            assert!(
                s.hbm_bytes_per_s < s.peak_memory_bytes_per_s(),
                "{key}: achieved exceeds peak"
            );
            assert!(
                s.hbm_bytes_per_s > 0.8 * s.peak_memory_bytes_per_s(),
                "{key}"
            );
            assert!(s.pageable_bytes_per_s < s.pcie_h2d_bytes_per_s, "{key}");
            assert!(s.peak_flops.bf16 > s.peak_flops.fp32, "{key}");
            assert_eq!(s.launch_latency_ns, 2_000, "{key}");
            assert_eq!(s.gemm_efficiency, 0.75, "{key}");
            // The spec survives a trip through the configuration format.
            let text = toml::to_string(&s).unwrap();
            assert_eq!(toml::from_str::<GpuSpec>(&text).unwrap(), s, "{key}");
        }
        assert_eq!(gpu_preset("h100"), None);
        assert_eq!(gpu_preset(""), None);
    }

    #[test]
    fn gemm_efficiency_defaults_to_the_gemm_models_constant() {
        // A spec written before the field existed (a saved TOML without it) reads back with 0.75.
        let s = gpu_preset("h100-sxm-80gb").unwrap();
        let mut table = toml::Table::try_from(&s).unwrap();
        assert!(table.remove("gemm_efficiency").is_some());
        let back: GpuSpec = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(back.gemm_efficiency, 0.75);
        assert_eq!(back.gemm_efficiency, crate::blas::GEMM_EFFICIENCY);
        assert_eq!(back, s);
    }
}
