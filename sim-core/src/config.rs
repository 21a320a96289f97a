//! The cluster file: one TOML document (unknown fields rejected) or a built-in preset.
//!
//! The file format, the presets and the environment overrides are specified in `docs/config.md`. In short:
//!
//! ```toml
//! preset = "dgx-h100"          # optional: start from a preset; every other field overrides it
//! name = "my-cluster"
//! nodes = 4
//! gpus_per_node = 8
//! [gpu]
//! model = "h100-sxm-80gb"      # a GPU preset key
//! memory_bytes = 85017493504   # optional override of any GpuSpec field
//! [host]
//! mode = "measured"            # or "deterministic"
//! cpu_scale = 1.0
//! api_call_ns = 100
//! launch_call_ns = 2000
//! [kernels]
//! tables = ["kernels.table"]   # relative paths resolve against the TOML file's directory
//! fallback = { base_ns = 2000, per_wave_ns = 1000 }
//! [network]                    # any `NetworkConfig` field; the rest keep the preset's values
//! nic_bytes_per_s = 25e9
//! oversubscription = 2.0
//! ```
//!
//! Every error is one line that names the file (or variable), the key and, where known, the line.

use crate::gpu::{gpu_preset, GpuSpec, GPU_PRESETS};
use crate::ktable::FallbackModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How host threads' virtual clocks advance (DESIGN.md decision 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostTimeMode {
    /// Application CPU time between API calls counts, scaled by `cpu_scale`.
    Measured,
    /// Only the fixed per-call costs count: runs are exactly repeatable.
    Deterministic,
}

impl std::str::FromStr for HostTimeMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "measured" => Ok(HostTimeMode::Measured),
            "deterministic" => Ok(HostTimeMode::Deterministic),
            other => Err(ConfigError(format!("unknown variant `{other}`, expected `measured` or `deterministic`"))),
        }
    }
}

/// What a sleep or a timed wait costs in real time (docs/time.md, "Sleeps and timed waits"). Either way it
/// advances the thread's virtual clock by the time asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SleepMode {
    /// The thread also waits that long for real, so that waits for things outside the simulation (a TCP
    /// store's retry loop, another process starting up, a watchdog's polling period) keep their real meaning.
    Real,
    /// Sleeps return at once; a timed wait waits for real at most 2 ms. Faster for programs that sleep to
    /// pass simulated time; wrong for programs that wait for other processes with timeouts.
    Virtual,
}

impl std::str::FromStr for SleepMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "real" => Ok(SleepMode::Real),
            "virtual" => Ok(SleepMode::Virtual),
            other => Err(ConfigError(format!("unknown variant `{other}`, expected `real` or `virtual`"))),
        }
    }
}

/// The host-time model.
#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    /// Whether measured CPU time counts (`Measured`) or only fixed per-call costs (`Deterministic`).
    pub mode: HostTimeMode,
    /// Factor applied to measured application CPU time (the target host's speed relative to this one).
    pub cpu_scale: f64,
    /// Host time charged for an ordinary runtime API call (ns).
    pub api_call_ns: u64,
    /// Host time charged for a kernel launch call (ns).
    pub launch_call_ns: u64,
    /// Whether sleeps and timed waits also take real time.
    pub sleeps: SleepMode,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            mode: HostTimeMode::Measured,
            cpu_scale: 1.0,
            api_call_ns: 100,
            launch_call_ns: 2_000,
            sleeps: SleepMode::Real,
        }
    }
}

/// Where kernel durations come from when no real GPU measures them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KernelConfig {
    /// Kernel-time table files, merged in order (later entries win).
    pub tables: Vec<PathBuf>,
    /// Model for kernels no table lists.
    pub fallback: FallbackModel,
}

/// How the nodes' NICs are wired to the leaf switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fabric {
    /// NIC `k` of every node connects to a leaf switch of rail `k` (NVIDIA's rail-optimised DGX SuperPOD
    /// design): traffic between same-rail NICs under one leaf never reaches a spine.
    RailOptimized,
    /// Every NIC of a node connects to the same leaf; consecutive nodes share a leaf (a two-level fat tree).
    /// `fat-tree` is accepted as another name for it.
    #[serde(alias = "fat-tree")]
    LeafSpine,
}

/// How a leaf spreads traffic over its uplinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Equal-cost multi-path: each connection is hashed onto one uplink, so connections can collide.
    Ecmp,
    /// Adaptive routing (or packet spraying): every connection is spread evenly over all uplinks.
    Adaptive,
}

/// The host CPU's vendor; NCCL's tuning model charges different network overheads for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuVendor {
    Intel,
    Amd,
}

