//! Stub libraries: an export-complete Phantom library for each NVIDIA library PyTorch loads besides
//! `libcudart.so.13` and `libnccl.so.2` (docs/abi.md, "Stub libraries"). Every exported function logs once and
//! returns the library's "not supported" status; every exported data symbol is a zeroed block of NVIDIA's size.
//!
//! Two commands, one table ([`STUBS`]):
//!
//! - `cargo xtask golden-stubs` downloads the pinned wheel of each library into `.deps/stub-wheels/` (a developer
//!   command: the wheels are ~2 GB; never CI, never `scripts/install-deps.sh`), takes the library out of it and
//!   writes `cuda-sys/abi/<soname>.symbols` from its dynamic symbol table (`readelf --dyn-syms`). Libraries that
//!   come with the driver, not a wheel (`libcuda.so.1`, `libnvidia-ml.so.1`), get the names torch imports or
//!   looks up, from the reference lists in `$PHANTOM_REFERENCE_DIR` (default `../shared/reference/abi-torch` beside the workspace).
//! - `cargo xtask stubgen` writes one crate per library, `stubs/<name>/` (all of it generated), and the table of
//!   stubs the tests read, `tests/src/generated/stubs.rs`. `cargo xtask codegen` runs it too.

use crate::{workspace_root, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a golden export list comes from.
pub enum Source {
    /// NVIDIA's library inside a pip wheel: `package==version`, the library's path inside the wheel.
    Wheel { package: &'static str, version: &'static str, path: &'static str },
    /// The library comes with the driver, not a wheel: the names torch imports (or looks up with `dlsym`) from
    /// it, read from reference lists. `pick` reads one list into names; `why` goes into the golden file's header.
    Imports { files: &'static [&'static str], pick: fn(&str, &str) -> Vec<String>, why: &'static str },
}

/// One stub library.
pub struct Stub {
    /// Crate directory `stubs/<name>/`, package `phantom-stub-<name>`, lib `phantom_stub_<name>` (`-` → `_`).
    pub name: &'static str,
    /// NVIDIA's SONAME: the golden list's stem, the stub's SONAME and its staged file name.
    pub soname: &'static str,
    pub source: Source,
    /// What every function returns, as a number, and its name in NVIDIA's header.
    pub status: u64,
    pub status_name: &'static str,
    /// Why that status (the header's enum rarely has an exact "not supported").
    pub status_reason: &'static str,
    /// A hand-written module of implementations (docs/abi.md, "Stub libraries"), or none: a pure stub.
    pub overrides: Option<Overrides>,
}

/// The hand-written part of a stub library: a module in the crate (`src/imp.rs`, never generated) whose every
/// `pub fn` is an implemented export of the same name. Its functions are typed: `&mut T` / `&T` for pointer
/// arguments the C API requires (the generated export passes NULL back as `null_status`), `Option<&mut T>` /
/// `Option<&T>` for optional ones, `&CStr` for a required C string, any other type as the C ABI passes it; each
/// returns `phantom_stub_common::Status` (`Ok(())` is 0 on the wire), or, for the few C functions that return a
/// value rather than a status (`cudnnGetVersion`, `nvmlErrorString`, ...), that value's type (which implements
/// `Default`, returned if the body panics) and then takes no checked pointer. A `pub fn` the golden list lacks is exported
/// too (a function that callers reach by `dlsym`/`cuGetProcAddress` or through a header macro's `_v2` name).
pub struct Overrides {
    /// Path of the module, relative to `stubs/<name>/`.
    pub module: &'static str,
    /// What an export returns when a required pointer argument is NULL, and its name in NVIDIA's header.
    pub null_status: u32,
    pub null_status_name: &'static str,
    /// Crates the module uses besides `phantom-stub-common`: `(package, TOML dependency value)`.
    pub dependencies: &'static [(&'static str, &'static str)],
}

/// One implemented export: its name and the generated `extern "C"` wrapper around `imp::<name>`.
struct Implemented {
    name: String,
    wrapper: String,
}

/// How one typed parameter crosses the C ABI.
enum Param {
    /// `&mut T` / `&T`: a required pointer (NULL → the null status).
    Required { mutable: bool, inner: String },
    /// `Option<&mut T>` / `Option<&T>`: an optional pointer.
    Optional { mutable: bool, inner: String },
    /// `&CStr`: a required NUL-terminated string.
    CStr,
    /// Anything else, as is.
    Value(String),
}

fn tokens(t: &impl quote::ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn classify(ty: &syn::Type) -> Param {
    match ty {
        syn::Type::Reference(r) if tokens(&r.elem) == "CStr" => Param::CStr,
        syn::Type::Reference(r) => Param::Required { mutable: r.mutability.is_some(), inner: tokens(&r.elem) },
        syn::Type::Path(p) if p.path.segments.len() == 1 && p.path.segments[0].ident == "Option" => {
            if let syn::PathArguments::AngleBracketed(a) = &p.path.segments[0].arguments {
                if let Some(syn::GenericArgument::Type(syn::Type::Reference(r))) = a.args.first() {
                    return Param::Optional { mutable: r.mutability.is_some(), inner: tokens(&r.elem) };
                }
            }
            Param::Value(tokens(ty))
        }
        _ => Param::Value(tokens(ty)),
    }
}

/// The `pub fn`s of an override module, each with its generated export.
fn implemented(stub: &Stub, ov: &Overrides, dir: &Path) -> Result<Vec<Implemented>> {
    let path = dir.join(ov.module);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = Path::new(ov.module).file_stem().unwrap().to_string_lossy().into_owned();
    // A library model that reaches the runtime brackets its exports for the host clock of executing processes
    // (`phantom_stub_runtime::host`); the others use the plain guards.
    let guard = if ov.dependencies.iter().any(|(p, _)| *p == "phantom-stub-runtime") {
        "phantom_stub_runtime"
    } else {
        "phantom_stub_common"
    };
    let mut out = Vec::new();
    for item in &file.items {
        let syn::Item::Fn(f) = item else { continue };
        if !matches!(f.vis, syn::Visibility::Public(_)) {
            continue;
        }
        let name = f.sig.ident.to_string();
        let (mut params, mut checks, mut args) = (Vec::new(), String::new(), Vec::new());
        for input in &f.sig.inputs {
            let syn::FnArg::Typed(pt) = input else {
                return Err(format!("{}: {name} takes self", path.display()));
            };
            let arg = tokens(&pt.pat);
            match classify(&pt.ty) {
                Param::Required { mutable, inner } => {
                    let (ptr, conv) = if mutable { ("*mut", "as_mut") } else { ("*const", "as_ref") };
                    params.push(format!("{arg}: {ptr} {inner}"));
                    let _ = writeln!(
                        checks,
                        "        let Some({arg}) = (unsafe {{ {arg}.{conv}() }}) else {{ return Err(NULL_ARGUMENT) }};"
                    );
                }
                Param::Optional { mutable, inner } => {
                    let (ptr, conv) = if mutable { ("*mut", "as_mut") } else { ("*const", "as_ref") };
                    params.push(format!("{arg}: {ptr} {inner}"));
                    let _ = writeln!(checks, "        let {arg} = unsafe {{ {arg}.{conv}() }};");
                }
                Param::CStr => {
                    params.push(format!("{arg}: *const ::core::ffi::c_char"));
                    let _ = writeln!(
                        checks,
                        "        if {arg}.is_null() {{ return Err(NULL_ARGUMENT) }}\n        \
                         let {arg} = unsafe {{ ::core::ffi::CStr::from_ptr({arg}) }};"
                    );
                }
                Param::Value(ty) => params.push(format!("{arg}: {ty}")),
            }
            args.push(arg);
        }
        // A function returning `Status` is a status export; one returning another type (`usize`, `c_int`,
        // `phantom_stub_common::StaticStr`, ...) returns that value as is, or its `Default` if the body panicked;
        // it takes no pointer it must check (the C API gives it no error status to return).
        let returns = match &f.sig.output {
            syn::ReturnType::Type(_, ty) => tokens(ty),
            syn::ReturnType::Default => return Err(format!("{}: {name} returns nothing", path.display())),
        };
        let wrapper = if returns == "Status" {
            format!(
                "/// `{name}`: implemented by `{module}::{name}`.\n#[no_mangle]\n\
                 pub unsafe extern \"C\" fn {name}({params}) -> u64 {{\n    \
                 {guard}::guard(\"{name}\", NOTE, STATUS, || {{\n{checks}        {module}::{name}({args})\n    }})\n}}\n",
                params = params.join(", "),
                args = args.join(", "),
            )
        } else {
            if !checks.is_empty() {
                return Err(format!(
                    "{}: {name} returns {returns}, not Status, so it cannot take checked pointers (&T, Option<&T>, &CStr)",
                    path.display()
                ));
            }
            format!(
                "/// `{name}`: implemented by `{module}::{name}`.\n#[no_mangle]\n\
                 pub unsafe extern \"C\" fn {name}({params}) -> {returns} {{\n    \
                 {guard}::guard_value(\"{name}\", NOTE, {body})\n}}\n",
                params = params.join(", "),
                body = if args.is_empty() {
                    format!("{module}::{name}")
                } else {
                    format!("|| {module}::{name}({})", args.join(", "))
                },
            )
        };
        out.push(Implemented { name, wrapper });
    }
    if out.is_empty() {
        return Err(format!("{}: {} has no `pub fn`", stub.soname, path.display()));
    }
    Ok(out)
}

/// The versions torch 2.11.0 (PyPI, CUDA 13.0 build) pins: `cuda-toolkit[...]==13.0.2` for the toolkit libraries,
/// and its own `nvidia-cudnn-cu13`, `nvidia-cusparselt-cu13`, `nvidia-nvshmem-cu13` requirements.
pub const STUBS: &[Stub] = &[
    Stub {
        name: "cublas",
        soname: "libcublas.so.13",
        source: Source::Wheel {
            package: "nvidia-cublas",
            version: "13.1.0.3",
            path: "nvidia/cu13/lib/libcublas.so.13",
        },
        status: 15,
        status_name: "CUBLAS_STATUS_NOT_SUPPORTED",
        status_reason: "cublasStatus_t's own 'not supported'",
        overrides: Some(Overrides {
            module: "src/imp.rs",
            null_status: 7,
            null_status_name: "CUBLAS_STATUS_INVALID_VALUE",
            // The runtime table's types, and the crate that reaches the runtime with dlopen.
            dependencies: &[
                ("sim-core", "{ workspace = true }"),
                ("phantom-stub-runtime", "{ path = \"../runtime\" }"),
            ],
        }),
    },
    Stub {
        name: "cublaslt",
        soname: "libcublasLt.so.13",
        source: Source::Wheel {
            package: "nvidia-cublas",
            version: "13.1.0.3",
            path: "nvidia/cu13/lib/libcublasLt.so.13",
        },
        status: 15,
        status_name: "CUBLAS_STATUS_NOT_SUPPORTED",
        status_reason: "cublasLt returns cublasStatus_t",
        overrides: Some(Overrides {
            module: "src/imp.rs",
            null_status: 7,
            null_status_name: "CUBLAS_STATUS_INVALID_VALUE",
            dependencies: &[
                ("sim-core", "{ workspace = true }"),
                ("phantom-stub-runtime", "{ path = \"../runtime\" }"),
            ],
        }),
    },
    Stub {
        name: "cudnn",
        soname: "libcudnn.so.9",
        source: Source::Wheel {
            package: "nvidia-cudnn-cu13",
            version: "9.19.0.56",
            path: "nvidia/cudnn/lib/libcudnn.so.9",
        },
        status: 3000,
        status_name: "CUDNN_STATUS_NOT_SUPPORTED",
        status_reason: "cudnnStatus_t's own 'not supported'",
        overrides: Some(Overrides {
            module: "src/imp.rs",
            null_status: 2000,
            null_status_name: "CUDNN_STATUS_BAD_PARAM",
            dependencies: &[
                ("sim-core", "{ workspace = true }"),
                ("phantom-stub-runtime", "{ path = \"../runtime\" }"),
            ],
        }),
    },
    Stub {
        name: "cufft",
        soname: "libcufft.so.12",
        source: Source::Wheel {
            package: "nvidia-cufft",
            version: "12.0.0.61",
            path: "nvidia/cu13/lib/libcufft.so.12",
        },
        status: 16,
        status_name: "CUFFT_NOT_SUPPORTED",
        status_reason: "cufftResult's own 'not supported'",
        overrides: None,
    },
    Stub {
        name: "curand",
        soname: "libcurand.so.10",
        source: Source::Wheel {
            package: "nvidia-curand",
            version: "10.4.0.35",
            path: "nvidia/cu13/lib/libcurand.so.10",
        },
        status: 203,
        status_name: "CURAND_STATUS_INITIALIZATION_FAILED",
        status_reason: "curandStatus_t has no 'not supported'; 'initialization of CUDA failed' is what a caller \
                        handles as 'cuRAND unusable here'",
        overrides: None,
    },
    Stub {
        name: "cusolver",
        soname: "libcusolver.so.12",
        source: Source::Wheel {
            package: "nvidia-cusolver",
            version: "12.0.4.66",
            path: "nvidia/cu13/lib/libcusolver.so.12",
        },
        status: 15,
        status_name: "CUSOLVER_STATUS_NOT_SUPPORTED",
        status_reason: "cusolverStatus_t's own 'not supported'",
        overrides: None,
    },
    Stub {
        name: "cusparse",
        soname: "libcusparse.so.12",
        source: Source::Wheel {
            package: "nvidia-cusparse",
            version: "12.6.3.3",
            path: "nvidia/cu13/lib/libcusparse.so.12",
        },
        status: 10,
        status_name: "CUSPARSE_STATUS_NOT_SUPPORTED",
        status_reason: "cusparseStatus_t's own 'not supported'",
        overrides: None,
    },
    Stub {
        name: "cusparselt",
        soname: "libcusparseLt.so.0",
        source: Source::Wheel {
            package: "nvidia-cusparselt-cu13",
            version: "0.8.0",
            path: "nvidia/cusparselt/lib/libcusparseLt.so.0",
        },
        status: 10,
        status_name: "CUSPARSE_STATUS_NOT_SUPPORTED",
        status_reason: "cusparseLt returns cusparseStatus_t",
        overrides: None,
    },
    Stub {
        name: "cufile",
        soname: "libcufile.so.0",
        source: Source::Wheel {
            package: "nvidia-cufile",
            version: "1.15.1.6",
            path: "nvidia/cu13/lib/libcufile.so.0",
        },
        status: 5007,
        status_name: "CU_FILE_PLATFORM_NOT_SUPPORTED",
        status_reason: "cuFile functions return CUfileError_t { err, cu_err }, 8 bytes in rax: err = \
                        CU_FILE_PLATFORM_NOT_SUPPORTED (5000 + 7), cu_err = CUDA_SUCCESS",
        overrides: None,
    },
    Stub {
        name: "cupti",
        soname: "libcupti.so.13",
        source: Source::Wheel {
            package: "nvidia-cuda-cupti",
            version: "13.0.85",
            path: "nvidia/cu13/lib/libcupti.so.13",
        },
        status: 27,
        status_name: "CUPTI_ERROR_NOT_SUPPORTED",
        status_reason: "CUptiResult's own 'not supported'",
        overrides: None,
    },
    Stub {
        name: "nvrtc",
        soname: "libnvrtc.so.13",
        source: Source::Wheel {
            package: "nvidia-cuda-nvrtc",
            version: "13.0.88",
            path: "nvidia/cu13/lib/libnvrtc.so.13",
        },
        status: 11,
        status_name: "NVRTC_ERROR_INTERNAL_ERROR",
        status_reason: "nvrtcResult has no 'not supported'",
        overrides: None,
    },
    Stub {
        name: "nvjitlink",
        soname: "libnvJitLink.so.13",
        source: Source::Wheel {
            package: "nvidia-nvjitlink",
            version: "13.0.88",
            path: "nvidia/cu13/lib/libnvJitLink.so.13",
        },
        status: 6,
        status_name: "NVJITLINK_ERROR_INTERNAL",
        status_reason: "nvJitLinkResult has no 'not supported' (libcusparse.so.12 needs this library)",
        overrides: None,
    },
    Stub {
        name: "nvshmem-host",
        soname: "libnvshmem_host.so.3",
        source: Source::Wheel {
            package: "nvidia-nvshmem-cu13",
            // Newer than torch 2.11's pin (3.4.5), whose exports it contains: torch 2.15 (cu132) also imports
            // `nvshmem_selected_device_transport`, which 3.4.5 lacks.
            version: "3.8.0",
            path: "nvidia/nvshmem/lib/libnvshmem_host.so.3",
        },
        status: 3,
        status_name: "NVSHMEMX_ERROR_NOT_SUPPORTED",
        status_reason: "nvshmemx_status's own 'not supported' (nonzero, so int-returning calls report failure)",
        overrides: None,
    },
    Stub {
        name: "cuda-driver",
        soname: "libcuda.so.1",
        source: Source::Imports {
            files: &["libcuda.so.1.txt", "libcuda.so.1.runtime-lookups.txt"],
            pick: pick_driver,
            why: "the driver library ships with the NVIDIA driver, not in a pip wheel: this list is every name \
                  torch 2.11/2.15 imports from libcuda.so.1 or looks up in it (dlsym, driver entry points), not \
                  NVIDIA's full export table; NVIDIA's libcuda.so.1 is unversioned",
        },
        status: 801,
        status_name: "CUDA_ERROR_NOT_SUPPORTED",
        status_reason: "CUresult's own 'not supported'",
        overrides: Some(Overrides {
            module: "src/imp.rs",
            null_status: 1,
            null_status_name: "CUDA_ERROR_INVALID_VALUE",
            // Types only (`cudaDeviceProp`, ...): the runtime is reached with dlopen, never linked.
            dependencies: &[("libc", "{ workspace = true }"), ("phantom-cuda-sys", "{ workspace = true }")],
        }),
    },
    Stub {
        name: "nvml",
        soname: "libnvidia-ml.so.1",
        source: Source::Imports {
            files: &["libnvidia-ml.so.1.txt"],
            pick: pick_nvml,
            why: "NVML ships with the NVIDIA driver, not in a pip wheel (nvidia-nvml-dev has only the header): this \
                  list is every name torch and NCCL look up in libnvidia-ml.so.1 (it is dlopen'ed, never \
                  DT_NEEDED), not NVIDIA's full export table; unversioned",
        },
        status: 3,
        status_name: "NVML_ERROR_NOT_SUPPORTED",
        status_reason: "nvmlReturn_t's own 'not supported'; torch falls back to cudaGetDeviceCount when NVML fails",
        overrides: Some(Overrides {
            module: "src/imp.rs",
            null_status: 2,
            null_status_name: "NVML_ERROR_INVALID_ARGUMENT",
            dependencies: &[("sim-core", "{ workspace = true }")],
        }),
    },
];

/// `libcuda.so.1.txt`: `name<TAB>FUNC<TAB>...`; the run-time lookups: `who<TAB>name`, where rows of real
/// cudart's own initialisation (`real_cudart_*`) matter only under a real cudart and are left out.
fn pick_driver(file: &str, text: &str) -> Vec<String> {
    let rows = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    if file.contains("runtime-lookups") {
        rows.filter_map(|l| l.split_once('\t'))
            .filter(|(who, _)| !who.starts_with("real_cudart"))
            .map(|(_, name)| name.split('\t').next().unwrap_or("").trim().to_string())
            .collect()
    } else {
        rows.map(|l| l.split('\t').next().unwrap_or("").trim().to_string()).collect()
    }
}

/// `libnvidia-ml.so.1.txt` lists names in free text: every `nvml…` word but `nvmlLib` (torch's handle variable).
fn pick_nvml(_file: &str, text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("nvml") && w.len() > 4 && *w != "nvmlLib")
        .map(str::to_string)
        .collect()
}

impl Stub {
    pub fn package(&self) -> String {
        format!("phantom-stub-{}", self.name)
    }
    pub fn lib_name(&self) -> String {
        format!("phantom_stub_{}", self.name.replace('-', "_"))
    }
    /// The file cargo builds: `libphantom_stub_<name>.so`.
    pub fn built(&self) -> String {
        format!("lib{}.so", self.lib_name())
    }
    /// The link-time name, `libcublas.so` for `libcublas.so.13`.
    pub fn link_name(&self) -> &'static str {
        let end = self.soname.find(".so").expect("a SONAME contains .so") + 3;
        &self.soname[..end]
    }
    pub fn golden_path(&self) -> PathBuf {
        workspace_root().join("cuda-sys/abi").join(format!("{}.symbols", self.soname))
    }
}

/// ELF type of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Func,
    /// A data symbol of this many bytes.
    Object(u64),
}

