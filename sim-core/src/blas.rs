//! The time of a dense matrix multiply (cuBLAS / cuBLASLt GEMMs), by a roofline model of the GPU.
//!
//! A GEMM `C[m×n] = A[m×k] · B[k×n]` (times `batch`) does `2·m·n·k·batch` floating-point operations and, at
//! least, reads A and B and writes C once: `(m·k + k·n)·in_bytes + m·n·out_bytes` bytes per matrix, times `batch`
//! (reading C when β ≠ 0 is not counted). Its duration is
//!
//! ```text
//! time = max(flops / (peak_flops(precision) × gemm_efficiency), bytes / hbm_bytes_per_s) + GEMM_FIXED_NS
//! ```
//!
//! rounded up to a whole nanosecond. `peak_flops` is the GPU preset's data-sheet peak for the precision the
//! library computes in (`GpuSpec::peak_flops`), `gemm_efficiency` the fraction of it a GEMM sustains
//! (`GpuSpec::gemm_efficiency`: [`GEMM_EFFICIENCY`] unless a cluster file or a GPU profile of `phantom calibrate`
//! sets it), `hbm_bytes_per_s` the device-memory bandwidth a large copy achieves (`GpuSpec::hbm_bytes_per_s`). The launch latency (submission to earliest start) is the stream's, as
//! for every kernel; `GEMM_FIXED_NS` is the kernel's own fixed cost (prologue, tile ramp-up, tail).

use crate::gpu::GpuSpec;

/// The default of `GpuSpec::gemm_efficiency`: the fraction of the data-sheet peak a large cuBLAS GEMM sustains
/// (measured large GEMMs reach 70–80 % of peak on Hopper in every precision; 0.75 is the midpoint).
pub const GEMM_EFFICIENCY: f64 = 0.75;

/// A GEMM kernel's fixed cost beyond its roofline time (ns): what the smallest GEMMs take.
pub const GEMM_FIXED_NS: u64 = 3_000;

/// The arithmetic a GEMM runs in, selecting the peak of `GpuSpec::peak_flops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp64,
    Fp32,
    Tf32,
    Fp16,
    Bf16,
    Fp8,
}

impl Precision {
    /// From its `sim_core::shim_abi::PREC_*` number.
    pub fn from_index(i: u32) -> Option<Precision> {
        use Precision::*;
        [Fp64, Fp32, Tf32, Fp16, Bf16, Fp8].get(i as usize).copied()
    }

    /// The peak (FLOP/s) of `spec` in this precision; 0 where the GPU has none.
    pub fn peak(self, spec: &GpuSpec) -> f64 {
        let p = &spec.peak_flops;
        match self {
            Precision::Fp64 => p.fp64,
            Precision::Fp32 => p.fp32,
            Precision::Tf32 => p.tf32,
            Precision::Fp16 => p.fp16,
            Precision::Bf16 => p.bf16,
            Precision::Fp8 => p.fp8,
        }
    }
}

/// One GEMM: shapes, batch count, element sizes of the inputs (A, B) and the output (C).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub batch: u64,
    pub precision: Precision,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Gemm {
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }

    pub fn bytes(&self) -> f64 {
        ((self.m * self.k + self.k * self.n) as f64 * self.in_bytes as f64 + (self.m * self.n) as f64 * self.out_bytes as f64)
            * self.batch as f64
    }

    /// The GEMM's duration on `spec` (ns), or an error when the GPU cannot compute in its precision.
    pub fn time_ns(&self, spec: &GpuSpec) -> Result<u64, String> {
        let peak = self.precision.peak(spec);
        if peak <= 0.0 {
            return Err(format!("{} has no {:?} arithmetic", spec.name, self.precision));
        }
        if self.flops() == 0.0 {
            return Ok(GEMM_FIXED_NS);
        }
        let compute = self.flops() / (peak * spec.gemm_efficiency);
        let memory = self.bytes() / spec.hbm_bytes_per_s;
        Ok((compute.max(memory) * 1e9).ceil() as u64 + GEMM_FIXED_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> GpuSpec {
        crate::gpu::gpu_preset("h100-sxm-80gb").unwrap()
    }

    fn square(n: u64, precision: Precision, bytes: u64) -> Gemm {
        Gemm { m: n, n, k: n, batch: 1, precision, in_bytes: bytes, out_bytes: bytes }
    }

    #[test]
    fn sgemm_4096_on_h100_is_compute_bound() {
        // 2·4096³ = 137_438_953_472 FLOP at 67e12 × 0.75 = 50.25e12 FLOP/s: 2_735_103.55 ns → 2_735_104 ns;
        // memory: 3·4096²·4 B = 201_326_592 B at 3.0e12 B/s = 67_108.9 ns (smaller). Plus 3_000 ns fixed.
        assert_eq!(square(4096, Precision::Fp32, 4).time_ns(&h100()).unwrap(), 2_738_104);
    }

    #[test]
    fn bf16_gemm_uses_the_tensor_core_peak() {
        // 137_438_953_472 FLOP at 989.4e12 × 0.75 = 742.05e12 FLOP/s: 185_215.2 ns → 185_216 ns; memory:
        // 3·4096²·2 B = 100_663_296 B at 3.0e12 B/s = 33_554.4 ns. Plus 3_000 ns.
        assert_eq!(square(4096, Precision::Bf16, 2).time_ns(&h100()).unwrap(), 188_216);
    }

    #[test]
    fn thin_gemm_is_memory_bound() {
        // m = 65536, n = 1, k = 4096 in fp32: 2·65536·4096 = 536_870_912 FLOP → 10_684 ns of compute;
        // bytes: (65536·4096 + 4096)·4 + 65536·4 = 1_074_020_352 B at 3.0e12 B/s = 358_006.784 ns → 358_007 ns.
        let g = Gemm { m: 65536, n: 1, k: 4096, batch: 1, precision: Precision::Fp32, in_bytes: 4, out_bytes: 4 };
        assert_eq!(g.time_ns(&h100()).unwrap(), 361_007);
    }

    #[test]
    fn gemm_efficiency_scales_the_compute_bound_time() {
        assert_eq!(h100().gemm_efficiency, 0.75);
        let mut spec = h100();
        spec.gemm_efficiency = 0.5;
        // 137_438_953_472 FLOP at 989.4e12 × 0.5 = 494.7e12 FLOP/s: 277_822.8 ns → 277_823 ns (memory 33_554.4 ns
        // is smaller), plus 3_000 ns.
        assert_eq!(square(4096, Precision::Bf16, 2).time_ns(&spec).unwrap(), 280_823);
        // A memory-bound GEMM does not change: the thin fp32 one of `thin_gemm_is_memory_bound`.
        let g = Gemm { m: 65536, n: 1, k: 4096, batch: 1, precision: Precision::Fp32, in_bytes: 4, out_bytes: 4 };
        assert_eq!(g.time_ns(&spec).unwrap(), 361_007);
        // At the default 0.75 the 4096³ bf16 GEMM takes what `bf16_gemm_uses_the_tensor_core_peak` says.
        spec.gemm_efficiency = GEMM_EFFICIENCY;
        assert_eq!(square(4096, Precision::Bf16, 2).time_ns(&spec).unwrap(), 188_216);
    }

    #[test]
    fn empty_gemm_costs_the_fixed_time_and_missing_precision_fails() {
        assert_eq!(square(0, Precision::Fp32, 4).time_ns(&h100()).unwrap(), GEMM_FIXED_NS);
        let mut spec = h100();
        spec.peak_flops.fp8 = 0.0;
        assert!(square(16, Precision::Fp8, 1).time_ns(&spec).is_err());
    }
}
