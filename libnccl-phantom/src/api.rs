//! The NCCL functions Phantom implements: overrides of the generated `NcclApi` trait's default ("not
//! supported") methods. Both `ncclX` and `pncclX` reach the same method.
//!
//! To implement a function, add its method to the `impl` below with the exact signature of the trait method
//! (copy it from `generated/nccl_exports.rs`); check and convert the raw arguments here and call typed code in a
//! topic module (`comm.rs`, `collectives.rs`, …), e.g.
//!
//! ```text
//! unsafe fn ncclCommCount(comm: ncclComm_t, count: *mut c_int) -> ncclResult_t {
//!     export::status(crate::comm::count(comm, count))   // NcclResult<()>: Err(code) after export::error(...)
//! }
//! ```
//!
//! A failing call returns `export::error(code, message)`, which records the message for `ncclGetLastError`.
//! Nothing else needs registering: the exports already call every method of the trait.

use crate::export;
use crate::NcclApi;
use phantom_cuda_sys::nccl::*;
use crate::comm;
use sim_core::net::CollOp;
use std::ffi::{c_char, c_int, c_void, CStr};

/// The type whose `NcclApi` implementation the exported functions call.
pub struct Phantom;

#[allow(non_snake_case)]
impl NcclApi for Phantom {
    unsafe fn ncclGetVersion(version: *mut c_int) -> ncclResult_t {
        if version.is_null() {
            return export::error(ncclResult_t::ncclInvalidArgument, "ncclGetVersion: version is NULL");
        }
        unsafe { *version = VERSION_CODE };
        ncclResult_t::ncclSuccess
    }

    unsafe fn ncclGetErrorString(result: ncclResult_t) -> *const c_char {
        error_string(result).as_ptr()
    }

    unsafe fn ncclGetLastError(_comm: ncclComm_t) -> *const c_char {
        // NCCL keeps one message per thread, whatever the communicator; so does Phantom.
        export::last_error_ptr()
    }

    // ---- communicators ----

    unsafe fn ncclGetUniqueId(uniqueId: *mut ncclUniqueId) -> ncclResult_t {
        if uniqueId.is_null() {
            return export::error(ncclResult_t::ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
        }
        unsafe { write_id(uniqueId, &comm::unique_id()) };
        ncclResult_t::ncclSuccess
    }

    unsafe fn ncclCommInitRank(newcomm: *mut ncclComm_t, nranks: c_int, commId: ncclUniqueId, rank: c_int) -> ncclResult_t {
        export::status(comm::init_rank(newcomm, nranks, &id_bytes(&commId), rank))
    }

    unsafe fn ncclCommInitRankConfig(newcomm: *mut ncclComm_t, nranks: c_int, commId: ncclUniqueId, rank: c_int, _config: *mut ncclConfig_t) -> ncclResult_t {
        // Every configuration is accepted; a non-blocking communicator is ready when the call returns.
        export::status(comm::init_rank(newcomm, nranks, &id_bytes(&commId), rank))
    }

    unsafe fn ncclCommInitRankScalable(newcomm: *mut ncclComm_t, nranks: c_int, myrank: c_int, nId: c_int, commIds: *mut ncclUniqueId, _config: *mut ncclConfig_t) -> ncclResult_t {
        if nId < 1 || commIds.is_null() {
            return export::error(ncclResult_t::ncclInvalidArgument, "ncclCommInitRankScalable: needs at least one unique id");
        }
        // Every rank is given the same ids; the first identifies the communicator.
        export::status(comm::init_rank(newcomm, nranks, &id_bytes(unsafe { &*commIds }), myrank))
    }

    unsafe fn ncclCommInitAll(comms: *mut ncclComm_t, ndev: c_int, devlist: *const c_int) -> ncclResult_t {
        if ndev < 1 {
            return export::error(ncclResult_t::ncclInvalidArgument, format!("ncclCommInitAll: ndev {ndev} < 1"));
        }
        let devices: Vec<c_int> = if devlist.is_null() {
            (0..ndev).collect()
        } else {
            unsafe { std::slice::from_raw_parts(devlist, ndev as usize) }.to_vec()
        };
        export::status(comm::init_all(comms, &devices))
    }

    unsafe fn ncclCommSplit(comm: ncclComm_t, color: c_int, key: c_int, newcomm: *mut ncclComm_t, _config: *mut ncclConfig_t) -> ncclResult_t {
        export::status(comm::split(comm, color, key, newcomm))
    }

    unsafe fn ncclCommShrink(comm: ncclComm_t, excludeRanksList: *mut c_int, excludeRanksCount: c_int, newcomm: *mut ncclComm_t, _config: *mut ncclConfig_t, _shrinkFlags: c_int) -> ncclResult_t {
        let exclude = if excludeRanksCount <= 0 || excludeRanksList.is_null() {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(excludeRanksList, excludeRanksCount as usize) }
        };
        export::status(comm::shrink(comm, exclude, newcomm))
    }

