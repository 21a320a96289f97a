//! Stream capture and CUDA graphs. A captured command becomes a node whose dependencies are the commands
//! before it on its stream (and, through events, on other streams that joined the capture). Replaying an
//! instantiated graph places every node on the device as the commands themselves would have been placed, so a
//! replay costs what the captured work costs.

use crate::handles::HandleMap;
use crate::export::CudaResult;
use crate::stream::{Stream, StreamKind, Work};
use phantom_cuda_sys::cudaError;
use sim_core::timeline::GpuTimeline;
use sim_core::SimTime;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a graph node does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NodeWork {
    Work(Work),
    /// An empty node (`cudaGraphAddEmptyNode`, event nodes).
    Empty,
}

impl From<Work> for NodeWork {
    fn from(w: Work) -> Self {
        NodeWork::Work(w)
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub work: NodeWork,
    /// Indices of earlier nodes this one depends on.
    pub deps: Vec<usize>,
}

/// A graph under construction or finished (`cudaGraph_t`).
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Streams that joined the capture (cleared when it ends).
    pub members: Vec<Arc<Stream>>,
}

impl Graph {
    pub fn add(&mut self, work: NodeWork, deps: Vec<usize>) -> usize {
        self.nodes.push(Node { work, deps });
        self.nodes.len() - 1
    }

    /// Places every node on `timeline`, none earlier than `start`; returns when the last one ends.
    pub fn place(&self, timeline: &mut GpuTimeline, start: SimTime) -> SimTime {
        let mut ends: Vec<SimTime> = Vec::with_capacity(self.nodes.len());
        let mut last = start;
        for node in &self.nodes {
            let earliest = node.deps.iter().map(|&d| ends[d]).fold(start, SimTime::max);
            let end = match node.work {
                NodeWork::Work(Work::Kernel { duration, sms }) => timeline.place_kernel(earliest, duration, sms).1,
                NodeWork::Work(Work::Copy { engine, duration }) => timeline.place_copy(engine, earliest, duration).1,
                NodeWork::Work(Work::Marker) | NodeWork::Empty => earliest,
            };
            last = last.max(end);
            ends.push(end);
        }
        last
    }
}

pub type SharedGraph = Arc<Mutex<Graph>>;

pub fn lock(g: &SharedGraph) -> MutexGuard<'_, Graph> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream's part in an ongoing capture.
#[derive(Debug, Clone)]
pub struct Capture {
    pub graph: SharedGraph,
    /// Nodes the stream's next command depends on.
    pub frontier: Vec<usize>,
    /// The stream `cudaStreamBeginCapture` was called on.
    pub origin: bool,
    pub id: u64,
}

impl Capture {
    pub fn add(&mut self, work: NodeWork) {
        let id = lock(&self.graph).add(work, std::mem::take(&mut self.frontier));
        self.frontier = vec![id];
    }
}

/// What an event recorded during capture stands for.
#[derive(Debug, Clone)]
pub struct CaptureRef {
    pub graph: SharedGraph,
    pub nodes: Vec<usize>,
    pub id: u64,
}

/// `cudaGraph_t` handles.
pub static GRAPHS: HandleMap<SharedGraph> = HandleMap::new(0x5200_0000_0000);

/// `cudaGraphExec_t` handles: an instantiated copy of a graph's nodes.
pub static EXECS: HandleMap<Graph> = HandleMap::new(0x5300_0000_0000);

/// `cudaGraphNode_t` handles: (graph handle, node index).
pub static NODES: HandleMap<(usize, usize)> = HandleMap::new(0x5400_0000_0000);

static CAPTURE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `cudaStreamBeginCapture`.
pub fn begin_capture(stream: &Stream) -> CudaResult<()> {
    if stream.kind == StreamKind::Legacy {
        return Err(cudaError::cudaErrorStreamCaptureUnsupported);
    }
    let mut st = stream.state();
    if st.capture.is_some() {
        return Err(cudaError::cudaErrorIllegalState);
    }
    st.capture = Some(Capture {
        graph: Arc::new(Mutex::new(Graph::default())),
        frontier: Vec::new(),
        origin: true,
        id: CAPTURE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    });
    Ok(())
}

/// `cudaStreamEndCapture`: returns the new graph's handle.
pub fn end_capture(stream: &Stream) -> CudaResult<usize> {
    let cap = {
        let mut st = stream.state();
        match st.capture.as_ref() {
            Some(c) if c.origin => st.capture.take().expect("checked"),
            Some(_) => return Err(cudaError::cudaErrorStreamCaptureUnmatched),
            None => return Err(cudaError::cudaErrorIllegalState),
        }
    };
    let members = std::mem::take(&mut lock(&cap.graph).members);
    for m in members {
        m.state().capture = None;
    }
    Ok(GRAPHS.insert(cap.graph))
}

/// `cudaGraphInstantiate`: a frozen copy of the graph's nodes.
pub fn instantiate(graph: &SharedGraph) -> usize {
    let g = lock(graph);
    EXECS.insert(Graph { nodes: g.nodes.clone(), members: Vec::new() })
}

/// `cudaGraphLaunch`: the whole graph runs as one unit of `stream`'s work.
pub fn launch(rt: &crate::runtime::Runtime, submit: SimTime, exec: &Graph, stream: &Stream) -> CudaResult<()> {
    if stream.is_capturing() {
        return Err(cudaError::cudaErrorNotSupported);
    }
    let dev = rt.device(stream.device as i32)?;
    stream.enqueue_with(dev, submit, SimTime::ZERO, NodeWork::Empty, |timeline, earliest| {
        (earliest, exec.place(timeline, earliest))
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::SimDuration;

    #[test]
    fn replay_places_a_chain_and_a_fork() {
        let k = |ns| NodeWork::Work(Work::Kernel { duration: SimDuration::from_nanos(ns), sms: 132 });
        let small = |ns| NodeWork::Work(Work::Kernel { duration: SimDuration::from_nanos(ns), sms: 10 });
        let mut g = Graph::default();
        let a = g.add(k(100), vec![]);
        let b = g.add(small(50), vec![a]);
        let c = g.add(small(70), vec![a]);
        g.add(NodeWork::Empty, vec![b, c]);
        let mut tl = GpuTimeline::new(132);
        // a: 1000..1100; b and c overlap after a; the join ends with c.
        assert_eq!(g.place(&mut tl, SimTime::from_nanos(1000)), SimTime::from_nanos(1170));
    }
}
