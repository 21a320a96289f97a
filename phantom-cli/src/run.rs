//! `phantom run`: configuration, simulator, ranks, supervision, summary.

use crate::args::{ListenArg, Profile, RunArgs};
use crate::env::{self, Layout, ProfileEnv, RunEnv};
use crate::progress::{self, Progress};
use crate::signals;
use crate::spawn::{self, Event};
use crate::summary::{self, Summary};
use crate::supervise::{Action, Supervisor};
use crate::trace;
use sim_core::config::{ClusterConfig, DEFAULT_PRESET};
use sim_core::engine::server::{self, Listen, ServerHandle};
use sim_core::ktable::KernelTable;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Prints one line to stderr with a single `write`: the ranks share phantom's stderr, and `eprintln!` writes
/// a line in pieces (text, arguments, newline) that another process's output can land between. Erases the
/// progress line first if it is on the screen (`progress::clear_prefix`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("{}{}\n", crate::progress::clear_prefix(), format_args!($($arg)*));
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }};
}

/// Exit code when the invocation or the configuration is wrong and nothing was started.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when phantom itself fails at run time (the simulator cannot start).
pub const EXIT_INTERNAL: i32 = 1;

/// How often the simulator's diagnoses are polled while ranks run.
const POLL: Duration = Duration::from_millis(100);
/// How long the simulator waits for connections to close once every rank has exited.
const FINISH_GRACE: Duration = Duration::from_secs(5);

/// The run, resolved and checked before anything starts.
struct Plan {
    cluster: ClusterConfig,
    layout: Option<Layout>,
    /// PHANTOM_* variables for every process.
    phantom: Vec<(String, String)>,
    lib_dir: Option<PathBuf>,
    /// `NVTX_INJECTION64_PATH` for the processes (`env::nvtx_injection`).
    nvtx_injection: Option<OsString>,
    /// `--profile`: the executing ranks and where their merged table goes.
    profile: Option<Profile>,
    warnings: Vec<String>,
}

