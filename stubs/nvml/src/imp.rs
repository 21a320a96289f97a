//! The implemented part of Phantom's `libnvidia-ml.so.1` (hand-written; `src/lib.rs` is generated and wraps every
//! `pub fn` here in an export of the same name: docs/abi.md, "Stub libraries" and "Implemented exports
//! (libnvidia-ml.so.1)").
//!
//! NVML is a view of the simulated node, read straight from the cluster configuration
//! (`sim_core::config::ClusterConfig::from_env`), never from Phantom's runtime: it works in a process that never
//! loads `libcudart.so.13`, as NVIDIA's NVML works without a CUDA context. Like NVIDIA's, it sees every GPU of the
//! node whatever `CUDA_VISIBLE_DEVICES` says. Device `i` of the node is described exactly as the runtime describes
//! its physical GPU `i`: the same name, memory, compute capability and clocks (the GPU model), the same PCI bus
//! (`pci_bus`, a copy of `libcudart-phantom`'s `runtime::pci_bus_of`) and the same UUID bytes on node 0
//! (`uuid_bytes`, `device_props::device_uuid` plus the node). Nothing here measures the simulation: memory use,
//! utilisation, power and temperature are the constants of an idle GPU.
//!
//! A handle (`nvmlDevice_t`) is the address of the device's entry in the node's table, which lives as long as the
//! process; a handle that is not one of those addresses is `NVML_ERROR_INVALID_ARGUMENT`, never dereferenced.

pub use phantom_stub_common::StaticStr;
use phantom_stub_common::Status;
use sim_core::config::ClusterConfig;
use sim_core::gpu::GpuSpec;
// Public: the generated exports in lib.rs name these types (`use imp::*`).
pub use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// `nvmlDevice_t`: an opaque pointer (the address of a [`Gpu`] in the node's table).
pub type NvmlDevice = *mut c_void;

/// `nvmlReturn_t` values this module returns (nvml.h).
mod code {
    pub const UNINITIALIZED: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 2;
    pub const NOT_SUPPORTED: u32 = 3;
    pub const NOT_FOUND: u32 = 6;
    pub const INSUFFICIENT_SIZE: u32 = 7;
    pub const ARGUMENT_VERSION_MISMATCH: u32 = 25;
    pub const UNKNOWN: u32 = 999;
}

fn error(code: u32) -> NonZeroU32 {
    NonZeroU32::new(code).expect("an error code is nonzero")
}

fn err(code: u32) -> Status {
    Err(error(code))
}

/// The CUDA driver version NVML reports: that of Phantom's runtime (`cudaDriverGetVersion`, the CUDA 13.5 headers'
/// `CUDART_VERSION`; `tests/tests/e2e/nvml.rs` checks they agree).
pub const CUDA_DRIVER_VERSION: c_int = 13050;
/// The display-driver version string: the driver Phantom's H100 figures were measured on (docs/gpus.md).
const DRIVER_VERSION: &str = "580.159.04";
/// NVML's own version: the CUDA major version, then the driver's.
const NVML_VERSION: &str = "13.580.159.04";
/// NVIDIA's PCI vendor id.
const NVIDIA_PCI_VENDOR: u32 = 0x10de;
/// First PCI bus of the second CPU socket on a two-socket DGX (as the runtime's `hostNumaId`).
const SECOND_SOCKET_FIRST_BUS: u32 = 0x80;

/// Constants of an idle GPU: NVML has no view of the simulated work.
mod idle {
    /// `nvmlDeviceGetTemperature` (°C).
    pub const TEMPERATURE_C: u32 = 30;
    /// `nvmlDeviceGetPowerUsage` (mW).
    pub const POWER_MW: u32 = 70_000;
}

/// Versioned structures carry `sizeof(struct) | version << 24` in their first field (nvml.h's
/// `NVML_STRUCT_VERSION`).
const fn struct_version<T>(version: u32) -> c_uint {
    std::mem::size_of::<T>() as c_uint | version << 24
}

/// One GPU of the node.
pub struct Gpu {
    index: u32,
    bus: u32,
    uuid: String,
}

/// The node NVML reports.
struct Node {
    spec: GpuSpec,
    gpus: Box<[Gpu]>,
    /// NVLinks per GPU (0: the GPUs of a node talk over PCIe).
    nvlinks: u32,
    /// Line rate of one NVLink, per direction (MB/s).
    nvlink_mbps: u32,
}

static NODE: OnceLock<Result<Node, String>> = OnceLock::new();
/// `nvmlInit` minus `nvmlShutdown` calls.
static REFS: AtomicU32 = AtomicU32::new(0);

/// The PCI bus of the node's GPU `index` (`sim_core::gpu::pci_bus`, as the runtime's `cudaDeviceGetPCIBusId`).
fn pci_bus(index: u32) -> u32 {
    sim_core::gpu::pci_bus(index)
}

/// This process's node (`sim_core::config::launcher_node`, as the runtime), else 0.
fn node_index(gpus_per_node: u32) -> u32 {
    sim_core::config::launcher_node(|k| std::env::var(k).ok(), || gpus_per_node).unwrap_or(0)
}

/// The UUID of GPU `index` of node `node` (`sim_core::gpu::gpu_uuid`, as the runtime's `cudaDeviceProp::uuid`).
fn uuid_bytes(node: u32, index: u32) -> [u8; 16] {
    sim_core::gpu::gpu_uuid(node, index)
}

