//! ABI parity: the staged `libcudart.so.13` exports every symbol of NVIDIA's, with the same version; the staged
//! `libnccl.so.2` every symbol of NVIDIA's, unversioned like NVIDIA's.

use phantom_tests::{dynamic_symbols, golden_cudart, golden_nccl, lib_dir, soname};
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

/// The staged `libnccl.so.2` exports every function of NVIDIA's (`ncclX` and `pncclX`), unversioned as NVIDIA's.
#[test]
fn nccl_exports_match_golden_list() {
    let lib = lib_dir().join("libnccl.so.2");
    let ours: BTreeMap<String, String> = dynamic_symbols(&lib).into_iter().map(|s| (s.name, s.version)).collect();
    let golden = golden_nccl();
    assert_eq!(golden.len(), 193, "golden list of nvidia-nccl-cu13 2.32.3");
    assert!(golden.iter().all(|(_, v)| v.is_empty()), "NVIDIA's libnccl.so.2 is unversioned");

    let missing: Vec<_> = golden.iter().filter(|(n, _)| !ours.contains_key(n)).map(|(n, _)| n.as_str()).collect();
    let versioned: Vec<_> =
        golden.iter().filter_map(|(n, _)| ours.get(n).filter(|v| !v.is_empty()).map(|v| format!("{n}@{v}"))).collect();
    let extras: Vec<_> = ours.keys().filter(|n| !golden.iter().any(|(g, _)| g == *n)).collect();
    if !extras.is_empty() {
        println!("{} exports beyond NVIDIA's (informational): {extras:?}", extras.len());
    }
    assert!(missing.is_empty(), "{} exports missing from {}: {missing:?}", missing.len(), lib.display());
    assert!(versioned.is_empty(), "exports with a version NVIDIA's do not have: {versioned:?}");
}

/// Every `pncclX` (NCCL's profiling-interface alias) has its `ncclX`, in NVIDIA's list and therefore in ours;
/// only `ncclResetDebugInitInternal` has no alias.
#[test]
fn nccl_golden_list_pairs_every_function_with_its_alias() {
    let names: std::collections::BTreeSet<String> = golden_nccl().into_iter().map(|(n, _)| n).collect();
    let unpaired: Vec<_> = names
        .iter()
        .filter(|n| match n.strip_prefix('p') {
            Some(base) => !names.contains(base),
            None => !names.contains(&format!("p{n}")),
        })
        .collect();
    assert_eq!(unpaired, ["ncclResetDebugInitInternal"]);
}

#[test]
fn nccl_soname() {
    let lib = lib_dir().join("libnccl.so.2");
    assert_eq!(soname(&lib).as_deref(), Some("libnccl.so.2"));
    let link = std::fs::read_link(lib_dir().join("libnccl.so")).expect("libnccl.so is a symlink");
    assert_eq!(link, std::path::Path::new("libnccl.so.2"));
}

/// The NCCL golden list is NVIDIA's `libnccl.so.2` as installed (else: `cargo xtask golden`).
#[test]
fn nccl_golden_list_is_nvidias_export_table() {
    let nvidia: Vec<(String, String)> =
        dynamic_symbols(&phantom_tests::nvidia_nccl()).into_iter().map(|s| (s.name, s.version)).collect();
    let mut golden = golden_nccl();
    golden.sort();
    assert_eq!(golden, nvidia, "cuda-sys/abi/libnccl.so.2.symbols is stale: run `cargo xtask golden`");
}
