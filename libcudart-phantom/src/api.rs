//! The implemented part of the runtime API. Each override converts raw arguments at the edge (null
//! pointers → `cudaErrorInvalidValue`, handles → objects) and calls a typed function of a topic module.
//! Everything not overridden here is the generated "not supported" stub.

use crate::export::{peek_last_error, status, take_last_error, CudaResult};
use crate::graph::{self, EXECS, GRAPHS};
use crate::launch::{self, CallConfig, KERNELS};
use crate::memory::{self, HostKind, HostRange};
use crate::runtime::{api, current_ordinal, rt, Cost};
use crate::stream::{self, Event, Stream, EVENTS, STREAMS};
use crate::{copy, device, errors};
use crate::{CudartApi, Phantom};
use phantom_cuda_sys::*;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_ulonglong, c_void};

/// Writes `value` through an application pointer; null → `cudaErrorInvalidValue`.
unsafe fn write<T>(p: *mut T, value: CudaResult<T>) -> cudaError_t {
    if p.is_null() {
        return cudaError::cudaErrorInvalidValue;
    }
    match value {
        Ok(v) => {
            unsafe { p.write(v) };
            cudaError::cudaSuccess
        }
        Err(e) => e,
    }
}

fn event(h: cudaEvent_t) -> CudaResult<std::sync::Arc<Event>> {
    EVENTS.get(h as usize).ok_or(cudaError::cudaErrorInvalidResourceHandle)
}

fn stream_handle(h: usize) -> cudaStream_t {
    h as cudaStream_t
}