/// NVIDIA's text form of a GPU UUID: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn uuid_string(b: &[u8; 16]) -> String {
    let hex = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("GPU-{}-{}-{}-{}-{}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16))
}

fn load() -> Result<Node, String> {
    let cfg = ClusterConfig::from_env().map_err(|e| e.to_string())?;
    let node = node_index(cfg.gpus_per_node);
    let gpus = (0..cfg.gpus_per_node)
        .map(|index| Gpu { index, bus: pci_bus(index), uuid: uuid_string(&uuid_bytes(node, index)) })
        .collect();
    // The simulator's intra-node network is NVSwitch-based (sim-core's topology): every link of a GPU ends at an
    // NVSwitch. NVLink 3 (sm_8x) has 12 links per GPU, NVLink 4 and 5 (sm_90, sm_100) have 18.
    let nvlinks = match (cfg.network.nvlink_bytes_per_s > 0.0, cfg.gpu.compute_capability[0]) {
        (false, _) => 0,
        (true, 0..=8) => 12,
        (true, _) => 18,
    };
    let nvlink_mbps = if nvlinks == 0 { 0 } else { (cfg.network.nvlink_bytes_per_s / 1e6 / nvlinks as f64) as u32 };
    Ok(Node { spec: cfg.gpu, gpus, nvlinks, nvlink_mbps })
}

/// Logs a line the way the stubs do: stderr, or appended to `PHANTOM_LOG_FILE`; silent when `PHANTOM_LOG=off`.
fn log(line: &str) {
    if std::env::var("PHANTOM_LOG").is_ok_and(|l| l.trim().eq_ignore_ascii_case("off")) {
        return;
    }
    let line = format!("{line}\n");
    let file = std::env::var_os("PHANTOM_LOG_FILE")
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let _ = match file {
        Some(mut f) => f.write_all(line.as_bytes()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// The node, read on the first `nvmlInit`; a configuration that cannot be used is logged once and makes every
/// `nvmlInit` return `NVML_ERROR_UNKNOWN`.
fn loaded() -> Result<&'static Node, NonZeroU32> {
    let node = NODE.get_or_init(|| {
        let r = load();
        if let Err(e) = &r {
            log(&format!("phantom: libnvidia-ml.so.1 cannot work: {e}; nvmlInit returns NVML_ERROR_UNKNOWN"));
        }
        r
    });
    node.as_ref().map_err(|_| error(code::UNKNOWN))
}

/// The node, if NVML is initialised (`NVML_ERROR_UNINITIALIZED` otherwise).
fn node() -> Result<&'static Node, NonZeroU32> {
    if REFS.load(Ordering::Acquire) == 0 {
        return Err(error(code::UNINITIALIZED));
    }
    loaded()
}

impl Node {
    fn handle(&self, index: u32) -> Result<NvmlDevice, NonZeroU32> {
        let gpu = self.gpus.get(index as usize).ok_or(error(code::INVALID_ARGUMENT))?;
        Ok(gpu as *const Gpu as NvmlDevice)
    }

    /// The GPU behind a handle: one of the table's addresses, found without dereferencing `dev`.
    fn gpu(&self, dev: NvmlDevice) -> Result<&Gpu, NonZeroU32> {
        let base = self.gpus.as_ptr() as usize;
        let size = std::mem::size_of::<Gpu>();
        let index = (dev as usize).checked_sub(base).filter(|off| off % size == 0).map(|off| off / size);
        index.and_then(|i| self.gpus.get(i)).ok_or(error(code::INVALID_ARGUMENT))
    }

    /// A link of a GPU: `NVML_ERROR_NOT_SUPPORTED` without NVLink, `NVML_ERROR_INVALID_ARGUMENT` past the last.
    fn check_link(&self, link: c_uint) -> Status {
        if self.nvlinks == 0 {
            err(code::NOT_SUPPORTED)
        } else if link >= self.nvlinks {
            err(code::INVALID_ARGUMENT)
        } else {
            Ok(())
        }
    }
}

/// The node and the GPU of a handle, for the calls that take one.
fn device(dev: NvmlDevice) -> Result<(&'static Node, &'static Gpu), NonZeroU32> {
    let node = node()?;
    Ok((node, node.gpu(dev)?))
}

/// The PCI address and ids of a device.
struct Pci {
    domain: u32,
    bus: u32,
    device: u32,
    /// Device id << 16 | vendor id.
    device_id: u32,
    subsystem_id: u32,
}

impl Pci {
    fn of(spec: &GpuSpec, gpu: &Gpu) -> Pci {
        Pci {
            domain: 0,
            bus: gpu.bus,
            device: 0,
            device_id: u32::from(spec.pci_device_id) << 16 | NVIDIA_PCI_VENDOR,
            subsystem_id: spec.pci_subsystem_id,
        }
    }

    /// The far end of an NVLink: an NVSwitch, which the host cannot see. Its address is what NVML gives for a
    /// device it cannot see, whose legacy bus id string NCCL recognises (`fffffff:ffff:ff` once lower-cased) and
    /// takes for an NVSwitch.
    const SWITCH: Pci = Pci { domain: 0x0fff_ffff, bus: 0xffff, device: 0xff, device_id: 0, subsystem_id: 0 };

    /// `domain:bus:device.function`, 8 hex digits of domain (nvml.h's `NVML_DEVICE_PCI_BUS_ID_FMT`).
    fn bus_id(&self) -> String {
        format!("{:08X}:{:02X}:{:02X}.0", self.domain, self.bus, self.device)
    }

    /// The legacy form, 4 hex digits of domain (`NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT`).
    fn bus_id_legacy(&self) -> String {
        format!("{:04X}:{:02X}:{:02X}.0", self.domain, self.bus, self.device)
    }

    fn write(&self, out: &mut PciInfo) {
        fill(&mut out.bus_id_legacy, &self.bus_id_legacy());
        out.domain = self.domain;
        out.bus = self.bus;
        out.device = self.device;
        out.pci_device_id = self.device_id;
        out.pci_sub_system_id = self.subsystem_id;
        fill(&mut out.bus_id, &self.bus_id());
    }

    fn write_v1(&self, out: &mut PciInfoV1) {
        fill(&mut out.bus_id, &self.bus_id_legacy());
        out.domain = self.domain;
        out.bus = self.bus;
        out.device = self.device;
        out.pci_device_id = self.device_id;
        out.pci_sub_system_id = self.subsystem_id;
        out.reserved = [0; 4];
    }
}

/// Copies `s` into a fixed C string field, truncated to leave a NUL, and zero-fills the rest.
fn fill(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.bytes().take(n).chain(std::iter::repeat(0))) {
        *d = b as c_char;
    }
}