/// The network of the cluster: links inside a node, NICs and the switch fabric (DESIGN.md decision 8;
/// `docs/network.md` describes the model, `docs/config.md` the defaults and where they come from).
/// Bandwidths are per direction and physical (line rate); the `*_efficiency` factors turn them into what
/// NCCL can use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// NVLink bandwidth of one GPU to the NVSwitch, per direction (bytes/s); 0 = no NVLink, GPUs of a node
    /// talk over PCIe.
    pub nvlink_bytes_per_s: f64,
    /// Fraction of `nvlink_bytes_per_s` that NCCL's copies reach (NCCL's tuning: per-link bandwidth it
    /// assumes divided by the line rate, e.g. 20.6 / 25 GB/s on Hopper).
    pub nvlink_efficiency: f64,
    /// One NVLink hop of an LL-protocol pipeline step, flag to flag (ns).
    pub nvlink_latency_ns: u64,
    /// The NVSwitches can multicast and reduce (NVLS / NVLink SHARP); NCCL's NVLS algorithms need it.
    pub nvls: bool,
    /// Fraction of NVLink bandwidth NVLS transfers reach (NCCL's `nvlsEfficiency`).
    pub nvls_efficiency: f64,
    /// PCIe bandwidth between a GPU and its PCIe switch (the NIC's side), per direction (bytes/s).
    pub pcie_bytes_per_s: f64,
    /// Fraction of `pcie_bytes_per_s` a large transfer reaches (protocol headers).
    pub pcie_efficiency: f64,
    /// One PCIe hop of an LL-protocol pipeline step (ns).
    pub pcie_latency_ns: u64,
    /// NICs in each node, 1 to `gpus_per_node`; GPU `i` uses NIC `i * nics_per_node / gpus_per_node`
    /// (fewer NICs than GPUs: neighbouring GPUs share one).
    pub nics_per_node: u32,
    /// Line rate of one NIC port, per direction (bytes/s): 400 Gb/s = 50e9.
    pub nic_bytes_per_s: f64,
    /// Fraction of `nic_bytes_per_s` NCCL reaches through one NIC (packet headers, proxy overhead).
    pub nic_efficiency: f64,
    /// One network hop of an LL-protocol pipeline step without the switches: sending NIC, proxy threads and
    /// receiving NIC (ns).
    pub nic_latency_ns: u64,
    /// How NICs connect to leaf switches: `rail-optimized` or `leaf-spine`.
    pub fabric: Fabric,
    /// NIC ports (downlinks) of one leaf switch.
    pub nics_per_leaf: u32,
    /// A leaf's downlink bandwidth divided by its uplink bandwidth (1 = non-blocking). A leaf has
    /// `nics_per_leaf / oversubscription` uplinks (rounded, at least one), one to each spine switch.
    pub oversubscription: f64,
    /// How leaves spread traffic over their uplinks: `ecmp` or `adaptive`.
    pub routing: Routing,
    /// One switch traversal (ns); a path crosses 1 switch under one leaf, 3 through a spine.
    pub switch_latency_ns: u64,
    /// Host CPU vendor (`intel` or `amd`), for NCCL's per-step network overhead and LL limits.
    pub cpu_vendor: CpuVendor,
}

impl NetworkConfig {
    /// The DGX network for `gpu`: 8 rail NICs, NVSwitch, rail-optimised non-blocking leaf-spine fabric.
    /// The generation follows the GPU's compute capability (8.x: DGX A100, 9.x: DGX H100/H200,
    /// 10.x and later: DGX B200); `docs/config.md` lists the values and their sources.
    pub fn dgx(gpu: &GpuSpec) -> NetworkConfig {
        let h100 = NetworkConfig {
            // NVLink 4: 18 links x 25 GB/s per direction; NCCL models each link as 20.6 GB/s.
            nvlink_bytes_per_s: 450.0e9,
            nvlink_efficiency: 20.6 / 25.0,
            nvlink_latency_ns: 600,
            nvls: true,
            nvls_efficiency: 0.85,
            // PCIe Gen5 x16: 32 GT/s x 16 lanes x 128/130 / 8; a large pinned copy reaches 53 GB/s.
            pcie_bytes_per_s: 63.0e9,
            pcie_efficiency: 53.0 / 63.0,
            pcie_latency_ns: 1_000,
            // 8 ConnectX-7 400 Gb/s InfiniBand NICs, one per GPU; NCCL reaches 46-49 GB/s per NIC.
            nics_per_node: 8,
            nic_bytes_per_s: 50.0e9,
            nic_efficiency: 0.96,
            nic_latency_ns: 2_400,
            // 64-port leaf switches: 32 ports down, 32 up (one to each of 32 spines).
            fabric: Fabric::RailOptimized,
            nics_per_leaf: 32,
            oversubscription: 1.0,
            routing: Routing::Ecmp,
            switch_latency_ns: 300,
            cpu_vendor: CpuVendor::Intel,
        };
        match gpu.compute_capability[0] {
            0..=8 => NetworkConfig {
                // NVLink 3: 12 links x 25 GB/s; NCCL models each link as 20 GB/s. No NVLS.
                nvlink_bytes_per_s: 300.0e9,
                nvlink_efficiency: 20.0 / 25.0,
                nvls: false,
                // PCIe Gen4 x16; a large pinned copy reaches 25 GB/s.
                pcie_bytes_per_s: 31.5e9,
                pcie_efficiency: 25.0 / 31.5,
                // 8 ConnectX-6 200 Gb/s HDR NICs; 40-port leaf switches (20 down, 20 up); AMD EPYC hosts.
                nic_bytes_per_s: 25.0e9,
                nics_per_leaf: 20,
                cpu_vendor: CpuVendor::Amd,
                ..h100
            },
            9 => h100,
            _ => NetworkConfig {
                // NVLink 5: 18 links x 50 GB/s; NCCL models each link as 40.1 GB/s and NVLS at 0.74.
                // DGX B200 keeps 8 ConnectX-7 400 Gb/s NICs.
                nvlink_bytes_per_s: 900.0e9,
                nvlink_efficiency: 40.1 / 50.0,
                nvls_efficiency: 0.74,
                ..h100
            },
        }
    }

    /// Checks value ranges; the message names the field, e.g. `network.nic_efficiency must be ...`.
    pub fn validate(&self, gpus_per_node: u32) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let rates = [
            ("pcie_bytes_per_s", self.pcie_bytes_per_s),
            ("nic_bytes_per_s", self.nic_bytes_per_s),
            ("oversubscription", self.oversubscription),
        ];
        for (field, v) in rates {
            if !(v.is_finite() && v > 0.0) {
                return fail(format!("network.{field} must be a finite number greater than 0 (got {v})"));
            }
        }
        let v = self.nvlink_bytes_per_s;
        if !(v.is_finite() && v >= 0.0) {
            return fail(format!("network.nvlink_bytes_per_s must be a finite number, 0 or more (got {v})"));
        }
        let fractions = [
            ("nvlink_efficiency", self.nvlink_efficiency),
            ("nvls_efficiency", self.nvls_efficiency),
            ("pcie_efficiency", self.pcie_efficiency),
            ("nic_efficiency", self.nic_efficiency),
        ];
        for (field, v) in fractions {
            if !(v > 0.0 && v <= 1.0) {
                return fail(format!("network.{field} must be greater than 0 and at most 1 (got {v})"));
            }
        }
        if !(1..=gpus_per_node).contains(&self.nics_per_node) {
            return fail(format!(
                "network.nics_per_node must be between 1 and gpus_per_node ({gpus_per_node}) (got {})",
                self.nics_per_node
            ));
        }
        if self.nics_per_leaf < 1 {
            return fail(format!("network.nics_per_leaf must be at least 1 (got {})", self.nics_per_leaf));
        }
        if self.nvls && self.nvlink_bytes_per_s == 0.0 {
            return fail("network.nvls needs NVLink: network.nvlink_bytes_per_s is 0".into());
        }
        Ok(())
    }
}

