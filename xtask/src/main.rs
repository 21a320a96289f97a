//! Developer commands for the Phantom workspace. Run `cargo xtask help`.
//!
//! Every generated file in the repository is produced here, from inputs that are themselves either NVIDIA's
//! pinned pip wheels (installed by `scripts/install-deps.sh`) or committed files:
//!
//! | command   | reads                                                     | writes                                          |
//! |-----------|-----------------------------------------------------------|-------------------------------------------------|
//! | `bindgen` | CUDA + NCCL headers through `cuda-sys/abi/*_wrapper.h`     | `cuda-sys/src/{cudart,nccl}.rs`                 |
//! | `golden`  | NVIDIA's `libcudart.so.13`, `libnccl.so.2` (`nm -D`)      | `cuda-sys/abi/{libcudart.so.13,libnccl.so.2}.symbols` |
//! | `codegen` | the files above                                           | `lib{cudart,nccl}-phantom/src/generated/*.rs`   |
//! | `fuzzgen` | the files above                                           | `tests/src/generated/call_all{,_nccl}.rs`       |
//! | `golden-stubs` | NVIDIA's wheels of the stub libraries (downloaded into `.deps/stub-wheels`) | `cuda-sys/abi/<soname>.symbols` of each stub |
//! | `stubgen` | the stub golden lists                                     | `stubs/<name>/`, `tests/src/generated/stubs.rs` |
//! | `stage`   | a release build of the workspace                          | `target/phantom/{lib,bin}/`                     |

mod codegen;
mod fuzzgen;
mod golden;
mod stage;
mod stubs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Where `scripts/install-deps.sh` puts NVIDIA's CUDA 13 wheels.
pub fn cuda_dir() -> PathBuf {
    workspace_root().join(".deps/cuda/nvidia/cu13")
}

/// Where `scripts/install-deps.sh` puts NVIDIA's NCCL wheel (`include/nccl.h`, `lib/libnccl.so.2`).
pub fn nccl_dir() -> PathBuf {
    workspace_root().join(".deps/cuda/nvidia/nccl")
}

