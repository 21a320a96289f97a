//! The implemented part of the runtime API: each override converts raw arguments at the edge and calls a
//! typed function.

use crate::export::{peek_last_error, take_last_error};
use crate::{CudartApi, Phantom};
use phantom_cuda_sys::*;

#[allow(non_snake_case)]
impl CudartApi for Phantom {
    unsafe fn cudaGetLastError() -> cudaError_t {
        take_last_error()
    }
    unsafe fn cudaPeekAtLastError() -> cudaError_t {
        peek_last_error()
    }
}
