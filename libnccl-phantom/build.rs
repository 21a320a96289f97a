//! Gives the cdylib NVIDIA's SONAME. NCCL's exports are unversioned, so unlike libcudart-phantom there is no
//! version script and no `.symver` (docs/abi.md).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnccl.so.2");
    println!("cargo:rerun-if-changed=build.rs");
}
