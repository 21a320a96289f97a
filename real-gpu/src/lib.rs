//! The real GPU of profiling mode (docs/profiling.md): NVIDIA's driver, loaded by absolute path so that it never
//! resolves to Phantom's own `libcuda.so.1` ([`driver`]), the gated event timing that measures one piece of
//! work on it ([`gate`]), and the samples taken in the running stream that refine those figures ([`running`]).
//!
//! This crate is the only place that talks to NVIDIA's driver. The runtime (`libcudart-phantom`) uses it for
//! executing ranks; `phantom calibrate` measures the GPU itself with [`calibrate`].

pub mod calibrate;
pub mod driver;
pub mod gate;
pub mod running;

pub use driver::{Driver, DriverError};
