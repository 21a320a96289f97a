//! Phantom's end-to-end tests: one test binary, a module per topic (docs/testing.md).
//! They need `scripts/install-deps.sh` (NVIDIA's headers and nvcc) and `cargo xtask stage` (the libraries).

mod abi;
mod calibrate;
mod call_all;
mod collectives;
mod cublaslt;
mod cudnn;
mod faults;
mod ktable_import;
mod nccl_api;
mod nvml;
mod nvtx;
mod profile;
mod programs;
mod report;
mod runtime_timing;
mod torch;
mod trace;
