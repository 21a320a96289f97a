//! The cluster file: one TOML document (unknown fields rejected) or a built-in preset.
//!
//! STUB — being filled in (TOML parsing with clear errors, presets dgx-h100/dgx-h200/dgx-a100/dgx-b200, env).

use crate::gpu::{gpu_preset, GpuSpec};
use crate::ktable::FallbackModel;
use std::path::PathBuf;

/// How host threads' virtual clocks advance (DESIGN.md decision 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostTimeMode {
    /// Application CPU time between API calls counts, scaled by `cpu_scale`.
    Measured,
    /// Only the fixed per-call costs count: runs are exactly repeatable.
    Deterministic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    pub mode: HostTimeMode,
    /// Factor applied to measured application CPU time (the target host's speed relative to this one).
    pub cpu_scale: f64,
    /// Host time charged for an ordinary runtime API call (ns).
    pub api_call_ns: u64,
    /// Host time charged for a kernel launch call (ns).
    pub launch_call_ns: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KernelConfig {
    /// Kernel-time table files, merged in order (later entries win).
    pub tables: Vec<PathBuf>,
    pub fallback: FallbackModel,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub gpu: GpuSpec,
    pub host: HostConfig,
    pub kernels: KernelConfig,
}

/// A cluster file or preset that cannot be used; the message names the offending field.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ClusterConfig {
    pub fn preset(name: &str) -> Option<ClusterConfig> {
        match name {
            "dgx-h100" => Some(ClusterConfig {
                name: name.into(),
                nodes: 1,
                gpus_per_node: 8,
                gpu: gpu_preset("h100-sxm-80gb")?,
                host: HostConfig {
                    mode: HostTimeMode::Measured,
                    cpu_scale: 1.0,
                    api_call_ns: 100,
                    launch_call_ns: 2_000,
                },
                kernels: KernelConfig { tables: vec![], fallback: FallbackModel::default() },
            }),
            _ => None,
        }
    }

    /// The configuration a process uses: `PHANTOM_CLUSTER` (a preset name or a path to a TOML file; default
    /// `dgx-h100`), then `PHANTOM_HOST_TIME` (`measured`/`deterministic`) and `PHANTOM_KERNEL_TABLE`
    /// (colon-separated table paths appended to the file's own).
    pub fn from_env() -> Result<ClusterConfig, ConfigError> {
        let name = std::env::var("PHANTOM_CLUSTER").unwrap_or_else(|_| "dgx-h100".into());
        let mut cfg = ClusterConfig::preset(&name).ok_or_else(|| ConfigError(format!("unknown preset {name}")))?;
        if let Ok(mode) = std::env::var("PHANTOM_HOST_TIME") {
            cfg.host.mode = match mode.as_str() {
                "deterministic" => HostTimeMode::Deterministic,
                "measured" => HostTimeMode::Measured,
                other => return Err(ConfigError(format!("PHANTOM_HOST_TIME: unknown mode `{other}`"))),
            };
        }
        if let Ok(paths) = std::env::var("PHANTOM_KERNEL_TABLE") {
            cfg.kernels.tables.extend(paths.split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
        }
        Ok(cfg)
    }

    /// Total number of GPUs in the cluster.
    pub fn total_gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }
}
