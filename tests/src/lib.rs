//! Helpers for Phantom's end-to-end tests (the tests themselves are in `tests/tests/e2e/`).
//!
//! The tests run against the libraries *as users get them*: staged under their real file names by
//! `cargo xtask stage` (`target/phantom/lib/`, or `PHANTOM_LIB_DIR`), loaded by programs compiled with NVIDIA's
//! own headers and nvcc (`.deps/cuda/nvidia/cu13`, installed by `scripts/install-deps.sh`) and linked against
//! the real library's name. See docs/testing.md.

pub mod call_all;
/// The generated stub libraries (`cargo xtask stubgen`): what `cargo xtask stage` puts in the staged directory.
#[path = "generated/stubs.rs"]
pub mod stubs;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a test program may run before it is killed and the test fails.
pub const PROGRAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The staged libraries, with the build file each is a copy of (the staleness check reads this table).
pub const STAGED: &[(&str, &str)] =
    &[("libcudart.so.13", "libcudart_phantom.so"), ("libnccl.so.2", "libnccl_phantom.so")];

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

/// `CARGO_TARGET_DIR` if set, else the workspace's `target/` (the same rule as `cargo xtask stage`).
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

/// The directory of staged libraries: `PHANTOM_LIB_DIR`, else `target/phantom/lib`. Panics with the command
/// to run when it holds no `libcudart.so.13`.
pub fn lib_dir() -> PathBuf {
    let dir = match std::env::var_os("PHANTOM_LIB_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("phantom/lib"),
    };
    if !dir.join("libcudart.so.13").is_file() {
        panic!(
            "no staged Phantom libraries in {}: run `cargo xtask stage` first (or set PHANTOM_LIB_DIR)",
            dir.display()
        );
    }
    warn_if_stale(&dir);
    dir
}

/// Warns (does not fail) when a staged library is older than the build it was staged from: after editing the
/// shim, `cargo test` rebuilds it but only `cargo xtask stage` updates the staged copy.
fn warn_if_stale(dir: &Path) {
    let Ok(profile) = std::fs::read_to_string(dir.join(".phantom-stage")) else { return };
    let Some(profile) = profile.lines().find_map(|l| l.strip_prefix("profile=")) else { return };
    let stubs = stubs::STUBS.iter().map(|s| (s.soname, s.built));
    for (staged, built) in STAGED.iter().copied().chain(stubs) {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(s), Some(b)) = (mtime(&dir.join(staged)), mtime(&target_dir().join(profile).join(built))) {
            if b > s {
                eprintln!(
                    "warning: {staged} in {} is older than target/{profile}/{built}: run `cargo xtask stage`",
                    dir.display()
                );
            }
        }
    }
}

/// NVIDIA's CUDA 13 wheels (headers, real `libcudart.so.13`, nvcc). Panics with the command to run when absent.
pub fn cuda_dir() -> PathBuf {
    let dir = workspace_root().join(".deps/cuda/nvidia/cu13");
    for needed in ["bin/nvcc", "include/cuda_runtime_api.h", "lib/libcudart.so"] {
        if !dir.join(needed).exists() {
            panic!("{} is missing: run `bash scripts/install-deps.sh` first", dir.join(needed).display());
        }
    }
    dir
}

/// Path of NVIDIA's real `libcudart.so.13` (from the wheel).
pub fn nvidia_cudart() -> PathBuf {
    cuda_dir().join("lib/libcudart.so.13")
}

/// NVIDIA's NCCL wheel (`include/nccl.h`, the real `lib/libnccl.so.2`). Panics with the command to run when
/// absent.
pub fn nccl_dir() -> PathBuf {
    let dir = workspace_root().join(".deps/cuda/nvidia/nccl");
    for needed in ["include/nccl.h", "lib/libnccl.so.2"] {
        if !dir.join(needed).exists() {
            panic!("{} is missing: run `bash scripts/install-deps.sh` first", dir.join(needed).display());
        }
    }
    dir
}

/// Path of NVIDIA's real `libnccl.so.2` (from the wheel).
pub fn nvidia_nccl() -> PathBuf {
    nccl_dir().join("lib/libnccl.so.2")
}

