//! The private table through which Phantom's other shim libraries (`libnccl.so.2`, …) use the one runtime
//! state that `libcudart.so.13` owns: its streams, devices, clocks and its link to the simulator.
//!
//! Each cdylib embeds its own copy of every Rust crate, so sharing state by linking a crate twice would give
//! two runtimes. Instead `libcudart-phantom` hands out this `#[repr(C)]` table from NVIDIA's own
//! `cudaGetExportTable(&table, &id)` when `id` is [`RUNTIME_TABLE_ID`]; other shims find it with
//! `dlopen("libcudart.so.13")` + `dlsym("cudaGetExportTable")`. A shim checks `version` and `size`
//! before using any field; fields are only ever appended.

use std::ffi::{c_char, c_void};

/// The `cudaUUID_t` bytes that select this table in `cudaGetExportTable` ("PhantomRtTable01").
pub const RUNTIME_TABLE_ID: [u8; 16] = *b"PhantomRtTable01";

/// The layout version of [`RuntimeTable`].
/// Version 2 appended `enqueue_work` and `gemm_ns` (cuBLAS); version 3 `submit_with_buffers` (the data of
/// small operations); version 4 `profile_mode`, `run_call`, `call_time` and `enqueue_timed` (library calls in
/// profiling mode and from kernel-time tables: docs/profiling.md); version 5 `library_enter`, `library_exit` and
/// `host_clock_ns` (host time of library calls in executing processes: docs/time.md). A reader accepts any
/// version at least the one that introduced the last field it uses (and a `size` covering it).
pub const RUNTIME_TABLE_VERSION: u32 = 5;

/// `RuntimeTable::profile_mode`: this process does not profile.
pub const PROFILE_OFF: u32 = 0;
/// This process executes on the real GPU: its library calls must run there (`run_call`).
pub const PROFILE_EXECUTE: u32 = 1;
/// This process follows executing ones: `call_time` may wait for their measurements.
pub const PROFILE_FOLLOW: u32 = 2;

/// `RuntimeTable::call_time` / `enqueue_timed` sources (`crate::ktable::TimeSource`), and the library's own
/// model.
pub const SOURCE_PROFILED: u32 = 0;
pub const SOURCE_TABLE: u32 = 1;
pub const SOURCE_MODEL: u32 = 2;

/// The real work of a library call (`run_call`): queues it on `real_stream` (a `CUstream` of NVIDIA's driver)
/// and returns 0, or a nonzero status of the library.
pub type RunCall = unsafe extern "C" fn(ctx: *mut c_void, real_stream: *mut c_void) -> i32;

/// `ShimGemm::precision`: the index of a `crate::blas::Precision` (`Precision::from_index`).
pub const PREC_FP64: u32 = 0;
pub const PREC_FP32: u32 = 1;
pub const PREC_TF32: u32 = 2;
pub const PREC_FP16: u32 = 3;
pub const PREC_BF16: u32 = 4;
pub const PREC_FP8: u32 = 5;

/// One GEMM to be timed by `crate::blas::Gemm::time_ns` on a stream's GPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShimGemm {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub batch: u64,
    /// `PREC_*`.
    pub precision: u32,
    /// Bytes per element of A and B, and of C.
    pub in_bytes: u32,
    pub out_bytes: u32,
}

impl ShimGemm {
    /// The model's view, or `None` for an unknown precision.
    pub fn gemm(&self) -> Option<crate::blas::Gemm> {
        Some(crate::blas::Gemm {
            m: self.m,
            n: self.n,
            k: self.k,
            batch: self.batch,
            precision: crate::blas::Precision::from_index(self.precision)?,
            in_bytes: self.in_bytes as u64,
            out_bytes: self.out_bytes as u64,
        })
    }
}

/// `ShimOp::kind`.
pub const OP_COLL: u32 = 0;
pub const OP_SEND: u32 = 1;
pub const OP_RECV: u32 = 2;

/// One rank's part of a communication operation, queued on `stream`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShimOp {
    /// The application's `cudaStream_t`.
    pub stream: *mut c_void,
    pub comm: u64,
    pub rank: u32,
    /// `OP_COLL`, `OP_SEND` or `OP_RECV`.
    pub kind: u32,
    /// For `OP_COLL`: the index of the collective in [`crate::net::CollOp`] order
    /// (see [`coll_op_from_index`]).
    pub coll: u32,
    pub root: u32,
    pub peer: u32,
    pub redop: i32,
    pub dtype: i32,
    pub count: u64,
    /// `count × sizeof(dtype)`.
    pub bytes: u64,
}