    unsafe fn ncclCommFinalize(comm: ncclComm_t) -> ncclResult_t {
        // Operations already queued complete on their streams; nothing else to flush.
        export::status(comm::comm(comm).map(|_| ()))
    }

    unsafe fn ncclCommDestroy(comm: ncclComm_t) -> ncclResult_t {
        export::status(comm::destroy(comm))
    }

    unsafe fn ncclCommAbort(comm: ncclComm_t) -> ncclResult_t {
        export::status(comm::destroy(comm))
    }

    unsafe fn ncclCommGetAsyncError(comm: ncclComm_t, asyncError: *mut ncclResult_t) -> ncclResult_t {
        if asyncError.is_null() {
            return export::error(ncclResult_t::ncclInvalidArgument, "ncclCommGetAsyncError: asyncError is NULL");
        }
        match comm::async_error(comm) {
            Ok(e) => {
                unsafe { asyncError.write(e) };
                ncclResult_t::ncclSuccess
            }
            Err(e) => e,
        }
    }

    unsafe fn ncclCommCount(comm: ncclComm_t, count: *mut c_int) -> ncclResult_t {
        unsafe { out(count, comm::comm(comm).map(|c| c.nranks as c_int)) }
    }

    unsafe fn ncclCommCuDevice(comm: ncclComm_t, device: *mut c_int) -> ncclResult_t {
        unsafe { out(device, comm::comm(comm).map(|c| c.device)) }
    }

    unsafe fn ncclCommUserRank(comm: ncclComm_t, rank: *mut c_int) -> ncclResult_t {
        unsafe { out(rank, comm::comm(comm).map(|c| c.rank as c_int)) }
    }

    unsafe fn ncclCommRegister(comm: ncclComm_t, buff: *mut c_void, _size: usize, handle: *mut *mut c_void) -> ncclResult_t {
        // Registration changes no simulated time: the handle is the buffer itself.
        unsafe { out(handle, comm::comm(comm).map(|_| if buff.is_null() { std::ptr::NonNull::<c_void>::dangling().as_ptr() } else { buff })) }
    }

    unsafe fn ncclCommDeregister(comm: ncclComm_t, _handle: *mut c_void) -> ncclResult_t {
        export::status(comm::comm(comm).map(|_| ()))
    }

    unsafe fn ncclCommWindowRegister(comm: ncclComm_t, buff: *mut c_void, _size: usize, win: *mut ncclWindow_t, _winFlags: c_int) -> ncclResult_t {
        unsafe { out(win, comm::comm(comm).map(|_| (if buff.is_null() { 1 } else { buff as usize }) as ncclWindow_t)) }
    }

    unsafe fn ncclCommWindowDeregister(comm: ncclComm_t, _win: ncclWindow_t) -> ncclResult_t {
        export::status(comm::comm(comm).map(|_| ()))
    }

    unsafe fn ncclMemAlloc(ptr: *mut *mut c_void, size: usize) -> ncclResult_t {
        export::status(comm::mem_alloc(ptr, size))
    }

    unsafe fn ncclMemFree(ptr: *mut c_void) -> ncclResult_t {
        export::status(comm::mem_free(ptr))
    }

    // ---- groups ----

    unsafe fn ncclGroupStart() -> ncclResult_t {
        export::status(comm::group_start())
    }

    unsafe fn ncclGroupEnd() -> ncclResult_t {
        export::status(comm::group_end())
    }

    unsafe fn ncclGroupSimulateEnd(simInfo: *mut ncclSimInfo_t) -> ncclResult_t {
        match comm::group_simulate_end() {
            Ok(us) => {
                if !simInfo.is_null() {
                    unsafe { (*simInfo).estimatedTime = us };
                }
                ncclResult_t::ncclSuccess
            }
            Err(e) => e,
        }
    }

