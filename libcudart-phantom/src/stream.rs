//! Streams, events and the ordering rules between them.
//!
//! Every command (kernel, copy, memset, event record, host function) is placed when it is queued: it starts
//! no earlier than `submit + launch latency` (submit = the host's virtual time when the queuing call returns),
//! than the previous command of its stream, and than the implicit dependencies of the legacy default stream
//! (the legacy stream waits for all blocking streams of its device, and blocking streams wait for it).

use crate::export::CudaResult;
use crate::graph::{Capture, NodeWork};
use crate::handles::HandleMap;
use crate::runtime::{rt, Device};
use phantom_cuda_sys::{cudaError, cudaStream_t};
use sim_core::timeline::{CopyEngine, GpuTimeline};
use sim_core::{SimDuration, SimTime};
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

pub const STREAM_NON_BLOCKING: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Legacy,
    PerThread,
    User,
}

#[derive(Debug, Default)]
pub struct StreamState {
    /// Completion time of the last command queued on this stream (apart from `pending`).
    pub tail: SimTime,
    /// Communication operations whose completion the stream also waits for (crate::net).
    pub pending: crate::net::Pending,
    /// Set while the stream is being captured into a graph.
    pub capture: Option<Capture>,
}

#[derive(Debug)]
pub struct Stream {
    pub device: u32,
    pub kind: StreamKind,
    pub flags: u32,
    pub priority: i32,
    pub handle: usize,
    /// Profiling mode: the real stream behind this one (`crate::profile`), created on first use.
    pub real: std::sync::OnceLock<usize>,
    state: Mutex<StreamState>,
}

/// What a placed command needs from the device's resources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    Kernel { duration: SimDuration, sms: u32 },
    Copy { engine: CopyEngine, duration: SimDuration },
    /// A zero-duration marker (event record, wait).
    Marker,
}

pub static STREAMS: HandleMap<Stream> = HandleMap::new(0x5000_0000_0000);

impl Stream {
    pub fn legacy(device: u32) -> Arc<Stream> {
        Arc::new(Stream { device, kind: StreamKind::Legacy, flags: 0, priority: 0, handle: 1, real: Default::default(), state: Default::default() })
    }

