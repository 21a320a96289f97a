//! ABI parity: the staged `libcudart.so.13` exports every symbol of NVIDIA's, with the same version.

use phantom_tests::{dynamic_symbols, golden_cudart, lib_dir, soname};
use std::collections::BTreeMap;

#[test]
fn cudart_exports_match_golden_list() {
    let lib = lib_dir().join("libcudart.so.13");
    let ours: BTreeMap<String, (String, bool)> =
        dynamic_symbols(&lib).into_iter().map(|s| (s.name, (s.version, s.default_version))).collect();
    let golden = golden_cudart();
    assert_eq!(golden.len(), 458, "golden list of nvidia-cuda-runtime 13.5.37");

    let mut missing = Vec::new();
    let mut wrong_version = Vec::new();
    for (name, version) in &golden {
        match ours.get(name) {
            None => missing.push(name.as_str()),
            Some((v, default)) if v != version || !default => wrong_version
                .push(format!("{name}: ours {}{v}, NVIDIA's @@{version}", if *default { "@@" } else { "@" })),
            Some(_) => {}
        }
    }
    let extras: Vec<_> = ours.keys().filter(|n| !golden.iter().any(|(g, _)| g == *n)).collect();
    if !extras.is_empty() {
        println!("{} exports beyond NVIDIA's (informational): {extras:?}", extras.len());
    }
    assert!(missing.is_empty(), "{} exports missing from {}: {missing:?}", missing.len(), lib.display());
    assert!(wrong_version.is_empty(), "{} exports with the wrong version: {wrong_version:#?}", wrong_version.len());
}

#[test]
fn cudart_soname() {
    let lib = lib_dir().join("libcudart.so.13");
    assert_eq!(soname(&lib).as_deref(), Some("libcudart.so.13"));
    let link = std::fs::read_link(lib_dir().join("libcudart.so")).expect("libcudart.so is a symlink");
    assert_eq!(link, std::path::Path::new("libcudart.so.13"));
}

/// The golden list is NVIDIA's library as installed: a check of `cargo xtask golden`'s input, so a wheel bump
/// without regenerating the list fails here.
#[test]
fn golden_list_is_nvidias_export_table() {
    let nvidia: Vec<(String, String)> =
        dynamic_symbols(&phantom_tests::nvidia_cudart()).into_iter().map(|s| (s.name, s.version)).collect();
    let mut golden = golden_cudart();
    golden.sort();
    assert_eq!(golden, nvidia, "cuda-sys/abi/libcudart.so.13.symbols is stale: run `cargo xtask golden`");
}
