//! Phantom's simulation core, shared by every shim library and the launcher. It knows nothing of the CUDA
//! ABI: it models time, GPUs, the cluster configuration and how long GPU work takes.
//!
//! - [`time`]: simulated time ([`SimTime`], [`SimDuration`]).
//! - [`gpu`]: GPU models as data (`cudaDeviceProp` values and performance figures).
//! - [`config`]: the TOML cluster file and its presets.
//! - [`ktable`]: the kernel-time table and the fallback model for kernels it does not list.
//! - [`timeline`]: when work queued on a simulated GPU's streams starts and ends.
//! - [`net`]: the network: topology, NCCL's collective algorithms, and the max-min fair flow model.
//! - [`engine`]: the shared simulator (conservative coordinator, socket server and client).
//! - [`shim_abi`]: the private table through which the other shim libraries use libcudart's runtime state.

pub mod blas;
pub mod config;
pub mod engine;
pub mod gpu;
pub mod ktable;
pub mod net;
pub mod shim_abi;
pub mod time;
pub mod timeline;

pub use time::{SimDuration, SimTime};