const HELP: &str = "\
usage: cargo xtask <command>

  deps      install NVIDIA's pinned CUDA 13 and NCCL wheels into .deps/cuda (scripts/install-deps.sh)
  bindgen   regenerate cuda-sys/src/{cudart,nccl}.rs from NVIDIA's headers (needs libclang; build with
            --features bindgen)
  golden    refresh the golden export lists in cuda-sys/abi/ from NVIDIA's real libraries
  codegen   regenerate lib{cudart,nccl}-phantom/src/generated/ from the bindings and the golden lists
  fuzzgen   regenerate tests/src/generated/call_all*.rs (call every export with zero/garbage arguments)
  golden-stubs [NAME...]
            download the pinned wheels of the stub libraries (~2 GB, into .deps/stub-wheels) and refresh their
            golden export lists in cuda-sys/abi/ (developer command; never in CI)
  stubgen   regenerate the stub library crates stubs/<name>/ from their golden lists (codegen runs it too)
  regen     deps + bindgen + golden + codegen + fuzzgen
  stage     build the libraries (release) and stage them under their real names in target/phantom/lib, and
            the launcher as target/phantom/bin/phantom
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps(),
        Some("bindgen") => bindgen_cmd(),
        Some("golden") => golden::run(),
        Some("codegen") => codegen::run().and_then(|_| stubs::generate()),
        Some("golden-stubs") => stubs::golden(&args[1..]),
        Some("stubgen") => stubs::generate(),
        Some("regen") => deps()
            .and_then(|_| bindgen_cmd())
            .and_then(|_| golden::run())
            .and_then(|_| codegen::run())
            .and_then(|_| stubs::generate())
            .and_then(|_| fuzzgen::run()),
        Some("stage") => stage::run(&args[1..]),
        Some("fuzzgen") => fuzzgen::run(),
        _ => {
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T> = std::result::Result<T, String>;

fn deps() -> Result<()> {
    let status = std::process::Command::new("bash")
        .arg(workspace_root().join("scripts/install-deps.sh"))
        .status()
        .map_err(|e| format!("cannot run scripts/install-deps.sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("scripts/install-deps.sh failed ({status})"))
    }
}

#[cfg(not(feature = "bindgen"))]
fn bindgen_cmd() -> Result<()> {
    Err("rebuild with `cargo run -p xtask --features bindgen -- bindgen` (needs libclang)".into())
}

/// An include directory (a function of the install location) and a header it must contain.
#[cfg(feature = "bindgen")]
type IncludeDir = (fn() -> PathBuf, &'static str);

/// One set of generated bindings: a wrapper header in `cuda-sys/abi/` and what bindgen keeps from it.
#[cfg(feature = "bindgen")]
struct Bindings {
    /// Wrapper header, relative to the workspace root.
    wrapper: &'static str,
    /// Output file, relative to the workspace root.
    out: &'static str,
    /// Include directories and a header each must contain (checked first, to point at `cargo xtask deps`).
    includes: &'static [IncludeDir],
    functions: &'static str,
    types: &'static str,
    vars: &'static str,
    /// Bindings generated earlier whose types this set uses instead of generating its own (every type that file
    /// defines is block-listed here, and `raw_lines` imports them), so both sets share one Rust type per C type.
    shares_types_of: Option<&'static str>,
    /// Lines at the top of the output after the generated-file header.
    raw_lines: &'static [&'static str],
}

#[cfg(feature = "bindgen")]
const BINDINGS: &[Bindings] = &[
    Bindings {
        wrapper: "cuda-sys/abi/cudart_wrapper.h",
        out: "cuda-sys/src/cudart.rs",
        includes: &[(|| cuda_dir().join("include"), "cuda_runtime_api.h")],
        functions: "cuda.*|__cuda.*",
        types: "cuda.*|CU.*|dim3|uint3",
        vars: "cuda.*|CUDA.*",
        shares_types_of: None,
        raw_lines: &[
            "// @generated by `cargo xtask bindgen` from NVIDIA's CUDA 13 headers (scripts/cuda-wheels.txt).",
            "// Do not edit: regenerate instead (docs/abi.md).",
        ],
    },
    Bindings {
        wrapper: "cuda-sys/abi/nccl_wrapper.h",
        out: "cuda-sys/src/nccl.rs",
        includes: &[(|| nccl_dir().join("include"), "nccl.h"), (|| cuda_dir().join("include"), "cuda_runtime.h")],
        functions: "p?nccl.*",
        types: "nccl.*",
        vars: "NCCL.*|nccl.*",
        // A stream handed to NCCL is the runtime bindings' `cudaStream_t`, not a second, incompatible type.
        shares_types_of: Some("cuda-sys/src/cudart.rs"),
        raw_lines: &[
            "// @generated by `cargo xtask bindgen` from NVIDIA's NCCL headers (nvidia-nccl-cu13, scripts/cuda-wheels.txt).",
            "// Do not edit: regenerate instead (docs/abi.md).",
            "",
            "// CUDA runtime types come from the runtime bindings (block-listed here), so they are the same Rust types.",
            "pub use super::cudart::*;",
        ],
    },
];

/// Names of the types (structs, unions, aliases) a generated bindings file defines.
#[cfg(feature = "bindgen")]
fn defined_types(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    Ok(file
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Struct(s) => Some(s.ident.to_string()),
            syn::Item::Union(u) => Some(u.ident.to_string()),
            syn::Item::Type(t) => Some(t.ident.to_string()),
            syn::Item::Enum(e) => Some(e.ident.to_string()),
            _ => None,
        })
        .collect())
}

#[cfg(feature = "bindgen")]
fn bindgen_cmd() -> Result<()> {
    let root = workspace_root();
    for spec in BINDINGS {
        let mut builder = bindgen::Builder::default().header(root.join(spec.wrapper).to_string_lossy());
        for (dir, needed) in spec.includes {
            let dir = dir();
            if !dir.join(needed).exists() {
                return Err(format!("{} has no {needed}: run `cargo xtask deps` first", dir.display()));
            }
            builder = builder.clang_arg(format!("-I{}", dir.display()));
        }
        if let Some(shared) = spec.shares_types_of {
            for ty in defined_types(&root.join(shared))? {
                builder = builder.blocklist_type(format!("^{ty}$"));
            }
        }
        for line in spec.raw_lines {
            builder = builder.raw_line(*line);
        }
        let out = root.join(spec.out);
        let bindings = builder
            .clang_arg("-xc")
            .allowlist_function(spec.functions)
            .allowlist_type(spec.types)
            .allowlist_var(spec.vars)
            .default_enum_style(bindgen::EnumVariation::NewType { is_bitfield: false, is_global: false })
            .derive_default(true)
            .derive_eq(true)
            .derive_hash(true)
            .layout_tests(false)
            .generate_comments(false)
            .generate()
            .map_err(|e| format!("bindgen {} failed: {e}", spec.wrapper))?;
        bindings.write_to_file(&out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
