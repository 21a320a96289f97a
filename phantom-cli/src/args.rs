//! Command-line arguments (docs/launcher.md).

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Runs unmodified CUDA/NCCL programs on a simulated GPU cluster.
#[derive(Parser, Debug)]
#[command(name = "phantom", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the simulator and run COMMAND on it: `-n N` copies with torchrun-style rank variables, or (without
    /// `-n`) one process that starts its own ranks (torchrun, mpirun).
    Run(Box<RunArgs>),
    /// Make kernel-time tables (docs/kernel-table.md).
    #[command(subcommand)]
    Table(TableCommand),
    /// Measure this machine's NVIDIA GPU (device and host copy bandwidths, launch latency, with --gemm cuBLASLt's
    /// bf16 GEMM efficiency) and write a GPU profile: a `[gpu]` table of the measured fields for cluster files
    /// (docs/calibration.md).
    Calibrate(CalibrateArgs),
}

/// Where `phantom calibrate` writes the profile when `-o` is not given (the current directory).
pub const DEFAULT_GPU_PROFILE: &str = "gpu-profile.toml";

/// `phantom calibrate [-o PATH] [--gpu KEY] [--gemm]`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct CalibrateArgs {
    /// Where to write the GPU profile.
    #[arg(short = 'o', long = "output", value_name = "PATH", default_value = DEFAULT_GPU_PROFILE)]
    pub output: PathBuf,

    /// The GPU model the profile overrides, written as its `gpu.model` (default: the preset whose name is the
    /// device's name, e.g. `NVIDIA H100 80GB HBM3` → h100-sxm-80gb).
    #[arg(long, value_name = "KEY", value_parser = parse_gpu)]
    pub gpu: Option<String>,

    /// Also time bf16 GEMMs through NVIDIA's cuBLASLt (PHANTOM_REAL_LIBS, else python3's nvidia/*/lib folders)
    /// and write `gemm_efficiency`.
    #[arg(long)]
    pub gemm: bool,
}

/// `phantom table ...`.
#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Convert a PyTorch profiler trace (`export_chrome_trace`, optionally gzip-compressed) into a kernel-time
    /// table: one entry per kernel and launch configuration with the median duration of its events. Kernels
    /// that cuBLAS and cuDNN launch are left out and summarised (docs/kernel-table.md).
    FromTorchProfile(FromTorchProfileArgs),
}

/// `phantom table from-torch-profile TRACE -o OUT [--gpu KEY]`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct FromTorchProfileArgs {
    /// The torch.profiler Chrome trace (JSON, or gzip-compressed JSON).
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,

    /// Where to write the table.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,

    /// GPU preset the trace was recorded on, written as the table's `gpu` (default: the preset whose name is
    /// the trace's device name).
    #[arg(long, value_name = "KEY", value_parser = parse_gpu)]
    pub gpu: Option<String>,
}

