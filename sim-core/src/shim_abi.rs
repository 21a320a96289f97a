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
pub const RUNTIME_TABLE_VERSION: u32 = 1;

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
}

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
    fn messages_are_truncated_and_terminated() {
        let mut buf = [0x7f as c_char; 6];
        assert_eq!(unsafe { copy_message("mismatch", buf.as_mut_ptr(), 6) }, 8);
        let got: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        assert_eq!(&got, b"misma\0");
    }
}