/// One line of a stub golden list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Export {
    pub name: String,
    /// Symbol version node (always the default version, `@@`); empty when unversioned.
    pub version: String,
    pub kind: Kind,
}

/// An export the stub leaves out, with why.
struct Skipped {
    name: String,
    why: &'static str,
}

/// The defined dynamic symbols of `lib` (`readelf --dyn-syms -W`), split into what a stub exports and what it
/// must not: C++ symbols (`_Z…`: these libraries' statically linked libstdc++ and template instances, e.g.
/// libcufile's `operator delete`, which a stub would interpose on the whole process) and the linker's
/// `_init` / `_fini`.
fn read_dynsyms(lib: &Path) -> Result<(Vec<Export>, Vec<Skipped>, BTreeSet<String>)> {
    let out = Command::new("readelf")
        .args(["--dyn-syms", "-W"])
        .arg(lib)
        .output()
        .map_err(|e| format!("cannot run readelf: {e}"))?;
    if !out.status.success() {
        return Err(format!("readelf {} failed: {}", lib.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let mut exports = Vec::new();
    let mut skipped = Vec::new();
    let mut nodes = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Older readelf prints STB_GNU_UNIQUE as "<OS specific>: 10".
        let line = line.replace("<OS specific>: 10", "UNIQUE");
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !f[0].ends_with(':') || f[0] == "Num:" {
            continue; // headers, and nameless symbols
        }
        let (size, ty, ndx, sym) = (f[2], f[3], f[6], f[7]);
        if ndx == "UND" {
            continue;
        }
        let (name, version) = match sym.split_once('@') {
            Some((n, v)) => {
                if !v.starts_with('@') {
                    return Err(format!("{}: {sym} is a non-default version: the stub generator handles only @@", lib.display()));
                }
                (n.to_string(), v.trim_start_matches('@').to_string())
            }
            None => (sym.to_string(), String::new()),
        };
        if ndx == "ABS" {
            nodes.insert(name); // the version node itself
            continue;
        }
        let kind = match ty {
            "FUNC" | "IFUNC" => Kind::Func,
            "OBJECT" => {
                let size = match size.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => size.parse(),
                }
                .map_err(|e| format!("{}: size of {name}: {e}", lib.display()))?;
                Kind::Object(size)
            }
            other => return Err(format!("{}: {name} has ELF type {other}, which the stub generator does not handle", lib.display())),
        };
        if name.starts_with("_Z") {
            skipped.push(Skipped { name, why: "C++ symbol (libstdc++ / internals; a stub must not interpose it)" });
        } else if name == "_init" || name == "_fini" {
            skipped.push(Skipped { name, why: "the linker's own _init/_fini" });
        } else {
            exports.push(Export { name, version, kind });
        }
    }
    exports.sort();
    exports.dedup();
    skipped.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.dedup_by(|a, b| a.name == b.name);
    Ok((exports, skipped, nodes))
}

/// The committed golden list of a stub library: its exports, in file order.
pub fn read_golden(stub: &Stub) -> Result<Vec<Export>> {
    let path = stub.golden_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e} (run `cargo xtask golden-stubs`)", path.display()))?;
    let mut exports = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let kind = match (f.get(2), f.get(3)) {
            (Some(&"FUNC"), None) => Kind::Func,
            (Some(&"OBJECT"), Some(size)) => Kind::Object(size.parse().map_err(|e| format!("{}: {line}: {e}", path.display()))?),
            _ => return Err(format!("{}: malformed line `{line}`", path.display())),
        };
        exports.push(Export { name: f[0].to_string(), version: f[1].to_string(), kind });
    }
    Ok(exports)
}