/// Writes `s` and its NUL into a caller's buffer of `length` bytes: `NVML_ERROR_INSUFFICIENT_SIZE` if it does not
/// fit (nothing written), `NVML_ERROR_INVALID_ARGUMENT` for a NULL buffer.
fn write_str(buf: *mut c_char, length: c_uint, s: &str) -> Status {
    if buf.is_null() {
        return err(code::INVALID_ARGUMENT);
    }
    if (length as usize) < s.len() + 1 {
        return err(code::INSUFFICIENT_SIZE);
    }
    // SAFETY: the caller gives `length` writable bytes and `s.len() + 1 <= length`.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr() as *const c_char, buf, s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

/// Parses a PCI bus id, `[domain:]bus:device[.function]` in hex, either case.
fn parse_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let (domain, bus, rest) = match parts[..] {
        [d, b, r] => (d, b, r),
        [b, r] => ("0", b, r),
        _ => return None,
    };
    let (device, function) = rest.split_once('.').unwrap_or((rest, "0"));
    let hex = |t: &str| u32::from_str_radix(t, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?, hex(function)?))
}

// ---- Initialisation ----

/// Reference-counted: every successful `nvmlInit` needs its `nvmlShutdown`.
pub fn nvmlInit_v2() -> Status {
    loaded()?;
    REFS.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

pub fn nvmlInit() -> Status {
    nvmlInit_v2()
}

/// The flags (`NVML_INIT_FLAG_NO_GPUS`, `NVML_INIT_FLAG_NO_ATTACH`) change nothing: the node always has GPUs.
pub fn nvmlInitWithFlags(_flags: c_uint) -> Status {
    nvmlInit_v2()
}

pub fn nvmlShutdown() -> Status {
    REFS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .map(|_| ())
        .map_err(|_| error(code::UNINITIALIZED))
}

/// NVIDIA's wording for each `nvmlReturn_t`; a code it does not define is "Unknown Error", as NVIDIA's is.
pub fn nvmlErrorString(result: c_uint) -> StaticStr {
    StaticStr::new(match result {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        4 => c"Insufficient Permissions",
        5 => c"Already Initialized",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        8 => c"Insufficient External Power",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        11 => c"Interrupt Request Issue",
        12 => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        14 => c"Corrupted infoROM",
        15 => c"GPU is lost",
        16 => c"GPU requires restart",
        17 => c"The operating system has blocked the request.",
        18 => c"RM has detected an NVML/RM version mismatch.",
        19 => c"In use by another client",
        20 => c"Insufficient Memory",
        21 => c"No data",
        25 => c"Argument version mismatch",
        26 => c"Deprecated",
        27 => c"Not Ready",
        28 => c"GPU not found",
        _ => c"Unknown Error",
    })
}

// ---- System ----

pub fn nvmlSystemGetCudaDriverVersion(version: &mut c_int) -> Status {
    node()?;
    *version = CUDA_DRIVER_VERSION;
    Ok(())
}

pub fn nvmlSystemGetCudaDriverVersion_v2(version: &mut c_int) -> Status {
    nvmlSystemGetCudaDriverVersion(version)
}

pub fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> Status {
    node()?;
    write_str(version, length, DRIVER_VERSION)
}

pub fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> Status {
    node()?;
    write_str(version, length, NVML_VERSION)
}

/// `nvmlConfComputeSystemState_t`.
#[repr(C)]
pub struct ConfComputeSystemState {
    pub environment: c_uint,
    pub cc_feature: c_uint,
    pub dev_tools_mode: c_uint,
}

/// `nvmlSystemConfComputeSettings_v1_t`.
#[repr(C)]
pub struct ConfComputeSettings {
    pub version: c_uint,
    pub environment: c_uint,
    pub cc_feature: c_uint,
    pub dev_tools_mode: c_uint,
    pub multi_gpu_mode: c_uint,
}

/// Confidential computing is off: environment unavailable, feature disabled, dev tools off.
pub fn nvmlSystemGetConfComputeState(state: &mut ConfComputeSystemState) -> Status {
    node()?;
    *state = ConfComputeSystemState { environment: 0, cc_feature: 0, dev_tools_mode: 0 };
    Ok(())
}

pub fn nvmlSystemGetConfComputeSettings(settings: &mut ConfComputeSettings) -> Status {
    node()?;
    let version = struct_version::<ConfComputeSettings>(1);
    if settings.version != version {
        return err(code::ARGUMENT_VERSION_MISMATCH);
    }
    *settings = ConfComputeSettings { version, environment: 0, cc_feature: 0, dev_tools_mode: 0, multi_gpu_mode: 0 };
    Ok(())
}

// ---- Devices ----

/// Every GPU of the node (`gpus_per_node`), whatever `CUDA_VISIBLE_DEVICES` says.
pub fn nvmlDeviceGetCount_v2(count: &mut c_uint) -> Status {
    *count = node()?.gpus.len() as c_uint;
    Ok(())
}

pub fn nvmlDeviceGetCount(count: &mut c_uint) -> Status {
    nvmlDeviceGetCount_v2(count)
}

pub fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: &mut NvmlDevice) -> Status {
    *device = node()?.handle(index)?;
    Ok(())
}