/// Compiles `tests/programs/<name>` (or `<name>` relative to the workspace root when it contains a `/`; `.cu`
/// with nvcc, `.c` with `cc`) against NVIDIA's headers, linked against
/// `libcudart.so` (and `libnccl.so` when the source includes `nccl.h`) by name, and returns the executable.
/// Results are cached in `target/phantom/test-bin` by a hash of the source, the compiler command and the pinned
/// wheel versions.
pub fn compile(name: &str) -> PathBuf {
    let src = if name.contains('/') {
        workspace_root().join(name)
    } else {
        workspace_root().join("tests/programs").join(name)
    };
    let source = std::fs::read(&src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let cuda = cuda_dir();
    let (compiler, mut flags): (PathBuf, Vec<String>) = match src.extension().and_then(|e| e.to_str()) {
        Some("cu") => (cuda.join("bin/nvcc"), ["-cudart", "shared", "-arch=sm_90", "-O2"].map(String::from).to_vec()),
        Some("c") => {
            (PathBuf::from("cc"), vec!["-O2".into(), "-Wall".into(), format!("-I{}", cuda.join("include").display())])
        }
        _ => panic!("{name}: test programs are .cu or .c files"),
    };
    let mut libs = vec![format!("-L{}", cuda.join("lib").display()), "-lcudart".to_string()];
    // A program that includes nccl.h is also compiled against NVIDIA's NCCL headers and linked with -lnccl.
    if String::from_utf8_lossy(&source).contains("nccl.h>") {
        let nccl = nccl_dir();
        flags.push(format!("-I{}", nccl.join("include").display()));
        libs.extend([format!("-L{}", nccl.join("lib").display()), "-lnccl".to_string()]);
    }

    // A program that includes cuda.h (the driver API) is linked with -lcuda against the staged libcuda.so (NVIDIA's
    // driver library is not in the wheels).
    if String::from_utf8_lossy(&source).contains("<cuda.h>") {
        libs.extend([format!("-L{}", lib_dir().display()), "-lcuda".to_string()]);
    }

    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    compiler.hash(&mut hasher);
    flags.hash(&mut hasher);
    libs.hash(&mut hasher);
    std::fs::read(workspace_root().join("scripts/cuda-wheels.txt")).unwrap_or_default().hash(&mut hasher);
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = target_dir().join("phantom/test-bin");
    let exe = dir.join(format!("{stem}-{:016x}", hasher.finish()));
    if exe.is_file() {
        return exe;
    }

    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // Build under a unique name and rename: tests (and test binaries) compiling the same program concurrently
    // never see a half-written executable.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".{stem}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = Command::new(&compiler);
    cmd.args(&flags).arg("-o").arg(&tmp).arg(&src).args(&libs).current_dir(&dir);
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    if !out.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        panic!("compiling {name} with {} failed:\n{}", compiler.display(), out.describe());
    }
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", exe.display()));
    exe
}

/// Compiles the C file `tests/programs/<name>` (or `<name>` relative to the workspace root when it contains a
/// `/`) into a shared library with `cc -shared -fPIC -O2`, against NVIDIA's headers (so a stand-in for one of
/// NVIDIA's libraries is checked against its declarations), and returns its path:
/// `target/phantom/test-bin/lib<stem>-<hash>.so`, cached like [`compile`]'s executables by a hash of the
/// source, the compiler command and the pinned wheel versions. Nothing is linked by name: the test hands the
/// library's path to whoever loads it.
pub fn compile_shared(name: &str) -> PathBuf {
    let src = if name.contains('/') {
        workspace_root().join(name)
    } else {
        workspace_root().join("tests/programs").join(name)
    };
    if src.extension().and_then(|e| e.to_str()) != Some("c") {
        panic!("{name}: shared test libraries are .c files");
    }
    let source = std::fs::read(&src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let compiler = PathBuf::from("cc");
    let flags: Vec<String> = vec![
        "-shared".into(),
        "-fPIC".into(),
        "-O2".into(),
        "-Wall".into(),
        "-pthread".into(),
        format!("-I{}", cuda_dir().join("include").display()),
    ];

    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    compiler.hash(&mut hasher);
    flags.hash(&mut hasher);
    std::fs::read(workspace_root().join("scripts/cuda-wheels.txt")).unwrap_or_default().hash(&mut hasher);
    let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = target_dir().join("phantom/test-bin");
    let lib = dir.join(format!("lib{stem}-{:016x}.so", hasher.finish()));
    if lib.is_file() {
        return lib;
    }

    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // Built under a unique name and renamed, as in `compile`: concurrent builders never see half a library.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".lib{stem}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = Command::new(&compiler);
    cmd.args(&flags).arg("-o").arg(&tmp).arg(&src).current_dir(&dir);
    let out = run_with_timeout(cmd, Duration::from_secs(300));
    if !out.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        panic!("compiling {name} into a shared library with {} failed:\n{}", compiler.display(), out.describe());
    }
    std::fs::rename(&tmp, &lib).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", lib.display()));
    lib
}