fn stub_wheels_dir() -> PathBuf {
    workspace_root().join(".deps/stub-wheels")
}

/// Downloads `package==version` (no dependencies) into `.deps/stub-wheels/` unless it is there, and returns it.
fn wheel(package: &str, version: &str) -> Result<PathBuf> {
    let dir = stub_wheels_dir();
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "-d"])
        .arg(&dir)
        .arg(format!("{package}=={version}"))
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !status.success() {
        return Err(format!("pip download {package}=={version} failed ({status})"));
    }
    find().ok_or_else(|| format!("pip downloaded {package}=={version}, but no {prefix}*.whl is in {}", dir.display()))
}

/// Takes `member` out of the wheel into `.deps/stub-wheels/lib/` (with `unzip`) and returns its path.
fn extract(wheel: &Path, member: &str) -> Result<PathBuf> {
    let dir = stub_wheels_dir().join("lib");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let status = Command::new("unzip")
        .args(["-o", "-q", "-j"])
        .arg(wheel)
        .arg(member)
        .arg("-d")
        .arg(&dir)
        .status()
        .map_err(|e| format!("cannot run unzip: {e}"))?;
    if !status.success() {
        return Err(format!("unzip {member} from {} failed ({status})", wheel.display()));
    }
    Ok(dir.join(Path::new(member).file_name().unwrap()))
}

