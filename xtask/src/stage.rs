//! `cargo xtask stage [--debug]`: builds the shim libraries and puts them under NVIDIA's real file names in one
//! directory (`target/phantom/lib/`), the directory that tests and users point `LD_LIBRARY_PATH` at; and the
//! launcher `phantom` in `target/phantom/bin/`.
//!
//! Adding a library is one more row of [`LIBRARIES`]; a program, one more row of [`BINARIES`]. The generated stub
//! libraries (`stubs/<name>/`, table in `xtask/src/stubs.rs`) are staged too, each under its SONAME with the
//! link-time name (`libcublas.so`) as a symlink.

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

const LIBRARIES: &[Library] = &[
    Library {
        package: "libcudart-phantom",
        built: "libcudart_phantom.so",
        soname: "libcudart.so.13",
        links: &["libcudart.so"],
    },
    Library { package: "libnccl-phantom", built: "libnccl_phantom.so", soname: "libnccl.so.2", links: &["libnccl.so"] },
];

/// One staged program.
struct Binary {
    /// Cargo package that builds it; staged only when `<package>/Cargo.toml` exists in the workspace.
    package: &'static str,
    /// Executable cargo writes into `target/<profile>/` (the `[[bin]] name`).
    built: &'static str,
    /// Path under `target/phantom/`.
    staged: &'static str,
}

const BINARIES: &[Binary] = &[Binary { package: "phantom-cli", built: "phantom", staged: "bin/phantom" }];

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
    let built_dir = target_dir().join(profile);

    let stubs: Vec<(String, String, &'static str, &'static str)> =
        crate::stubs::STUBS.iter().map(|s| (s.package(), s.built(), s.soname, s.link_name())).collect();
    build(profile, LIBRARIES.iter().map(|l| l.package).chain(stubs.iter().map(|s| s.0.as_str())))?;
    let dir = stage_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for lib in LIBRARIES {
        stage_one(lib.package, lib.built, lib.soname, lib.links, &built_dir, &dir)?;
    }
    for (package, built, soname, link) in &stubs {
        stage_one(package, built, soname, &[link], &built_dir, &dir)?;
    }
    // Which build the copies came from: the tests warn when that build is newer than the staged copy.
    let marker = dir.join(".phantom-stage");
    std::fs::write(&marker, format!("profile={profile}\n"))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;

    // Programs after the libraries, in a build of their own: a program that does not build yet leaves the
    // libraries staged (and the command failing).
    let binaries: Vec<&Binary> =
        BINARIES.iter().filter(|b| workspace_root().join(b.package).join("Cargo.toml").is_file()).collect();
    if !binaries.is_empty() {
        build(profile, binaries.iter().map(|b| b.package))?;
        for bin in binaries {
            let dest = target_dir().join("phantom").join(bin.staged);
            copy_atomically(&built_dir.join(bin.built), &dest, bin.package)?;
        }
    }
    println!("{}", dir.display());
    Ok(())
}

/// `cargo build [--release] -p <package>...`.
fn build<'a>(profile: &str, packages: impl Iterator<Item = &'a str>) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace_root()).arg("build");
    if profile == "release" {
        build.arg("--release");
    }
    let packages: Vec<&str> = packages.collect();
    for package in &packages {
        build.args(["-p", package]);
    }
    let status = build.status().map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build ({profile}) of {} failed ({status})", packages.join(", ")));
    }
    Ok(())
}

/// Copies `src` to `dest` through a temporary name and a rename, so a program that has the old file mapped (or
/// is running it) keeps a consistent file: never overwrite a loaded shared object or executable in place.
fn copy_atomically(src: &Path, dest: &Path, package: &str) -> Result<()> {
    if !src.is_file() {
        return Err(format!("{} was not built (package {package})", src.display()));
    }
    let dir = dest.parent().expect("staged paths have a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", dest.file_name().unwrap().to_string_lossy()));
    std::fs::copy(src, &tmp).map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), tmp.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), dest.display()))?;
    eprintln!("staged {} as {}", src.display(), dest.display());
    Ok(())
}

fn stage_one(package: &str, built: &str, soname: &str, links: &[&str], built_dir: &Path, dir: &Path) -> Result<()> {
    copy_atomically(&built_dir.join(built), &dir.join(soname), package)?;
    for link in links {
        let path = dir.join(link);
        if std::fs::read_link(&path).is_ok_and(|t| t == Path::new(soname)) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace {}: {e}", path.display())),
        }
        std::os::unix::fs::symlink(soname, &path)
            .map_err(|e| format!("cannot link {} -> {}: {e}", path.display(), soname))?;
    }
    Ok(())
}
