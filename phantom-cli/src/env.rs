//! Where ranks go and the environment each process is given: pure functions of the run's settings.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// How `-n` ranks are placed: rank `r` is on node `r / per_node`, local rank `r % per_node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of ranks (WORLD_SIZE).
    pub world: u32,
    /// Ranks per node (LOCAL_WORLD_SIZE).
    pub per_node: u32,
}

impl Layout {
    pub fn node_of(&self, rank: u32) -> u32 {
        rank / self.per_node
    }

    pub fn local_rank(&self, rank: u32) -> u32 {
        rank % self.per_node
    }

    /// Nodes that hold at least one rank.
    pub fn nodes_needed(&self) -> u32 {
        self.world.div_ceil(self.per_node)
    }
}

/// The number of simulated nodes. `explicit` (from `--nodes` or `PHANTOM_NODES`) must hold every rank;
/// otherwise the cluster's own node count, raised to what the ranks need.
pub fn resolve_nodes(layout: Option<Layout>, explicit: Option<u32>, cluster_nodes: u32) -> Result<u32, String> {
    let needed = layout.map_or(1, |l| l.nodes_needed());
    match explicit {
        Some(n) if n < needed => {
            let l = layout.expect("more than one node needed only with a layout");
            Err(format!(
                "{} ranks at {} per node need {needed} nodes, but nodes is {n} (raise --nodes or --nproc-per-node)",
                l.world, l.per_node
            ))
        }
        Some(n) => Ok(n),
        None => Ok(cluster_nodes.max(needed)),
    }
}

/// What every process of a run is told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunEnv {
    /// The simulator's address (`PHANTOM_SIM`).
    pub sim_address: String,
    /// `PHANTOM_CLUSTER`, `PHANTOM_NODES`, `PHANTOM_HOST_TIME`, `PHANTOM_KERNEL_TABLE` as the launcher resolved them.
    pub phantom: Vec<(String, String)>,
    /// Directory with Phantom's libraries, prepended to `LD_LIBRARY_PATH`; `None` leaves it alone.
    pub lib_dir: Option<PathBuf>,
    /// The launcher's own `LD_LIBRARY_PATH`.
    pub ld_library_path: Option<OsString>,
    /// Libraries to put first in `LD_PRELOAD`: every Phantom library of `lib_dir` ([`preload_libraries`]).
    pub preload: Vec<PathBuf>,
    /// The launcher's own `LD_PRELOAD`.
    pub ld_preload: Option<OsString>,
    /// `NVTX_INJECTION64_PATH` to set ([`nvtx_injection`]); `None` leaves the launcher's own in force.
    pub nvtx_injection: Option<OsString>,
    pub master_addr: String,
    pub master_port: u16,
    /// Where ranks write their trace files (`PHANTOM_TRACE_DIR`; `phantom run --trace`).
    pub trace_dir: Option<PathBuf>,
    /// Where each process writes its statistics file at exit (`PHANTOM_STATS_DIR`; every `phantom run`).
    pub stats_dir: Option<PathBuf>,
    /// `phantom run --profile`: which ranks execute, and where they write their tables.
    pub profile: Option<ProfileEnv>,
    /// `OMP_NUM_THREADS` is set in the launcher's environment (then ranks keep it; otherwise, like torchrun,
    /// several ranks per node get 1).
    pub omp_num_threads_set: bool,
}

/// What `phantom run --profile` tells the ranks (docs/launcher.md, "Profiling").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileEnv {
    /// The ranks that run their GPU work on the real GPU (`PHANTOM_PROFILE=execute`); the others follow.
    pub executing: Vec<u32>,
    /// The run's directory, where executing rank r writes `profile-rank<r>.table` (`PHANTOM_PROFILE_TABLE`).
    pub dir: PathBuf,
    /// The library directory of executing ranks: Phantom's libraries without its `libcuda.so.1`
    /// ([`executing_lib_dir`]); `None` when there is no library directory.
    pub exec_lib_dir: Option<PathBuf>,
}

/// Whether `name` is one of Phantom's stubs that an executing rank must not have: the driver (`libcuda.so*`) and
/// the compilers NVIDIA's libraries use at run time (`libnvrtc.so*`, `libnvJitLink.so*`: cuDNN compiles some of
/// its attention kernels when they are first needed).
fn replaced_when_executing(name: &str) -> bool {
    ["libcuda.so", "libnvrtc.so", "libnvrtc-builtins.so", "libnvJitLink.so"]
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}.")))
}

