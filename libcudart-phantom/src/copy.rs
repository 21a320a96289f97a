//! Copies and memsets: what they do to data, and how long they take.
//!
//! Data: device memory has no backing store; small copies and memsets are remembered by `crate::data`, so
//! device-to-host copies deliver what small writes left there and zeros elsewhere; host-to-host copies
//! (including pinned and managed memory) are real copies.
//! Time (docs/gpu-model.md): `bytes / bandwidth` on a copy engine, where the bandwidth is the GPU model's
//! PCIe figure for pinned host memory, its pageable figure for ordinary host memory, `hbm / 2` for copies
//! within one device (each byte is read and written), and NVLink for copies between devices. A memset writes
//! each byte once: `bytes / hbm`.

use crate::export::CudaResult;
use crate::memory::{locate, Location};
use crate::runtime::{Device, Runtime};
use crate::stream::{Stream, Work};
use phantom_cuda_sys::{cudaError, cudaMemcpyKind};
use sim_core::timeline::CopyEngine;
use sim_core::{SimDuration, SimTime};

/// A copy as Phantom sees it, after classifying both ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CopyPlan {
    pub engine: CopyEngine,
    pub duration: SimDuration,
    /// Device whose engine carries the copy.
    pub device: u32,
}

fn secs(bytes: u64, bytes_per_s: f64) -> SimDuration {
    if bytes_per_s > 0.0 {
        SimDuration::from_secs_f64(bytes as f64 / bytes_per_s)
    } else {
        SimDuration::ZERO
    }
}

/// Decides the engine and duration of a copy of `bytes` from `src` to `dst`.
pub fn plan(rt: &Runtime, current: &Device, dst: Location, src: Location, bytes: u64) -> CopyPlan {
    use Location::*;
    let spec = |d: u32| &rt.devices[d as usize].spec;
    match (dst, src) {
        (Device(d), PinnedHost) => CopyPlan { engine: CopyEngine::HostToDevice, duration: secs(bytes, spec(d).pcie_h2d_bytes_per_s), device: d },
        (Device(d), PageableHost) => CopyPlan { engine: CopyEngine::HostToDevice, duration: secs(bytes, spec(d).pageable_bytes_per_s), device: d },
        (PinnedHost, Device(s)) => CopyPlan { engine: CopyEngine::DeviceToHost, duration: secs(bytes, spec(s).pcie_d2h_bytes_per_s), device: s },
        (PageableHost, Device(s)) => CopyPlan { engine: CopyEngine::DeviceToHost, duration: secs(bytes, spec(s).pageable_bytes_per_s), device: s },
        (Device(d), Device(s)) if d == s => CopyPlan { engine: CopyEngine::DeviceToDevice, duration: secs(2 * bytes, spec(d).hbm_bytes_per_s), device: d },
        (Device(_), Device(s)) => {
            let bw = spec(s).nvlink_bytes_per_s.max(0.0);
            let bw = if bw > 0.0 { bw } else { spec(s).pcie_d2h_bytes_per_s };
            CopyPlan { engine: CopyEngine::DeviceToDevice, duration: secs(bytes, bw), device: s }
        }
        // Host to host: a CPU copy; it occupies no GPU engine and is not charged on the GPU.
        _ => CopyPlan { engine: CopyEngine::DeviceToDevice, duration: SimDuration::ZERO, device: current.ordinal },
    }
}

/// Records a placed copy or memset when tracing is on (a captured one, with zero times, is not run).
fn trace_copy(rt: &Runtime, dev: &Device, stream: &Stream, op: crate::trace::CopyOp, bytes: u64, start: SimTime, end: SimTime) {
    if crate::trace::on() && end != SimTime::ZERO {
        crate::trace::record(crate::trace::Record::Copy { lane: crate::trace::Lane::of(rt, dev, stream), op, bytes, start, end });
    }
}

/// Checks the direction the application declared against where the pointers really are.
fn check_kind(kind: cudaMemcpyKind, dst: Location, src: Location) -> CudaResult<()> {
    let dev = |l: Location| matches!(l, Location::Device(_));
    let ok = match kind {
        cudaMemcpyKind::cudaMemcpyHostToHost => true,
        cudaMemcpyKind::cudaMemcpyHostToDevice => dev(dst) && !dev(src),
        cudaMemcpyKind::cudaMemcpyDeviceToHost => !dev(dst) && dev(src),
        cudaMemcpyKind::cudaMemcpyDeviceToDevice => dev(dst) && dev(src),
        cudaMemcpyKind::cudaMemcpyDefault => true,
        _ => return Err(cudaError::cudaErrorInvalidMemcpyDirection),
    };
    // A real GPU faults on a wrongly declared direction; Phantom reports it instead of touching memory.
    if ok {
        Ok(())
    } else {
        Err(cudaError::cudaErrorInvalidValue)
    }
}