pub fn nvmlDeviceGetHandleByIndex(index: c_uint, device: &mut NvmlDevice) -> Status {
    nvmlDeviceGetHandleByIndex_v2(index, device)
}

/// Either form of bus id (`00000000:18:00.0`, `0000:18:00.0`, `18:00`), either case; `NVML_ERROR_NOT_FOUND` if no
/// GPU of the node is there.
pub fn nvmlDeviceGetHandleByPciBusId_v2(bus_id: &CStr, device: &mut NvmlDevice) -> Status {
    let node = node()?;
    let text = bus_id.to_str().map_err(|_| error(code::INVALID_ARGUMENT))?;
    let (domain, bus, dev, function) = parse_bus_id(text).ok_or(error(code::INVALID_ARGUMENT))?;
    let gpu = node.gpus.iter().find(|g| (domain, dev, function) == (0, 0, 0) && g.bus == bus);
    *device = node.handle(gpu.ok_or(error(code::NOT_FOUND))?.index)?;
    Ok(())
}

pub fn nvmlDeviceGetHandleByPciBusId(bus_id: &CStr, device: &mut NvmlDevice) -> Status {
    nvmlDeviceGetHandleByPciBusId_v2(bus_id, device)
}

/// `uuid` as `nvmlDeviceGetUUID` writes it (hex digits in either case).
pub fn nvmlDeviceGetHandleByUUID(uuid: &CStr, device: &mut NvmlDevice) -> Status {
    let node = node()?;
    let text = uuid.to_str().map_err(|_| error(code::INVALID_ARGUMENT))?.trim();
    let gpu = node.gpus.iter().find(|g| g.uuid.eq_ignore_ascii_case(text)).ok_or(error(code::NOT_FOUND))?;
    *device = node.handle(gpu.index)?;
    Ok(())
}

pub fn nvmlDeviceGetIndex(device: NvmlDevice, index: &mut c_uint) -> Status {
    *index = self::device(device)?.1.index;
    Ok(())
}

/// The device file's minor number (`/dev/nvidiaN`): the index.
pub fn nvmlDeviceGetMinorNumber(device: NvmlDevice, minor: &mut c_uint) -> Status {
    nvmlDeviceGetIndex(device, minor)
}

pub fn nvmlDeviceGetName(device: NvmlDevice, name: *mut c_char, length: c_uint) -> Status {
    let (node, _) = self::device(device)?;
    write_str(name, length, &node.spec.name)
}

pub fn nvmlDeviceGetUUID(device: NvmlDevice, uuid: *mut c_char, length: c_uint) -> Status {
    let (_, gpu) = self::device(device)?;
    write_str(uuid, length, &gpu.uuid)
}

/// `nvmlPciInfo_t` as the `_v2`/`_v3` calls write it (68 bytes).
#[repr(C)]
pub struct PciInfo {
    pub bus_id_legacy: [c_char; 16],
    pub domain: c_uint,
    pub bus: c_uint,
    pub device: c_uint,
    pub pci_device_id: c_uint,
    pub pci_sub_system_id: c_uint,
    pub bus_id: [c_char; 32],
}

/// The layout the unversioned calls (`nvmlDeviceGetPciInfo`, `nvmlDeviceGetNvLinkRemotePciInfo`) write, and
/// NCCL's `nvmlwrap.h` declares (52 bytes): a 16-byte legacy bus id first, 4 reserved words last.
#[repr(C)]
pub struct PciInfoV1 {
    pub bus_id: [c_char; 16],
    pub domain: c_uint,
    pub bus: c_uint,
    pub device: c_uint,
    pub pci_device_id: c_uint,
    pub pci_sub_system_id: c_uint,
    pub reserved: [c_uint; 4],
}

pub fn nvmlDeviceGetPciInfo_v3(device: NvmlDevice, pci: &mut PciInfo) -> Status {
    let (node, gpu) = self::device(device)?;
    Pci::of(&node.spec, gpu).write(pci);
    Ok(())
}

pub fn nvmlDeviceGetPciInfo_v2(device: NvmlDevice, pci: &mut PciInfo) -> Status {
    nvmlDeviceGetPciInfo_v3(device, pci)
}

pub fn nvmlDeviceGetPciInfo(device: NvmlDevice, pci: &mut PciInfoV1) -> Status {
    let (node, gpu) = self::device(device)?;
    Pci::of(&node.spec, gpu).write_v1(pci);
    Ok(())
}

