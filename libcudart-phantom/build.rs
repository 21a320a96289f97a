//! Gives the cdylib NVIDIA's SONAME and the `libcudart.so.13` symbol-version node. The per-symbol
//! `.symver` directives live in the generated exports (see docs/abi.md for why both are needed).
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let script = out.join("libcudart.version");
    std::fs::write(&script, "libcudart.so.13 { };\n").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcudart.so.13");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
