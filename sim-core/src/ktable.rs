//! Kernel-time table (measured durations by kernel identity) and the fallback model for kernels it lacks.
//!
//! STUB — being filled in (documented, versioned, mergeable text format; wildcard entries; fallback model).

use crate::gpu::GpuSpec;
use crate::time::SimDuration;
use std::collections::HashMap;

/// What a kernel launch is identified by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    /// Demangled name with parameter list, e.g. `spin(float*, int)`; the mangled name if demangling failed.
    pub name: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
}

/// Which of the sources of kernel time (DESIGN.md decision 7) timed a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeSource {
    Table,
    Model,
}

#[derive(Clone, Debug, Default)]
pub struct KernelTable {
    by_name: HashMap<String, SimDuration>,
}

impl KernelTable {
    pub fn parse(text: &str) -> Result<KernelTable, String> {
        let mut t = KernelTable::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 3 && f[0] == "kernel" {
                let ns: u64 = f[f.len() - 1].parse().map_err(|e| format!("{e}"))?;
                t.by_name.insert(f[1].to_string(), SimDuration::from_nanos(ns));
            }
        }
        Ok(t)
    }

    pub fn load(path: &std::path::Path) -> Result<KernelTable, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        KernelTable::parse(&text)
    }

    /// Adds `other`'s entries; on a conflict `other` wins.
    pub fn merge(&mut self, other: KernelTable) {
        self.by_name.extend(other.by_name);
    }

    pub fn lookup(&self, key: &KernelKey) -> Option<SimDuration> {
        let short = key.name.split('(').next().unwrap_or(&key.name);
        self.by_name.get(&key.name).or_else(|| self.by_name.get(short)).copied()
    }
}

/// Duration of a kernel no table lists.
#[derive(Clone, Debug, PartialEq)]
pub struct FallbackModel {
    pub base_ns: u64,
    pub per_wave_ns: u64,
}

impl Default for FallbackModel {
    fn default() -> Self {
        FallbackModel { base_ns: 2_000, per_wave_ns: 1_000 }
    }
}

impl FallbackModel {
    /// `resident_blocks_per_sm`: how many blocks of this launch fit on one SM at once (occupancy).
    pub fn kernel_time(&self, spec: &GpuSpec, key: &KernelKey, resident_blocks_per_sm: u32) -> SimDuration {
        let blocks = key.grid.iter().map(|&g| g as u64).product::<u64>().max(1);
        let per_wave = spec.sm_count as u64 * resident_blocks_per_sm.max(1) as u64;
        let waves = blocks.div_ceil(per_wave);
        SimDuration::from_nanos(self.base_ns + waves * self.per_wave_ns)
    }
}