/// PCIe generation of the GPU's host link: 4 on sm_8x (A100), 5 from Hopper on.
fn pcie_generation(spec: &GpuSpec) -> c_uint {
    if spec.compute_capability[0] <= 8 {
        4
    } else {
        5
    }
}

pub fn nvmlDeviceGetCurrPcieLinkGeneration(device: NvmlDevice, generation: &mut c_uint) -> Status {
    *generation = pcie_generation(&self::device(device)?.0.spec);
    Ok(())
}

pub fn nvmlDeviceGetMaxPcieLinkGeneration(device: NvmlDevice, generation: &mut c_uint) -> Status {
    nvmlDeviceGetCurrPcieLinkGeneration(device, generation)
}

/// Every GPU has a x16 host link.
pub fn nvmlDeviceGetCurrPcieLinkWidth(device: NvmlDevice, width: &mut c_uint) -> Status {
    self::device(device)?;
    *width = 16;
    Ok(())
}

pub fn nvmlDeviceGetMaxPcieLinkWidth(device: NvmlDevice, width: &mut c_uint) -> Status {
    nvmlDeviceGetCurrPcieLinkWidth(device, width)
}

pub fn nvmlDeviceGetCudaComputeCapability(device: NvmlDevice, major: &mut c_int, minor: &mut c_int) -> Status {
    let [ma, mi] = self::device(device)?.0.spec.compute_capability;
    (*major, *minor) = (ma as c_int, mi as c_int);
    Ok(())
}

/// `nvmlDeviceArchitecture_t` from the compute capability.
pub fn nvmlDeviceGetArchitecture(device: NvmlDevice, arch: &mut c_uint) -> Status {
    *arch = match self::device(device)?.0.spec.compute_capability {
        [7, 5] => 6,        // NVML_DEVICE_ARCH_TURING
        [7, _] => 5,        // NVML_DEVICE_ARCH_VOLTA
        [8, 9] => 8,        // NVML_DEVICE_ARCH_ADA
        [8, _] => 7,        // NVML_DEVICE_ARCH_AMPERE
        [9, _] => 9,        // NVML_DEVICE_ARCH_HOPPER
        [10 | 12, _] => 10, // NVML_DEVICE_ARCH_BLACKWELL
        _ => 0xffff_ffff,   // NVML_DEVICE_ARCH_UNKNOWN
    };
    Ok(())
}

/// `nvmlMemory_t`.
#[repr(C)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    pub used: u64,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    pub version: c_uint,
    pub total: u64,
    pub reserved: u64,
    pub free: u64,
    pub used: u64,
}

/// Total is the GPU model's `memory_bytes` (CUDA's `totalGlobalMem`, so NVML and `cudaMemGetInfo` agree on the
/// size); nothing is ever used: NVML has no view of any process's allocations.
pub fn nvmlDeviceGetMemoryInfo(device: NvmlDevice, memory: &mut Memory) -> Status {
    let total = self::device(device)?.0.spec.memory_bytes;
    *memory = Memory { total, free: total, used: 0 };
    Ok(())
}

pub fn nvmlDeviceGetMemoryInfo_v2(device: NvmlDevice, memory: &mut MemoryV2) -> Status {
    let total = self::device(device)?.0.spec.memory_bytes;
    let version = struct_version::<MemoryV2>(2);
    if memory.version != version {
        return err(code::ARGUMENT_VERSION_MISMATCH);
    }
    *memory = MemoryV2 { version, total, reserved: 0, free: total, used: 0 };
    Ok(())
}

pub fn nvmlDeviceGetMemoryBusWidth(device: NvmlDevice, width: &mut c_uint) -> Status {
    *width = self::device(device)?.0.spec.memory_bus_width_bits;
    Ok(())
}

/// No process is ever listed (`*count = 0`): NVML has no view of the processes using the simulated GPUs. The
/// same for the `_v1_t`, `_v2_t` and `_v3` layouts, since nothing is written to `infos`.
pub fn nvmlDeviceGetComputeRunningProcesses_v3(device: NvmlDevice, count: &mut c_uint, _infos: *mut c_void) -> Status {
    self::device(device)?;
    *count = 0;
    Ok(())
}

pub fn nvmlDeviceGetComputeRunningProcesses_v2(device: NvmlDevice, count: &mut c_uint, infos: *mut c_void) -> Status {
    nvmlDeviceGetComputeRunningProcesses_v3(device, count, infos)
}

pub fn nvmlDeviceGetComputeRunningProcesses(device: NvmlDevice, count: &mut c_uint, infos: *mut c_void) -> Status {
    nvmlDeviceGetComputeRunningProcesses_v3(device, count, infos)
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    pub gpu: c_uint,
    pub memory: c_uint,
}

/// Always 0 %: NVML does not see the simulated kernels.
pub fn nvmlDeviceGetUtilizationRates(device: NvmlDevice, utilization: &mut Utilization) -> Status {
    self::device(device)?;
    *utilization = Utilization { gpu: 0, memory: 0 };
    Ok(())
}

/// Sensor 0 (`NVML_TEMPERATURE_GPU`) only, the only one NVML defines: an idle GPU's 30 °C.
pub fn nvmlDeviceGetTemperature(device: NvmlDevice, sensor: c_uint, temperature: &mut c_uint) -> Status {
    self::device(device)?;
    if sensor != 0 {
        return err(code::INVALID_ARGUMENT);
    }
    *temperature = idle::TEMPERATURE_C;
    Ok(())
}