/// The simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Name shown in reports and traces.
    pub name: String,
    /// Number of nodes (hosts).
    pub nodes: u32,
    /// GPUs in each node.
    pub gpus_per_node: u32,
    /// The model of every GPU.
    pub gpu: GpuSpec,
    /// The host-time model.
    pub host: HostConfig,
    /// Kernel-time sources.
    pub kernels: KernelConfig,
    /// Links, NICs and switch fabric.
    pub network: NetworkConfig,
}

/// A cluster file or preset that cannot be used; the message names the offending field.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Names of the built-in cluster presets.
pub const CLUSTER_PRESETS: &[&str] = &["dgx-h100", "dgx-h200", "dgx-a100", "dgx-b200"];

/// The preset used when `PHANTOM_CLUSTER` is unset.
pub const DEFAULT_PRESET: &str = "dgx-h100";

/// Largest accepted `nodes`.
pub const MAX_NODES: u32 = 65_536;
/// Largest accepted `gpus_per_node`.
pub const MAX_GPUS_PER_NODE: u32 = 64;

/// Cluster preset → (GPU model key, nodes, GPUs per node).
fn preset_def(name: &str) -> Option<(&'static str, u32, u32)> {
    match name {
        "dgx-h100" => Some(("h100-sxm-80gb", 1, 8)),
        "dgx-h200" => Some(("h200-141gb", 1, 8)),
        "dgx-a100" => Some(("a100-sxm-80gb", 1, 8)),
        "dgx-b200" => Some(("b200", 1, 8)),
        _ => None,
    }
}

// ---- The file as written: every field optional, every table closed. ----

/// The top level of a cluster file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    /// Built-in cluster preset to start from (`dgx-h100`, ...); every other field overrides it.
    preset: Option<String>,
    /// Name shown in reports; default: the preset's name, else the file's stem.
    name: Option<String>,
    /// Number of nodes, 1..=65536; default: the preset's, else 1.
    nodes: Option<u32>,
    /// GPUs per node, 1..=64; default: the preset's, else 8.
    gpus_per_node: Option<u32>,
    /// `model` (a GPU preset key) plus optional overrides of any `GpuSpec` field. Kept as a raw table so that
    /// the accepted overrides are exactly `GpuSpec`'s fields.
    gpu: Option<toml::Table>,
    /// The host-time model.
    host: Option<HostFile>,
    /// Kernel-time sources.
    kernels: Option<KernelsFile>,
    /// Overrides of any `NetworkConfig` field. Kept as a raw table so that the accepted keys are exactly
    /// `NetworkConfig`'s fields.
    network: Option<toml::Table>,
}

/// `[host]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    /// `measured` or `deterministic`; default `measured`.
    mode: Option<HostTimeMode>,
    /// Multiplier on measured CPU time; finite and > 0; default 1.0.
    cpu_scale: Option<f64>,
    /// Host time charged per ordinary runtime API call, ns; default 100.
    api_call_ns: Option<u64>,
    /// Host time charged per kernel launch call, ns; default 2000.
    launch_call_ns: Option<u64>,
    /// `real` or `virtual`; default `real`.
    sleeps: Option<SleepMode>,
}

/// `[kernels]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelsFile {
    /// Kernel-time table files, merged in order; relative paths are relative to the cluster file's directory.
    /// Replaces the preset's list.
    tables: Option<Vec<PathBuf>>,
    /// The fallback model for kernels no table lists.
    fallback: Option<FallbackFile>,
}

/// `[kernels.fallback]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackFile {
    /// Fixed cost of every kernel, ns; default 2000.
    base_ns: Option<u64>,
    /// Cost per wave of blocks, ns; default 1000.
    per_wave_ns: Option<u64>,
}

impl ClusterConfig {
    /// The built-in cluster preset `name`, or `None` if there is none or its GPU model is not built in.
    pub fn preset(name: &str) -> Option<ClusterConfig> {
        ClusterConfig::try_preset(name).ok()
    }

    /// The built-in cluster preset `name`; the error lists the known presets.
    pub fn try_preset(name: &str) -> Result<ClusterConfig, ConfigError> {
        let (gpu_key, nodes, gpus_per_node) = preset_def(name).ok_or_else(|| {
            ConfigError(format!("unknown cluster preset `{name}`; known presets: {}", CLUSTER_PRESETS.join(", ")))
        })?;
        let gpu = gpu_preset(gpu_key).ok_or_else(|| {
            ConfigError(format!("cluster preset `{name}` uses GPU model `{gpu_key}`, which this build does not define"))
        })?;
        Ok(ClusterConfig {
            name: name.into(),
            nodes,
            gpus_per_node,
            network: NetworkConfig::dgx(&gpu),
            gpu,
            host: HostConfig::default(),
            kernels: KernelConfig::default(),
        })
    }