/// The library directory of an executing rank (profiling mode): `<dir>/exec-lib`, holding a symbolic link to
/// every file of Phantom's `lib_dir` except the stubs of [`replaced_when_executing`]. An executing rank uses
/// NVIDIA's real cuBLASLt and cuDNN, which load the driver and NVRTC by name; those names must find NVIDIA's
/// libraries, not Phantom's stubs, so the stubs are neither preloaded nor on the rank's `LD_LIBRARY_PATH`
/// (docs/profiling.md).
pub fn executing_lib_dir(lib_dir: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let out = dir.join("exec-lib");
    std::fs::create_dir_all(&out)?;
    for e in std::fs::read_dir(lib_dir)?.flatten() {
        let name = e.file_name();
        if name.to_str().is_some_and(replaced_when_executing) {
            continue;
        }
        let link = out.join(&name);
        if !link.exists() {
            std::os::unix::fs::symlink(e.path(), &link)?;
        }
    }
    Ok(out)
}

/// The libraries `phantom run` preloads into every process it starts: each SONAME file of Phantom's library
/// directory (`libcudart.so.13`, `libnccl.so.2`, `libcuda.so.1`, `libcublas.so.13`, ...; not the unversioned
/// link names), `libcudart.so.13` first, the rest sorted.
///
/// Why preload: a stock PyTorch finds NVIDIA's libraries through RPATHs and loads some by absolute path, so
/// `LD_LIBRARY_PATH` alone does not put Phantom's in place; and Python reaches `clock_gettime` before torch
/// loads libcudart, so the interposed clocks must be in the global scope from the start. A preloaded library
/// owns its SONAME: every later `DT_NEEDED` on that name binds to it. A process that never uses CUDA (a shell,
/// `mpirun`, torchrun's agent) is unaffected: Phantom's clocks stay real until a process first uses CUDA.
pub fn preload_libraries(lib_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib_dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("lib") && n.contains(".so.") && !n.ends_with(".so"))
        .collect();
    names.sort_by_key(|n| (n != "libcudart.so.13", n.clone()));
    names.into_iter().map(|n| lib_dir.join(n)).collect()
}

fn join_paths(first: &[PathBuf], rest: Option<&OsString>, sep: &str) -> Option<OsString> {
    let mut out = OsString::new();
    for p in first {
        if !out.is_empty() {
            out.push(sep);
        }
        out.push(p);
    }
    if let Some(r) = rest.filter(|r| !r.is_empty()) {
        if !out.is_empty() {
            out.push(sep);
        }
        out.push(r);
    }
    (!out.is_empty()).then_some(out)
}

/// The variable NVTX reads to find its injection library (docs/trace.md, "NVTX ranges").
pub const NVTX_INJECTION_ENV: &str = "NVTX_INJECTION64_PATH";

/// `NVTX_INJECTION64_PATH` for the processes: Phantom's `libcudart.so.13` in `lib_dir`, whose
/// `InitializeInjectionNvtx2` records the program's NVTX ranges in simulated time (the library is also
/// preloaded, so NVTX's `dlopen` of it returns the copy already loaded). `None` when there is no library
/// directory, or when the launcher's environment names an injection of its own (`user`, non-empty): that
/// one is inherited and stays in force.
pub fn nvtx_injection(lib_dir: Option<&Path>, user: Option<&OsStr>) -> Option<OsString> {
    if user.is_some_and(|u| !u.is_empty()) {
        return None;
    }
    lib_dir.map(|d| d.join("libcudart.so.13").into_os_string())
}

/// Variables every process gets, with or without `-n`.
pub fn process_env(run: &RunEnv) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = vec![("PHANTOM_SIM".into(), run.sim_address.clone().into())];
    env.extend(run.phantom.iter().map(|(k, v)| (k.clone(), v.into())));
    if let Some(dir) = &run.trace_dir {
        env.push((crate::trace::TRACE_DIR_ENV.into(), dir.into()));
    }
    if let Some(dir) = &run.stats_dir {
        env.push((crate::stats::STATS_DIR_ENV.into(), dir.into()));
    }
    if let Some(dir) = &run.lib_dir {
        let v = join_paths(std::slice::from_ref(dir), run.ld_library_path.as_ref(), ":").expect("non-empty");
        env.push(("LD_LIBRARY_PATH".into(), v));
    }
    if !run.preload.is_empty() {
        // ld.so accepts spaces or colons in LD_PRELOAD.
        let v = join_paths(&run.preload, run.ld_preload.as_ref(), ":").expect("non-empty");
        env.push(("LD_PRELOAD".into(), v));
    }
    if let Some(v) = &run.nvtx_injection {
        env.push((NVTX_INJECTION_ENV.into(), v.clone()));
    }
    env
}

