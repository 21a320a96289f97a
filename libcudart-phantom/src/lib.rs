//! Phantom's drop-in `libcudart.so.13`.
//!
//! Layout: `generated/` holds the export glue produced by `cargo xtask codegen` (one trait method and one
//! `extern "C"` function per export of NVIDIA's library); `export` is the FFI edge (panic guard, return-value
//! conventions, the per-thread last error); `api` overrides the trait methods that Phantom implements by
//! converting raw arguments and calling typed functions in the topic modules.

#[rustfmt::skip]
#[allow(clippy::all)]
mod generated {
    pub mod cudart_errors;
    pub mod cudart_exports;
}

mod api;
mod driver;
pub mod clock;
pub mod copy;
pub mod data;
pub mod device;
pub mod errors;
pub mod graph;
pub mod handles;
pub mod launch;
pub mod memory;
pub mod net;
mod nvtx;
pub mod profile;
pub mod runtime;
mod shim_table;
mod stats;
pub mod stream;
pub mod trace;
pub mod device_props;
pub mod export;
mod flag;
mod interpose;
mod log;

pub use generated::cudart_exports::CudartApi;

/// The type whose `CudartApi` implementation the exported functions call.
pub struct Phantom;