/// What a program did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `None` if it was killed by a signal or timed out.
    pub code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    /// It ran past the timeout and was killed.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Exit status and both streams, for assertion messages.
    pub fn describe(&self) -> String {
        let status = if self.timed_out {
            format!("killed after the {} s timeout", PROGRAM_TIMEOUT.as_secs())
        } else if let Some(sig) = self.signal {
            format!("killed by signal {sig}")
        } else {
            format!("exit code {:?}", self.code)
        };
        format!("{status}\n--- stdout ---\n{}\n--- stderr ---\n{}", tail(&self.stdout), tail(&self.stderr))
    }

    /// Asserts exit code 0 and an empty stderr (Phantom never writes to stderr unless asked to log).
    pub fn assert_clean_success(&self) {
        assert!(self.success(), "program failed: {}", self.describe());
        assert!(self.stderr.is_empty(), "program wrote to stderr: {}", self.describe());
    }

    /// `key=value` lines of stdout.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// The value of `key=value` in stdout; panics (with the output) when absent.
    pub fn value(&self, key: &str) -> String {
        self.values().remove(key).unwrap_or_else(|| panic!("no `{key}=` line in stdout: {}", self.describe()))
    }
}

fn tail(s: &str) -> &str {
    const MAX: usize = 16 * 1024;
    if s.len() <= MAX {
        return s;
    }
    let mut start = s.len() - MAX;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs `exe` against the staged libraries: `LD_LIBRARY_PATH=<lib_dir>`, `PHANTOM_HOST_TIME=deterministic`,
/// killed after [`PROGRAM_TIMEOUT`].
pub fn run_program(exe: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    phantom_env(&mut cmd);
    run_with_timeout(cmd, PROGRAM_TIMEOUT)
}

/// The staged `phantom` launcher (beside the staged libraries: `target/phantom/bin/phantom`).
pub fn phantom_bin() -> PathBuf {
    lib_dir().parent().expect("target/phantom").join("bin/phantom")
}

/// `phantom run -n <ranks> --cluster dgx-h100 --host-time <host_time> --profile` in `dir`, the executing rank on
/// the driver at `driver` (a stand-in such as tests/programs/fake_cuda_driver.c), with none of the caller's
/// profiling or table variables. The caller adds its own options, then `--` and the program.
pub fn phantom_run_profiled(dir: &Path, driver: &Path, ranks: u32, host_time: &str) -> Command {
    let mut cmd = Command::new(phantom_bin());
    cmd.current_dir(dir)
        .env_remove("NVTX_INJECTION64_PATH")
        .env_remove("PHANTOM_KERNEL_TABLE")
        .env_remove("PHANTOM_PROFILE")
        .env_remove("PHANTOM_PROFILE_TABLE")
        .env("PHANTOM_REAL_DRIVER", driver)
        .args(["run", "-n", &ranks.to_string(), "--cluster", "dgx-h100", "--host-time", host_time, "--profile"]);
    cmd
}

/// Sets the environment every program under test runs with.
pub fn phantom_env(cmd: &mut Command) {
    cmd.env("LD_LIBRARY_PATH", lib_dir()).env("PHANTOM_HOST_TIME", "deterministic");
}

/// Runs `cmd` with stdin closed and stdout/stderr captured; kills its whole process group after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
        rx
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));

    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                timed_out = true;
                // The child is not reaped yet, so its pid (= its process group) is still ours to signal.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                break child.wait().expect("wait for killed child");
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    // A leftover grandchild could keep a pipe open: wait a bounded time for the readers.
    let collect = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| "<output not closed: a child process lingers>".into())
    };
    Output { code: status.code(), signal: status.signal(), timed_out, stdout: collect(stdout), stderr: collect(stderr) }
}

