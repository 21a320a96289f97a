//! ABI parity: the staged `libcudart.so.13` exports every symbol of NVIDIA's, with the same version; the staged
//! `libnccl.so.2` every symbol of NVIDIA's, unversioned like NVIDIA's.
//! Every generated stub library (`stubs/`) exports its golden list with the right versions, types and SONAME.

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

/// One line of a stub library's golden list (`cuda-sys/abi/<soname>.symbols`, written by
/// `cargo xtask golden-stubs`): name, version (empty when unversioned), `FUNC` or `OBJECT` and its size.
fn golden_stub(soname: &str) -> Vec<(String, String, String, Option<u64>)> {
    let path = phantom_tests::workspace_root().join(format!("cuda-sys/abi/{soname}.symbols"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 3, "{}: malformed line `{l}`", path.display());
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), f.get(3).map(|s| s.parse().unwrap()))
        })
        .collect()
}

/// ELF type and size of each defined dynamic symbol (by name), from `readelf --dyn-syms`.
fn types_and_sizes(lib: &std::path::Path) -> BTreeMap<String, (String, u64)> {
    let out = std::process::Command::new("readelf").args(["--dyn-syms", "-W"]).arg(lib).output().expect("readelf");
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[6] == "UND" || f[0] == "Num:" {
            continue;
        }
        let size = match f[2].strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => f[2].parse().unwrap_or(0),
        };
        let name = f[7].split('@').next().unwrap().to_string();
        map.insert(name, (f[3].to_string(), size));
    }
    map
}

/// Every staged stub library (`stubs/`, generated) exports every symbol of its golden list, with NVIDIA's
/// version (as the default, `@@`) or none, the same ELF type and, for data, the same size; and has NVIDIA's
/// SONAME and the link-time symlink.
#[test]
fn stub_libraries_match_golden_lists() {
    let mut failures = Vec::new();
    for stub in phantom_tests::stubs::STUBS {
        let lib = lib_dir().join(stub.soname);
        if !lib.is_file() {
            failures.push(format!("{} is not staged: run `cargo xtask stage`", lib.display()));
            continue;
        }
        if soname(&lib).as_deref() != Some(stub.soname) {
            failures.push(format!("{}: SONAME {:?}", stub.soname, soname(&lib)));
        }
        match std::fs::read_link(lib_dir().join(stub.link)) {
            Ok(target) if target == std::path::Path::new(stub.soname) => {}
            other => failures.push(format!("{} should be a symlink to {}: {other:?}", stub.link, stub.soname)),
        }
        let ours: BTreeMap<String, (String, bool)> =
            dynamic_symbols(&lib).into_iter().map(|s| (s.name, (s.version, s.default_version))).collect();
        let types = types_and_sizes(&lib);
        let golden = golden_stub(stub.soname);
        assert!(!golden.is_empty(), "empty golden list for {}", stub.soname);
        for (name, version, kind, size) in &golden {
            match ours.get(name) {
                None => failures.push(format!("{}: {name} missing", stub.soname)),
                Some((v, default)) if v != version || (!version.is_empty() && !default) => failures.push(format!(
                    "{}: {name} has version {}{v}, NVIDIA's {version:?}",
                    stub.soname,
                    if *default { "@@" } else { "@" }
                )),
                Some(_) => {}
            }
            match (types.get(name), size) {
                (Some((t, _)), None) if t != kind && !(kind == "FUNC" && t == "IFUNC") => {
                    failures.push(format!("{}: {name} is {t}, NVIDIA's {kind}", stub.soname))
                }
                (Some((t, s)), Some(size)) if t != kind || s != size => {
                    failures.push(format!("{}: {name} is {t} of {s} bytes, NVIDIA's {kind} of {size}", stub.soname))
                }
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{} stub ABI failures:\n{}", failures.len(), failures.join("\n"));
}

/// Every symbol torch 2.11.0+cu130 and 2.15.0+cu132 (and nccl-tests) import from a CUDA library is exported by
/// Phantom's library of that SONAME with the same ELF type, so either torch loads against Phantom's libraries.
/// The import lists (`cuda-sys/abi/torch-imports/<soname>.txt`: symbol, type, importers) were read from those
/// builds' ELF files; the NVML and run-time-lookup lists are free text, covered by the golden lists instead.
#[test]
fn every_symbol_torch_imports_is_exported() {
    let dir = phantom_tests::workspace_root().join("cuda-sys/abi/torch-imports");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("cuda-sys/abi/torch-imports") {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.contains("runtime-lookups") || file.starts_with("libnvidia-ml") {
            continue;
        }
        let soname = file.trim_end_matches(".txt");
        let exported = types_and_sizes(&lib_dir().join(soname));
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let (name, kind) = (f[0], f.get(1).copied().unwrap_or("FUNC"));
            checked += 1;
            match exported.get(name) {
                None => failures.push(format!("{soname}: {name} ({kind}) is not exported")),
                Some((t, _)) if t != kind => failures.push(format!("{soname}: {name} is {t}, torch imports a {kind}")),
                Some(_) => {}
            }
        }
    }
    assert!(checked > 700, "only {checked} imports listed");
    assert!(failures.is_empty(), "{} missing:\n{}", failures.len(), failures.join("\n"));
}