fn reference_dir() -> PathBuf {
    std::env::var_os("PHANTOM_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("../shared/reference/abi-torch"))
}

/// `cargo xtask golden-stubs [NAME...]`: refreshes the golden lists of the stub libraries (all, or those named).
pub fn golden(args: &[String]) -> Result<()> {
    for stub in STUBS.iter().filter(|s| args.is_empty() || args.iter().any(|a| a == s.name || a == s.soname)) {
        let mut text = String::new();
        let (exports, skipped) = match &stub.source {
            Source::Wheel { package, version, path } => {
                let lib = extract(&wheel(package, version)?, path)?;
                let (exports, skipped, nodes) = read_dynsyms(&lib)?;
                let _ = writeln!(
                    text,
                    "# Golden export list of NVIDIA's {} ({package}=={version}, {path}): \
                     name<TAB>version<TAB>FUNC, or name<TAB>version<TAB>OBJECT<TAB>size in bytes.",
                    stub.soname
                );
                match nodes.len() {
                    0 => text.push_str("# NVIDIA's library has no symbol versions: the version column is empty.\n"),
                    _ => {
                        let _ = writeln!(text, "# Version nodes: {}.", nodes.into_iter().collect::<Vec<_>>().join(", "));
                    }
                }
                (exports, skipped)
            }
            Source::Imports { files, pick, why } => {
                let mut names = BTreeSet::new();
                for file in *files {
                    let path = reference_dir().join(file);
                    let body = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {} (set PHANTOM_REFERENCE_DIR): {e}", path.display()))?;
                    names.extend(pick(file, &body).into_iter().filter(|n| !n.is_empty()));
                }
                let _ = writeln!(
                    text,
                    "# Golden export list of {} — the IMPORTED SUBSET, from {}: name<TAB>version<TAB>FUNC.",
                    stub.soname,
                    files.join(", ")
                );
                let _ = writeln!(text, "# Why not NVIDIA's full table: {why}.");
                let exports =
                    names.into_iter().map(|name| Export { name, version: String::new(), kind: Kind::Func }).collect();
                (exports, Vec::new())
            }
        };
        text.push_str(
            "# @generated by `cargo xtask golden-stubs`; `cargo xtask stubgen` builds stubs/ from it and the ABI test \
             diffs the staged stub against it.\n",
        );
        if !skipped.is_empty() {
            let _ = writeln!(
                text,
                "# {} exports of NVIDIA's are deliberately not in the stub (listed as `#-` lines with the reason).",
                skipped.len()
            );
        }
        for e in &exports {
            match e.kind {
                Kind::Func => {
                    let _ = writeln!(text, "{}\t{}\tFUNC", e.name, e.version);
                }
                Kind::Object(size) => {
                    let _ = writeln!(text, "{}\t{}\tOBJECT\t{size}", e.name, e.version);
                }
            }
        }
        for s in &skipped {
            let _ = writeln!(text, "#-\t{}\t{}", s.name, s.why);
        }
        let path = stub.golden_path();
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {} ({} exports, {} left out)", path.display(), exports.len(), skipped.len());
    }
    Ok(())
}

const MARK: &str = "# @generated by `cargo xtask stubgen` from the stub table in xtask/src/stubs.rs. Do not edit.";

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn is_ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && syn::parse_str::<syn::Ident>(name).is_ok()
}