    // ---- operations ----

    unsafe fn ncclAllReduce(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::AllReduce, Some(op), None)
    }

    unsafe fn ncclAllReduceConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::AllReduce, Some(op), None)
    }

    unsafe fn ncclAllGather(sendbuff: *const c_void, recvbuff: *mut c_void, sendcount: usize, datatype: ncclDataType_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, sendcount, datatype, sendbuff, recvbuff), CollOp::AllGather, None, None)
    }

    unsafe fn ncclAllGatherConfig(sendbuff: *const c_void, recvbuff: *mut c_void, sendcount: usize, datatype: ncclDataType_t, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, sendcount, datatype, sendbuff, recvbuff), CollOp::AllGather, None, None)
    }

    unsafe fn ncclReduceScatter(sendbuff: *const c_void, recvbuff: *mut c_void, recvcount: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, recvcount, datatype, sendbuff, recvbuff), CollOp::ReduceScatter, Some(op), None)
    }

    unsafe fn ncclReduceScatterConfig(sendbuff: *const c_void, recvbuff: *mut c_void, recvcount: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, recvcount, datatype, sendbuff, recvbuff), CollOp::ReduceScatter, Some(op), None)
    }

    unsafe fn ncclBroadcast(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Broadcast, None, Some(root))
    }

    unsafe fn ncclBroadcastConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Broadcast, None, Some(root))
    }

    unsafe fn ncclBcast(buff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, buff, buff), CollOp::Broadcast, None, Some(root))
    }

    unsafe fn ncclReduce(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, op: ncclRedOp_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Reduce, Some(op), Some(root))
    }

    unsafe fn ncclReduceConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, op: ncclRedOp_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Reduce, Some(op), Some(root))
    }

    unsafe fn ncclAlltoAll(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::AllToAll, None, None)
    }

    unsafe fn ncclAlltoAllConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::AllToAll, None, None)
    }

    unsafe fn ncclGather(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Gather, None, Some(root))
    }

    unsafe fn ncclGatherConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Gather, None, Some(root))
    }

    unsafe fn ncclScatter(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Scatter, None, Some(root))
    }

    unsafe fn ncclScatterConfig(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, root: c_int, comm: ncclComm_t, stream: cudaStream_t, _config: *const ncclCollConfig_t) -> ncclResult_t {
        coll(call(comm, stream, count, datatype, sendbuff, recvbuff), CollOp::Scatter, None, Some(root))
    }

    unsafe fn ncclSend(sendbuff: *const c_void, count: usize, datatype: ncclDataType_t, peer: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        export::status(comm::p2p(&call(comm, stream, count, datatype, sendbuff, sendbuff), peer, true))
    }

    unsafe fn ncclRecv(recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, peer: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        export::status(comm::p2p(&call(comm, stream, count, datatype, recvbuff, recvbuff), peer, false))
    }

    unsafe fn ncclRedOpCreatePreMulSum(op: *mut ncclRedOp_t, _scalar: *mut c_void, datatype: ncclDataType_t, _residence: ncclScalarResidence_t, comm: ncclComm_t) -> ncclResult_t {
        if datatype.0 >= ncclDataType_t::ncclNumTypes.0 {
            return export::error(ncclResult_t::ncclInvalidArgument, format!("ncclRedOpCreatePreMulSum: invalid datatype {}", datatype.0));
        }
        unsafe { out(op, comm::redop_create(comm).map(|id| ncclRedOp_t(id as u32))) }
    }

    unsafe fn ncclRedOpDestroy(op: ncclRedOp_t, comm: ncclComm_t) -> ncclResult_t {
        export::status(comm::redop_destroy(op.0 as i32, comm))
    }
}

/// Writes a result through an application pointer; null → `ncclInvalidArgument`.
unsafe fn out<T>(p: *mut T, value: export::NcclResult<T>) -> ncclResult_t {
    if p.is_null() {
        return export::error(ncclResult_t::ncclInvalidArgument, "output pointer is NULL");
    }
    match value {
        Ok(v) => {
            unsafe { p.write(v) };
            ncclResult_t::ncclSuccess
        }
        Err(e) => e,
    }
}

