//! Gives the cdylib NVIDIA's SONAME and its symbol-version nodes. The per-symbol `.symver` directives live
//! in the generated exports (see docs/abi.md for why both are needed) and in `src/interpose.rs`, whose libc
//! time functions carry glibc's version names so that executables' versioned references bind to them
//! (docs/time.md).
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let script = out.join("libcudart.version");
    // Version nodes used by the interposed libc time functions (src/interpose.rs).
    const GLIBC_NODES: [&str; 6] = [
        "GLIBC_2.2.5",
        "GLIBC_2.3.2",
        "GLIBC_2.16",
        "GLIBC_2.17",
        "GLIBC_2.30",
        "GLIBC_2.34",
    ];
    let mut text = String::new();
    for node in GLIBC_NODES {
        text.push_str(&format!("{node} {{ }};\n"));
    }
    text.push_str("libcudart.so.13 { };\n");
    std::fs::write(&script, text).unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcudart.so.13");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
