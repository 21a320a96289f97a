//! Phantom's drop-in `libnccl.so.2`.
//!
//! Layout: `generated/` holds the export glue produced by `cargo xtask codegen` (one `NcclApi` trait method per
//! NCCL function and one `extern "C"` function per export, `ncclX` and its profiling alias `pncclX`); `export`
//! is the FFI edge (panic guard, return-value conventions, the per-thread last error message); `api` overrides
//! the trait methods that Phantom implements.

#[rustfmt::skip]
#[allow(clippy::all)]
mod generated {
    pub mod nccl_exports;
}

mod api;
mod comm;
pub mod export;
mod log;
mod rt;

pub use api::Phantom;
pub use generated::nccl_exports::NcclApi;