/// Where one operation's data lives (`submit_with_buffers`, one per [`ShimOp`]): device addresses of the send
/// and receive buffers as passed to NCCL, and the communicator's size (which sizes the buffers).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShimBuffers {
    pub send: u64,
    pub recv: u64,
    pub nranks: u32,
}

/// `ShimJoin::kind`.
pub const JOIN_INIT: u32 = 0;
pub const JOIN_SPLIT: u32 = 1;

/// A rank joining a communicator: `ncclCommInitRank*` (`JOIN_INIT`) or `ncclCommSplit` (`JOIN_SPLIT`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ShimJoin {
    pub kind: u32,
    /// A digest of the `ncclUniqueId` (init).
    pub key: [u8; 16],
    pub nranks: u32,
    pub rank: u32,
    /// Split: the parent communicator, this rank's split number on it, colour and key.
    pub parent: u64,
    pub seq: u64,
    pub color: i32,
    pub split_key: i32,
    /// The CUDA device the rank uses.
    pub device: i32,
}

/// `ShimCommInfo::status`.
pub const JOINED: i32 = 0;
/// A split with a negative colour: no communicator.
pub const JOINED_NONE: i32 = 1;
pub const JOIN_FAILED: i32 = -1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShimCommInfo {
    pub status: i32,
    pub comm: u64,
    pub rank: u32,
    pub nranks: u32,
}

/// The table. Every function is safe to call with any arguments (bad pointers excepted) and never unwinds.
/// Functions returning `i32` return a `cudaError_t` value (0 = success).
#[repr(C)]
pub struct RuntimeTable {
    /// `size_of::<RuntimeTable>()` of the library that made it.
    pub size: usize,
    pub version: u32,
    /// Submits the joins, then blocks until every one has completed; writes one result per join.
    pub join: unsafe extern "C" fn(joins: *const ShimJoin, n: usize, out: *mut ShimCommInfo) -> i32,
    /// Queues operations on their streams (one NCCL group: operations on the same stream run together).
    pub submit: unsafe extern "C" fn(ops: *const ShimOp, n: usize) -> i32,
    /// Whether an operation of `comm` has failed: 0 if not, else 1 with the reason copied into `buf`
    /// (NUL-terminated, truncated to `len`).
    pub comm_error: unsafe extern "C" fn(comm: u64, buf: *mut c_char, len: usize) -> i32,
    /// The contention-free duration of `op` on `comm`, in nanoseconds.
    pub estimate: unsafe extern "C" fn(op: *const ShimOp, out_ns: *mut u64) -> i32,
    /// A rank leaves its communicator (`ncclCommDestroy`, `ncclCommAbort`).
    pub leave: unsafe extern "C" fn(comm: u64, rank: u32) -> i32,
    /// The reason for the calling thread's last failed call of this table (NUL-terminated into `buf`);
    /// returns the full length.
    pub last_message: unsafe extern "C" fn(buf: *mut c_char, len: usize) -> usize,
    // Version 2.
    /// Places a kernel-like command of `duration_ns` on `stream` using `sms` SMs (0: all of the device's), as a
    /// kernel launch does (charging the host the launch cost; recorded instead while the stream is captured).
    /// `name` (NUL-terminated, or null) names it in traces.
    pub enqueue_work: unsafe extern "C" fn(stream: *mut c_void, duration_ns: u64, sms: u32, name: *const c_char) -> i32,
    /// The duration (ns) of `gemm` on the GPU of `stream` (`crate::blas`).
    pub gemm_ns: unsafe extern "C" fn(stream: *mut c_void, gemm: *const ShimGemm, out_ns: *mut u64) -> i32,
    // Version 3.
    /// `submit`, with each operation's buffers: the data of small operations travels through the simulator
    /// (`crate::engine::payload`), so that what the program reads back from a receive buffer is what NCCL
    /// would have delivered.
    pub submit_with_buffers: unsafe extern "C" fn(ops: *const ShimOp, buffers: *const ShimBuffers, n: usize) -> i32,
    // Version 4.
    /// `PROFILE_OFF`, `PROFILE_EXECUTE` or `PROFILE_FOLLOW`.
    pub profile_mode: unsafe extern "C" fn() -> u32,
    /// Executing process: runs `run(ctx, real_stream)` on the real GPU, `real_stream` standing for `stream`. The
    /// first call with library-call key `key` (NUL-terminated text without tabs, chosen by the library, e.g.
    /// `cublasLt matmul m=… n=… k=…`) is measured behind the gate (docs/profiling.md), kept for the profiling
    /// table and published to following processes; later calls just run. Writes the call's duration in ns.
    /// Returns 0, or a CUDA error: the library's nonzero status becomes `cudaErrorLaunchFailure`, which the library
    /// reports (the runtime logs only its own and the driver's failures).
    pub run_call: unsafe extern "C" fn(stream: *mut c_void, key: *const c_char, run: RunCall, ctx: *mut c_void, out_ns: *mut u64) -> i32,
    /// The duration of library call `key` if profiling or a kernel-time table has it: this process's own
    /// measurement, a following process's answer from the simulator (which may wait for an executing process),
    /// or a table's `call` record. Returns 0 and writes `out_ns` and `out_source` (`SOURCE_PROFILED` or
    /// `SOURCE_TABLE`); 1 when there is none (the library then uses its model).
    pub call_time: unsafe extern "C" fn(key: *const c_char, out_ns: *mut u64, out_source: *mut u32) -> i32,
    /// `enqueue_work`, saying which source timed the work (`SOURCE_*`), for the run's coverage report.
    pub enqueue_timed: unsafe extern "C" fn(stream: *mut c_void, duration_ns: u64, sms: u32, name: *const c_char, source: u32) -> i32,
    // Version 5.
    /// The calling thread enters an exported function of a library (cuBLAS, cuBLASLt, cuDNN): the application's
    /// CPU time so far is charged to its virtual clock. Calls nest; only the outermost counts.
    pub library_enter: unsafe extern "C" fn(),
    /// The thread leaves that function. `nvidia_ns` is the host time NVIDIA's library took inside it (an
    /// executing process runs NVIDIA's library beside the stub): in measured host time an executing process
    /// charges that instead of the CPU time the call used; otherwise the call's CPU time is the application's,
    /// as before version 5.
    pub library_exit: unsafe extern "C" fn(nvidia_ns: u64),
    /// The real monotonic clock in ns (the application's `clock_gettime` reads virtual time), for timing NVIDIA's
    /// calls.
    pub host_clock_ns: unsafe extern "C" fn() -> u64,
}