/// Performs the data side of a copy (`crate::data`): device-to-host delivers what the device range holds
/// (zeros where nothing small was written), host-to-device and device-to-device record small copies, and
/// host-to-host is a real copy.
///
/// # Safety
/// Host pointers must be valid for `bytes` as the application promised to CUDA.
unsafe fn move_data(dst: u64, dst_loc: Location, src: u64, src_loc: Location, bytes: u64) {
    let dev = |l: Location| matches!(l, Location::Device(_));
    match (dev(dst_loc), dev(src_loc)) {
        (false, true) => crate::data::read(src, unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, bytes as usize) }),
        (true, false) if bytes <= crate::data::MAX_BYTES => {
            crate::data::write(dst, unsafe { std::slice::from_raw_parts(src as *const u8, bytes as usize) })
        }
        (true, false) => crate::data::clear(dst, bytes),
        (true, true) => crate::data::copy(dst, src, bytes),
        (false, false) => unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes as usize) },
    }
}

/// A copy of `rows` rows of `width` bytes. Synchronous copies block the host until done.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    rt: &Runtime,
    submit: SimTime,
    stream: &Stream,
    dst: u64,
    dpitch: u64,
    src: u64,
    spitch: u64,
    width: u64,
    rows: u64,
    kind: cudaMemcpyKind,
    blocking: bool,
) -> CudaResult<()> {
    let bytes = width * rows;
    if bytes == 0 {
        return Ok(());
    }
    if dst == 0 || src == 0 || (rows > 1 && (dpitch < width || spitch < width)) {
        return Err(cudaError::cudaErrorInvalidValue);
    }
    let (dst_loc, src_loc) = (locate(rt, dst), locate(rt, src));
    check_kind(kind, dst_loc, src_loc)?;
    let on_device = matches!(dst_loc, Location::Device(_)) || matches!(src_loc, Location::Device(_));
    match crate::profile::gpu().filter(|_| on_device) {
        // Profiling mode, executing process: device memory is real; the real GPU copies.
        Some(x) if !stream.is_capturing() => {
            for r in 0..rows {
                x.copy(stream, dst + r * dpitch, src + r * spitch, width, false)?;
            }
            if blocking || !matches!(dst_loc, Location::Device(_)) {
                x.synchronize_stream(stream)?;
            }
        }
        Some(_) => {}
        None => {
            for r in 0..rows {
                // SAFETY: the application passed these host ranges to a CUDA copy of this size.
                unsafe { move_data(dst + r * dpitch, dst_loc, src + r * spitch, src_loc, width) };
            }
        }
    }
    let dev = rt.device(stream.device as i32)?;
    let p = plan(rt, dev, dst_loc, src_loc, bytes);
    let (_, end) = if p.duration == SimDuration::ZERO && !matches!((dst_loc, src_loc), (Location::Device(_), _) | (_, Location::Device(_))) {
        stream.enqueue(dev, submit, SimTime::ZERO, Work::Marker)
    } else {
        let (start, end) = stream.enqueue(dev, submit, SimTime::ZERO, Work::Copy { engine: p.engine, duration: p.duration });
        trace_copy(rt, dev, stream, crate::trace::CopyOp::Copy(p.engine), bytes, start, end);
        (start, end)
    };
    if blocking {
        crate::clock::advance_to(end);
    }
    Ok(())
}

/// `cudaMemset*`: device memory remembers a small memset (`crate::data`); managed or host memory is really
/// written.
#[allow(clippy::too_many_arguments)]
pub fn memset(
    rt: &Runtime,
    submit: SimTime,
    stream: &Stream,
    dst: u64,
    pitch: u64,
    value: i32,
    width: u64,
    rows: u64,
    blocking: bool,
) -> CudaResult<()> {
    let bytes = width * rows;
    if bytes == 0 {
        return Ok(());
    }
    if dst == 0 || (rows > 1 && pitch < width) {
        return Err(cudaError::cudaErrorInvalidValue);
    }
    let loc = locate(rt, dst);
    match loc {
        Location::Device(_) if crate::profile::gpu().is_some() => {
            let x = crate::profile::gpu().expect("checked");
            if !stream.is_capturing() {
                for r in 0..rows {
                    x.memset(stream, dst + r * pitch, value as u8, width)?;
                }
            }
        }
        Location::Device(_) => {
            for r in 0..rows {
                if bytes <= crate::data::MAX_BYTES {
                    crate::data::write(dst + r * pitch, &vec![value as u8; width as usize]);
                } else {
                    crate::data::clear(dst + r * pitch, width);
                }
            }
        }
        Location::PinnedHost if crate::memory::find_host(dst).is_some_and(|(_, r)| matches!(r.kind, crate::memory::HostKind::Managed { .. })) => {
            for r in 0..rows {
                // SAFETY: managed memory is real host memory of at least this size.
                unsafe { std::ptr::write_bytes((dst + r * pitch) as *mut u8, value as u8, width as usize) };
            }
        }
        _ => return Err(cudaError::cudaErrorInvalidValue),
    }
    let dev = rt.device(stream.device as i32)?;
    let duration = secs(bytes, dev.spec.hbm_bytes_per_s);
    let (start, end) = stream.enqueue(dev, submit, SimTime::ZERO, Work::Copy { engine: CopyEngine::DeviceToDevice, duration });
    trace_copy(rt, dev, stream, crate::trace::CopyOp::Memset, bytes, start, end);
    if blocking {
        crate::clock::advance_to(end);
    }
    Ok(())
}