/// A defined dynamic symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Symbol {
    pub name: String,
    /// Version node; empty when unversioned.
    pub version: String,
    /// `name@@version` (the default version) rather than a hidden `name@version`.
    pub default_version: bool,
}

/// The defined dynamic symbols of a shared library, from `nm -D --defined-only --with-symbol-versions`
/// (version-node symbols left out).
pub fn dynamic_symbols(lib: &Path) -> Vec<Symbol> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--with-symbol-versions"])
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils): {e}"));
    assert!(out.status.success(), "nm {} failed: {}", lib.display(), String::from_utf8_lossy(&out.stderr));
    let mut symbols = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(_addr), Some(kind), Some(sym)) = (fields.next(), fields.next(), fields.next()) else { continue };
        if kind == "A" {
            continue;
        }
        let symbol = match sym.split_once('@') {
            Some((n, v)) => Symbol {
                name: n.to_string(),
                version: v.trim_start_matches('@').to_string(),
                default_version: v.starts_with('@'),
            },
            None => Symbol { name: sym.to_string(), version: String::new(), default_version: false },
        };
        symbols.push(symbol);
    }
    symbols.sort();
    symbols.dedup();
    symbols
}

/// The SONAME of a shared library, from `readelf -d`.
pub fn soname(lib: &Path) -> Option<String> {
    let out = Command::new("readelf")
        .args(["-d", "-W"])
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("cannot run readelf (binutils): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("(SONAME)"))?;
    let start = line.find('[')? + 1;
    let end = line.rfind(']')?;
    Some(line[start..end].to_string())
}

/// The committed golden export list of NVIDIA's `libcudart.so.13`: (name, version) in file order.
pub fn golden_cudart() -> Vec<(String, String)> {
    golden("libcudart.so.13")
}

/// The committed golden export list of NVIDIA's `libnccl.so.2`: (name, "") in file order (NCCL is unversioned).
pub fn golden_nccl() -> Vec<(String, String)> {
    golden("libnccl.so.2")
}

/// The committed golden export list `cuda-sys/abi/<soname>.symbols`: (name, version) in file order; the version
/// is empty for unversioned exports.
pub fn golden(soname: &str) -> Vec<(String, String)> {
    let path = workspace_root().join(format!("cuda-sys/abi/{soname}.symbols"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, version) = l.split_once('\t').unwrap_or((l, ""));
            (name.to_string(), version.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn captures_streams_and_exit_code() {
        let out = run_with_timeout(sh("echo a=1; echo oops >&2; exit 3"), PROGRAM_TIMEOUT);
        assert_eq!((out.code, out.signal, out.timed_out), (Some(3), None, false));
        assert_eq!(out.stdout, "a=1\n");
        assert_eq!(out.stderr, "oops\n");
        assert_eq!(out.value("a"), "1");
    }

    #[test]
    fn reports_a_crash_as_a_signal() {
        let out = run_with_timeout(sh("kill -SEGV $$"), PROGRAM_TIMEOUT);
        assert_eq!((out.code, out.signal), (None, Some(libc::SIGSEGV)));
        assert!(!out.success());
    }

    #[test]
    fn kills_a_hanging_program_and_its_children() {
        // `sleep` runs as a grandchild holding the pipes: the whole process group must go.
        let out = run_with_timeout(sh("sleep 600 & wait"), Duration::from_millis(200));
        assert!(out.timed_out);
        assert_eq!(out.signal, Some(libc::SIGKILL));
        assert!(!out.success());
    }
}