fn id_bytes(id: &ncclUniqueId) -> [u8; 128] {
    id.internal.map(|b| b as u8)
}

unsafe fn write_id(p: *mut ncclUniqueId, bytes: &[u8; 128]) {
    unsafe { p.write(ncclUniqueId { internal: bytes.map(|b| b as c_char) }) };
}

/// One rank's arguments, typed.
fn call(comm: ncclComm_t, stream: cudaStream_t, count: usize, datatype: ncclDataType_t, send: *const c_void, recv: *const c_void) -> comm::Call {
    comm::Call { comm, stream: stream as *mut c_void, count, dtype: i32::try_from(datatype.0).unwrap_or(-1), send, recv }
}

fn coll(call: comm::Call, op: CollOp, redop: Option<ncclRedOp_t>, root: Option<c_int>) -> ncclResult_t {
    export::status(comm::collective(&call, op, redop.map(|r| i32::try_from(r.0).unwrap_or(-1)), root))
}

/// `NCCL_VERSION_CODE` of the headers the bindings come from (23203 for NCCL 2.32.3).
pub const VERSION_CODE: c_int = NCCL_VERSION_CODE as c_int;

/// What `ncclGetErrorString` says for each status: NCCL's meanings, pointing at Phantom's diagnostics
/// (`ncclGetLastError`, `PHANTOM_LOG`) where NCCL points at `NCCL_DEBUG`.
pub fn error_string(result: ncclResult_t) -> &'static CStr {
    match result {
        ncclResult_t::ncclSuccess => c"no error",
        ncclResult_t::ncclUnhandledCudaError => {
            c"unhandled cuda error (see ncclGetLastError, or run with PHANTOM_LOG=info)"
        }
        ncclResult_t::ncclSystemError => c"unhandled system error (see ncclGetLastError, or run with PHANTOM_LOG=info)",
        ncclResult_t::ncclInternalError => c"internal error - please report this issue to the Phantom developers",
        ncclResult_t::ncclInvalidArgument => c"invalid argument (see ncclGetLastError, or run with PHANTOM_LOG=warn)",
        ncclResult_t::ncclInvalidUsage => c"invalid usage (see ncclGetLastError, or run with PHANTOM_LOG=warn)",
        ncclResult_t::ncclRemoteError => c"remote process exited or there was a network error",
        ncclResult_t::ncclInProgress => c"NCCL operation in progress",
        ncclResult_t::ncclTimeout => c"NCCL operation timed out",
        _ => c"unknown result code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_headers() {
        assert_eq!(VERSION_CODE, 23203);
        let mut v = 0;
        assert_eq!(unsafe { Phantom::ncclGetVersion(&mut v) }, ncclResult_t::ncclSuccess);
        assert_eq!(v, 23203);
        assert_eq!(unsafe { Phantom::ncclGetVersion(std::ptr::null_mut()) }, ncclResult_t::ncclInvalidArgument);
        assert!(export::last_error().contains("version is NULL"));
    }

    #[test]
    fn every_result_has_its_own_string() {
        let strings: Vec<_> = (0..ncclResult_t::ncclNumResults.0).map(|c| error_string(ncclResult_t(c))).collect();
        for (i, s) in strings.iter().enumerate() {
            assert_ne!(*s, c"unknown result code", "code {i}");
            assert!(!strings[..i].contains(s), "code {i} repeats {s:?}");
        }
        assert_eq!(error_string(ncclResult_t::ncclNumResults), c"unknown result code");
        assert_eq!(error_string(ncclResult_t(u32::MAX)), c"unknown result code");
    }

    #[test]
    fn last_error_follows_the_thread() {
        export::set_last_error("boom");
        let msg = unsafe { CStr::from_ptr(Phantom::ncclGetLastError(std::ptr::null_mut())) };
        assert_eq!(msg, c"boom");
    }

    #[test]
    fn unimplemented_functions_are_invalid_usage() {
        // The trait's defaults, whatever Phantom implements by now.
        struct Defaults;
        impl NcclApi for Defaults {}
        let r = unsafe { Defaults::ncclGroupStart() };
        assert_eq!(r, ncclResult_t::ncclInvalidUsage);
        assert_eq!(export::last_error(), "ncclGroupStart is not supported by Phantom yet");
    }
}