    /// Parses a cluster file's text. Relative table paths are joined to `base_dir`. Errors start with
    /// `cluster TOML:`; use [`ClusterConfig::load`] for errors that name the file.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
        parse(text, base_dir, "cluster TOML", "cluster")
    }

    /// Reads and parses a cluster file; relative table paths resolve against its directory.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let origin = format!("cluster file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{origin}: cannot read: {e}")))?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("cluster");
        parse(&text, base_dir, &origin, stem)
    }

    /// The configuration a process uses: `PHANTOM_CLUSTER` (a preset name or a path to a TOML file; default
    /// `dgx-h100`), then `PHANTOM_HOST_TIME` (`measured`/`deterministic`), `PHANTOM_NODES` and
    /// `PHANTOM_KERNEL_TABLE` (colon-separated table paths appended to the file's own).
    pub fn from_env() -> Result<ClusterConfig, ConfigError> {
        ClusterConfig::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`ClusterConfig::from_env`] with the variables read through `var` (for tests and launchers).
    /// Empty values count as unset.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<ClusterConfig, ConfigError> {
        let get = |k: &str| var(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let cluster = get("PHANTOM_CLUSTER").unwrap_or_else(|| DEFAULT_PRESET.to_string());
        let mut cfg = if cluster.ends_with(".toml") || cluster.contains('/') {
            ClusterConfig::load(Path::new(&cluster))?
        } else {
            ClusterConfig::try_preset(&cluster).map_err(|e| {
                ConfigError(format!("PHANTOM_CLUSTER: {e} (or the path of a .toml cluster file)"))
            })?
        };
        if let Some(mode) = get("PHANTOM_HOST_TIME") {
            cfg.host.mode = mode.parse().map_err(|e: ConfigError| ConfigError(format!("PHANTOM_HOST_TIME: {e}")))?;
        }
        if let Some(sleeps) = get("PHANTOM_SLEEPS") {
            cfg.host.sleeps = sleeps.parse().map_err(|e: ConfigError| ConfigError(format!("PHANTOM_SLEEPS: {e}")))?;
        }
        if let Some(nodes) = get("PHANTOM_NODES") {
            cfg.nodes = nodes
                .parse()
                .map_err(|_| ConfigError(format!("PHANTOM_NODES: expected a whole number, found `{nodes}`")))?;
            cfg.validate().map_err(|e| ConfigError(format!("PHANTOM_NODES: {e}")))?;
        }
        if let Some(paths) = get("PHANTOM_KERNEL_TABLE") {
            cfg.kernels.tables.extend(paths.split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
        }
        Ok(cfg)
    }

    /// Checks value ranges; the message names the field, e.g. `nodes must be at least 1 (got 0)`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.name.trim().is_empty() {
            return fail("name must not be empty".into());
        }
        if self.nodes < 1 {
            return fail(format!("nodes must be at least 1 (got {})", self.nodes));
        }
        if self.nodes > MAX_NODES {
            return fail(format!("nodes must be at most {MAX_NODES} (got {})", self.nodes));
        }
        if !(1..=MAX_GPUS_PER_NODE).contains(&self.gpus_per_node) {
            return fail(format!("gpus_per_node must be between 1 and {MAX_GPUS_PER_NODE} (got {})", self.gpus_per_node));
        }
        let s = self.host.cpu_scale;
        if !(s.is_finite() && s > 0.0) {
            return fail(format!("host.cpu_scale must be a finite number greater than 0 (got {s})"));
        }
        let g = &self.gpu;
        for (field, v) in [("sm_count", g.sm_count), ("warp_size", g.warp_size), ("max_blocks_per_sm", g.max_blocks_per_sm)] {
            if v < 1 {
                return fail(format!("gpu.{field} must be at least 1 (got {v})"));
            }
        }
        if g.context_reserve_bytes > g.memory_bytes {
            return fail(format!(
                "gpu.context_reserve_bytes ({}) must not exceed gpu.memory_bytes ({})",
                g.context_reserve_bytes, g.memory_bytes
            ));
        }
        let e = g.gemm_efficiency;
        if !(e > 0.0 && e <= 1.0) {
            return fail(format!("gpu.gemm_efficiency must be greater than 0 and at most 1 (got {e})"));
        }
        self.network.validate(self.gpus_per_node)
    }

    /// Total number of GPUs in the cluster.
    pub fn total_gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }
}

fn parse(text: &str, base_dir: &Path, origin: &str, default_name: &str) -> Result<ClusterConfig, ConfigError> {
    let file: ClusterFile =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| toml_error(origin, text, &e))?;
    build(file, base_dir, default_name)
        .and_then(|cfg| cfg.validate().map(|()| cfg))
        .map_err(|e| ConfigError(format!("{origin}: {e}")))
}

