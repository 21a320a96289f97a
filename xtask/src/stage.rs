//! `cargo xtask stage [--debug]`: builds the shim libraries and puts them under NVIDIA's real file names in one
//! directory (`target/phantom/lib/`), the directory that tests and users point `LD_LIBRARY_PATH` at.
//!
//! Adding a library (`libnccl.so.2`, `libcuda.so.1`, …) is one more row of [`LIBRARIES`].

use crate::{workspace_root, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One staged library.
struct Library {
    /// Cargo package that builds it.
    package: &'static str,
    /// File cargo writes into `target/<profile>/` (from the `[lib] name` of the package).
    built: &'static str,
    /// The real library's SONAME: the staged copy gets this file name.
    soname: &'static str,
    /// Further names (symlinks to `soname`), e.g. the unversioned link-time name.
    links: &'static [&'static str],
}

const LIBRARIES: &[Library] = &[Library {
    package: "libcudart-phantom",
    built: "libcudart_phantom.so",
    soname: "libcudart.so.13",
    links: &["libcudart.so"],
}];

/// `CARGO_TARGET_DIR` if set, else the workspace's `target/` (the tests' helpers use the same rule).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Where the libraries are staged.
pub fn stage_dir() -> PathBuf {
    target_dir().join("phantom/lib")
}

pub fn run(args: &[String]) -> Result<()> {
    let mut debug = false;
    for arg in args {
        match arg.as_str() {
            "--debug" => debug = true,
            "--release" => debug = false,
            other => return Err(format!("stage: unknown argument `{other}` (usage: cargo xtask stage [--debug])")),
        }
    }
    let profile = if debug { "debug" } else { "release" };

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace_root()).arg("build");
    if !debug {
        build.arg("--release");
    }
    for lib in LIBRARIES {
        build.args(["-p", lib.package]);
    }
    let status = build.status().map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build ({profile}) failed ({status})"));
    }

    let dir = stage_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let built_dir = target_dir().join(profile);
    for lib in LIBRARIES {
        stage_one(lib, &built_dir, &dir)?;
    }
    // Which build the copies came from: the tests warn when that build is newer than the staged copy.
    let marker = dir.join(".phantom-stage");
    std::fs::write(&marker, format!("profile={profile}\n"))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    println!("{}", dir.display());
    Ok(())
}

fn stage_one(lib: &Library, built_dir: &Path, dir: &Path) -> Result<()> {
    let src = built_dir.join(lib.built);
    if !src.is_file() {
        return Err(format!("{} was not built (package {})", src.display(), lib.package));
    }
    // Copy to a temporary name and rename over the old file, so a program that has the old copy mapped keeps
    // a consistent file (never overwrite a loaded shared object in place).
    let dest = dir.join(lib.soname);
    let tmp = dir.join(format!(".{}.tmp", lib.soname));
    std::fs::copy(&src, &tmp).map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), tmp.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), dest.display()))?;
    for link in lib.links {
        let path = dir.join(link);
        if std::fs::read_link(&path).is_ok_and(|t| t == Path::new(lib.soname)) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace {}: {e}", path.display())),
        }
        std::os::unix::fs::symlink(lib.soname, &path)
            .map_err(|e| format!("cannot link {} -> {}: {e}", path.display(), lib.soname))?;
    }
    eprintln!("staged {} as {}", src.display(), dest.display());
    Ok(())
}