#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Spawn N copies of COMMAND as ranks 0..N-1 (RANK, WORLD_SIZE, LOCAL_RANK, ... set). Without it, COMMAND
    /// runs once with no rank variables and starts its own ranks.
    #[arg(short = 'n', long = "nproc", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc: Option<u32>,

    /// Cluster preset name or cluster TOML file (PHANTOM_CLUSTER; default dgx-h100).
    #[arg(long, value_name = "NAME|FILE")]
    pub cluster: Option<String>,

    /// Number of simulated nodes (PHANTOM_NODES; default: the cluster's, or enough for the ranks).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: Option<u32>,

    /// Ranks placed on each node (default: the cluster's GPUs per node).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc_per_node: Option<u32>,

    /// Host-time model (PHANTOM_HOST_TIME).
    #[arg(long, value_name = "MODE", value_parser = ["measured", "deterministic"])]
    pub host_time: Option<String>,

    /// Kernel-time table; repeat for several (PHANTOM_KERNEL_TABLE, colon-joined).
    #[arg(long = "kernel-table", value_name = "PATH")]
    pub kernel_tables: Vec<PathBuf>,

    /// Where the simulator listens: `unix` (a socket in a fresh temporary directory), `unix:PATH`,
    /// or `tcp:HOST:PORT` (port 0 picks a free one).
    #[arg(long, value_name = "unix|unix:PATH|tcp:ADDR", default_value = "unix", value_parser = parse_listen)]
    pub listen: ListenArg,

    /// Directory holding Phantom's libcudart.so.13 and libnccl.so.2, prepended to LD_LIBRARY_PATH
    /// (default: `<directory of phantom>/../lib`).
    #[arg(long, value_name = "DIR")]
    pub lib_dir: Option<PathBuf>,

    /// MASTER_PORT given to the ranks (default: a free port).
    #[arg(long, value_name = "PORT")]
    pub master_port: Option<u16>,

    /// After the first rank fails, seconds the others get to exit on their own before they are stopped.
    #[arg(long = "fail-grace-s", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub fail_grace: Duration,

    /// Seconds between the polite signal (SIGTERM, or the one phantom received) and SIGKILL.
    #[arg(long = "kill-grace-s", value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub kill_grace: Duration,

    /// Write a Chrome Trace Event / Perfetto JSON trace of the run's GPU work and communication to PATH
    /// (docs/trace.md). Changes no simulated time.
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,

    /// Write the run's summary as JSON to PATH (docs/launcher.md, "The JSON report").
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Do not print the summary at the end.
    #[arg(short, long)]
    pub quiet: bool,

    /// Live progress line on stderr (ranks alive, simulated time, wall time, events/s): `auto` only when
    /// stderr is a terminal and not with --quiet; `always` also into files and pipes, as plain lines; `never`.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    /// Profiling mode: the ranks of --profile-ranks run their GPU work on this machine's GPU and measure each
    /// distinct kernel configuration once; the other ranks take those measurements from the simulator. Needs
    /// `-n`. The measurements are merged into --profile-table after the run.
    #[arg(long)]
    pub profile: bool,

    /// With --profile: the ranks that execute on the real GPU, comma-separated global rank numbers
    /// (default 0).
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1)]
    pub profile_ranks: Option<Vec<u32>>,

    /// With --profile: where the merged measurements are written, as a kernel-time table
    /// (default `phantom-profile.table`).
    #[arg(long, value_name = "PATH")]
    pub profile_table: Option<PathBuf>,

    /// The program and its arguments (`--` before it is optional).
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,
}

/// Where `--profile` writes the merged table when `--profile-table` is not given (the current directory).
pub const DEFAULT_PROFILE_TABLE: &str = "phantom-profile.table";

/// `--profile` and its options, checked against each other and against `-n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The executing ranks, ascending, each once.
    pub ranks: Vec<u32>,
    /// Where the merged table goes.
    pub table: PathBuf,
}

impl RunArgs {
    /// `Ok(None)` without `--profile`. Errors: `--profile-ranks` or `--profile-table` without `--profile`,
    /// `--profile` without `-n` (phantom must start the ranks to tell each one its part), a rank that `-n`
    /// does not start.
    pub fn profile(&self) -> Result<Option<Profile>, String> {
        if !self.profile {
            return match (&self.profile_ranks, &self.profile_table) {
                (Some(_), _) => Err("--profile-ranks needs --profile".into()),
                (_, Some(_)) => Err("--profile-table needs --profile".into()),
                (None, None) => Ok(None),
            };
        }
        let Some(world) = self.nproc else {
            return Err("--profile needs -n: phantom starts the ranks and tells each whether it executes".into());
        };
        let mut ranks = self.profile_ranks.clone().unwrap_or_else(|| vec![0]);
        ranks.sort_unstable();
        ranks.dedup();
        if let Some(r) = ranks.iter().find(|&&r| r >= world) {
            let started = if world == 1 { "rank 0 only".into() } else { format!("ranks 0 to {}", world - 1) };
            return Err(format!("--profile-ranks: there is no rank {r} (-n {world} starts {started})"));
        }
        let table = self.profile_table.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILE_TABLE));
        Ok(Some(Profile { ranks, table }))
    }
}

/// The `--progress` value (docs/launcher.md, "Progress").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// When stderr is a terminal, unless `--quiet`.
    Auto,
    /// Always: in place on a terminal, plain lines elsewhere.
    Always,
    /// No progress line.
    Never,
}

/// The `--listen` value.
#[derive(Clone, Debug, PartialEq)]
pub enum ListenArg {
    /// A Unix socket; `None`: in a fresh temporary directory.
    Unix(Option<PathBuf>),
    /// A TCP address `HOST:PORT`.
    Tcp(String),
}