fn build(file: ClusterFile, base_dir: &Path, default_name: &str) -> Result<ClusterConfig, ConfigError> {
    let base = match &file.preset {
        Some(p) => Some(ClusterConfig::try_preset(p).map_err(|e| ConfigError(format!("preset: {e}")))?),
        None => None,
    };
    let mut gpu_table = file.gpu.unwrap_or_default();
    let gpu = match gpu_table.remove("model") {
        Some(toml::Value::String(model)) => gpu_preset(&model).ok_or_else(|| {
            ConfigError(format!("gpu.model: unknown GPU model `{model}`; known models: {}", GPU_PRESETS.join(", ")))
        })?,
        Some(other) => {
            return Err(ConfigError(format!(
                "gpu.model: invalid type: {}, expected a GPU model name (a string)",
                other.type_str()
            )))
        }
        None => match &base {
            Some(b) => b.gpu.clone(),
            None => return Err(ConfigError("gpu.model is required when no `preset` is given".into())),
        },
    };
    let gpu = override_gpu(gpu, gpu_table)?;
    let mut cfg = match base {
        Some(b) => ClusterConfig { gpu, ..b },
        None => ClusterConfig {
            name: default_name.to_string(),
            nodes: 1,
            gpus_per_node: 8,
            network: NetworkConfig::dgx(&gpu),
            gpu,
            host: HostConfig::default(),
            kernels: KernelConfig::default(),
        },
    };
    if let Some(name) = file.name {
        cfg.name = name;
    }
    if let Some(n) = file.nodes {
        cfg.nodes = n;
    }
    if let Some(n) = file.gpus_per_node {
        cfg.gpus_per_node = n;
        // The preset's NICs, at most one per GPU (an explicit `network.nics_per_node` still wins).
        cfg.network.nics_per_node = cfg.network.nics_per_node.min(n.max(1));
    }
    if let Some(h) = file.host {
        let host = &mut cfg.host;
        host.mode = h.mode.unwrap_or(host.mode);
        host.cpu_scale = h.cpu_scale.unwrap_or(host.cpu_scale);
        host.sleeps = h.sleeps.unwrap_or(host.sleeps);
        host.api_call_ns = h.api_call_ns.unwrap_or(host.api_call_ns);
        host.launch_call_ns = h.launch_call_ns.unwrap_or(host.launch_call_ns);
    }
    if let Some(k) = file.kernels {
        if let Some(tables) = k.tables {
            cfg.kernels.tables = tables.into_iter().map(|p| if p.is_relative() { base_dir.join(p) } else { p }).collect();
        }
        if let Some(f) = k.fallback {
            let fb = &mut cfg.kernels.fallback;
            fb.base_ns = f.base_ns.unwrap_or(fb.base_ns);
            fb.per_wave_ns = f.per_wave_ns.unwrap_or(fb.per_wave_ns);
        }
    }
    if let Some(n) = file.network {
        cfg.network = override_table(&cfg.network, n, "network")?;
    }
    Ok(cfg)
}

/// Applies `[gpu]` overrides (everything but `model`) to a GPU preset: the preset is turned into a TOML
/// table, the overrides replace its values (nested tables such as `peak_flops` field by field), and the
/// result is read back as a `GpuSpec`, so every `GpuSpec` field, and only those, can be overridden.
fn override_gpu(base: GpuSpec, overrides: toml::Table) -> Result<GpuSpec, ConfigError> {
    if overrides.is_empty() {
        return Ok(base);
    }
    if overrides.contains_key("key") {
        return Err(ConfigError("gpu.key cannot be overridden; choose the base model with gpu.model".into()));
    }
    override_table(&base, overrides, "gpu")
}

/// `base` as a TOML table with `overrides` laid over it, read back as a `T`: every field of `T`, and only
/// those, can be overridden, and errors name the field as `{path}.field`.
fn override_table<T: Clone + Serialize + serde::de::DeserializeOwned>(
    base: &T,
    overrides: toml::Table,
    path: &str,
) -> Result<T, ConfigError> {
    if overrides.is_empty() {
        return Ok(base.clone());
    }
    let mut merged = match toml::Value::try_from(base) {
        Ok(toml::Value::Table(t)) => t,
        other => return Err(ConfigError(format!("{path}: cannot represent the base values as TOML: {other:?}"))),
    };
    overlay(&mut merged, overrides, path)?;
    serde_path_to_error::deserialize::<_, T>(toml::Value::Table(merged))
        .map_err(|e| ConfigError(format!("{path}.{}: {}", e.path(), e.inner().message())))
}

