//! `phantom run` end to end, with `sh` as the ranks (no CUDA needed). Every wait has a generous limit that
//! fails the test instead of hanging it; no test asserts on how long anything took.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// `phantom run ARGS...` with a clean Phantom environment, in its own process group (so that a stuck test
/// can kill everything it started).
fn phantom(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_phantom"));
    cmd.arg("run").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    for k in ["PHANTOM_CLUSTER", "PHANTOM_NODES", "PHANTOM_HOST_TIME", "PHANTOM_KERNEL_TABLE", "PHANTOM_SIM", "RANK"] {
        cmd.env_remove(k);
    }
    cmd
}

/// Reads a pipe to the end on a thread.
fn collect(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// Waits for `child`, killing its process group if it outlives [`LIMIT`].
fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if start.elapsed() > LIMIT {
            // SAFETY: kill(2); the child is not reaped yet, so its process group is still ours.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("phantom run did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let mut child = phantom(args).spawn().expect("start phantom");
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let status = wait(&mut child);
    Run { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn ranks_get_torchrun_variables() {
    let r = run(&["-n", "4", "--", "sh", "-c", "echo $RANK $LOCAL_RANK $GROUP_RANK $WORLD_SIZE"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_eq!(sorted_lines(&r.stdout), ["0 0 0 4", "1 1 0 4", "2 2 0 4", "3 3 0 4"]);
    assert!(r.stderr.contains("phantom: all 4 processes exited 0"), "{}", r.stderr);

    let r = run(&[
        "-n", "4", "--nproc-per-node", "2", "-q", "sh", "-c",
        "echo $RANK $LOCAL_RANK $LOCAL_WORLD_SIZE $GROUP_RANK $PHANTOM_NODE $PHANTOM_NODES ${PHANTOM_SIM%%:*} $MASTER_ADDR",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_eq!(
        sorted_lines(&r.stdout),
        [
            "0 0 2 0 0 2 unix 127.0.0.1",
            "1 1 2 0 0 2 unix 127.0.0.1",
            "2 0 2 1 1 2 unix 127.0.0.1",
            "3 1 2 1 1 2 unix 127.0.0.1"
        ]
    );
    assert!(!r.stderr.contains("phantom: cluster"), "--quiet prints no summary:\n{}", r.stderr);
}

#[test]
fn without_n_one_process_runs_with_no_rank_variables() {
    let r = run(&["--", "sh", "-c", "echo ${RANK-none} ${WORLD_SIZE-none} ${PHANTOM_SIM%%:*} $PHANTOM_CLUSTER"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "none none unix dgx-h100\n");
}

#[test]
fn first_failing_rank_sets_the_exit_code() {
    let r = run(&["-n", "4", "--", "sh", "-c", "[ $RANK = 2 ] && exit 3; exit 0"]);
    assert_eq!(r.status.code(), Some(3), "{}", r.stderr);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("phantom: rank 2 (pid ") && l.ends_with(", node 0) exited with code 3")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("phantom: 1 of 4 processes failed; exit code 3"), "{}", r.stderr);
}

#[test]
fn a_rank_killed_by_a_signal_gives_128_plus_the_signal() {
    let r = run(&["-n", "2", "--fail-grace-s", "0", "--", "sh", "-c", "[ $RANK = 1 ] && kill -USR1 $$; sleep 1000"]);
    assert_eq!(r.status.code(), Some(128 + libc::SIGUSR1), "{}", r.stderr);
    assert!(r.stderr.contains(") was killed by signal 10 (SIGUSR1)"), "{}", r.stderr);
}

#[test]
fn missing_command_exits_127() {
    let r = run(&["-n", "2", "--", "/nonexistent/phantom-test-program"]);
    assert_eq!(r.status.code(), Some(127), "{}", r.stderr);
    assert!(r.stderr.contains("cannot start `/nonexistent/phantom-test-program` for rank 0"), "{}", r.stderr);
}

/// Whether `pid` is gone (or a zombie: dead, waiting for its parent).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) STATE ...`; comm may contain spaces, so read after the last ')'.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn sigterm_stops_every_rank_and_what_it_started() {
    // Each rank ignores SIGTERM (so phantom must escalate to SIGKILL) and starts a child that ignores it too.
    let script = "trap '' TERM; echo $$; sleep 1000 & echo $!; wait";
    let mut child = phantom(&["-n", "3", "--kill-grace-s", "0.2", "--", "sh", "-c", script]).spawn().unwrap();
    let err = collect(child.stderr.take());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut pids = Vec::new();
    while pids.len() < 6 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = wait(&mut child);
            panic!("phantom ended before every rank started:\n{}", err.join().unwrap());
        }
        pids.push(line.trim().parse::<i32>().unwrap());
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait(&mut child);
    let stderr = err.join().unwrap();
    assert_eq!(status.signal(), None, "phantom handles SIGTERM rather than dying of it");
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{stderr}");
    assert!(stderr.contains("phantom: received SIGTERM: sending SIGTERM to 3 ranks"), "{stderr}");
    assert!(stderr.contains("sending SIGKILL to 3 ranks"), "{stderr}");
    // The ranks were reaped by phantom; their children were killed with their process groups and are
    // reaped by whoever inherited them.
    let start = Instant::now();
    while !pids.iter().all(|&p| dead(p)) {
        assert!(start.elapsed() < LIMIT, "still running: {:?}", pids.iter().filter(|&&p| !dead(p)).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_cluster_file_is_one_error_line_and_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("phantom-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join("bad.toml");
    std::fs::write(&file, "preset = \"dgx-h100\"\ngpus_per_nod = 8\n").unwrap();
    let r = run(&["-n", "2", "--cluster", file.to_str().unwrap(), "--", "sh", "-c", "echo ran"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing was started");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(lines[0].starts_with("phantom: error: cluster file "), "{}", lines[0]);
    assert!(lines[0].contains("unknown field `gpus_per_nod`"), "{}", lines[0]);
}

#[test]
fn too_few_nodes_is_a_usage_error() {
    let r = run(&["-n", "17", "--nodes", "2", "--", "true"]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("17 ranks at 8 per node need 3 nodes, but nodes is 2"), "{}", r.stderr);
}
