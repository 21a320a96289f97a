//! Device memory (DESIGN.md decision 6): addresses come from a range reserved with `PROT_NONE`, so they can
//! never alias host memory; capacity is accounted per simulated GPU. Pinned, registered and managed host
//! memory are real host memory, tracked so that copies and pointer attributes know what they are.
//!
//! Accounting rules (docs/gpu-model.md): a device allocation is charged its size rounded up to
//! [`ALLOC_GRANULE`]; allocations fail with `cudaErrorMemoryAllocation` once the charged total would exceed
//! `memory_bytes - context_reserve_bytes` of the GPU model.

use crate::export::CudaResult;
use phantom_cuda_sys::cudaError;
use sim_core::gpu::GpuSpec;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Size granule of device allocations (address alignment and accounting).
pub const ALLOC_GRANULE: u64 = 512;
/// Allocations of at least this size are aligned to it, as the driver does for large pages.
pub const LARGE_PAGE: u64 = 2 << 20;

/// One simulated GPU's memory.
#[derive(Debug)]
pub struct DeviceMemory {
    pub ordinal: u32,
    /// Start of this device's reserved address range (0 if the reservation failed: every allocation fails).
    base: u64,
    range: u64,
    /// Free address ranges: start → length.
    free: BTreeMap<u64, u64>,
    /// Live allocations: start → (requested size, charged size).
    allocs: BTreeMap<u64, (u64, u64)>,
    pub capacity: u64,
    pub total: u64,
    pub used: u64,
    pub peak: u64,
    /// The GPU's global index (node × GPUs per node + index in the node), which names its memory counter in
    /// the trace (docs/trace.md, "Device memory").
    pub trace_gpu: u32,
}

fn reserve(len: u64) -> u64 {
    // An executing process (profiling mode) reserves the range on the real GPU, so its addresses are real.
    if let Some(x) = crate::profile::gpu() {
        return x.reserve(len).unwrap_or_else(|e| {
            tracing::error!("phantom: cannot reserve {len} bytes of the real GPU's address space: {e}");
            0
        });
    }
    // SAFETY: an anonymous PROT_NONE mapping with a null hint touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        tracing::error!("phantom: cannot reserve {len} bytes of address space for device memory");
        0
    } else {
        p as u64
    }
}

impl DeviceMemory {
    pub fn new(ordinal: u32, spec: &GpuSpec) -> Self {
        // Twice the capacity leaves room for fragmentation and large-page alignment.
        let range = (spec.memory_bytes * 2).next_multiple_of(LARGE_PAGE);
        let base = reserve(range);
        Self::with_range(ordinal, spec, base, range)
    }

    fn with_range(ordinal: u32, spec: &GpuSpec, base: u64, range: u64) -> Self {
        let mut free = BTreeMap::new();
        if base != 0 {
            free.insert(base, range);
        }
        DeviceMemory {
            ordinal,
            base,
            range,
            free,
            allocs: BTreeMap::new(),
            capacity: spec.memory_bytes.saturating_sub(spec.context_reserve_bytes),
            total: spec.memory_bytes,
            used: 0,
            peak: 0,
            trace_gpu: ordinal,
        }
    }

    /// Names the GPU by its global index `gpu` in the trace.
    pub fn traced_as(mut self, gpu: u32) -> Self {
        self.trace_gpu = gpu;
        self
    }

    /// With tracing on: the memory in use from now on (the calling thread's virtual time; inside an API call
    /// reading it charges nothing).
    fn traced(&self) {
        if crate::trace::on() {
            crate::trace::memory(self.trace_gpu, crate::clock::now(), self.used);
        }
    }

    /// `cudaMemGetInfo`: (free, total) as the application sees them.
    pub fn info(&self) -> (u64, u64) {
        (self.total.saturating_sub(self.used + (self.total - self.capacity)), self.total)
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.base + self.range && self.base != 0
    }

    pub fn alloc(&mut self, size: u64) -> CudaResult<u64> {
        let charged = size.max(1).next_multiple_of(ALLOC_GRANULE);
        if self.used + charged > self.capacity {
            return Err(cudaError::cudaErrorMemoryAllocation);
        }
        let align = if charged >= LARGE_PAGE { LARGE_PAGE } else { ALLOC_GRANULE };
        let slot = self.free.iter().find_map(|(&start, &len)| {
            let aligned = start.next_multiple_of(align);
            (aligned + charged <= start + len).then_some((start, len, aligned))
        });
        let Some((start, len, addr)) = slot else { return Err(cudaError::cudaErrorMemoryAllocation) };
        if let Some(x) = crate::profile::gpu() {
            x.back(addr, charged)?;
        }
        self.free.remove(&start);
        if addr > start {
            self.free.insert(start, addr - start);
        }
        if addr + charged < start + len {
            self.free.insert(addr + charged, start + len - addr - charged);
        }
        self.allocs.insert(addr, (size, charged));
        self.used += charged;
        self.peak = self.peak.max(self.used);
        crate::stats::memory_peak(self.ordinal, self.peak);
        self.traced();
        Ok(addr)
    }