fn non_empty_var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The cluster, the placement and the variables, from the options (which replace the same `PHANTOM_*`
/// variables of phantom's environment) and the environment.
fn plan(args: &RunArgs) -> Result<Plan, String> {
    let profile = args.profile()?;
    if let Some(p) = &profile {
        // Checked now rather than after a long run whose measurements would then be lost.
        let dir = p.table.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if p.table.is_dir() || !dir.is_dir() {
            return Err(format!("--profile-table {}: not a file in an existing directory", p.table.display()));
        }
    }
    let mut vars: Vec<(String, String)> = Vec::new();
    // A cluster file is handed on as an absolute path, so a rank that changes directory still finds it.
    // Always handed on, so that the ranks read exactly the cluster the simulator uses.
    let c = args.cluster.clone().or_else(|| non_empty_var("PHANTOM_CLUSTER")).unwrap_or(DEFAULT_PRESET.into());
    let c = c.trim().to_string();
    let c = if c.ends_with(".toml") || c.contains('/') { absolute(Path::new(&c)).display().to_string() } else { c };
    vars.push(("PHANTOM_CLUSTER".into(), c));
    if let Some(h) = &args.host_time {
        vars.push(("PHANTOM_HOST_TIME".into(), h.clone()));
    }
    if !args.kernel_tables.is_empty() {
        let mut paths = Vec::new();
        for t in &args.kernel_tables {
            let p = absolute(t).display().to_string();
            if p.contains(':') {
                return Err(format!(
                    "--kernel-table {}: a path in PHANTOM_KERNEL_TABLE cannot contain `:`",
                    t.display()
                ));
            }
            paths.push(p);
        }
        vars.push(("PHANTOM_KERNEL_TABLE".into(), paths.join(":")));
    }
    if let Some(n) = args.nodes {
        vars.push(("PHANTOM_NODES".into(), n.to_string()));
    }
    let lookup = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).or_else(|| std::env::var(k).ok());
    let mut cluster = ClusterConfig::from_env_with(lookup).map_err(|e| e.to_string())?;
    for t in &cluster.kernels.tables {
        KernelTable::load(t).map_err(|e| format!("kernel-time table {e}"))?;
    }

    let mut warnings = Vec::new();
    let per_node = args.nproc_per_node.unwrap_or(cluster.gpus_per_node);
    if per_node > cluster.gpus_per_node {
        warnings.push(format!(
            "phantom: warning: {per_node} ranks per node, but a node of cluster {} has {} GPUs",
            cluster.name, cluster.gpus_per_node
        ));
    }
    let layout = args.nproc.map(|world| Layout { world, per_node });
    let explicit_nodes = args.nodes.or_else(|| non_empty_var("PHANTOM_NODES").map(|_| cluster.nodes));
    cluster.nodes = env::resolve_nodes(layout, explicit_nodes, cluster.nodes)?;
    cluster.validate().map_err(|e| e.to_string())?;
    vars.retain(|(k, _)| k != "PHANTOM_NODES");
    vars.push(("PHANTOM_NODES".into(), cluster.nodes.to_string()));

    let lib_dir = match &args.lib_dir {
        Some(d) if d.is_dir() => Some(absolute(d)),
        Some(d) => return Err(format!("--lib-dir {}: not a directory", d.display())),
        None => {
            let default = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.join("lib")));
            match default {
                Some(d) if d.is_dir() => Some(d.canonicalize().unwrap_or(d)),
                d => {
                    let d = d.map_or("<unknown>".into(), |d| d.display().to_string());
                    warnings.push(format!(
                        "phantom: warning: no Phantom library directory at {d} (run `cargo xtask stage`, or give --lib-dir); LD_LIBRARY_PATH is left as it is"
                    ));
                    None
                }
            }
        }
    };
    if let Some(d) = &lib_dir {
        if !d.join("libcudart.so.13").exists() {
            warnings.push(format!("phantom: warning: {} has no libcudart.so.13", d.display()));
        }
    }
    let user_nvtx = std::env::var_os(crate::env::NVTX_INJECTION_ENV);
    let nvtx_injection = crate::env::nvtx_injection(lib_dir.as_deref(), user_nvtx.as_deref());
    if nvtx_injection.is_none() && lib_dir.is_some() {
        warnings.push(format!(
            "phantom: warning: {} is set ({}); Phantom will not see the program's NVTX ranges",
            crate::env::NVTX_INJECTION_ENV,
            user_nvtx.unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(Plan { cluster, layout, phantom: vars, lib_dir, nvtx_injection, profile, warnings })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn apply(actions: Vec<Action>) {
    for a in actions {
        for g in a.groups {
            signals::signal_group(g, a.sig);
        }
    }
}

/// Prints the simulator's diagnoses after the first `printed`.
fn print_failures(lines: &[String], printed: &mut usize) {
    for l in lines.iter().skip(*printed) {
        say!("phantom: simulator: {l}");
    }
    *printed = (*printed).max(lines.len());
}

/// Runs `phantom run`; returns the exit code.
pub fn run(args: RunArgs) -> i32 {
    let started = Instant::now();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            say!("phantom: error: {e}");
            return EXIT_USAGE;
        }
    };
    for w in &plan.warnings {
        say!("{w}");
    }

    // The Unix socket lives in a private directory removed when `_sock_dir` is dropped (after `finish`).
    let (listen, _sock_dir) = match &args.listen {
        ListenArg::Unix(Some(p)) => (Listen::Unix(absolute(p)), None),
        ListenArg::Unix(None) => match tempfile::Builder::new().prefix("phantom-").tempdir() {
            Ok(d) => (Listen::Unix(d.path().join("sim.sock")), Some(d)),
            Err(e) => {
                say!("phantom: error: cannot create a directory for the simulator's socket: {e}");
                return EXIT_INTERNAL;
            }
        },
        ListenArg::Tcp(a) => (Listen::Tcp(a.clone()), None),
    };
    let handle = match server::start(plan.cluster.clone(), listen) {
        Ok(h) => h,
        Err(e) => {
            say!("phantom: error: cannot start the simulator: {e}");
            let bad_config = e.kind() == std::io::ErrorKind::InvalidInput;
            return if bad_config { EXIT_USAGE } else { EXIT_INTERNAL };
        }
    };
    // Ranks write their trace files into a private directory, merged into `--trace` after the run.
    let trace_dir = match &args.trace {
        Some(_) => match tempfile::Builder::new().prefix("phantom-trace-").tempdir() {
            Ok(d) => Some(d),
            Err(e) => {
                say!("phantom: error: cannot create a directory for the ranks' trace files: {e}");
                return EXIT_INTERNAL;
            }
        },
        None => None,
    };
    if trace_dir.is_some() {
        handle.record_ops();
        handle.record_links();
    }
    // Every process writes its statistics into a private directory, merged into the summary after the run.
    let stats_dir = tempfile::Builder::new().prefix("phantom-stats-").tempdir().map_err(|e| {
        say!("phantom: warning: cannot create a directory for the ranks' statistics (the summary will lack them): {e}")
    });
    // `--profile`: the executing ranks write their tables into the same directory.
    let profile_env = match (&plan.profile, &stats_dir) {
        (None, _) => None,
        (Some(p), Ok(d)) => {
            let exec_lib_dir = match plan.lib_dir.as_deref().map(|l| crate::env::executing_lib_dir(l, d.path())) {
                Some(Ok(x)) => Some(x),
                Some(Err(e)) => {
                    say!("phantom: error: cannot prepare the executing ranks' library directory: {e}");
                    return EXIT_INTERNAL;
                }
                None => None,
            };
            Some(ProfileEnv { executing: p.ranks.clone(), dir: d.path().to_path_buf(), exec_lib_dir })
        }
        (Some(_), Err(())) => {
            say!("phantom: error: --profile needs a directory for the ranks' measurements");
            return EXIT_INTERNAL;
        }
    };

    let master_port = match args.master_port.map_or_else(free_port, Ok) {
        Ok(p) => p,
        Err(e) => {
            say!("phantom: error: cannot find a free port for MASTER_PORT: {e}");
            return EXIT_INTERNAL;
        }
    };
    let run_env = RunEnv {
        sim_address: handle.address().to_string(),
        phantom: plan.phantom.clone(),
        lib_dir: plan.lib_dir.clone(),
        ld_library_path: std::env::var_os("LD_LIBRARY_PATH"),
        preload: plan.lib_dir.as_deref().map(crate::env::preload_libraries).unwrap_or_default(),
        ld_preload: std::env::var_os("LD_PRELOAD"),
        nvtx_injection: plan.nvtx_injection.clone(),
        master_addr: "127.0.0.1".into(),
        master_port,
        trace_dir: trace_dir.as_ref().map(|d| d.path().to_path_buf()),
        stats_dir: stats_dir.as_ref().ok().map(|d| d.path().to_path_buf()),
        profile: profile_env.clone(),
        omp_num_threads_set: std::env::var_os("OMP_NUM_THREADS").is_some(),
    };

    let (tx, rx) = mpsc::channel();
    if let Err(e) = signals::forward_to(tx.clone()) {
        say!("phantom: error: cannot handle signals: {e}");
        return EXIT_INTERNAL;
    }
    if let Some(l) = plan.layout {
        handle.expect_clients(l.world as usize);
    }
    if let Some(p) = &profile_env {
        handle.expect_executing(p.executing.len());
    }
    let procs = match start_processes(&args.command, plan.layout, &run_env) {
        Ok(p) => p,
        Err(code) => {
            handle.finish(Duration::ZERO);
            return code;
        }
    };
    if let Err(e) = spawn::reap_children(tx.clone()) {
        say!("phantom: error: cannot start a thread: {e}");
        for (_, pid) in &procs {
            signals::signal_group(*pid, libc::SIGKILL);
        }
        return EXIT_INTERNAL;
    }

    let mut sup = Supervisor::new(procs, args.fail_grace, args.kill_grace);
    let mut printed = 0;
    let mut rss = summary::Memory::default();
    let mut progress = progress::style(args.progress, progress::stderr_is_tty(), args.quiet)
        .map(|s| Progress::new(s, plan.layout.map(|l| l.world as usize), started, Instant::now()));
    loop {
        for m in sup.take_messages() {
            say!("{m}");
        }
        print_failures(&handle.failures(), &mut printed);
        if sup.live() == 0 {
            break;
        }
        if let Some(p) = &mut progress {
            p.tick(Instant::now(), sup.live(), &handle);
        }
        let wait = sup.next_deadline().map_or(POLL, |d| d.saturating_duration_since(Instant::now()).min(POLL));
        let actions = match rx.recv_timeout(wait) {
            Ok(Event::Exited { pid, exit, max_rss_kib }) => {
                rss.add(max_rss_kib);
                sup.on_exit(pid, exit, Instant::now())
            }
            Ok(Event::Signal(sig)) => sup.on_signal(sig, Instant::now()),
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            // `tx` is alive in this scope.
            Err(RecvTimeoutError::Disconnected) => unreachable!("the event channel has a sender here"),
        };
        apply(actions);
        apply(sup.on_tick(Instant::now()));
    }
    drop(tx);
    progress::clear();

    let code = sup.exit_code();
    let sim = finish(handle, &mut printed);
    for m in sup.final_messages() {
        say!("{m}");
    }
    if let (Some(out), Some(dir)) = (&args.trace, &trace_dir) {
        match trace::write(out, dir.path(), &sim) {
            Ok(m) if !args.quiet => {
                say!("phantom: trace: {} ({} events from {} processes)", out.display(), m.events, m.processes)
            }
            Ok(_) => {}
            Err(e) => say!("phantom: error: {e}"),
        }
    }
    let stats = stats_dir.as_ref().map(|d| crate::stats::read(d.path())).unwrap_or_default();
    // Whether the run's directory must outlive phantom: `--profile` could not write its merged table.
    let mut keep_dir = false;
    if let (Some(p), Some(pe)) = (&plan.profile, &profile_env) {
        let merged = crate::profile::merge(&pe.dir, &pe.executing);
        let mut real: Vec<(u64, crate::stats::RealGpu)> =
            stats.procs.iter().filter_map(|p| Some((p.rank?, p.real_gpu.clone()?))).collect();
        real.sort_by_key(|r| r.0);
        match crate::profile::write(&p.table, &merged) {
            Ok(_) if !args.quiet => say!("{}", crate::profile::line(&merged, &p.table, sim.lookups_unanswered, &real)),
            Ok(_) => {}
            Err(e) => {
                say!("phantom: error: {e}; the ranks' tables are kept in {}", pe.dir.display());
                keep_dir = true;
            }
        }
    }
    let (succeeded, failed) = sup.tally();
    let s = Summary {
        cluster: &plan.cluster,
        layout: plan.layout,
        sim: &sim,
        wall: started.elapsed(),
        succeeded,
        failed,
        exit_code: code,
        memory: rss,
        stats: &stats,
    };
    if let Some(path) = &args.report {
        if let Err(e) = crate::report::write(path, &s) {
            say!("phantom: error: {e}");
        }
    }
    if !args.quiet {
        for l in summary::lines(&s) {
            say!("{l}");
        }
    }
    if let (true, Ok(d)) = (keep_dir, stats_dir) {
        let _ = d.keep();
    }
    code
}

fn finish(handle: ServerHandle, printed: &mut usize) -> server::RunSummary {
    let sim = handle.finish(FINISH_GRACE);
    print_failures(&sim.failures, printed);
    sim
}

/// Starts the ranks (or the one process); returns (label, pid) of each. On failure, kills and reaps what it
/// started, prints why, and returns the exit code (127: command not found, 126: not executable).
fn start_processes(command: &[OsString], layout: Option<Layout>, run_env: &RunEnv) -> Result<Vec<(String, i32)>, i32> {
    let prog = Path::new(&command[0]).file_name().unwrap_or(command[0].as_os_str()).to_string_lossy().into_owned();
    let mut procs = Vec::new();
    let ranks: Vec<Option<u32>> = match layout {
        Some(l) => (0..l.world).map(Some).collect(),
        None => vec![None],
    };
    for rank in ranks {
        let result = match (rank, layout) {
            (Some(r), Some(l)) => spawn::spawn(command, &env::rank_env(run_env, l, r), true)
                .map(|pid| (format!("rank {r} (pid {pid}, node {})", l.node_of(r)), pid)),
            _ => {
                spawn::spawn(command, &env::process_env(run_env), false).map(|pid| (format!("{prog} (pid {pid})"), pid))
            }
        };
        match result {
            Ok(p) => procs.push(p),
            Err(e) => {
                let whom = rank.map_or(String::new(), |r| format!(" for rank {r}"));
                say!("phantom: error: cannot start `{}`{whom}: {e}", command[0].to_string_lossy());
                for (_, pid) in &procs {
                    signals::signal_group(*pid, libc::SIGKILL);
                    let mut status = 0;
                    // SAFETY: `status` is a valid out-pointer; `pid` is our child, not yet reaped.
                    unsafe { libc::waitpid(*pid, &mut status, 0) };
                }
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => 127,
                    std::io::ErrorKind::PermissionDenied => 126,
                    _ => EXIT_INTERNAL,
                });
            }
        }
    }
    Ok(procs)
}
