//! Timing work in the running stream, without a gate (docs/profiling.md, "Running samples").
//!
//! A gated measurement ([`crate::gate`]) first waits for the whole GPU to go idle, so it sees the GPU as an
//! isolated launch finds it: at the clock an idle GPU runs at. A program that keeps the GPU busy runs it hotter
//! and, under a power limit, at a lower clock. A *running sample* times one piece of work where the program put
//! it: an event before, the work, an event after, on the work's own stream, nothing waited for. It is *covered*
//! when the opening event has still not completed after the closing one was queued: the stream was busy with
//! earlier work, so the GPU reached the work with everything already queued and the interval holds no host time
//! (the gate's own check, with the stream's earlier work in the gate's place). Uncovered samples are dropped.
//!
//! The events are read later: [`Running::collect`] takes the samples whose closing event has completed, so
//! sampling never makes the host wait.

use crate::driver::{CUevent, CUstream, Driver, CUDA_ERROR_NOT_READY, CUDA_SUCCESS};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// At most this many samples are in flight; a launch that finds none free is not sampled.
pub const MAX_IN_FLIGHT: usize = 64;

/// One sample whose closing event has not been read yet.
struct InFlight<T> {
    what: T,
    events: (CUevent, CUevent),
    covered: bool,
}

/// Running samples in flight, each tagged with what was timed (`T`), and a pool of event pairs.
pub struct Running<T> {
    free: Mutex<Vec<(CUevent, CUevent)>>,
    in_flight: Mutex<VecDeque<InFlight<T>>>,
    /// Event pairs created so far (at most [`MAX_IN_FLIGHT`]).
    created: AtomicUsize,
    /// Samples in flight (read without the lock).
    pending: AtomicUsize,
}

// SAFETY: driver handles are identifiers usable from any thread with the context current.
unsafe impl<T: Send> Send for Running<T> {}
unsafe impl<T: Send> Sync for Running<T> {}

impl<T> Default for Running<T> {
    fn default() -> Self {
        Running { free: Mutex::new(Vec::new()), in_flight: Mutex::new(VecDeque::new()), created: AtomicUsize::new(0), pending: AtomicUsize::new(0) }
    }
}

/// A finished sample: what was timed, and the raw interval between its events in ns (`None`: uncovered).
pub type Sample<T> = (T, Option<u64>);

impl<T> Running<T> {
    /// Samples in flight.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// A free event pair, creating one while fewer than [`MAX_IN_FLIGHT`] exist; `None` when all are in use.
    fn take_pair(&self, d: &Driver) -> Result<Option<(CUevent, CUevent)>, String> {
        if let Some(p) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(Some(p));
        }
        if self.created.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
            self.created.fetch_sub(1, Ordering::Relaxed);
            return Ok(None);
        }
        let mut e0: CUevent = std::ptr::null_mut();
        let mut e1: CUevent = std::ptr::null_mut();
        d.check(unsafe { (d.f.cuEventCreate)(&mut e0, 0) }, "cuEventCreate")?;
        if let Err(e) = d.check(unsafe { (d.f.cuEventCreate)(&mut e1, 0) }, "cuEventCreate") {
            let _ = unsafe { (d.f.cuEventDestroy)(e0) };
            return Err(e);
        }
        Ok(Some((e0, e1)))
    }

    /// Queues `work` (which queues real work on `stream`) between two events ([`crate::gate::bracket`]) and
    /// keeps the sample, tagged `what`, for [`Running::collect`]. Without a free event pair the work is just
    /// queued. Returns what `work` returned; a driver failure of the events is an error.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn sample<R>(&self, d: &Driver, stream: CUstream, what: T, work: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
        let Some(pair) = self.take_pair(d)? else { return work() };
        let release = || self.free.lock().unwrap_or_else(|e| e.into_inner()).push(pair);
        match crate::gate::bracket(d, stream, pair, work) {
            Ok((covered, Ok(out))) => {
                self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).push_back(InFlight { what, events: pair, covered });
                self.pending.fetch_add(1, Ordering::Relaxed);
                Ok(out)
            }
            Ok((_, Err(e))) | Err(e) => {
                release();
                Err(e)
            }
        }
    }

    /// Takes every sample whose closing event has completed (never waits), in the order they were queued.
    pub fn collect(&self, d: &Driver) -> Vec<Sample<T>> {
        let mut done = Vec::new();
        if self.pending() == 0 {
            return done;
        }
        let mut q = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let mut still = VecDeque::with_capacity(q.len());
        while let Some(s) = q.pop_front() {
            let (e0, e1) = s.events;
            match unsafe { (d.f.cuEventQuery)(e1) } {
                CUDA_ERROR_NOT_READY => {
                    still.push_back(s);
                    continue;
                }
                CUDA_SUCCESS if s.covered => done.push((s.what, crate::gate::elapsed_ns(d, e0, e1).ok())),
                // Uncovered, or the event failed (its work's failure is reported where the work is waited for).
                _ => done.push((s.what, None)),
            }
            self.free.lock().unwrap_or_else(|e| e.into_inner()).push((e0, e1));
        }
        *q = still;
        self.pending.store(q.len(), Ordering::Relaxed);
        done
    }
}