/// `nvmlTemperature_v1_t`.
#[repr(C)]
pub struct Temperature {
    pub version: c_uint,
    pub sensor_type: c_uint,
    pub temperature: c_int,
}

pub fn nvmlDeviceGetTemperatureV(device: NvmlDevice, temperature: &mut Temperature) -> Status {
    if temperature.version != struct_version::<Temperature>(1) {
        self::device(device)?;
        return err(code::ARGUMENT_VERSION_MISMATCH);
    }
    let mut t = 0;
    nvmlDeviceGetTemperature(device, temperature.sensor_type, &mut t)?;
    temperature.temperature = t as c_int;
    Ok(())
}

/// An idle GPU's 70 W, in mW.
pub fn nvmlDeviceGetPowerUsage(device: NvmlDevice, power: &mut c_uint) -> Status {
    self::device(device)?;
    *power = idle::POWER_MW;
    Ok(())
}

/// The clock of a domain (MHz): the GPU model's peak SM clock for graphics (0) and SM (1), its memory clock for
/// memory (2), as under load; the video clock (3) is not modelled.
fn clock(spec: &GpuSpec, kind: c_uint) -> Result<c_uint, NonZeroU32> {
    match kind {
        0 | 1 => Ok(spec.clock_rate_khz / 1000),
        2 => Ok(spec.memory_clock_rate_khz / 1000),
        3 => Err(error(code::NOT_SUPPORTED)),
        _ => Err(error(code::INVALID_ARGUMENT)),
    }
}

pub fn nvmlDeviceGetClockInfo(device: NvmlDevice, kind: c_uint, mhz: &mut c_uint) -> Status {
    *mhz = clock(&self::device(device)?.0.spec, kind)?;
    Ok(())
}

pub fn nvmlDeviceGetMaxClockInfo(device: NvmlDevice, kind: c_uint, mhz: &mut c_uint) -> Status {
    nvmlDeviceGetClockInfo(device, kind, mhz)
}

/// ECC as the GPU model says, current and pending alike.
pub fn nvmlDeviceGetEccMode(device: NvmlDevice, current: &mut c_uint, pending: &mut c_uint) -> Status {
    let on = c_uint::from(self::device(device)?.0.spec.ecc_enabled);
    (*current, *pending) = (on, on);
    Ok(())
}

/// `NVML_COMPUTEMODE_DEFAULT`.
pub fn nvmlDeviceGetComputeMode(device: NvmlDevice, mode: &mut c_uint) -> Status {
    self::device(device)?;
    *mode = 0;
    Ok(())
}

/// Enabled, as on a DGX (nvidia-persistenced runs).
pub fn nvmlDeviceGetPersistenceMode(device: NvmlDevice, mode: &mut c_uint) -> Status {
    self::device(device)?;
    *mode = 1;
    Ok(())
}

/// MIG is off (current and pending `NVML_DEVICE_MIG_DISABLE`).
pub fn nvmlDeviceGetMigMode(device: NvmlDevice, current: &mut c_uint, pending: &mut c_uint) -> Status {
    self::device(device)?;
    (*current, *pending) = (0, 0);
    Ok(())
}

pub fn nvmlDeviceGetMultiGpuBoard(device: NvmlDevice, multi: &mut c_uint) -> Status {
    *multi = c_uint::from(self::device(device)?.0.spec.multi_gpu_board);
    Ok(())
}

/// `nvmlGpuTopologyLevel_t` between two GPUs: the same GPU is `NVML_TOPOLOGY_INTERNAL` (0), GPUs under the same
/// CPU socket `NVML_TOPOLOGY_NODE` (40), others `NVML_TOPOLOGY_SYSTEM` (50); the socket follows the bus, as the
/// runtime's `hostNumaId` does.
pub fn nvmlDeviceGetTopologyCommonAncestor(device1: NvmlDevice, device2: NvmlDevice, level: &mut c_uint) -> Status {
    let (node, a) = self::device(device1)?;
    let b = node.gpu(device2)?;
    let socket = |g: &Gpu| g.bus >= SECOND_SOCKET_FIRST_BUS;
    *level = if a.index == b.index {
        0
    } else if socket(a) == socket(b) {
        40
    } else {
        50
    };
    Ok(())
}

/// `nvmlGpuP2PStatus_t` for a `nvmlGpuP2PCapsIndex_t`: reads, writes, atomics and PCI (`PROP`) work between any
/// two GPUs of the node (Phantom's runtime lets every pair access each other); NVLink where the node has it,
/// else `NVML_P2P_STATUS_NOT_SUPPORTED` (5).
pub fn nvmlDeviceGetP2PStatus(device1: NvmlDevice, device2: NvmlDevice, index: c_uint, status: &mut c_uint) -> Status {
    let (node, _) = self::device(device1)?;
    node.gpu(device2)?;
    *status = match index {
        0 | 1 | 3 | 4 => 0,
        2 if node.nvlinks > 0 => 0,
        2 => 5,
        _ => return err(code::INVALID_ARGUMENT),
    };
    Ok(())
}

// ---- NVLink ----

/// Every link is up.
pub fn nvmlDeviceGetNvLinkState(device: NvmlDevice, link: c_uint, active: &mut c_uint) -> Status {
    self::device(device)?.0.check_link(link)?;
    *active = 1;
    Ok(())
}