/// `size` of a version-1 table: the bytes through `last_message`.
pub const RUNTIME_TABLE_V1_SIZE: usize = std::mem::offset_of!(RuntimeTable, enqueue_work);

/// `CollOp` from its `ShimOp::coll` index.
pub fn coll_op_from_index(i: u32) -> Option<crate::net::CollOp> {
    use crate::net::CollOp::*;
    [AllReduce, AllGather, ReduceScatter, Broadcast, Reduce, AllToAll, Gather, Scatter, SendRecv].get(i as usize).copied()
}

/// The `ShimOp::coll` index of `op`.
pub fn coll_op_index(op: crate::net::CollOp) -> u32 {
    use crate::net::CollOp::*;
    match op {
        AllReduce => 0,
        AllGather => 1,
        ReduceScatter => 2,
        Broadcast => 3,
        Reduce => 4,
        AllToAll => 5,
        Gather => 6,
        Scatter => 7,
        SendRecv => 8,
    }
}

/// Copies `msg` into a C buffer of `len` bytes, NUL-terminated and truncated; returns `msg.len()`.
///
/// # Safety
/// `buf` is null or valid for `len` bytes.
pub unsafe fn copy_message(msg: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let n = msg.len().min(len - 1);
        std::ptr::copy_nonoverlapping(msg.as_ptr() as *const c_char, buf, n);
        *buf.add(n) = 0;
    }
    msg.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coll_indices_round_trip() {
        for i in 0..9 {
            assert_eq!(coll_op_index(coll_op_from_index(i).unwrap()), i);
        }
        assert_eq!(coll_op_from_index(9), None);
    }

    #[test]
    fn version_1_fields_keep_their_offsets() {
        // size (8) + version (4, padded to 8) + six function pointers of version 1 (8 each).
        assert_eq!(RUNTIME_TABLE_V1_SIZE, 64);
        // Version 2 appended two function pointers, version 3 one.
        assert_eq!(std::mem::offset_of!(RuntimeTable, submit_with_buffers), 80);
        assert_eq!(std::mem::offset_of!(RuntimeTable, profile_mode), 88);
        // Version 4 four, version 5 three.
        assert_eq!(std::mem::offset_of!(RuntimeTable, library_enter), 120);
        assert_eq!(std::mem::size_of::<RuntimeTable>(), 144);
        assert_eq!(std::mem::size_of::<ShimBuffers>(), 24);
        assert_eq!(ShimGemm { precision: PREC_BF16, ..Default::default() }.gemm().unwrap().precision, crate::blas::Precision::Bf16);
        assert!(ShimGemm { precision: 6, ..Default::default() }.gemm().is_none());
    }

    #[test]
    fn messages_are_truncated_and_terminated() {
        let mut buf = [0x7f as c_char; 6];
        assert_eq!(unsafe { copy_message("mismatch", buf.as_mut_ptr(), 6) }, 8);
        let got: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        assert_eq!(&got, b"misma\0");
    }
}