fn parse_listen(s: &str) -> Result<ListenArg, String> {
    if s == "unix" {
        Ok(ListenArg::Unix(None))
    } else if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
        Ok(ListenArg::Unix(Some(PathBuf::from(p))))
    } else if let Some(a) = s.strip_prefix("tcp:") {
        match a.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(ListenArg::Tcp(a.to_string())),
            _ => Err(format!("`{a}` is not HOST:PORT (e.g. tcp:0.0.0.0:0)")),
        }
    } else {
        Err("expected `unix`, `unix:PATH` or `tcp:HOST:PORT`".into())
    }
}

fn parse_gpu(s: &str) -> Result<String, String> {
    match sim_core::gpu::gpu_preset(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!("not a GPU preset (one of {})", sim_core::gpu::gpu_preset_names().join(", "))),
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if (0.0..1e9).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("`{s}` is not a number of seconds between 0 and 1e9"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["phantom", "run"].iter().chain(args).copied();
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Run(r) => *r,
            other => panic!("not `run`: {other:?}"),
        })
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn defaults() {
        let r = run(&["--", "prog"]).unwrap();
        assert_eq!(r.nproc, None);
        assert_eq!(r.cluster, None);
        assert_eq!(r.listen, ListenArg::Unix(None));
        assert_eq!(r.fail_grace, Duration::from_secs(30));
        assert_eq!(r.kill_grace, Duration::from_secs(10));
        assert!(r.kernel_tables.is_empty());
        assert!(!r.quiet);
        assert_eq!(r.progress, ProgressArg::Auto);
        assert_eq!(r.trace, None);
        assert_eq!(r.command, os(&["prog"]));
    }

    #[test]
    fn options_and_command() {
        let r = run(&[
            "-n",
            "16",
            "--cluster",
            "dgx-h200",
            "--nodes",
            "2",
            "--nproc-per-node",
            "8",
            "--host-time",
            "deterministic",
            "--kernel-table",
            "a.table",
            "--kernel-table",
            "/b.table",
            "--listen",
            "tcp:0.0.0.0:0",
            "--lib-dir",
            "/opt/phantom/lib",
            "--fail-grace-s",
            "0.5",
            "--kill-grace-s",
            "2",
            "-q",
            "--progress",
            "never",
            "--trace",
            "out/t.json",
            "--",
            "python",
            "train.py",
            "--lr",
            "3e-4",
        ])
        .unwrap();
        assert_eq!(r.nproc, Some(16));
        assert_eq!(r.cluster.as_deref(), Some("dgx-h200"));
        assert_eq!(r.nodes, Some(2));
        assert_eq!(r.nproc_per_node, Some(8));
        assert_eq!(r.host_time.as_deref(), Some("deterministic"));
        assert_eq!(r.kernel_tables, vec![PathBuf::from("a.table"), PathBuf::from("/b.table")]);
        assert_eq!(r.listen, ListenArg::Tcp("0.0.0.0:0".into()));
        assert_eq!(r.lib_dir, Some(PathBuf::from("/opt/phantom/lib")));
        assert_eq!(r.fail_grace, Duration::from_millis(500));
        assert_eq!(r.kill_grace, Duration::from_secs(2));
        assert!(r.quiet);
        assert_eq!(r.progress, ProgressArg::Never);
        assert_eq!(r.trace, Some(PathBuf::from("out/t.json")));
        assert_eq!(r.command, os(&["python", "train.py", "--lr", "3e-4"]));
    }

    #[test]
    fn command_without_double_dash_keeps_its_own_options() {
        let r = run(&["-n", "2", "sh", "-c", "echo -n $RANK"]).unwrap();
        assert_eq!(r.command, os(&["sh", "-c", "echo -n $RANK"]));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["-n", "0", "--", "x"][..],
            &["-n", "many", "--", "x"],
            &["--host-time", "fast", "--", "x"],
            &["--listen", "udp:1", "--", "x"],
            &["--listen", "tcp:nohost", "--", "x"],
            &["--fail-grace-s", "-1", "--", "x"],
            &["--progress", "sometimes", "--", "x"],
            &["-n", "2"],
            &["--profile", "--profile-ranks", "a", "--", "x"],
            &["--profile", "--profile-ranks", "0,,1", "--", "x"],
            &["--profile", "--profile-ranks", "-1", "--", "x"],
            &["--profile", "--profile-ranks", "", "--", "x"],
            &["--profile=yes", "--", "x"],
            &["--profile", "--profile-table", "--", "x"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn profile_options() {
        let r = run(&["-n", "4", "--", "x"]).unwrap();
        assert!(!r.profile);
        assert_eq!((r.profile_ranks.clone(), r.profile_table.clone()), (None, None));
        assert_eq!(r.profile(), Ok(None));

        let r = run(&["-n", "4", "--profile", "--", "x"]).unwrap();
        assert_eq!(r.profile(), Ok(Some(Profile { ranks: vec![0], table: "phantom-profile.table".into() })));

        let r = run(&["-n", "8", "--profile", "--profile-ranks", "7,0,3,0", "--profile-table", "/out/h100.table", "x"])
            .unwrap();
        assert_eq!(r.profile_ranks, Some(vec![7, 0, 3, 0]));
        assert_eq!(r.profile(), Ok(Some(Profile { ranks: vec![0, 3, 7], table: "/out/h100.table".into() })));
        // Repeated, the lists add up.
        let r = run(&["-n", "8", "--profile", "--profile-ranks", "5", "--profile-ranks=1,2", "x"]).unwrap();
        assert_eq!(r.profile().unwrap().unwrap().ranks, [1, 2, 5]);

        let err = |args: &[&str]| run(args).unwrap().profile().unwrap_err();
        assert_eq!(err(&["-n", "2", "--profile-ranks", "1", "x"]), "--profile-ranks needs --profile");
        assert_eq!(err(&["-n", "2", "--profile-table", "t", "x"]), "--profile-table needs --profile");
        assert_eq!(
            err(&["--profile", "x"]),
            "--profile needs -n: phantom starts the ranks and tells each whether it executes"
        );
        assert_eq!(
            err(&["-n", "8", "--profile", "--profile-ranks", "0,8", "x"]),
            "--profile-ranks: there is no rank 8 (-n 8 starts ranks 0 to 7)"
        );
        assert_eq!(
            err(&["-n", "1", "--profile", "--profile-ranks", "1", "x"]),
            "--profile-ranks: there is no rank 1 (-n 1 starts rank 0 only)"
        );
    }

    #[test]
    fn table_from_torch_profile() {
        let parse = |args: &[&str]| {
            let argv = ["phantom", "table", "from-torch-profile"].iter().chain(args).copied();
            Cli::try_parse_from(argv).map(|c| match c.command {
                Command::Table(TableCommand::FromTorchProfile(a)) => a,
                other => panic!("not `table from-torch-profile`: {other:?}"),
            })
        };
        let a = parse(&["p.json.gz", "-o", "out.table"]).unwrap();
        assert_eq!(a, FromTorchProfileArgs { trace: "p.json.gz".into(), output: "out.table".into(), gpu: None });
        let a = parse(&["--gpu", "h100-sxm-80gb", "p.json", "--output", "t"]).unwrap();
        assert_eq!(a.gpu.as_deref(), Some("h100-sxm-80gb"));
        assert!(parse(&["p.json"]).is_err(), "-o is required");
        let e = parse(&["p.json", "-o", "t", "--gpu", "h100"]).unwrap_err().to_string();
        assert!(e.contains("not a GPU preset (one of h100-sxm-80gb,"), "{e}");
    }

    #[test]
    fn calibrate() {
        let parse = |args: &[&str]| {
            let argv = ["phantom", "calibrate"].iter().chain(args).copied();
            Cli::try_parse_from(argv).map(|c| match c.command {
                Command::Calibrate(a) => a,
                other => panic!("not `calibrate`: {other:?}"),
            })
        };
        assert_eq!(
            parse(&[]).unwrap(),
            CalibrateArgs { output: "gpu-profile.toml".into(), gpu: None, gemm: false }
        );
        assert_eq!(
            parse(&["-o", "/p/h100.toml", "--gpu", "h100-sxm-80gb", "--gemm"]).unwrap(),
            CalibrateArgs { output: "/p/h100.toml".into(), gpu: Some("h100-sxm-80gb".into()), gemm: true }
        );
        let e = parse(&["--gpu", "h100"]).unwrap_err().to_string();
        assert!(e.contains("not a GPU preset (one of h100-sxm-80gb,"), "{e}");
        assert!(parse(&["extra"]).is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("unix:/tmp/s"), Ok(ListenArg::Unix(Some("/tmp/s".into()))));
        assert_eq!(parse_listen("tcp:127.0.0.1:5000"), Ok(ListenArg::Tcp("127.0.0.1:5000".into())));
        assert!(parse_listen("unix:").is_err());
    }
}