/// `cargo xtask stubgen`: writes `stubs/<name>/` for every stub and `tests/src/generated/stubs.rs`.
pub fn generate() -> Result<()> {
    let root = workspace_root();
    for stub in STUBS {
        let exports = read_golden(stub)?;
        let dir = root.join("stubs").join(stub.name);
        let versions: BTreeSet<&str> =
            exports.iter().map(|e| e.version.as_str()).filter(|v| !v.is_empty()).collect();
        if let Some(bad) = exports.iter().find(|e| !is_ident(&e.name)) {
            return Err(format!("{}: `{}` is not a Rust identifier; teach stubgen export_name", stub.soname, bad.name));
        }
        let note = format!("{} stub; returns {} = {}", stub.soname, stub.status_name, stub.status);

        write(
            &dir.join("Cargo.toml"),
            &format!(
                "{MARK}\n[package]\nname = \"{pkg}\"\nversion.workspace = true\nedition.workspace = true\n\
                 license.workspace = true\npublish = false\n\
                 description = \"Phantom stub of NVIDIA's {so}: every export, each returning {sn}.\"\n\n\
                 [lib]\nname = \"{lib}\"\ncrate-type = [\"cdylib\"]\n\n\
                 [dependencies]\nphantom-stub-common = {{ path = \"../common\" }}\n{extra}",
                pkg = stub.package(),
                so = stub.soname,
                sn = stub.status_name,
                lib = stub.lib_name(),
                extra = stub
                    .overrides
                    .iter()
                    .flat_map(|o| o.dependencies)
                    .map(|(pkg, spec)| format!("{pkg} = {spec}\n"))
                    .collect::<String>(),
            ),
        )?;

        let mut build = format!(
            "// @generated by `cargo xtask stubgen` from xtask/src/stubs.rs. Do not edit.\n\
             //! SONAME {so}{}.\n",
            if versions.is_empty() { "; NVIDIA's library is unversioned: no version script" } else { " and the version nodes (docs/abi.md: a node-defining version script plus `.symver` in src/lib.rs)" },
            so = stub.soname
        );
        build.push_str("fn main() {\n");
        let _ = writeln!(build, "    println!(\"cargo:rustc-cdylib-link-arg=-Wl,-soname,{}\");", stub.soname);
        if !versions.is_empty() {
            let script: String = versions.iter().map(|v| format!("{v} {{ }};\\n")).collect();
            let _ = writeln!(build, "    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());");
            let _ = writeln!(build, "    let script = out.join(\"version-script\");");
            let _ = writeln!(build, "    std::fs::write(&script, \"{script}\").unwrap();");
            let _ = writeln!(
                build,
                "    println!(\"cargo:rustc-cdylib-link-arg=-Wl,--version-script={{}}\", script.display());"
            );
        }
        build.push_str("    println!(\"cargo:rerun-if-changed=build.rs\");\n}\n");
        write(&dir.join("build.rs"), &build)?;

        let implemented = match &stub.overrides {
            Some(ov) => implemented(stub, ov, &dir)?,
            None => Vec::new(),
        };
        let is_implemented = |name: &str| implemented.iter().any(|i| i.name == name);
        let funcs: Vec<&Export> =
            exports.iter().filter(|e| e.kind == Kind::Func && !is_implemented(&e.name)).collect();
        let objects: Vec<&Export> = exports.iter().filter(|e| e.kind != Kind::Func).collect();
        let mut lib = format!(
            "// @generated by `cargo xtask stubgen` from cuda-sys/abi/{so}.symbols and xtask/src/stubs.rs.\n\
             // Do not edit: regenerate instead (docs/abi.md, \"Stub libraries\"). {nf} functions, {no} data exports.\n\
             //! Phantom stub of NVIDIA's `{so}`: every function logs once and returns `{sn}` ({st}: {why});\n\
             //! every data export is zero-filled.\n\
             #![allow(non_snake_case, non_upper_case_globals, clippy::missing_safety_doc)]\n\n",
            so = stub.soname,
            nf = funcs.len(),
            no = objects.len(),
            sn = stub.status_name,
            st = stub.status,
            why = stub.status_reason,
        );
        let _ = writeln!(lib, "phantom_stub_common::functions! {{ status = {}, note = {note:?};", stub.status);
        for e in &funcs {
            let _ = writeln!(lib, "    {}", e.name);
        }
        lib.push_str("}\n");
        if let Some(ov) = &stub.overrides {
            let module = Path::new(ov.module).file_stem().unwrap().to_string_lossy().into_owned();
            let extra: Vec<&str> = implemented
                .iter()
                .map(|i| i.name.as_str())
                .filter(|n| !exports.iter().any(|e| e.name == *n))
                .collect();
            let _ = write!(
                lib,
                "\n// {n} exports are implemented by the hand-written module `{m}` ({path}); {x} of them are not in the\n\
                 // golden list ({extra}).\n\
                 #[path = {path_rel:?}]\nmod {module};\n#[allow(unused_imports)]\nuse {module}::*;\n\n\
                 const NOTE: &str = {note:?};\nconst STATUS: u64 = {st};\n\
                 /// {nsn}: what an export returns when a required pointer argument is NULL.\n\
                 const NULL_ARGUMENT: ::core::num::NonZeroU32 = match ::core::num::NonZeroU32::new({ns}) {{\n    \
                 Some(s) => s,\n    None => panic!(),\n}};\n\n",
                n = implemented.len(),
                m = module,
                path = ov.module,
                path_rel = Path::new(ov.module).strip_prefix("src").unwrap_or(Path::new(ov.module)).display().to_string(),
                x = extra.len(),
                extra = if extra.is_empty() { "none".to_string() } else { extra.join(", ") },
                st = stub.status,
                nsn = ov.null_status_name,
                ns = ov.null_status,
            );
            for i in &implemented {
                lib.push_str(&i.wrapper);
                lib.push('\n');
            }
        }
        if !objects.is_empty() {
            lib.push_str("\nphantom_stub_common::objects! {\n");
            for e in &objects {
                if let Kind::Object(size) = e.kind {
                    let _ = writeln!(lib, "    {}: {size}", e.name);
                }
            }
            lib.push_str("}\n");
        }
        if !versions.is_empty() {
            // In the same module as the definitions, so in the same codegen unit: `.symver` must be assembled in
            // the object that defines the symbol (the ABI test checks every version).
            lib.push_str("\nstd::arch::global_asm!(\n");
            for e in &exports {
                let _ = writeln!(lib, "    \".symver {n}, {n}@@{v}\",", n = e.name, v = e.version);
            }
            lib.push_str(");\n");
        }
        write(&dir.join("src/lib.rs"), &lib)?;
        eprintln!("wrote {} ({} functions, {} data)", dir.display(), funcs.len(), objects.len());
    }

    let mut table = String::from(
        "// @generated by `cargo xtask stubgen` from xtask/src/stubs.rs. Do not edit.\n\n\
         /// A staged stub library: its SONAME (the staged file and the golden list `cuda-sys/abi/<soname>.symbols`),\n\
         /// the link-time name (a symlink to it), and the file cargo builds.\n\
         pub struct Stub {\n    pub soname: &'static str,\n    pub link: &'static str,\n    pub built: &'static str,\n}\n\n\
         pub const STUBS: &[Stub] = &[\n",
    );
    for stub in STUBS {
        let _ = writeln!(
            table,
            "    Stub {{ soname: {:?}, link: {:?}, built: {:?} }},",
            stub.soname,
            stub.link_name(),
            stub.built()
        );
    }
    table.push_str("];\n");
    write(&root.join("tests/src/generated/stubs.rs"), &table)?;
    Ok(())
}