/// `nvmlNvLinkCapability_t`: P2P (0) and P2P atomics (2) yes; system memory (1), its atomics (3) and SLI (4) no
/// (an x86 host has no NVLink); the link is valid (5).
pub fn nvmlDeviceGetNvLinkCapability(
    device: NvmlDevice,
    link: c_uint,
    capability: c_uint,
    result: &mut c_uint,
) -> Status {
    self::device(device)?.0.check_link(link)?;
    *result = match capability {
        0 | 2 | 5 => 1,
        1 | 3 | 4 => 0,
        _ => return err(code::INVALID_ARGUMENT),
    };
    Ok(())
}

/// `NVML_NVLINK_DEVICE_TYPE_SWITCH` (2): every link ends at an NVSwitch.
pub fn nvmlDeviceGetNvLinkRemoteDeviceType(device: NvmlDevice, link: c_uint, kind: &mut c_uint) -> Status {
    self::device(device)?.0.check_link(link)?;
    *kind = 2;
    Ok(())
}

pub fn nvmlDeviceGetNvLinkRemotePciInfo_v2(device: NvmlDevice, link: c_uint, pci: &mut PciInfo) -> Status {
    self::device(device)?.0.check_link(link)?;
    Pci::SWITCH.write(pci);
    Ok(())
}

pub fn nvmlDeviceGetNvLinkRemotePciInfo(device: NvmlDevice, link: c_uint, pci: &mut PciInfoV1) -> Status {
    self::device(device)?.0.check_link(link)?;
    Pci::SWITCH.write_v1(pci);
    Ok(())
}

/// `nvmlFieldValue_t` (40 bytes): `value` is the union, read as `uiVal` (little-endian) for the fields here.
#[repr(C)]
pub struct FieldValue {
    pub field_id: c_uint,
    pub scope_id: c_uint,
    pub timestamp: i64,
    pub latency_usec: i64,
    pub value_type: c_uint,
    pub nvml_return: c_uint,
    pub value: u64,
}

/// The `NVML_FI_*` fields NCCL and torch read.
mod field {
    pub const NVLINK_SPEED_MBPS_COMMON: u32 = 90;
    pub const NVLINK_LINK_COUNT: u32 = 91;
    pub const NVSWITCH_CONNECTED_LINK_COUNT: u32 = 147;
    pub const NVLINK_GET_SPEED: u32 = 164;
    pub const NVLINK_GET_STATE: u32 = 165;
    pub const C2C_LINK_COUNT: u32 = 170;
}

fn field_value(node: &Node, id: c_uint, scope: c_uint) -> Result<u32, NonZeroU32> {
    let link = || node.check_link(scope);
    match id {
        field::NVLINK_LINK_COUNT => Ok(node.nvlinks),
        field::NVLINK_SPEED_MBPS_COMMON | field::NVSWITCH_CONNECTED_LINK_COUNT if node.nvlinks == 0 => {
            Err(error(code::NOT_SUPPORTED))
        }
        field::NVLINK_SPEED_MBPS_COMMON => Ok(node.nvlink_mbps),
        field::NVSWITCH_CONNECTED_LINK_COUNT => Ok(node.nvlinks),
        field::NVLINK_GET_SPEED => link().map(|()| node.nvlink_mbps),
        field::NVLINK_GET_STATE => link().map(|()| 1),
        // No chip-to-chip (Grace) links on an x86 DGX.
        field::C2C_LINK_COUNT => Ok(0),
        _ => Err(error(code::NOT_SUPPORTED)),
    }
}

/// Each requested field gets its own `nvmlReturn` (the call itself succeeds): NVLink count, speed (MB/s per link,
/// the configuration's `network.nvlink_bytes_per_s` over the links), state and NVSwitch link count; C2C link
/// count 0; any other field `NVML_ERROR_NOT_SUPPORTED`. Timestamps and latencies are 0 (no wall clock).
pub fn nvmlDeviceGetFieldValues(device: NvmlDevice, count: c_int, values: *mut FieldValue) -> Status {
    let (node, _) = self::device(device)?;
    if values.is_null() || count <= 0 {
        return err(code::INVALID_ARGUMENT);
    }
    // SAFETY: the caller gives `count` field values.
    let values = unsafe { std::slice::from_raw_parts_mut(values, count as usize) };
    for v in values {
        let r = field_value(node, v.field_id, v.scope_id);
        v.timestamp = 0;
        v.latency_usec = 0;
        v.value_type = 1; // NVML_VALUE_TYPE_UNSIGNED_INT
        v.nvml_return = r.err().map_or(0, NonZeroU32::get);
        v.value = u64::from(r.unwrap_or(0));
    }
    Ok(())
}

// ---- Fabric and platform ----

/// `nvmlGpuFabricInfo_v2_t`.
#[repr(C)]
pub struct GpuFabricInfoV2 {
    pub version: c_uint,
    pub cluster_uuid: [u8; 16],
    pub status: c_uint,
    pub clique_id: c_uint,
    pub state: u8,
    pub health_mask: c_uint,
}

/// `nvmlGpuFabricInfo_v3_t` (`nvmlGpuFabricInfoV_t` in CUDA 13's nvml.h): v2 plus `healthSummary`.
#[repr(C)]
pub struct GpuFabricInfoV3 {
    pub v2: GpuFabricInfoV2,
    pub health_summary: u8,
}