/// A plain call: the runtime, the submit time, the application's function.
fn call(f: impl FnOnce(&'static crate::runtime::Runtime, sim_core::SimTime) -> CudaResult<()>) -> cudaError_t {
    status(api(Cost::Call, f))
}

fn alloc_device(size: usize) -> CudaResult<*mut c_void> {
    api(Cost::Call, |rt, _| {
        let dev = rt.current()?;
        let addr = dev.memory().alloc(size as u64)?;
        Ok(addr as *mut c_void)
    })
}

fn free_device(ptr: *mut c_void) -> CudaResult<()> {
    api(Cost::Call, |rt, _| {
        if ptr.is_null() {
            return Ok(());
        }
        let addr = ptr as u64;
        for d in &rt.devices {
            let m = d.memory();
            if m.contains(addr) {
                // cudaFree synchronises the device before releasing.
                drop(m);
                device::synchronize(rt, d.ordinal)?;
                return d.memory().free(addr);
            }
        }
        Err(cudaError::cudaErrorInvalidValue)
    })
}

fn alloc_host(size: usize, kind: HostKind, flags: u32) -> CudaResult<*mut c_void> {
    api(Cost::Call, |_, _| {
        let p = memory::host_alloc(size as u64)?;
        memory::host_map().insert(p as u64, HostRange { size: size as u64, kind, flags });
        Ok(p)
    })
}

#[allow(clippy::too_many_arguments)]
fn memcpy(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    rows: usize,
    kind: cudaMemcpyKind,
    s: cudaStream_t,
    blocking: bool,
) -> cudaError_t {
    call(|rt, submit| {
        let stream = stream::resolve(s)?;
        copy::copy(rt, submit, &stream, dst as u64, dpitch as u64, src as u64, spitch as u64, width as u64, rows as u64, kind, blocking)
    })
}

/// A memset is a launch for the host: NVIDIA's driver queues a kernel (`cudaMemsetAsync` costs the host about what
/// `cudaLaunchKernel` does: 4.0 µs each on the H100 machine, calibration/host/h100-sxm-80gb/host-run4.txt).
fn memset(dst: *mut c_void, pitch: usize, value: c_int, width: usize, rows: usize, s: cudaStream_t, blocking: bool) -> cudaError_t {
    status(api(Cost::Launch, |rt, submit| {
        let stream = stream::resolve(s)?;
        copy::memset(rt, submit, &stream, dst as u64, pitch as u64, value, width as u64, rows as u64, blocking)
    }))
}

/// Device address of a registered `__device__` variable, allocated on first use.
fn symbol_address(symbol: *const c_void) -> CudaResult<(u64, u64)> {
    let key = symbol as usize;
    if let Some(v) = launch::VARIABLES.get(&key) {
        return Ok(*v);
    }
    let size = *launch::PENDING_VARIABLES.get(&key).ok_or(cudaError::cudaErrorInvalidSymbol)?;
    let rt = rt()?;
    if crate::profile::gpu().is_some() {
        // The real kernels use the variable inside their loaded module, which Phantom does not map yet.
        tracing::error!("phantom: profiling mode does not support __device__ / __constant__ variables yet (cudaMemcpyToSymbol and friends)");
        return Err(cudaError::cudaErrorNotSupported);
    }
    let addr = rt.device(0)?.memory().alloc(size)?;
    let entry = *launch::VARIABLES.entry(key).or_insert((addr, size));
    Ok(entry)
}

/// Device address `offset` bytes into a registered variable, if `count` bytes fit there.
fn symbol_at(symbol: *const c_void, offset: usize, count: usize) -> CudaResult<*mut c_void> {
    let (addr, size) = symbol_address(symbol)?;
    match offset.checked_add(count) {
        Some(end) if end <= size as usize => Ok((addr as usize + offset) as *mut c_void),
        _ => Err(cudaError::cudaErrorInvalidValue),
    }
}

fn launch_kernel(func: *const c_void, grid: dim3, block: dim3, shared: usize, s: cudaStream_t, args: *mut *mut c_void) -> cudaError_t {
    status(api(Cost::Launch, |rt, submit| launch::launch(rt, submit, func as usize, grid, block, shared, s, args)))
}

#[allow(non_snake_case)]
impl CudartApi for Phantom {
    // ---- errors and versions -------------------------------------------------------------------------
    unsafe fn cudaGetLastError() -> cudaError_t {
        take_last_error()
    }
    unsafe fn cudaPeekAtLastError() -> cudaError_t {
        peek_last_error()
    }
    unsafe fn cudaGetExportTable(table: *mut *const c_void, id: *const cudaUUID_t) -> cudaError_t {
        if table.is_null() || id.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        let bytes = unsafe { (*id).bytes }.map(|b| b as u8);
        if bytes != sim_core::shim_abi::RUNTIME_TABLE_ID {
            // NVIDIA's private tables (used by its own libraries) do not exist here.
            return cudaError::cudaErrorInvalidValue;
        }
        unsafe { table.write(&crate::shim_table::TABLE as *const _ as *const c_void) };
        cudaError::cudaSuccess
    }
    unsafe fn cudaGetErrorName(error: cudaError_t) -> *const c_char {
        errors::name(error.0).map(CStr::as_ptr).unwrap_or(c"cudaErrorUnknown".as_ptr())
    }
    unsafe fn cudaGetErrorString(error: cudaError_t) -> *const c_char {
        errors::description(error.0).as_ptr()
    }
    unsafe fn cudaRuntimeGetVersion(v: *mut c_int) -> cudaError_t {
        unsafe { write(v, Ok(device::RUNTIME_VERSION)) }
    }
    unsafe fn cudaDriverGetVersion(v: *mut c_int) -> cudaError_t {
        unsafe { write(v, Ok(device::DRIVER_VERSION)) }
    }

    // ---- devices ---------------------------------------------------------------------------------------
    unsafe fn cudaGetDeviceCount(count: *mut c_int) -> cudaError_t {
        let n = rt().map(|rt| rt.devices.len() as c_int);
        match n {
            Ok(0) => {
                unsafe { write(count, Ok(0)) };
                cudaError::cudaErrorNoDevice
            }
            other => unsafe { write(count, other) },
        }
    }
    unsafe fn cudaGetDevice(d: *mut c_int) -> cudaError_t {
        unsafe { write(d, crate::runtime::query(device::get_device)) }
    }
    unsafe fn cudaSetDevice(d: c_int) -> cudaError_t {
        call(|rt, _| device::set_device(rt, d))
    }
    unsafe fn cudaInitDevice(d: c_int, _device_flags: c_uint, _flags: c_uint) -> cudaError_t {
        call(|rt, _| rt.device(d).map(|_| ()))
    }
    unsafe fn cudaGetDeviceProperties(prop: *mut cudaDeviceProp, d: c_int) -> cudaError_t {
        unsafe { write(prop, api(Cost::Call, |rt, _| Ok(rt.device(d)?.props))) }
    }
    unsafe fn cudaDeviceGetAttribute(value: *mut c_int, attr: cudaDeviceAttr, d: c_int) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            let dev = rt.device(d)?;
            crate::device_props::attribute_from_prop(&dev.spec, &dev.props, attr).ok_or(cudaError::cudaErrorInvalidValue)
        });
        unsafe { write(value, v) }
    }
    unsafe fn cudaDeviceSynchronize() -> cudaError_t {
        call(|rt, _| device::synchronize(rt, current_ordinal()).map(|_| ()))
    }
    unsafe fn cudaDeviceReset() -> cudaError_t {
        call(|rt, _| device::reset(rt))
    }
    unsafe fn cudaSetDeviceFlags(flags: c_uint) -> cudaError_t {
        // Valid bits: schedule mode (0x7), map host (0x8), resize local memory (0x10), sync memops (0x80).
        if flags & !0x9F != 0 {
            return cudaError::cudaErrorInvalidValue;
        }
        call(|rt, _| {
            rt.current()?.flags.store(flags, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    }
    unsafe fn cudaGetDeviceFlags(flags: *mut c_uint) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| Ok(rt.current()?.flags.load(std::sync::atomic::Ordering::Relaxed)));
        unsafe { write(flags, v) }
    }
    unsafe fn cudaDeviceGetPCIBusId(buf: *mut c_char, len: c_int, d: c_int) -> cudaError_t {
        if buf.is_null() || len <= 0 {
            return cudaError::cudaErrorInvalidValue;
        }
        match api(Cost::Call, |rt, _| device::pci_bus_id(rt, d)) {
            Ok(id) => {
                let n = id.len().min(len as usize - 1);
                unsafe {
                    std::ptr::copy_nonoverlapping(id.as_ptr() as *const c_char, buf, n);
                    *buf.add(n) = 0;
                }
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    }
    unsafe fn cudaDeviceGetByPCIBusId(d: *mut c_int, id: *const c_char) -> cudaError_t {
        if id.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        let id = unsafe { CStr::from_ptr(id) }.to_string_lossy().into_owned();
        unsafe { write(d, api(Cost::Call, |rt, _| device::device_by_pci_bus_id(rt, &id))) }
    }
    unsafe fn cudaDeviceCanAccessPeer(can: *mut c_int, d: c_int, peer: c_int) -> cudaError_t {
        unsafe { write(can, api(Cost::Call, |rt, _| device::can_access_peer(rt, d, peer).map(c_int::from))) }
    }
    unsafe fn cudaDeviceEnablePeerAccess(peer: c_int, flags: c_uint) -> cudaError_t {
        call(|rt, _| {
            if flags != 0 {
                return Err(cudaError::cudaErrorInvalidValue);
            }
            let me = rt.current()?.ordinal as c_int;
            if !device::can_access_peer(rt, me, peer)? {
                return Err(cudaError::cudaErrorInvalidDevice);
            }
            Ok(())
        })
    }
    unsafe fn cudaDeviceDisablePeerAccess(peer: c_int) -> cudaError_t {
        call(|rt, _| rt.device(peer).map(|_| ()))
    }
    unsafe fn cudaDeviceGetP2PAttribute(value: *mut c_int, attr: cudaDeviceP2PAttr, src: c_int, dst: c_int) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            let peer = device::can_access_peer(rt, src, dst)?;
            Ok(match attr {
                cudaDeviceP2PAttr::cudaDevP2PAttrPerformanceRank => 0,
                _ => c_int::from(peer),
            })
        });
        unsafe { write(value, v) }
    }
    unsafe fn cudaDeviceGetStreamPriorityRange(least: *mut c_int, greatest: *mut c_int) -> cudaError_t {
        // Like a real H100: priorities 0 (lowest) to -5 (highest); either pointer may be null.
        unsafe {
            if !least.is_null() {
                *least = 0;
            }
            if !greatest.is_null() {
                *greatest = -5;
            }
        }
        cudaError::cudaSuccess
    }
    unsafe fn cudaDeviceGetLimit(value: *mut usize, limit: cudaLimit) -> cudaError_t {
        unsafe { write(value, device::limit(limit)) }
    }
    unsafe fn cudaDeviceSetLimit(limit: cudaLimit, _value: usize) -> cudaError_t {
        status(device::limit(limit).map(|_| ()))
    }
    unsafe fn cudaDeviceSetCacheConfig(c: cudaFuncCache) -> cudaError_t {
        if c.0 > cudaFuncCache::cudaFuncCachePreferEqual.0 {
            return cudaError::cudaErrorInvalidValue;
        }
        call(|rt, _| rt.current().map(|_| ()))
    }
    unsafe fn cudaDeviceGetCacheConfig(c: *mut cudaFuncCache) -> cudaError_t {
        unsafe { write(c, Ok(cudaFuncCache::cudaFuncCachePreferNone)) }
    }
    unsafe fn cudaChooseDevice(d: *mut c_int, prop: *const cudaDeviceProp) -> cudaError_t {
        if prop.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        unsafe { write(d, api(Cost::Call, |rt, _| rt.current().map(|_| 0))) }
    }

    // ---- memory ----------------------------------------------------------------------------------------
    unsafe fn cudaMalloc(p: *mut *mut c_void, size: usize) -> cudaError_t {
        if p.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        if size == 0 {
            unsafe { *p = std::ptr::null_mut() };
            return status(rt().map(|_| ()));
        }
        unsafe { write(p, alloc_device(size)) }
    }
    unsafe fn cudaFree(p: *mut c_void) -> cudaError_t {
        status(free_device(p))
    }
    unsafe fn cudaMallocAsync(p: *mut *mut c_void, size: usize, s: cudaStream_t) -> cudaError_t {
        if let Err(e) = stream::resolve(s) {
            return e;
        }
        unsafe { Self::cudaMalloc(p, size) }
    }
    unsafe fn cudaMallocFromPoolAsync(p: *mut *mut c_void, size: usize, _pool: cudaMemPool_t, s: cudaStream_t) -> cudaError_t {
        unsafe { Self::cudaMallocAsync(p, size, s) }
    }
    unsafe fn cudaFreeAsync(p: *mut c_void, s: cudaStream_t) -> cudaError_t {
        // Stream-ordered free: the memory is only reused by later work, so no synchronisation is needed.
        let r = api(Cost::Call, |rt, _| {
            stream::resolve(s)?;
            let addr = p as u64;
            if addr == 0 {
                return Ok(());
            }
            rt.devices
                .iter()
                .find(|d| d.memory().contains(addr))
                .ok_or(cudaError::cudaErrorInvalidValue)?
                .memory()
                .free(addr)
        });
        status(r)
    }
    unsafe fn cudaDeviceGetDefaultMemPool(pool: *mut cudaMemPool_t, d: c_int) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| Ok((0x5500_0000_0000usize + 0x40 * rt.device(d)?.ordinal as usize) as cudaMemPool_t));
        unsafe { write(pool, v) }
    }
    unsafe fn cudaDeviceGetMemPool(pool: *mut cudaMemPool_t, d: c_int) -> cudaError_t {
        unsafe { Self::cudaDeviceGetDefaultMemPool(pool, d) }
    }
    unsafe fn cudaMemPoolSetAttribute(pool: cudaMemPool_t, _attr: cudaMemPoolAttr, value: *mut c_void) -> cudaError_t {
        if value.is_null() || pool.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        cudaError::cudaSuccess
    }
    unsafe fn cudaMemPoolTrimTo(pool: cudaMemPool_t, _keep: usize) -> cudaError_t {
        if pool.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        cudaError::cudaSuccess
    }
    unsafe fn cudaMallocPitch(p: *mut *mut c_void, pitch: *mut usize, width: usize, height: usize) -> cudaError_t {
        if pitch.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        let row = width.max(1).next_multiple_of(512);
        let r = unsafe { Self::cudaMalloc(p, row * height) };
        if r == cudaError::cudaSuccess {
            unsafe { *pitch = row };
        }
        r
    }
    unsafe fn cudaMallocHost(p: *mut *mut c_void, size: usize) -> cudaError_t {
        unsafe { write(p, alloc_host(size, HostKind::Pinned, 0)) }
    }
    unsafe fn cudaHostAlloc(p: *mut *mut c_void, size: usize, flags: c_uint) -> cudaError_t {
        unsafe { write(p, alloc_host(size, HostKind::Pinned, flags)) }
    }
    unsafe fn cudaMallocManaged(p: *mut *mut c_void, size: usize, flags: c_uint) -> cudaError_t {
        if size == 0 {
            return cudaError::cudaErrorInvalidValue;
        }
        unsafe { write(p, alloc_host(size, HostKind::Managed { device: current_ordinal() }, flags)) }
    }
    unsafe fn cudaFreeHost(p: *mut c_void) -> cudaError_t {
        call(|_, _| {
            if p.is_null() {
                return Ok(());
            }
            let mut map = memory::host_map();
            match map.get(&(p as u64)) {
                Some(r) if r.kind == HostKind::Pinned => {
                    let r = map.remove(&(p as u64)).expect("present");
                    memory::host_release(p as u64, r.size);
                    Ok(())
                }
                _ => Err(cudaError::cudaErrorInvalidValue),
            }
        })
    }
    unsafe fn cudaHostRegister(p: *mut c_void, size: usize, flags: c_uint) -> cudaError_t {
        call(|_, _| {
            if p.is_null() || size == 0 {
                return Err(cudaError::cudaErrorInvalidValue);
            }
            let mut map = memory::host_map();
            if map.contains_key(&(p as u64)) {
                return Err(cudaError::cudaErrorHostMemoryAlreadyRegistered);
            }
            map.insert(p as u64, HostRange { size: size as u64, kind: HostKind::Registered, flags });
            Ok(())
        })
    }
    unsafe fn cudaHostUnregister(p: *mut c_void) -> cudaError_t {
        call(|_, _| {
            let mut map = memory::host_map();
            match map.get(&(p as u64)) {
                Some(r) if r.kind == HostKind::Registered => {
                    map.remove(&(p as u64));
                    Ok(())
                }
                _ => Err(cudaError::cudaErrorHostMemoryNotRegistered),
            }
        })
    }
    unsafe fn cudaHostGetDevicePointer(dev: *mut *mut c_void, host: *mut c_void, flags: c_uint) -> cudaError_t {
        let v = if flags != 0 {
            Err(cudaError::cudaErrorInvalidValue)
        } else {
            memory::find_host(host as u64).map(|_| host).ok_or(cudaError::cudaErrorInvalidValue)
        };
        unsafe { write(dev, v) }
    }
    unsafe fn cudaHostGetFlags(flags: *mut c_uint, host: *mut c_void) -> cudaError_t {
        let v = memory::find_host(host as u64).map(|(_, r)| r.flags).ok_or(cudaError::cudaErrorInvalidValue);
        unsafe { write(flags, v) }
    }
    unsafe fn cudaMemGetInfo(free: *mut usize, total: *mut usize) -> cudaError_t {
        if free.is_null() || total.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        match api(Cost::Call, |rt, _| Ok(rt.current()?.memory().info())) {
            Ok((f, t)) => {
                unsafe {
                    *free = f as usize;
                    *total = t as usize;
                }
                cudaError::cudaSuccess
            }
            Err(e) => e,
        }
    }
    unsafe fn cudaPointerGetAttributes(attrs: *mut cudaPointerAttributes, ptr: *const c_void) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            let addr = ptr as u64;
            let mut a: cudaPointerAttributes = unsafe { std::mem::zeroed() };
            a.device = -2;
            if let Some(d) = rt.devices.iter().find(|d| d.memory().find(addr).is_some()) {
                a.type_ = cudaMemoryType::cudaMemoryTypeDevice;
                a.device = d.ordinal as c_int;
                a.devicePointer = ptr as *mut c_void;
            } else if let Some((_, r)) = memory::find_host(addr) {
                a.type_ = match r.kind {
                    HostKind::Managed { device } => {
                        a.device = device as c_int;
                        cudaMemoryType::cudaMemoryTypeManaged
                    }
                    _ => {
                        a.device = current_ordinal() as c_int;
                        cudaMemoryType::cudaMemoryTypeHost
                    }
                };
                a.devicePointer = ptr as *mut c_void;
                a.hostPointer = ptr as *mut c_void;
            } else {
                a.type_ = cudaMemoryType::cudaMemoryTypeUnregistered;
                a.hostPointer = ptr as *mut c_void;
            }
            Ok(a)
        });
        unsafe { write(attrs, v) }
    }
    unsafe fn cudaMemset(p: *mut c_void, value: c_int, count: usize) -> cudaError_t {
        memset(p, count, value, count, 1, std::ptr::null_mut(), true)
    }
    unsafe fn cudaMemsetAsync(p: *mut c_void, value: c_int, count: usize, s: cudaStream_t) -> cudaError_t {
        memset(p, count, value, count, 1, s, false)
    }
    unsafe fn cudaMemset2D(p: *mut c_void, pitch: usize, value: c_int, width: usize, height: usize) -> cudaError_t {
        memset(p, pitch, value, width, height, std::ptr::null_mut(), true)
    }
    unsafe fn cudaMemset2DAsync(p: *mut c_void, pitch: usize, value: c_int, width: usize, height: usize, s: cudaStream_t) -> cudaError_t {
        memset(p, pitch, value, width, height, s, false)
    }
    unsafe fn cudaMemcpy(dst: *mut c_void, src: *const c_void, count: usize, kind: cudaMemcpyKind) -> cudaError_t {
        memcpy(dst, count, src, count, count, 1, kind, std::ptr::null_mut(), true)
    }
    unsafe fn cudaMemcpyAsync(dst: *mut c_void, src: *const c_void, count: usize, kind: cudaMemcpyKind, s: cudaStream_t) -> cudaError_t {
        memcpy(dst, count, src, count, count, 1, kind, s, false)
    }
    unsafe fn cudaMemcpy2D(dst: *mut c_void, dpitch: usize, src: *const c_void, spitch: usize, width: usize, height: usize, kind: cudaMemcpyKind) -> cudaError_t {
        memcpy(dst, dpitch, src, spitch, width, height, kind, std::ptr::null_mut(), true)
    }
    unsafe fn cudaMemcpy2DAsync(dst: *mut c_void, dpitch: usize, src: *const c_void, spitch: usize, width: usize, height: usize, kind: cudaMemcpyKind, s: cudaStream_t) -> cudaError_t {
        memcpy(dst, dpitch, src, spitch, width, height, kind, s, false)
    }
    unsafe fn cudaMemcpyPeer(dst: *mut c_void, _dd: c_int, src: *const c_void, _sd: c_int, count: usize) -> cudaError_t {
        memcpy(dst, count, src, count, count, 1, cudaMemcpyKind::cudaMemcpyDeviceToDevice, std::ptr::null_mut(), true)
    }
    unsafe fn cudaMemcpyPeerAsync(dst: *mut c_void, _dd: c_int, src: *const c_void, _sd: c_int, count: usize, s: cudaStream_t) -> cudaError_t {
        memcpy(dst, count, src, count, count, 1, cudaMemcpyKind::cudaMemcpyDeviceToDevice, s, false)
    }
    unsafe fn cudaGetSymbolAddress(p: *mut *mut c_void, symbol: *const c_void) -> cudaError_t {
        unsafe { write(p, symbol_address(symbol).map(|(a, _)| a as *mut c_void)) }
    }
    unsafe fn cudaGetSymbolSize(size: *mut usize, symbol: *const c_void) -> cudaError_t {
        unsafe { write(size, symbol_address(symbol).map(|(_, s)| s as usize)) }
    }
    unsafe fn cudaMemcpyToSymbol(symbol: *const c_void, src: *const c_void, count: usize, offset: usize, kind: cudaMemcpyKind) -> cudaError_t {
        symbol_at(symbol, offset, count)
            .map_or_else(|e| e, |dst| memcpy(dst, count, src, count, count, 1, kind, std::ptr::null_mut(), true))
    }
    unsafe fn cudaMemcpyToSymbolAsync(symbol: *const c_void, src: *const c_void, count: usize, offset: usize, kind: cudaMemcpyKind, s: cudaStream_t) -> cudaError_t {
        symbol_at(symbol, offset, count).map_or_else(|e| e, |dst| memcpy(dst, count, src, count, count, 1, kind, s, false))
    }
    unsafe fn cudaMemcpyFromSymbol(dst: *mut c_void, symbol: *const c_void, count: usize, offset: usize, kind: cudaMemcpyKind) -> cudaError_t {
        symbol_at(symbol, offset, count)
            .map_or_else(|e| e, |src| memcpy(dst, count, src, count, count, 1, kind, std::ptr::null_mut(), true))
    }
    unsafe fn cudaMemcpyFromSymbolAsync(dst: *mut c_void, symbol: *const c_void, count: usize, offset: usize, kind: cudaMemcpyKind, s: cudaStream_t) -> cudaError_t {
        symbol_at(symbol, offset, count).map_or_else(|e| e, |src| memcpy(dst, count, src, count, count, 1, kind, s, false))
    }
    unsafe fn cudaMemPrefetchAsync(p: *const c_void, _count: usize, _loc: cudaMemLocation, _flags: c_uint, s: cudaStream_t) -> cudaError_t {
        if p.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        status(stream::resolve(s).map(|_| ()))
    }
    unsafe fn cudaMemAdvise(p: *const c_void, _count: usize, _advice: cudaMemoryAdvise, _loc: cudaMemLocation) -> cudaError_t {
        if p.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        cudaError::cudaSuccess
    }

    // ---- streams ---------------------------------------------------------------------------------------
    unsafe fn cudaStreamCreate(p: *mut cudaStream_t) -> cudaError_t {
        unsafe { Self::cudaStreamCreateWithPriority(p, 0, 0) }
    }
    unsafe fn cudaStreamCreateWithFlags(p: *mut cudaStream_t, flags: c_uint) -> cudaError_t {
        unsafe { Self::cudaStreamCreateWithPriority(p, flags, 0) }
    }
    unsafe fn cudaStreamCreateWithPriority(p: *mut cudaStream_t, flags: c_uint, priority: c_int) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            if flags & !stream::STREAM_NON_BLOCKING != 0 {
                return Err(cudaError::cudaErrorInvalidValue);
            }
            // Out-of-range priorities are clamped, as CUDA does.
            let priority = priority.clamp(-5, 0);
            Ok(stream_handle(Stream::create(rt.current()?.ordinal, flags, priority)))
        });
        unsafe { write(p, v) }
    }
    unsafe fn cudaStreamDestroy(s: cudaStream_t) -> cudaError_t {
        call(|_, _| {
            let s = STREAMS.remove(s as usize).ok_or(cudaError::cudaErrorInvalidResourceHandle)?;
            if let Some(x) = crate::profile::gpu() {
                x.destroy_stream(&s);
            }
            Ok(())
        })
    }
    unsafe fn cudaStreamSynchronize(s: cudaStream_t) -> cudaError_t {
        call(|_, _| stream::synchronize(&*stream::resolve(s)?))
    }
    unsafe fn cudaStreamQuery(s: cudaStream_t) -> cudaError_t {
        call(|_, _| stream::query(&*stream::resolve(s)?, crate::clock::now()))
    }
    unsafe fn cudaStreamWaitEvent(s: cudaStream_t, e: cudaEvent_t, _flags: c_uint) -> cudaError_t {
        call(|rt, submit| stream::wait_event(rt, submit, &stream::resolve(s)?, &*event(e)?))
    }
    unsafe fn cudaStreamGetFlags(s: cudaStream_t, flags: *mut c_uint) -> cudaError_t {
        unsafe { write(flags, stream::resolve(s).map(|s| s.flags)) }
    }
    unsafe fn cudaStreamGetPriority(s: cudaStream_t, priority: *mut c_int) -> cudaError_t {
        unsafe { write(priority, stream::resolve(s).map(|s| s.priority)) }
    }
    unsafe fn cudaStreamGetDevice(s: cudaStream_t, d: *mut c_int) -> cudaError_t {
        unsafe { write(d, stream::resolve(s).map(|s| s.device as c_int)) }
    }
    unsafe fn cudaStreamGetId(s: cudaStream_t, id: *mut c_ulonglong) -> cudaError_t {
        unsafe { write(id, stream::resolve(s).map(|s| s.handle as c_ulonglong)) }
    }
    unsafe fn cudaLaunchHostFunc(s: cudaStream_t, f: cudaHostFn_t, data: *mut c_void) -> cudaError_t {
        let Some(f) = f else { return cudaError::cudaErrorInvalidValue };
        let data = data as usize;
        call(|rt, submit| {
            let st = stream::resolve(s)?;
            stream::host_func(rt, submit, &st, Box::new(move || unsafe { f(data as *mut c_void) }))
        })
    }
    unsafe fn cudaStreamAddCallback(s: cudaStream_t, cb: cudaStreamCallback_t, data: *mut c_void, flags: c_uint) -> cudaError_t {
        let Some(cb) = cb else { return cudaError::cudaErrorInvalidValue };
        if flags != 0 {
            return cudaError::cudaErrorInvalidValue;
        }
        let (data, handle) = (data as usize, s as usize);
        call(|rt, submit| {
            let st = stream::resolve(s)?;
            stream::host_func(
                rt,
                submit,
                &st,
                Box::new(move || unsafe { cb(handle as cudaStream_t, cudaError::cudaSuccess, data as *mut c_void) }),
            )
        })
    }
    unsafe fn cudaStreamBeginCapture(s: cudaStream_t, mode: cudaStreamCaptureMode) -> cudaError_t {
        if mode.0 > cudaStreamCaptureMode::cudaStreamCaptureModeRelaxed.0 {
            return cudaError::cudaErrorInvalidValue;
        }
        call(|_, _| graph::begin_capture(&*stream::resolve(s)?))
    }
    unsafe fn cudaStreamEndCapture(s: cudaStream_t, g: *mut cudaGraph_t) -> cudaError_t {
        if g.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        unsafe { write(g, api(Cost::Call, |_, _| graph::end_capture(&*stream::resolve(s)?).map(|h| h as cudaGraph_t))) }
    }
    unsafe fn cudaStreamIsCapturing(s: cudaStream_t, st: *mut cudaStreamCaptureStatus) -> cudaError_t {
        let v = stream::resolve(s).map(|s| {
            if s.is_capturing() {
                cudaStreamCaptureStatus::cudaStreamCaptureStatusActive
            } else {
                cudaStreamCaptureStatus::cudaStreamCaptureStatusNone
            }
        });
        unsafe { write(st, v) }
    }
    unsafe fn cudaStreamGetCaptureInfo(
        s: cudaStream_t,
        status_out: *mut cudaStreamCaptureStatus,
        id_out: *mut c_ulonglong,
        graph_out: *mut cudaGraph_t,
        deps_out: *mut *const cudaGraphNode_t,
        edges_out: *mut *const cudaGraphEdgeData,
        num_deps_out: *mut usize,
    ) -> cudaError_t {
        let st = match stream::resolve(s) {
            Ok(st) => st,
            Err(e) => return e,
        };
        let cap = st.state().capture.clone();
        unsafe {
            if status_out.is_null() {
                return cudaError::cudaErrorInvalidValue;
            }
            *status_out = if cap.is_some() {
                cudaStreamCaptureStatus::cudaStreamCaptureStatusActive
            } else {
                cudaStreamCaptureStatus::cudaStreamCaptureStatusNone
            };
            if !id_out.is_null() {
                *id_out = cap.as_ref().map(|c| c.id).unwrap_or(0);
            }
            if !graph_out.is_null() {
                *graph_out = std::ptr::null_mut();
            }
            if !deps_out.is_null() {
                *deps_out = std::ptr::null();
            }
            if !edges_out.is_null() {
                *edges_out = std::ptr::null();
            }
            if !num_deps_out.is_null() {
                *num_deps_out = 0;
            }
        }
        cudaError::cudaSuccess
    }
    unsafe fn cudaThreadExchangeStreamCaptureMode(mode: *mut cudaStreamCaptureMode) -> cudaError_t {
        if mode.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        cudaError::cudaSuccess
    }

    // ---- events ----------------------------------------------------------------------------------------
    unsafe fn cudaEventCreate(e: *mut cudaEvent_t) -> cudaError_t {
        unsafe { Self::cudaEventCreateWithFlags(e, 0) }
    }
    unsafe fn cudaEventCreateWithFlags(e: *mut cudaEvent_t, flags: c_uint) -> cudaError_t {
        let v = api(Cost::Call, |_, _| {
            if flags & !0xF != 0 {
                return Err(cudaError::cudaErrorInvalidValue);
            }
            Ok(Event::create(flags) as cudaEvent_t)
        });
        unsafe { write(e, v) }
    }
    unsafe fn cudaEventRecord(e: cudaEvent_t, s: cudaStream_t) -> cudaError_t {
        call(|rt, submit| stream::record(rt, submit, &*event(e)?, &*stream::resolve(s)?))
    }
    unsafe fn cudaEventRecordWithFlags(e: cudaEvent_t, s: cudaStream_t, _flags: c_uint) -> cudaError_t {
        unsafe { Self::cudaEventRecord(e, s) }
    }
    unsafe fn cudaEventQuery(e: cudaEvent_t) -> cudaError_t {
        call(|_, _| stream::event_query(&*event(e)?, crate::clock::now()))
    }
    unsafe fn cudaEventSynchronize(e: cudaEvent_t) -> cudaError_t {
        call(|_, _| stream::event_synchronize(&*event(e)?))
    }
    unsafe fn cudaEventElapsedTime(ms: *mut f32, start: cudaEvent_t, end: cudaEvent_t) -> cudaError_t {
        let v = api(Cost::Call, |_, _| stream::elapsed_ms(&*event(start)?, &*event(end)?, crate::clock::now()));
        unsafe { write(ms, v) }
    }
    unsafe fn cudaEventDestroy(e: cudaEvent_t) -> cudaError_t {
        call(|_, _| {
            let e = EVENTS.remove(e as usize).ok_or(cudaError::cudaErrorInvalidResourceHandle)?;
            if let Some(x) = crate::profile::gpu() {
                x.destroy_event(&e.real);
            }
            Ok(())
        })
    }

    // ---- graphs ----------------------------------------------------------------------------------------
    unsafe fn cudaGraphCreate(g: *mut cudaGraph_t, flags: c_uint) -> cudaError_t {
        if flags != 0 {
            return cudaError::cudaErrorInvalidValue;
        }
        let h = GRAPHS.insert(std::sync::Arc::new(std::sync::Mutex::new(graph::Graph::default())));
        unsafe { write(g, Ok(h as cudaGraph_t)) }
    }
    unsafe fn cudaGraphInstantiate(exec: *mut cudaGraphExec_t, g: cudaGraph_t, _flags: c_ulonglong) -> cudaError_t {
        let v = GRAPHS.get(g as usize).map(|g| graph::instantiate(&g) as cudaGraphExec_t).ok_or(cudaError::cudaErrorInvalidValue);
        unsafe { write(exec, v) }
    }
    unsafe fn cudaGraphInstantiateWithFlags(exec: *mut cudaGraphExec_t, g: cudaGraph_t, flags: c_ulonglong) -> cudaError_t {
        unsafe { Self::cudaGraphInstantiate(exec, g, flags) }
    }
    unsafe fn cudaGraphLaunch(exec: cudaGraphExec_t, s: cudaStream_t) -> cudaError_t {
        status(api(Cost::Launch, |rt, submit| {
            let g = EXECS.get(exec as usize).ok_or(cudaError::cudaErrorInvalidValue)?;
            graph::launch(rt, submit, &g, &*stream::resolve(s)?)
        }))
    }
    unsafe fn cudaGraphUpload(exec: cudaGraphExec_t, s: cudaStream_t) -> cudaError_t {
        if EXECS.get(exec as usize).is_none() {
            return cudaError::cudaErrorInvalidValue;
        }
        status(stream::resolve(s).map(|_| ()))
    }
    unsafe fn cudaGraphDestroy(g: cudaGraph_t) -> cudaError_t {
        status(GRAPHS.remove(g as usize).map(|_| ()).ok_or(cudaError::cudaErrorInvalidValue))
    }
    unsafe fn cudaGraphExecDestroy(exec: cudaGraphExec_t) -> cudaError_t {
        status(EXECS.remove(exec as usize).map(|_| ()).ok_or(cudaError::cudaErrorInvalidValue))
    }
    unsafe fn cudaGraphGetNodes(g: cudaGraph_t, nodes: *mut cudaGraphNode_t, num: *mut usize) -> cudaError_t {
        let Some(gr) = GRAPHS.get(g as usize) else { return cudaError::cudaErrorInvalidValue };
        if num.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        let count = graph::lock(&gr).nodes.len();
        unsafe {
            if !nodes.is_null() {
                for i in 0..count.min(*num) {
                    *nodes.add(i) = graph::NODES.insert((g as usize, i)) as cudaGraphNode_t;
                }
            }
            *num = count;
        }
        cudaError::cudaSuccess
    }

    // ---- registration and launch -------------------------------------------------------------------------
    unsafe fn __cudaRegisterFatBinary(fat: *mut c_void) -> *mut *mut c_void {
        crate::log::init();
        // A unique, valid address the host code stores and hands back. It holds the fat binary's image, which
        // an executing process (profiling mode) loads into the real GPU when one of its kernels first runs.
        Box::into_raw(Box::new(unsafe { launch::fatbin_image(fat) } as *mut c_void))
    }
    unsafe fn __cudaRegisterFatBinaryEnd(_h: *mut *mut c_void) {}
    unsafe fn __cudaUnregisterFatBinary(_h: *mut *mut c_void) {}
    unsafe fn __cudaInitModule(_h: *mut *mut c_void) -> c_char {
        1
    }
    unsafe fn __cudaRegisterFunction(
        h: *mut *mut c_void,
        host_fun: *const c_char,
        _device_fun: *mut c_char,
        device_name: *const c_char,
        _thread_limit: c_int,
        _tid: *mut uint3,
        _bid: *mut uint3,
        _block: *mut dim3,
        _grid: *mut dim3,
        _warp: *mut c_int,
    ) {
        let image = if h.is_null() { 0 } else { unsafe { *h as usize } };
        unsafe { launch::register_function(host_fun as usize, device_name, image) }
    }
    unsafe fn __cudaRegisterVar(
        _h: *mut *mut c_void,
        host_var: *mut c_char,
        _device_address: *mut c_char,
        _device_name: *const c_char,
        _ext: c_int,
        size: usize,
        _constant: c_int,
        _global: c_int,
    ) {
        if !host_var.is_null() {
            launch::PENDING_VARIABLES.insert(host_var as usize, size as u64);
        }
    }
    unsafe fn __cudaRegisterManagedVar(
        _h: *mut *mut c_void,
        host_var_ptr: *mut *mut c_void,
        _device_address: *mut c_char,
        _device_name: *const c_char,
        _ext: c_int,
        size: usize,
        _constant: c_int,
        _global: c_int,
    ) {
        // Managed variables are accessed from the host through *host_var_ptr: give them real memory.
        if !host_var_ptr.is_null() {
            if let Ok(p) = memory::host_alloc(size as u64) {
                memory::host_map().insert(p as u64, HostRange { size: size as u64, kind: HostKind::Managed { device: 0 }, flags: 0 });
                unsafe { *host_var_ptr = p };
            }
        }
    }
    unsafe fn __cudaPushCallConfiguration(grid: dim3, block: dim3, shared: usize, s: cudaStream_t) -> c_uint {
        launch::push_config(CallConfig { grid, block, shared, stream: s });
        0
    }
    unsafe fn __cudaPopCallConfiguration(grid: *mut dim3, block: *mut dim3, shared: *mut usize, s: *mut c_void) -> cudaError_t {
        let Some(c) = launch::pop_config() else { return cudaError::cudaErrorMissingConfiguration };
        if grid.is_null() || block.is_null() || shared.is_null() || s.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        unsafe {
            *grid = c.grid;
            *block = c.block;
            *shared = c.shared;
            *(s as *mut cudaStream_t) = c.stream;
        }
        cudaError::cudaSuccess
    }
    unsafe fn __cudaGetKernel(k: *mut cudaKernel_t, host_fun: *const c_void) -> cudaError_t {
        // The kernel handle is the host stub address itself, so both launch paths share one registry.
        let v = if KERNELS.contains_key(&(host_fun as usize)) {
            Ok(host_fun as cudaKernel_t)
        } else {
            Err(cudaError::cudaErrorInvalidDeviceFunction)
        };
        unsafe { write(k, v) }
    }
    unsafe fn __cudaLaunchKernel(k: cudaKernel_t, grid: dim3, block: dim3, args: *mut *mut c_void, shared: usize, s: cudaStream_t) -> cudaError_t {
        launch_kernel(k as *const c_void, grid, block, shared, s, args)
    }
    unsafe fn __cudaLaunchKernel_ptsz(k: cudaKernel_t, grid: dim3, block: dim3, args: *mut *mut c_void, shared: usize, s: cudaStream_t) -> cudaError_t {
        crate::export::per_thread_default_stream(|| unsafe { Self::__cudaLaunchKernel(k, grid, block, args, shared, s) })
    }
    unsafe fn cudaLaunchKernel(f: *const c_void, grid: dim3, block: dim3, args: *mut *mut c_void, shared: usize, s: cudaStream_t) -> cudaError_t {
        launch_kernel(f, grid, block, shared, s, args)
    }
    unsafe fn cudaLaunchCooperativeKernel(f: *const c_void, grid: dim3, block: dim3, args: *mut *mut c_void, shared: usize, s: cudaStream_t) -> cudaError_t {
        launch_kernel(f, grid, block, shared, s, args)
    }
    unsafe fn cudaLaunchKernelExC(config: *const cudaLaunchConfig_t, f: *const c_void, args: *mut *mut c_void) -> cudaError_t {
        let Some(c) = (unsafe { config.as_ref() }) else { return cudaError::cudaErrorInvalidValue };
        launch_kernel(f, c.gridDim, c.blockDim, c.dynamicSmemBytes, c.stream, args)
    }
    unsafe fn cudaFuncGetAttributes(attr: *mut cudaFuncAttributes, f: *const c_void) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            let info = KERNELS.get(&(f as usize)).map(|r| r.clone()).ok_or(cudaError::cudaErrorInvalidDeviceFunction)?;
            let spec = &rt.current()?.spec;
            let mut a = cudaFuncAttributes::default();
            a.maxThreadsPerBlock = spec.max_threads_per_block as c_int;
            a.numRegs = launch::ASSUMED_REGS_PER_THREAD as c_int;
            a.ptxVersion = (spec.compute_capability[0] * 10 + spec.compute_capability[1]) as c_int;
            a.binaryVersion = a.ptxVersion;
            a.maxDynamicSharedSizeBytes = info.max_dynamic_shared.max(spec.shared_mem_per_block_bytes) as c_int;
            a.preferredShmemCarveout = -1;
            Ok(a)
        });
        unsafe { write(attr, v) }
    }
    unsafe fn cudaFuncSetAttribute(f: *const c_void, attr: cudaFuncAttribute, value: c_int) -> cudaError_t {
        call(|rt, _| {
            let mut info = KERNELS.get_mut(&(f as usize)).ok_or(cudaError::cudaErrorInvalidDeviceFunction)?;
            if attr == cudaFuncAttribute::cudaFuncAttributeMaxDynamicSharedMemorySize {
                let limit = rt.current()?.spec.shared_mem_per_block_optin_bytes as c_int;
                if value < 0 || value > limit {
                    return Err(cudaError::cudaErrorInvalidValue);
                }
                info.max_dynamic_shared = value as u32;
                launch::ATTRIBUTE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    }
    unsafe fn cudaFuncSetCacheConfig(f: *const c_void, _c: cudaFuncCache) -> cudaError_t {
        status(KERNELS.get(&(f as usize)).map(|_| ()).ok_or(cudaError::cudaErrorInvalidDeviceFunction))
    }
    unsafe fn cudaFuncSetSharedMemConfig(f: *const c_void, _c: cudaSharedMemConfig) -> cudaError_t {
        status(KERNELS.get(&(f as usize)).map(|_| ()).ok_or(cudaError::cudaErrorInvalidDeviceFunction))
    }
    unsafe fn cudaFuncGetName(name: *mut *const c_char, f: *const c_void) -> cudaError_t {
        // The mangled name, as the real runtime returns; kept alive for the life of the process.
        let v = KERNELS.get(&(f as usize)).map(|k| {
            let c = std::ffi::CString::new(k.mangled.clone()).unwrap_or_default();
            Box::leak(c.into_boxed_c_str()).as_ptr()
        });
        unsafe { write(name, v.ok_or(cudaError::cudaErrorInvalidDeviceFunction)) }
    }
    unsafe fn cudaGetFuncBySymbol(out: *mut cudaFunction_t, f: *const c_void) -> cudaError_t {
        let v = KERNELS.get(&(f as usize)).map(|_| f as cudaFunction_t).ok_or(cudaError::cudaErrorInvalidDeviceFunction);
        unsafe { write(out, v) }
    }
    unsafe fn cudaOccupancyMaxActiveBlocksPerMultiprocessor(n: *mut c_int, f: *const c_void, block: c_int, smem: usize) -> cudaError_t {
        unsafe { Self::cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(n, f, block, smem, 0) }
    }
    unsafe fn cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(n: *mut c_int, f: *const c_void, block: c_int, smem: usize, _flags: c_uint) -> cudaError_t {
        let v = api(Cost::Call, |rt, _| {
            KERNELS.get(&(f as usize)).ok_or(cudaError::cudaErrorInvalidDeviceFunction)?;
            let spec = &rt.current()?.spec;
            if block <= 0 || block as u32 > spec.max_threads_per_block {
                return Err(cudaError::cudaErrorInvalidValue);
            }
            Ok(crate::device_props::max_active_blocks_per_sm(spec, block as u32, launch::ASSUMED_REGS_PER_THREAD, smem as u32) as c_int)
        });
        unsafe { write(n, v) }
    }

    // ---- profiler and driver entry points ----------------------------------------------------------------
    unsafe fn cudaProfilerStart() -> cudaError_t {
        status(rt().map(|_| ()))
    }
    unsafe fn cudaProfilerStop() -> cudaError_t {
        status(rt().map(|_| ()))
    }
    unsafe fn cudaGetDriverEntryPoint(sym: *const c_char, f: *mut *mut c_void, _flags: c_ulonglong, st: *mut cudaDriverEntryPointQueryResult) -> cudaError_t {
        unsafe { Self::cudaGetDriverEntryPointByVersion(sym, f, 13000, _flags, st) }
    }
    unsafe fn cudaGetDriverEntryPointByVersion(sym: *const c_char, f: *mut *mut c_void, v: c_uint, flags: c_ulonglong, st: *mut cudaDriverEntryPointQueryResult) -> cudaError_t {
        // Phantom's driver library (`libcuda.so.1`, a separate cdylib) resolves the name itself: its
        // cuGetProcAddress_v2 picks the variant (`name_v2`, ...) and answers "not found" for what it lacks. Without
        // that library (not loaded and not loadable) no driver symbol is found: a documented, non-fatal answer.
        if sym.is_null() || f.is_null() {
            return cudaError::cudaErrorInvalidValue;
        }
        let found = unsafe { crate::driver::get_proc_address(sym, v, flags) };
        unsafe {
            *f = found.unwrap_or(std::ptr::null_mut());
            if !st.is_null() {
                *st = if found.is_some() {
                    cudaDriverEntryPointQueryResult::cudaDriverEntryPointSuccess
                } else {
                    cudaDriverEntryPointQueryResult::cudaDriverEntryPointSymbolNotFound
                };
            }
        }
        cudaError::cudaSuccess
    }
}