/// Variables for rank `rank` of `layout` (torchrun's set, plus the simulated node): [`process_env`] and
/// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, GROUP_WORLD_SIZE, ROLE_*, MASTER_ADDR/PORT,
/// TORCHELASTIC_*, PHANTOM_NODE; with `--profile`, PHANTOM_PROFILE and (executing ranks) PHANTOM_PROFILE_TABLE.
pub fn rank_env(run: &RunEnv, layout: Layout, rank: u32) -> Vec<(String, OsString)> {
    let executing = run.profile.as_ref().filter(|p| p.executing.contains(&rank));
    let mut env = match executing.and_then(|p| p.exec_lib_dir.as_ref()) {
        // An executing rank sees Phantom's libraries without the driver stub.
        Some(dir) => {
            let mut r = run.clone();
            r.lib_dir = Some(dir.clone());
            r.preload = preload_libraries(dir);
            if r.nvtx_injection.is_some() {
                r.nvtx_injection = Some(dir.join("libcudart.so.13").into_os_string());
            }
            process_env(&r)
        }
        None => process_env(run),
    };
    let node = layout.node_of(rank);
    let vars: [(&str, String); 15] = [
        ("RANK", rank.to_string()),
        ("WORLD_SIZE", layout.world.to_string()),
        ("LOCAL_RANK", layout.local_rank(rank).to_string()),
        ("LOCAL_WORLD_SIZE", layout.per_node.to_string()),
        ("GROUP_RANK", node.to_string()),
        ("GROUP_WORLD_SIZE", layout.nodes_needed().to_string()),
        ("ROLE_NAME", "default".into()),
        ("ROLE_RANK", rank.to_string()),
        ("ROLE_WORLD_SIZE", layout.world.to_string()),
        ("MASTER_ADDR", run.master_addr.clone()),
        ("MASTER_PORT", run.master_port.to_string()),
        ("TORCHELASTIC_RUN_ID", "phantom".into()),
        ("TORCHELASTIC_RESTART_COUNT", "0".into()),
        ("TORCHELASTIC_MAX_RESTARTS", "0".into()),
        ("PHANTOM_NODE", node.to_string()),
    ];
    env.extend(vars.into_iter().map(|(k, v)| (k.to_string(), v.into())));
    if layout.per_node > 1 && !run.omp_num_threads_set {
        env.push(("OMP_NUM_THREADS".into(), "1".into()));
    }
    if let Some(p) = &run.profile {
        use crate::profile::{rank_table, PROFILE_ENV, PROFILE_TABLE_ENV};
        if p.executing.contains(&rank) {
            env.push((PROFILE_ENV.into(), "execute".into()));
            env.push((PROFILE_TABLE_ENV.into(), rank_table(&p.dir, rank).into()));
        } else {
            env.push((PROFILE_ENV.into(), "follow".into()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run_env() -> RunEnv {
        RunEnv {
            sim_address: "unix:/tmp/phantom-x/sim.sock".into(),
            phantom: vec![("PHANTOM_CLUSTER".into(), "dgx-h100".into()), ("PHANTOM_NODES".into(), "4".into())],
            lib_dir: Some("/opt/phantom/lib".into()),
            ld_library_path: Some("/usr/local/lib".into()),
            master_addr: "127.0.0.1".into(),
            master_port: 29511,
            ..RunEnv::default()
        }
    }

    fn map(env: Vec<(String, OsString)>) -> BTreeMap<String, String> {
        let n = env.len();
        let m: BTreeMap<_, _> = env.into_iter().map(|(k, v)| (k, v.into_string().unwrap())).collect();
        assert_eq!(m.len(), n, "a variable is set twice");
        m
    }

    #[test]
    fn rank_13_of_32_at_8_per_node() {
        let layout = Layout { world: 32, per_node: 8 };
        let env = map(rank_env(&run_env(), layout, 13));
        let want = [
            ("RANK", "13"),
            ("WORLD_SIZE", "32"),
            ("LOCAL_RANK", "5"),
            ("LOCAL_WORLD_SIZE", "8"),
            ("GROUP_RANK", "1"),
            ("GROUP_WORLD_SIZE", "4"),
            ("ROLE_RANK", "13"),
            ("ROLE_WORLD_SIZE", "32"),
            ("PHANTOM_NODE", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29511"),
            ("PHANTOM_SIM", "unix:/tmp/phantom-x/sim.sock"),
            ("PHANTOM_CLUSTER", "dgx-h100"),
            ("PHANTOM_NODES", "4"),
            ("LD_LIBRARY_PATH", "/opt/phantom/lib:/usr/local/lib"),
            ("OMP_NUM_THREADS", "1"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!env.contains_key("LD_PRELOAD"));
    }

    #[test]
    fn last_rank_and_uneven_layout() {
        let layout = Layout { world: 10, per_node: 4 };
        assert_eq!(layout.nodes_needed(), 3);
        let env = map(rank_env(&run_env(), layout, 9));
        assert_eq!(env["LOCAL_RANK"], "1");
        assert_eq!(env["GROUP_RANK"], "2");
        assert_eq!(env["PHANTOM_NODE"], "2");
        assert_eq!(env["GROUP_WORLD_SIZE"], "3");
    }

    #[test]
    fn process_env_without_ranks_sets_no_rank_variables() {
        let env = map(process_env(&run_env()));
        assert_eq!(env["PHANTOM_SIM"], "unix:/tmp/phantom-x/sim.sock");
        for k in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "PHANTOM_NODE", "OMP_NUM_THREADS", "PHANTOM_TRACE_DIR"] {
            assert!(!env.contains_key(k), "{k}");
        }
        let r = RunEnv { trace_dir: Some("/tmp/phantom-trace-x".into()), ..run_env() };
        assert_eq!(map(process_env(&r))["PHANTOM_TRACE_DIR"], "/tmp/phantom-trace-x");
    }

    #[test]
    fn every_process_gets_the_statistics_directory() {
        assert!(!map(process_env(&run_env())).contains_key("PHANTOM_STATS_DIR"));
        let r = RunEnv { stats_dir: Some("/tmp/phantom-stats-x".into()), ..run_env() };
        assert_eq!(map(process_env(&r))["PHANTOM_STATS_DIR"], "/tmp/phantom-stats-x");
        assert_eq!(map(rank_env(&r, Layout { world: 2, per_node: 8 }, 1))["PHANTOM_STATS_DIR"], "/tmp/phantom-stats-x");
    }

    #[test]
    fn profile_executing_and_following_ranks() {
        let layout = Layout { world: 8, per_node: 8 };
        let plain = map(rank_env(&run_env(), layout, 0));
        assert!(!plain.contains_key("PHANTOM_PROFILE") && !plain.contains_key("PHANTOM_PROFILE_TABLE"));
        let r = RunEnv {
            profile: Some(ProfileEnv { executing: vec![0, 5], dir: "/tmp/phantom-stats-x".into(), exec_lib_dir: None }),
            ..run_env()
        };
        for rank in [0, 5] {
            let env = map(rank_env(&r, layout, rank));
            assert_eq!(env["PHANTOM_PROFILE"], "execute", "rank {rank}");
            assert_eq!(env["PHANTOM_PROFILE_TABLE"], format!("/tmp/phantom-stats-x/profile-rank{rank}.table"));
        }
        for rank in [1, 4, 7] {
            let env = map(rank_env(&r, layout, rank));
            assert_eq!(env["PHANTOM_PROFILE"], "follow", "rank {rank}");
            assert!(!env.contains_key("PHANTOM_PROFILE_TABLE"), "rank {rank}");
        }
    }

    #[test]
    fn executing_ranks_see_no_driver_stub() {
        let lib = tempfile::tempdir().unwrap();
        for n in ["libcudart.so.13", "libcuda.so.1", "libcuda.so", "libnccl.so.2", "libcublasLt.so.13", "libnvrtc.so.13", "libnvJitLink.so.13"] {
            std::fs::write(lib.path().join(n), b"").unwrap();
        }
        let run_dir = tempfile::tempdir().unwrap();
        let exec = executing_lib_dir(lib.path(), run_dir.path()).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&exec).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["libcublasLt.so.13", "libcudart.so.13", "libnccl.so.2"]);
        assert_eq!(std::fs::read_link(exec.join("libnccl.so.2")).unwrap(), lib.path().join("libnccl.so.2"));

        let r = RunEnv {
            lib_dir: Some(lib.path().into()),
            preload: preload_libraries(lib.path()),
            profile: Some(ProfileEnv { executing: vec![0], dir: run_dir.path().into(), exec_lib_dir: Some(exec.clone()) }),
            ..run_env()
        };
        let layout = Layout { world: 2, per_node: 8 };
        let e0 = map(rank_env(&r, layout, 0));
        let want: Vec<String> = ["libcudart.so.13", "libcublasLt.so.13", "libnccl.so.2"].iter().map(|n| exec.join(n).display().to_string()).collect();
        assert_eq!(e0["LD_PRELOAD"], want.join(":"));
        assert!(e0["LD_LIBRARY_PATH"].starts_with(&format!("{}", exec.display())));
        // A following rank keeps the full directory, stub included.
        let e1 = map(rank_env(&r, layout, 1));
        assert!(e1["LD_PRELOAD"].contains("libcuda.so.1"));
        assert!(e1["LD_LIBRARY_PATH"].starts_with(&format!("{}", lib.path().display())));
    }

    #[test]
    fn preloads_every_soname_file_runtime_first() {
        let d = tempfile::tempdir().unwrap();
        for n in ["libnccl.so.2", "libnccl.so", "libcudart.so", "libcudart.so.13", "libcublas.so.13", "README"] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let got: Vec<String> = preload_libraries(d.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["libcudart.so.13", "libcublas.so.13", "libnccl.so.2"]);
        assert!(preload_libraries(&d.path().join("missing")).is_empty());
    }

    #[test]
    fn library_path_and_preload() {
        let mut r = run_env();
        r.ld_library_path = Some(OsString::new());
        assert_eq!(map(process_env(&r))["LD_LIBRARY_PATH"], "/opt/phantom/lib");
        r.lib_dir = None;
        assert!(!map(process_env(&r)).contains_key("LD_LIBRARY_PATH"));
        r.preload = vec!["/opt/phantom/lib/libphantom_preload.so".into()];
        r.ld_preload = Some("/usr/lib/libjemalloc.so".into());
        assert_eq!(
            map(process_env(&r))["LD_PRELOAD"],
            "/opt/phantom/lib/libphantom_preload.so:/usr/lib/libjemalloc.so"
        );
    }

    #[test]
    fn nvtx_injection_is_phantoms_runtime_unless_the_user_set_one() {
        let lib = Path::new("/opt/phantom/lib");
        assert_eq!(nvtx_injection(Some(lib), None), Some("/opt/phantom/lib/libcudart.so.13".into()));
        assert_eq!(nvtx_injection(Some(lib), Some(OsStr::new(""))), Some("/opt/phantom/lib/libcudart.so.13".into()));
        assert_eq!(nvtx_injection(Some(lib), Some(OsStr::new("/opt/nsys/libToolsInjection64.so"))), None);
        assert_eq!(nvtx_injection(None, None), None);
        let mut r = run_env();
        assert!(!map(process_env(&r)).contains_key(NVTX_INJECTION_ENV));
        r.nvtx_injection = nvtx_injection(r.lib_dir.as_deref(), None);
        assert_eq!(map(process_env(&r))[NVTX_INJECTION_ENV], "/opt/phantom/lib/libcudart.so.13");
    }

    #[test]
    fn omp_threads_kept_when_set_or_one_rank_per_node() {
        let mut r = run_env();
        r.omp_num_threads_set = true;
        assert!(!map(rank_env(&r, Layout { world: 8, per_node: 8 }, 0)).contains_key("OMP_NUM_THREADS"));
        r.omp_num_threads_set = false;
        assert!(!map(rank_env(&r, Layout { world: 2, per_node: 1 }, 0)).contains_key("OMP_NUM_THREADS"));
    }

    #[test]
    fn nodes() {
        let l = |world, per_node| Some(Layout { world, per_node });
        assert_eq!(resolve_nodes(l(16, 8), None, 1), Ok(2));
        assert_eq!(resolve_nodes(l(8, 8), None, 4), Ok(4));
        assert_eq!(resolve_nodes(None, None, 3), Ok(3));
        assert_eq!(resolve_nodes(l(16, 8), Some(4), 1), Ok(4));
        let e = resolve_nodes(l(17, 8), Some(2), 1).unwrap_err();
        assert!(e.contains("17 ranks at 8 per node need 3 nodes, but nodes is 2"), "{e}");
    }
}