fn overlay(dst: &mut toml::Table, src: toml::Table, path: &str) -> Result<(), ConfigError> {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(toml::Value::Table(d)), toml::Value::Table(s)) => overlay(d, s, &format!("{path}.{k}"))?,
            (Some(slot), v) => *slot = v,
            (None, _) => {
                let mut known: Vec<String> = dst.keys().filter(|n| *n != "key").map(|n| format!("`{n}`")).collect();
                if path == "gpu" {
                    known.insert(0, "`model`".into());
                }
                return Err(ConfigError(format!(
                    "unknown field `{k}` in [{path}], expected one of {}",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// One line from a TOML/serde error: `origin: path: message (line N)`; unknown fields name their table.
fn toml_error(origin: &str, text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let inner = e.inner();
    let mut msg = inner.message().trim().to_string();
    if msg.is_empty() {
        let display = inner.to_string();
        msg = display.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid TOML").trim().to_string();
    }
    let path = e.path().to_string();
    let body = if path.is_empty() || path == "." {
        msg
    } else if msg.starts_with("unknown field `") {
        let table = match path.rfind(['.', '[']) {
            Some(i) => &path[..i],
            None => "root",
        };
        msg.replacen("`,", &format!("` in [{table}],"), 1)
    } else {
        format!("{path}: {msg}")
    };
    let line = inner.span().map(|s| format!(" (line {})", line_of(text, s.start))).unwrap_or_default();
    ConfigError(format!("{origin}: {body}{line}"))
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The simulated node a process's GPUs belong to, from its environment (`var`): `PHANTOM_NODE` (set by
/// `phantom run -n`), else torchrun's `GROUP_RANK`, else an MPI or Slurm rank (`OMPI_COMM_WORLD_RANK`,
/// `PMI_RANK`, `PMIX_RANK`, `SLURM_PROCID`) divided by `gpus_per_node` (one rank per GPU, as `mpirun -np N`
/// places them); `None` outside any launcher. The runtime and NVML both use this rule.
pub fn launcher_node(var: impl Fn(&str) -> Option<String>, gpus_per_node: impl FnOnce() -> u32) -> Option<u32> {
    let num = |k: &str| var(k).and_then(|v| v.trim().parse::<u32>().ok());
    if let Some(n) = num("PHANTOM_NODE").or_else(|| num("GROUP_RANK")) {
        return Some(n);
    }
    let rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"].iter().find_map(|k| num(k))?;
    Some(rank / gpus_per_node().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<ClusterConfig, ConfigError> {
        ClusterConfig::from_toml_str(text, Path::new("conf"))
    }

    fn err(text: &str) -> String {
        parse_str(text).unwrap_err().0
    }

    #[test]
    fn dgx_h100_preset() {
        let c = ClusterConfig::preset("dgx-h100").unwrap();
        assert_eq!(c.name, "dgx-h100");
        assert_eq!((c.nodes, c.gpus_per_node, c.total_gpus()), (1, 8, 8));
        assert_eq!(c.gpu.key, "h100-sxm-80gb");
        assert_eq!(c.host, HostConfig::default());
        assert_eq!(c.host.sleeps, SleepMode::Real);
        assert_eq!(c.kernels, KernelConfig { tables: vec![], fallback: FallbackModel { base_ns: 2_000, per_wave_ns: 1_000 } });
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_preset_is_defined_in_code() {
        for name in CLUSTER_PRESETS {
            let (gpu, nodes, per_node) = preset_def(name).unwrap();
            assert_eq!((nodes, per_node), (1, 8));
            // A preset whose GPU model is not built in yet is reported, not a panic.
            match ClusterConfig::try_preset(name) {
                Ok(c) => assert_eq!(c.gpu.key, gpu),
                Err(e) => assert_eq!(
                    e.0,
                    format!("cluster preset `{name}` uses GPU model `{gpu}`, which this build does not define")
                ),
            }
        }
        assert_eq!(
            ClusterConfig::try_preset("dgx-h900").unwrap_err().0,
            "unknown cluster preset `dgx-h900`; known presets: dgx-h100, dgx-h200, dgx-a100, dgx-b200"
        );
        assert_eq!(ClusterConfig::preset("dgx-h900"), None);
    }

    #[test]
    fn full_file() {
        let c = parse_str(
            r#"
            name = "my-cluster"
            nodes = 4
            gpus_per_node = 8
            [gpu]
            model = "h100-sxm-80gb"
            memory_bytes = 85000000000
            [gpu.peak_flops]
            bf16 = 1.0e15
            [host]
            mode = "deterministic"
            cpu_scale = 2
            api_call_ns = 150
            launch_call_ns = 3000
            sleeps = "virtual"
            [kernels]
            tables = ["kernels.table", "sub/more.table", "/abs/other.table"]
            fallback = { base_ns = 500 }
            "#,
        )
        .unwrap();
        assert_eq!(c.name, "my-cluster");
        assert_eq!(c.total_gpus(), 32);
        assert_eq!(c.gpu.key, "h100-sxm-80gb");
        assert_eq!(c.gpu.memory_bytes, 85_000_000_000);
        assert_eq!(c.gpu.peak_flops.bf16, 1.0e15);
        assert_eq!(c.gpu.peak_flops.fp16, 989.4e12);
        assert_eq!(c.gpu.sm_count, 132);
        assert_eq!(
            c.host,
            HostConfig {
                mode: HostTimeMode::Deterministic,
                cpu_scale: 2.0,
                api_call_ns: 150,
                launch_call_ns: 3_000,
                sleeps: SleepMode::Virtual
            }
        );
        assert_eq!(
            c.kernels.tables,
            vec![PathBuf::from("conf/kernels.table"), PathBuf::from("conf/sub/more.table"), PathBuf::from("/abs/other.table")]
        );
        assert_eq!(c.kernels.fallback, FallbackModel { base_ns: 500, per_wave_ns: 1_000 });
    }

    #[test]
    fn preset_with_overrides() {
        let c = parse_str("preset = \"dgx-h100\"\nnodes = 32\n[host]\ncpu_scale = 0.5\n").unwrap();
        let mut want = ClusterConfig::preset("dgx-h100").unwrap();
        want.nodes = 32;
        want.host.cpu_scale = 0.5;
        assert_eq!(c, want);
        assert_eq!(c.total_gpus(), 256);
        // Without `name`, the preset's name is kept; without a preset, the default name is used.
        assert_eq!(c.name, "dgx-h100");
        let d = parse_str("[gpu]\nmodel = \"h100-sxm-80gb\"\n").unwrap();
        assert_eq!((d.name.as_str(), d.nodes, d.gpus_per_node), ("cluster", 1, 8));
        assert_eq!(d.host, HostConfig::default());
    }

    #[test]
    fn empty_file_needs_a_gpu() {
        assert_eq!(err(""), "cluster TOML: gpu.model is required when no `preset` is given");
    }

    #[test]
    fn unknown_fields() {
        assert_eq!(
            err("preset = \"dgx-h100\"\ngpus_per_nod = 4\n"),
            "cluster TOML: unknown field `gpus_per_nod` in [root], expected one of `preset`, `name`, `nodes`, \
             `gpus_per_node`, `gpu`, `host`, `kernels`, `network` (line 2)"
        );
        assert_eq!(
            err("preset = \"dgx-h100\"\n[host]\nmdoe = \"measured\"\n"),
            "cluster TOML: unknown field `mdoe` in [host], expected one of `mode`, `cpu_scale`, `api_call_ns`, \
             `launch_call_ns`, `sleeps` (line 3)"
        );
        assert_eq!(
            err("preset = \"dgx-h100\"\n[kernels]\nfallback = { base = 1 }\n"),
            "cluster TOML: unknown field `base` in [kernels.fallback], expected `base_ns` or `per_wave_ns` (line 3)"
        );
        let net = err("preset = \"dgx-h100\"\n[network]\nnic_bandwidth = 1\n");
        assert!(net.starts_with("cluster TOML: unknown field `nic_bandwidth` in [network], expected one of `"), "{net}");
        assert!(net.contains("`nic_bytes_per_s`"), "{net}");
        let gpu = err("preset = \"dgx-h100\"\n[gpu]\nmemory_byts = 1\n");
        assert!(gpu.starts_with("cluster TOML: unknown field `memory_byts` in [gpu], expected one of `model`, "), "{gpu}");
        assert!(gpu.contains("`memory_bytes`"), "{gpu}");
        assert!(!gpu.contains("`key`"), "{gpu}");
        assert!(err("preset = \"dgx-h100\"\n[gpu.peak_flops]\nfp4 = 1\n")
            .starts_with("cluster TOML: unknown field `fp4` in [gpu.peak_flops], expected one of `"));
    }

    #[test]
    fn wrong_types_and_values() {
        assert_eq!(
            err("preset = \"dgx-h100\"\n[host]\nmode = \"fast\"\n"),
            "cluster TOML: host.mode: unknown variant `fast`, expected `measured` or `deterministic` (line 3)"
        );
        assert_eq!(err("nodes = \"four\""), "cluster TOML: nodes: invalid type: string \"four\", expected u32 (line 1)");
        assert_eq!(err("nodes = -1"), "cluster TOML: nodes: invalid value: integer `-1`, expected u32 (line 1)");
        assert_eq!(
            err("[kernels]\ntables = [\"a\",\n 5]"),
            "cluster TOML: kernels.tables[1]: invalid type: integer `5`, expected path string (line 3)"
        );
        assert_eq!(
            err("preset = \"dgx-h100\"\n[gpu]\nsm_count = \"many\"\n"),
            "cluster TOML: gpu.sm_count: invalid type: string \"many\", expected u32"
        );
        assert_eq!(err("[gpu]\nmodel = 3\n"), "cluster TOML: gpu.model: invalid type: integer, expected a GPU model name (a string)");
        assert_eq!(
            err("[gpu]\nmodel = \"z100\"\n"),
            format!("cluster TOML: gpu.model: unknown GPU model `z100`; known models: {}", GPU_PRESETS.join(", "))
        );
        assert_eq!(
            err("preset = \"dgx-h100\"\n[gpu]\nkey = \"x\"\n"),
            "cluster TOML: gpu.key cannot be overridden; choose the base model with gpu.model"
        );
        assert_eq!(
            err("preset = \"dgx-h900\""),
            "cluster TOML: preset: unknown cluster preset `dgx-h900`; known presets: dgx-h100, dgx-h200, dgx-a100, dgx-b200"
        );
        assert!(err("nodes = 1\nnodes = 2").starts_with("cluster TOML: duplicate key `nodes`"));
        assert!(err("nodes = ").ends_with("(line 1)"));
    }

    #[test]
    fn range_checks() {
        let p = "preset = \"dgx-h100\"\n";
        assert_eq!(err(&format!("{p}nodes = 0")), "cluster TOML: nodes must be at least 1 (got 0)");
        assert_eq!(err(&format!("{p}nodes = 70000")), "cluster TOML: nodes must be at most 65536 (got 70000)");
        assert_eq!(err(&format!("{p}gpus_per_node = 0")), "cluster TOML: gpus_per_node must be between 1 and 64 (got 0)");
        assert_eq!(err(&format!("{p}gpus_per_node = 65")), "cluster TOML: gpus_per_node must be between 1 and 64 (got 65)");
        assert_eq!(
            err(&format!("{p}[host]\ncpu_scale = 0.0")),
            "cluster TOML: host.cpu_scale must be a finite number greater than 0 (got 0)"
        );
        assert_eq!(
            err(&format!("{p}[host]\ncpu_scale = inf")),
            "cluster TOML: host.cpu_scale must be a finite number greater than 0 (got inf)"
        );
        assert_eq!(err(&format!("{p}name = \"\"")), "cluster TOML: name must not be empty");
        assert_eq!(err(&format!("{p}[gpu]\nsm_count = 0")), "cluster TOML: gpu.sm_count must be at least 1 (got 0)");
        assert_eq!(
            err(&format!("{p}[gpu]\nmemory_bytes = 1000")),
            "cluster TOML: gpu.context_reserve_bytes (552402944) must not exceed gpu.memory_bytes (1000)"
        );
        for bad in ["0.0", "1.5", "-0.1", "nan"] {
            assert_eq!(
                err(&format!("{p}[gpu]\ngemm_efficiency = {bad}")),
                format!("cluster TOML: gpu.gemm_efficiency must be greater than 0 and at most 1 (got {})", bad.parse::<f64>().unwrap())
            );
        }
    }

    #[test]
    fn gemm_efficiency_is_an_ordinary_gpu_override() {
        let c = parse_str("preset = \"dgx-h100\"\n").unwrap();
        assert_eq!(c.gpu.gemm_efficiency, 0.75);
        let c = parse_str("preset = \"dgx-h100\"\n[gpu]\ngemm_efficiency = 0.62\nlaunch_latency_ns = 3100\n").unwrap();
        assert_eq!((c.gpu.gemm_efficiency, c.gpu.launch_latency_ns), (0.62, 3100));
        assert_eq!(parse_str("[gpu]\nmodel = \"a100-sxm-80gb\"\ngemm_efficiency = 1\n").unwrap().gpu.gemm_efficiency, 1.0);
    }

    #[test]
    fn dgx_networks() {
        let h100 = ClusterConfig::preset("dgx-h100").unwrap().network;
        assert_eq!(h100, ClusterConfig::preset("dgx-h200").unwrap().network);
        assert_eq!((h100.nvlink_bytes_per_s, h100.nvls, h100.nics_per_node, h100.nic_bytes_per_s), (450e9, true, 8, 50e9));
        assert_eq!((h100.fabric, h100.oversubscription, h100.cpu_vendor), (Fabric::RailOptimized, 1.0, CpuVendor::Intel));
        let a100 = ClusterConfig::preset("dgx-a100").unwrap().network;
        assert_eq!((a100.nvlink_bytes_per_s, a100.nvls, a100.nic_bytes_per_s), (300e9, false, 25e9));
        assert_eq!((a100.pcie_bytes_per_s, a100.cpu_vendor), (31.5e9, CpuVendor::Amd));
        let b200 = ClusterConfig::preset("dgx-b200").unwrap().network;
        assert_eq!((b200.nvlink_bytes_per_s, b200.nvls, b200.nvls_efficiency, b200.nic_bytes_per_s), (900e9, true, 0.74, 50e9));
        for name in CLUSTER_PRESETS {
            assert!(ClusterConfig::preset(name).unwrap().validate().is_ok(), "{name}");
        }
    }

    #[test]
    fn network_overrides() {
        let c = parse_str(
            "preset = \"dgx-h100\"\nnodes = 64\n[network]\nnics_per_node = 4\nnic_bytes_per_s = 25000000000\n\
             fabric = \"fat-tree\"\noversubscription = 2\nnvls = false\n",
        )
        .unwrap();
        let mut want = ClusterConfig::preset("dgx-h100").unwrap().network;
        want.nics_per_node = 4;
        want.nic_bytes_per_s = 25e9;
        want.fabric = Fabric::LeafSpine;
        want.oversubscription = 2.0;
        want.nvls = false;
        assert_eq!(c.network, want);
        // Without a preset the network is the DGX one of the chosen GPU.
        let d = parse_str("[gpu]\nmodel = \"a100-sxm-80gb\"\n").unwrap();
        assert_eq!(d.network, ClusterConfig::preset("dgx-a100").unwrap().network);
        assert_eq!(
            err("preset = \"dgx-h100\"\n[network]\nfabric = \"torus\"\n"),
            "cluster TOML: network.fabric: unknown variant `torus`, expected one of `rail-optimized`, `fat-tree`, `leaf-spine`"
        );
        assert_eq!(
            err("preset = \"dgx-h100\"\n[network]\nnics_per_leaf = \"many\"\n"),
            "cluster TOML: network.nics_per_leaf: invalid type: string \"many\", expected u32"
        );
    }

    #[test]
    fn network_range_checks() {
        let p = "preset = \"dgx-h100\"\n[network]\n";
        assert_eq!(
            err(&format!("{p}nic_efficiency = 1.5")),
            "cluster TOML: network.nic_efficiency must be greater than 0 and at most 1 (got 1.5)"
        );
        assert_eq!(
            err(&format!("{p}nic_bytes_per_s = 0")),
            "cluster TOML: network.nic_bytes_per_s must be a finite number greater than 0 (got 0)"
        );
        assert_eq!(
            err(&format!("{p}nvlink_bytes_per_s = -1.0")),
            "cluster TOML: network.nvlink_bytes_per_s must be a finite number, 0 or more (got -1)"
        );
        assert_eq!(
            err(&format!("{p}nics_per_node = 9")),
            "cluster TOML: network.nics_per_node must be between 1 and gpus_per_node (8) (got 9)"
        );
        assert_eq!(err(&format!("{p}nics_per_leaf = 0")), "cluster TOML: network.nics_per_leaf must be at least 1 (got 0)");
        assert_eq!(
            err(&format!("{p}nvlink_bytes_per_s = 0")),
            "cluster TOML: network.nvls needs NVLink: network.nvlink_bytes_per_s is 0"
        );
        assert!(parse_str(&format!("{p}nvlink_bytes_per_s = 0\nnvls = false")).is_ok());
        // Fewer GPUs per node than the preset has NICs: one NIC per GPU unless the file says otherwise.
        assert_eq!(parse_str("preset = \"dgx-h100\"\ngpus_per_node = 4\n").unwrap().network.nics_per_node, 4);
        assert_eq!(
            err("preset = \"dgx-h100\"\ngpus_per_node = 4\n[network]\nnics_per_node = 8"),
            "cluster TOML: network.nics_per_node must be between 1 and gpus_per_node (4) (got 8)"
        );
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn environment() {
        let c = ClusterConfig::from_env_with(env(&[])).unwrap();
        assert_eq!(c, ClusterConfig::preset("dgx-h100").unwrap());
        let c = ClusterConfig::from_env_with(env(&[
            ("PHANTOM_CLUSTER", "dgx-h100"),
            ("PHANTOM_HOST_TIME", "deterministic"),
            ("PHANTOM_SLEEPS", "virtual"),
            ("PHANTOM_NODES", "16"),
            ("PHANTOM_KERNEL_TABLE", "a.table::/b/c.table"),
        ]))
        .unwrap();
        assert_eq!(c.host.mode, HostTimeMode::Deterministic);
        assert_eq!(c.host.sleeps, SleepMode::Virtual);
        assert_eq!(c.total_gpus(), 128);
        assert_eq!(c.kernels.tables, vec![PathBuf::from("a.table"), PathBuf::from("/b/c.table")]);
        let e = |vars: &[(&str, &str)]| ClusterConfig::from_env_with(env(vars)).unwrap_err().0;
        assert_eq!(
            e(&[("PHANTOM_SLEEPS", "never")]),
            "PHANTOM_SLEEPS: unknown variant `never`, expected `real` or `virtual`"
        );
        assert_eq!(
            e(&[("PHANTOM_CLUSTER", "dgx-x")]),
            "PHANTOM_CLUSTER: unknown cluster preset `dgx-x`; known presets: dgx-h100, dgx-h200, dgx-a100, dgx-b200 \
             (or the path of a .toml cluster file)"
        );
        assert_eq!(
            e(&[("PHANTOM_HOST_TIME", "fast")]),
            "PHANTOM_HOST_TIME: unknown variant `fast`, expected `measured` or `deterministic`"
        );
        assert_eq!(e(&[("PHANTOM_NODES", "0")]), "PHANTOM_NODES: nodes must be at least 1 (got 0)");
        assert_eq!(e(&[("PHANTOM_NODES", "x")]), "PHANTOM_NODES: expected a whole number, found `x`");
        let missing = e(&[("PHANTOM_CLUSTER", "no-such-dir/c.toml")]);
        assert!(missing.starts_with("cluster file no-such-dir/c.toml: cannot read: "), "{missing}");
    }
}