    pub fn create(device: u32, flags: u32, priority: i32) -> usize {
        STREAMS.insert_with(|handle| Stream {
            device,
            kind: StreamKind::User,
            flags,
            priority,
            handle,
            real: Default::default(),
            state: Default::default(),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_blocking(&self) -> bool {
        self.flags & STREAM_NON_BLOCKING == 0
    }

    /// Places a command on this stream, after `extra_dep` as well as the stream's own order.
    /// Returns (start, end). While the stream is captured, the command is recorded instead (times are zero).
    pub fn enqueue(&self, dev: &Device, submit: SimTime, extra_dep: SimTime, work: Work) -> (SimTime, SimTime) {
        self.enqueue_with(dev, submit, extra_dep, NodeWork::from(work), |timeline, earliest| match work {
            Work::Kernel { duration, sms } => timeline.place_kernel(earliest, duration, sms),
            Work::Copy { engine, duration } => timeline.place_copy(engine, earliest, duration),
            Work::Marker => (earliest, earliest),
        })
    }

    /// Like `enqueue`, with the placement on the device timeline done by `place` (given the earliest start).
    pub fn enqueue_with(
        &self,
        dev: &Device,
        submit: SimTime,
        extra_dep: SimTime,
        as_node: NodeWork,
        place: impl FnOnce(&mut GpuTimeline, SimTime) -> (SimTime, SimTime),
    ) -> (SimTime, SimTime) {
        let mut st = self.state();
        if let Some(cap) = st.capture.as_mut() {
            cap.add(as_node);
            return (SimTime::ZERO, SimTime::ZERO);
        }
        settle(&mut st);
        let mut sched = dev.sched();
        let earliest = self.earliest(dev, &st, &sched, submit).max(extra_dep);
        let (start, end) = place(&mut sched.timeline, earliest);
        st.tail = st.tail.max(end);
        sched.max_end = sched.max_end.max(end);
        if self.kind == StreamKind::Legacy {
            sched.legacy_end = sched.legacy_end.max(end);
        }
        if self.is_blocking() {
            sched.blocking_end = sched.blocking_end.max(end);
        }
        (start, end)
    }

    pub fn is_capturing(&self) -> bool {
        self.state().capture.is_some()
    }

    /// When everything queued so far on this stream has completed (settling pending communication).
    pub fn tail(&self) -> SimTime {
        let mut st = self.state();
        settle(&mut st);
        st.tail
    }

    /// Where a communication operation queued now would start, at the earliest: the stream's known tail
    /// and its pending operations (never blocks).
    pub fn ready(&self, dev: &Device, submit: SimTime) -> CudaResult<sim_core::engine::proto::Ready> {
        let st = self.state();
        if st.capture.is_some() {
            return Err(cudaError::cudaErrorStreamCaptureUnsupported);
        }
        let floor = self.earliest(dev, &st, &dev.sched(), submit);
        Ok(sim_core::engine::proto::Ready { floor, after: st.pending.clone() })
    }

    /// The earliest start of a command queued at `submit`: after the launch latency, the stream's known tail
    /// and the legacy default stream's implicit synchronisation.
    fn earliest(&self, dev: &Device, st: &StreamState, sched: &crate::runtime::DeviceSched, submit: SimTime) -> SimTime {
        let t = (submit + dev.launch_latency()).max(st.tail);
        match (self.kind, self.is_blocking()) {
            (StreamKind::Legacy, _) => t.max(sched.blocking_end),
            (_, true) => t.max(sched.legacy_end),
            _ => t,
        }
    }

    /// From now on the stream also waits for `ops` (communication operations just queued on it).
    pub fn wait_for_ops(&self, ops: &[sim_core::engine::proto::OpId]) {
        let mut st = self.state();
        st.pending = ops.iter().map(|op| (*op, SimDuration::ZERO)).collect();
    }
}

/// Folds the stream's pending communication into its tail, blocking until the simulator knows it.
fn settle(st: &mut StreamState) {
    if !st.pending.is_empty() {
        let t = crate::net::settle(&mut st.pending);
        st.tail = st.tail.max(t);
    }
}

thread_local! {
    /// The stream or event (by address) whose last query on this thread said "not ready".
    static LAST_NOT_READY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A query of an object that completes at `done`, at host time `now`. A thread that asks twice in a row
/// about the same unfinished object is polling: its clock moves to the completion, which it would have
/// reached by polling (docs/time.md), instead of spinning once per simulated 100 ns.
fn poll(key: usize, done: SimTime, now: SimTime) -> CudaResult<()> {
    if done <= now {
        return Ok(());
    }
    if LAST_NOT_READY.with(|c| c.replace(key)) == key {
        LAST_NOT_READY.with(|c| c.set(0));
        crate::clock::advance_to(done);
        return Ok(());
    }
    Err(cudaError::cudaErrorNotReady)
}

thread_local! {
    /// The calling thread's per-thread default stream of each device, created on first use.
    static PER_THREAD: RefCell<Vec<Option<Arc<Stream>>>> = const { RefCell::new(Vec::new()) };
}

fn per_thread_stream(device: u32) -> Arc<Stream> {
    PER_THREAD.with(|p| {
        let mut v = p.borrow_mut();
        if v.len() <= device as usize {
            v.resize(device as usize + 1, None);
        }
        v[device as usize]
            .get_or_insert_with(|| {
                Arc::new(Stream {
                    device,
                    kind: StreamKind::PerThread,
                    flags: 0,
                    priority: 0,
                    handle: 2,
                    real: Default::default(),
                    state: Default::default(),
                })
            })
            .clone()
    })
}

/// Resolves a stream handle: 0 is the legacy default stream (or the per-thread one inside a `_ptsz` call),
/// `cudaStreamLegacy` (1) and `cudaStreamPerThread` (2) are the special handles, anything else must be a live
/// stream created by this process.
pub fn resolve(handle: cudaStream_t) -> CudaResult<Arc<Stream>> {
    let rt = rt()?;
    let h = handle as usize;
    match h {
        0 if crate::export::default_stream_is_per_thread() => Ok(per_thread_stream(rt.current()?.ordinal)),
        0 | 1 => Ok(rt.current()?.legacy_stream.clone()),
        2 => Ok(per_thread_stream(rt.current()?.ordinal)),
        _ => STREAMS.get(h).ok_or(cudaError::cudaErrorInvalidResourceHandle),
    }
}

/// Event flags (`cudaEventCreateWithFlags`).
pub const EVENT_DISABLE_TIMING: u32 = 2;

#[derive(Debug, Default)]
pub struct EventState {
    /// Completion time of the last record, and the device it was recorded on.
    pub recorded: Option<(SimTime, u32)>,
    /// Communication operations the last record also waits for (recorded on a stream with pending work).
    pub pending: crate::net::Pending,
    /// When recorded during stream capture: the capture nodes the event stands for.
    pub captured: Option<crate::graph::CaptureRef>,
    /// With tracing on: the stream of the last record and what its completion is (docs/trace.md, "Stream
    /// waits").
    pub traced: Option<(crate::trace::Lane, crate::trace::WaitAfter)>,
}

#[derive(Debug)]
pub struct Event {
    pub flags: u32,
    /// Profiling mode: the real event behind this one, created at its first record.
    pub real: std::sync::OnceLock<usize>,
    state: Mutex<EventState>,
}

pub static EVENTS: HandleMap<Event> = HandleMap::new(0x5100_0000_0000);

impl Event {
    pub fn create(flags: u32) -> usize {
        EVENTS.insert_with(|_| Event { flags, real: Default::default(), state: Default::default() })
    }
    pub fn state(&self) -> MutexGuard<'_, EventState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `cudaStreamSynchronize`: the host continues once everything queued on the stream has completed.
pub fn synchronize(stream: &Stream) -> CudaResult<()> {
    if stream.is_capturing() {
        return Err(cudaError::cudaErrorStreamCaptureUnsupported);
    }
    if let Some(x) = crate::profile::gpu() {
        x.synchronize_stream(stream)?;
    }
    crate::clock::advance_to(stream.tail());
    crate::net::report_progress(crate::clock::now());
    Ok(())
}

/// `cudaStreamQuery` at host time `now`.
pub fn query(stream: &Stream, now: SimTime) -> CudaResult<()> {
    if stream.is_capturing() {
        return Err(cudaError::cudaErrorStreamCaptureUnsupported);
    }
    poll(stream as *const Stream as usize, stream.tail(), now)
}

/// `cudaEventRecord`: the event completes when the stream reaches it.
pub fn record(rt: &crate::runtime::Runtime, submit: SimTime, event: &Event, stream: &Stream) -> CudaResult<()> {
    {
        let st = stream.state();
        if let Some(cap) = st.capture.as_ref() {
            event.state().captured = Some(crate::graph::CaptureRef {
                graph: cap.graph.clone(),
                nodes: cap.frontier.clone(),
                id: cap.id,
            });
            return Ok(());
        }
    }
    let dev = rt.device(stream.device as i32)?;
    if let Some(x) = crate::profile::gpu() {
        x.record(&event.real, stream)?;
    }
    {
        // On a stream with pending communication the event carries the pending operations along.
        let st = stream.state();
        if !st.pending.is_empty() {
            let floor = (submit + dev.launch_latency()).max(st.tail);
            let mut es = event.state();
            es.recorded = Some((floor, stream.device));
            es.pending = st.pending.clone();
            es.captured = None;
            es.traced = match st.pending.last() {
                Some(&(op, _)) if crate::trace::on() => Some((crate::trace::Lane::of(rt, dev, stream), crate::trace::WaitAfter::Op(op))),
                _ => None,
            };
            return Ok(());
        }
    }
    let (_, end) = stream.enqueue(dev, submit, SimTime::ZERO, Work::Marker);
    let mut es = event.state();
    es.recorded = Some((end, stream.device));
    es.pending.clear();
    es.captured = None;
    es.traced = crate::trace::on().then(|| (crate::trace::Lane::of(rt, dev, stream), crate::trace::WaitAfter::Time(end)));
    Ok(())
}

/// The event's completion time, settling pending communication (blocks until the simulator knows it).
fn settled(event: &Event) -> Option<(SimTime, u32)> {
    let mut es = event.state();
    if !es.pending.is_empty() {
        let t = crate::net::settle(&mut es.pending);
        if let Some((r, _)) = es.recorded.as_mut() {
            *r = (*r).max(t);
        }
    }
    es.recorded
}

/// `cudaStreamWaitEvent`: later work on `stream` waits for the event's last record. Inside a capture, the
/// waiting stream joins the capture after the event's nodes.
pub fn wait_event(rt: &crate::runtime::Runtime, submit: SimTime, stream: &Arc<Stream>, event: &Event) -> CudaResult<()> {
    let (recorded, captured, pending, traced) = {
        let es = event.state();
        (es.recorded, es.captured.clone(), es.pending.clone(), es.traced)
    };
    if let Some(cref) = captured {
        let mut st = stream.state();
        match st.capture.as_mut() {
            Some(cap) if Arc::ptr_eq(&cap.graph, &cref.graph) => {
                for n in cref.nodes {
                    if !cap.frontier.contains(&n) {
                        cap.frontier.push(n);
                    }
                }
            }
            Some(_) => return Err(cudaError::cudaErrorStreamCaptureIsolation),
            None => {
                crate::graph::lock(&cref.graph).members.push(stream.clone());
                st.capture = Some(crate::graph::Capture { graph: cref.graph, frontier: cref.nodes, origin: false, id: cref.id });
            }
        }
        return Ok(());
    }
    if let Some(x) = crate::profile::gpu().filter(|_| !stream.is_capturing()) {
        x.wait(&event.real, stream)?;
    }
    // An event never recorded is complete: nothing to wait for.
    let Some((t, _)) = recorded else { return Ok(()) };
    let dev = rt.device(stream.device as i32)?;
    if !pending.is_empty() && !stream.is_capturing() {
        // Waiting for pending communication: the stream takes the pending operations over (no blocking).
        let mut st = stream.state();
        let floor = (submit + dev.launch_latency()).max(st.tail).max(t);
        st.pending.extend(pending);
        st.tail = st.tail.max(t);
        drop(st);
        trace_wait(rt, dev, stream, traced, floor);
        return Ok(());
    }
    let (start, end) = stream.enqueue(dev, submit, t, Work::Marker);
    // A captured wait is recorded into the graph (times zero), not run.
    if end != SimTime::ZERO {
        trace_wait(rt, dev, stream, traced, start);
    }
    Ok(())
}

/// With tracing on: `stream` waits for an event recorded as `traced`; its later work starts at `at` at the
/// earliest. Waits for an event recorded on the same stream order nothing and are left out.
fn trace_wait(rt: &crate::runtime::Runtime, dev: &Device, stream: &Stream, traced: Option<(crate::trace::Lane, crate::trace::WaitAfter)>, at: SimTime) {
    let Some((from, after)) = traced.filter(|_| crate::trace::on()) else { return };
    let to = crate::trace::Lane::of(rt, dev, stream);
    if from != to {
        crate::trace::record(crate::trace::Record::Wait { from, to, after, at });
    }
}

/// `cudaEventQuery` at host time `now`.
pub fn event_query(event: &Event, now: SimTime) -> CudaResult<()> {
    match settled(event) {
        Some((t, _)) => poll(event as *const Event as usize, t, now),
        None => Ok(()),
    }
}

/// `cudaEventSynchronize`.
pub fn event_synchronize(event: &Event) -> CudaResult<()> {
    if let Some((t, _)) = settled(event) {
        crate::clock::advance_to(t);
        crate::net::report_progress(crate::clock::now());
    }
    Ok(())
}

/// `cudaEventElapsedTime` in milliseconds, as CUDA defines it: both events recorded, both with timing, both
/// complete at host time `now`.
pub fn elapsed_ms(start: &Event, end: &Event, now: SimTime) -> CudaResult<f32> {
    if start.flags & EVENT_DISABLE_TIMING != 0 || end.flags & EVENT_DISABLE_TIMING != 0 {
        return Err(cudaError::cudaErrorInvalidResourceHandle);
    }
    let (Some((a, _)), Some((b, _))) = (settled(start), settled(end)) else {
        return Err(cudaError::cudaErrorInvalidResourceHandle);
    };
    if a > now || b > now {
        return Err(cudaError::cudaErrorNotReady);
    }
    let ns = b.as_nanos() as f64 - a.as_nanos() as f64;
    Ok((ns / 1e6) as f32)
}

/// Runs a host function when the stream reaches it: the stream is marked at that moment and the function
/// runs (on a helper thread whose clock starts there) before this call returns. The function's own duration
/// is not charged to the stream (docs/gpu-model.md).
pub fn host_func(
    rt: &crate::runtime::Runtime,
    submit: SimTime,
    stream: &Stream,
    f: Box<dyn FnOnce() + Send>,
) -> CudaResult<()> {
    let dev = rt.device(stream.device as i32)?;
    if stream.is_capturing() {
        return Err(cudaError::cudaErrorNotSupported);
    }
    let (_, due) = stream.enqueue(dev, submit, SimTime::ZERO, Work::Marker);
    let worker = std::thread::Builder::new().name("phantom-hostfn".into()).spawn(move || {
        crate::clock::advance_to(due);
        f();
    });
    match worker {
        Ok(h) => {
            if h.join().is_err() {
                tracing::error!("a host function queued with cudaLaunchHostFunc panicked");
            }
            Ok(())
        }
        Err(_) => Err(cudaError::cudaErrorMemoryAllocation),
    }
}