    /// Frees the allocation starting exactly at `addr`.
    pub fn free(&mut self, addr: u64) -> CudaResult<()> {
        let (_, charged) = self.allocs.remove(&addr).ok_or(cudaError::cudaErrorInvalidValue)?;
        self.used -= charged;
        crate::data::clear(addr, charged);
        if let Some(x) = crate::profile::gpu() {
            x.unback(addr, charged);
        }
        let (mut start, mut len) = (addr, charged);
        if let Some((&prev, &plen)) = self.free.range(..addr).next_back() {
            if prev + plen == addr {
                self.free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.free.get(&(addr + charged)) {
            self.free.remove(&(addr + charged));
            len += nlen;
        }
        self.free.insert(start, len);
        self.traced();
        Ok(())
    }

    /// Frees every allocation (`cudaDeviceReset`).
    pub fn reset(&mut self) {
        if let Some(x) = crate::profile::gpu() {
            for (&addr, &(_, charged)) in &self.allocs {
                x.unback(addr, charged);
            }
        }
        self.allocs.clear();
        self.free.clear();
        if self.base != 0 {
            self.free.insert(self.base, self.range);
        }
        self.used = 0;
        self.traced();
    }

    /// The allocation containing `addr`: (start, requested size).
    pub fn find(&self, addr: u64) -> Option<(u64, u64)> {
        let (&start, &(size, charged)) = self.allocs.range(..=addr).next_back()?;
        (addr < start + charged.max(size)).then_some((start, size))
    }
}

/// Kind of host memory Phantom knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// `cudaMallocHost` / `cudaHostAlloc`: Phantom allocated it and frees it.
    Pinned,
    /// `cudaHostRegister`: the application's memory, page-locked.
    Registered,
    /// `cudaMallocManaged`: real host memory that kernels may also use.
    Managed { device: u32 },
}

#[derive(Clone, Copy, Debug)]
pub struct HostRange {
    pub size: u64,
    pub kind: HostKind,
    pub flags: u32,
}

/// Host memory registered with the runtime, by start address.
pub static HOST: Mutex<BTreeMap<u64, HostRange>> = Mutex::new(BTreeMap::new());

pub fn host_map() -> std::sync::MutexGuard<'static, BTreeMap<u64, HostRange>> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// The registered host range containing `addr`: (start, range).
pub fn find_host(addr: u64) -> Option<(u64, HostRange)> {
    let map = host_map();
    let (&start, &r) = map.range(..=addr).next_back()?;
    (addr < start + r.size.max(1)).then_some((start, r))
}

/// Where a pointer points, as far as copies are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Simulated device memory of this device ordinal (no backing store).
    Device(u32),
    /// Page-locked host memory (pinned, registered) or managed memory: real, fast to copy.
    PinnedHost,
    /// Ordinary pageable host memory.
    PageableHost,
}

/// Classifies `addr` using the device ranges and the host registry.
pub fn locate(rt: &crate::runtime::Runtime, addr: u64) -> Location {
    for d in &rt.devices {
        if d.memory().contains(addr) {
            return Location::Device(d.ordinal);
        }
    }
    match find_host(addr) {
        Some(_) => Location::PinnedHost,
        None => Location::PageableHost,
    }
}

/// Allocates page-aligned, zeroed real host memory.
pub fn host_alloc(size: u64) -> CudaResult<*mut libc::c_void> {
    let len = size.max(1).next_multiple_of(4096) as usize;
    // SAFETY: anonymous private mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED {
        Err(cudaError::cudaErrorMemoryAllocation)
    } else {
        Ok(p)
    }
}

pub fn host_release(addr: u64, size: u64) {
    let len = size.max(1).next_multiple_of(4096) as usize;
    // SAFETY: the range was mapped by `host_alloc` with this length and is no longer referenced by us.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(memory: u64, reserve: u64) -> GpuSpec {
        let mut s = sim_core::gpu::gpu_preset("h100-sxm-80gb").unwrap();
        s.memory_bytes = memory;
        s.context_reserve_bytes = reserve;
        s
    }

    #[test]
    fn capacity_is_total_minus_reserve_in_granules() {
        let mut m = DeviceMemory::with_range(0, &spec(10 << 20, 2 << 20), 1 << 40, 20 << 20);
        assert_eq!(m.info(), (8 << 20, 10 << 20));
        let a = m.alloc(4 << 20).unwrap();
        assert_eq!(a % LARGE_PAGE, 0);
        assert_eq!(m.info(), (4 << 20, 10 << 20));
        assert_eq!(m.alloc((4 << 20) + 1), Err(cudaError::cudaErrorMemoryAllocation));
        let b = m.alloc(1).unwrap();
        assert_eq!(m.used, (4 << 20) + ALLOC_GRANULE);
        assert_eq!(m.find(b), Some((b, 1)));
        assert_eq!(m.find(a + 100), Some((a, 4 << 20)));
        m.free(a).unwrap();
        m.free(b).unwrap();
        assert_eq!(m.used, 0);
        assert_eq!(m.peak, (4 << 20) + ALLOC_GRANULE);
        assert_eq!(m.free(b), Err(cudaError::cudaErrorInvalidValue));
        // Everything coalesced back into one free range.
        assert_eq!(m.free.len(), 1);
    }

    #[test]
    fn eighty_one_gib_does_not_fit_an_h100() {
        let s = sim_core::gpu::gpu_preset("h100-sxm-80gb").unwrap();
        let mut m = DeviceMemory::with_range(0, &s, 1 << 44, s.memory_bytes * 2);
        // An "80 GB" H100 reports 79.19 GiB; 81 GiB cannot fit, 78 GiB fits beside the context reserve.
        assert_eq!(m.alloc(81 << 30), Err(cudaError::cudaErrorMemoryAllocation));
        assert!(m.alloc(78 << 30).is_ok());
    }
}