/// A DGX is not a multi-node NVLink system: success with state `NVML_GPU_FABRIC_STATE_NOT_SUPPORTED` (0), which
/// NCCL and torch read as "no MNNVL". Versions 2 and 3 of the structure (`info` is raw: its size depends on
/// the version the caller sets); other versions `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
pub fn nvmlDeviceGetGpuFabricInfoV(device: NvmlDevice, info: *mut GpuFabricInfoV3) -> Status {
    self::device(device)?;
    if info.is_null() {
        return err(code::INVALID_ARGUMENT);
    }
    // SAFETY: every version starts with the version word.
    let version = unsafe { info.cast::<c_uint>().read() };
    let v2 = GpuFabricInfoV2 { version, cluster_uuid: [0; 16], status: 0, clique_id: 0, state: 0, health_mask: 0 };
    if version == struct_version::<GpuFabricInfoV3>(3) {
        // SAFETY: the caller's structure is a v3 one.
        unsafe { info.write(GpuFabricInfoV3 { v2, health_summary: 0 }) };
    } else if version == struct_version::<GpuFabricInfoV2>(2) {
        // SAFETY: the caller's structure is a v2 one, the prefix of v3.
        unsafe { info.cast::<GpuFabricInfoV2>().write(v2) };
    } else {
        return err(code::ARGUMENT_VERSION_MISMATCH);
    }
    Ok(())
}

/// `nvmlPlatformInfo_v1_t` / `_v2_t` (the same size).
#[repr(C)]
pub struct PlatformInfo {
    pub version: c_uint,
    pub ib_guid: [u8; 16],
    pub chassis_serial_number: [u8; 16],
    pub slot_number: u8,
    pub tray_index: u8,
    pub host_id: u8,
    pub peer_type: u8,
    pub module_id: u8,
}

/// Platform (rack) information exists only in multi-node NVLink systems: `NVML_ERROR_NOT_SUPPORTED` for a valid
/// request, as on a DGX.
pub fn nvmlDeviceGetPlatformInfo(device: NvmlDevice, info: &mut PlatformInfo) -> Status {
    self::device(device)?;
    if ![struct_version::<PlatformInfo>(1), struct_version::<PlatformInfo>(2)].contains(&info.version) {
        return err(code::ARGUMENT_VERSION_MISMATCH);
    }
    err(code::NOT_SUPPORTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_match_the_runtime_on_node_0() {
        let b = uuid_bytes(0, 3);
        assert_eq!(&b[..4], b"PHNT");
        assert_eq!(b[12..], [0, 0, 0, 3]);
        assert_eq!(uuid_string(&b), "GPU-50484e54-0000-4000-8000-000000000003");
        assert_eq!(uuid_string(&uuid_bytes(2, 3)), "GPU-50484e54-0000-4000-8000-000200000003");
    }

    #[test]
    fn bus_ids() {
        let spec = sim_core::gpu::gpu_preset("h100-sxm-80gb").unwrap();
        let pci = Pci::of(&spec, &Gpu { index: 7, bus: pci_bus(7), uuid: String::new() });
        assert_eq!(pci.bus_id(), "00000000:DB:00.0");
        assert_eq!(pci.bus_id_legacy(), "0000:DB:00.0");
        assert_eq!(pci.device_id, 0x2330_10de);
        assert_eq!(parse_bus_id("00000000:db:00.0"), Some((0, 0xdb, 0, 0)));
        assert_eq!(parse_bus_id("0000:18:00.0"), Some((0, 0x18, 0, 0)));
        assert_eq!(parse_bus_id("18:00"), Some((0, 0x18, 0, 0)));
        assert_eq!(parse_bus_id("18"), None);
        assert_eq!(parse_bus_id("zz:00.0"), None);
        // NCCL's sentinel for a link end it cannot see, once lower-cased and cut to 15 characters.
        let mut v1 = PciInfoV1 {
            bus_id: [1; 16],
            domain: 0,
            bus: 0,
            device: 0,
            pci_device_id: 0,
            pci_sub_system_id: 0,
            reserved: [1; 4],
        };
        Pci::SWITCH.write_v1(&mut v1);
        let s = unsafe { CStr::from_ptr(v1.bus_id.as_ptr()) }.to_str().unwrap().to_ascii_lowercase();
        assert_eq!(s, "fffffff:ffff:ff");
    }

    #[test]
    fn layouts_match_nvml_h() {
        use std::mem::size_of;
        assert_eq!(size_of::<PciInfo>(), 68);
        assert_eq!(size_of::<PciInfoV1>(), 52);
        assert_eq!(size_of::<MemoryV2>(), 40);
        assert_eq!(size_of::<FieldValue>(), 40);
        assert_eq!(size_of::<GpuFabricInfoV2>(), 36);
        assert_eq!(size_of::<GpuFabricInfoV3>(), 40);
        assert_eq!(size_of::<PlatformInfo>(), 44);
        assert_eq!(size_of::<ConfComputeSettings>(), 20);
        assert_eq!(struct_version::<Temperature>(1), 0x0100_000c);
    }

    #[test]
    fn error_strings() {
        let s = |c| unsafe { CStr::from_ptr(nvmlErrorString(c).0) }.to_str().unwrap();
        assert_eq!(s(0), "Success");
        assert_eq!(s(1), "Uninitialized");
        assert_eq!(s(999), "Unknown Error");
        assert_eq!(s(12345), "Unknown Error");
    }
}
