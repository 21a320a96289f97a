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

/// A pseudo-terminal (master, slave): the slave raw (no `\n` → `\r\n`, so every `\r` read is phantom's) and
/// 200 columns wide; neither is anyone's controlling terminal.
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on descriptors opened here; the out-pointers point to live locals.
    unsafe {
        // Close-on-exec, so that tests running beside this one do not hand these to their children.
        let m = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "open /dev/ptmx: {}", std::io::Error::last_os_error());
        let master = std::fs::File::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(s >= 0, "open pty slave: {}", std::io::Error::last_os_error());
        let slave = std::fs::File::from_raw_fd(s);
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(s, &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(s, libc::TCSANOW, &t), 0);
        let ws = libc::winsize { ws_row: 24, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0 };
        assert_eq!(libc::ioctl(s, libc::TIOCSWINSZ, &ws), 0);
        (master, slave)
    }
}

/// `phantom run ARGS...` with a pseudo-terminal as stderr; returns the exit status and what it wrote there.
fn run_on_terminal(args: &[&str]) -> (ExitStatus, String) {
    let (master, slave) = pty();
    let mut cmd = phantom(args);
    cmd.stderr(slave);
    let mut child = cmd.spawn().expect("start phantom");
    // The slave must be open only in phantom and its ranks, so that reading the master ends when they are done.
    drop(cmd);
    let out = collect(child.stdout.take());
    // Reading the master fails (EIO) once every slave descriptor is closed: `collect` stops there.
    let err = collect(Some(master));
    let status = wait(&mut child);
    let _ = out.join().unwrap();
    (status, err.join().unwrap())
}

const PROGRESS: &str = "phantom: 2/2 ranks alive · simulated 0 ns · wall ";

#[test]
fn no_progress_line_when_stderr_is_not_a_terminal_or_with_never() {
    for mode in ["auto", "never"] {
        let r = run(&["-n", "2", "--progress", mode, "--", "sleep", "1.5"]);
        assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
        assert!(!r.stderr.contains("ranks alive") && !r.stderr.contains(['\r', '\x1b']), "{mode}:\n{:?}", r.stderr);
        assert!(r.stderr.contains("phantom: all 2 processes exited 0"), "{}", r.stderr);
    }
    let (status, stderr) = run_on_terminal(&["-n", "2", "--progress", "never", "--", "sleep", "1.5"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("ranks alive") && !stderr.contains(['\r', '\x1b']), "{stderr:?}");
    assert!(stderr.contains("phantom: all 2 processes exited 0"), "{stderr}");
}

#[test]
fn progress_always_writes_plain_lines_into_a_pipe() {
    let r = run(&["-n", "2", "-q", "--progress", "always", "--", "sleep", "2"]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.lines().any(|l| l.starts_with(PROGRESS) && l.ends_with(" events/s")), "{:?}", r.stderr);
    assert!(!r.stderr.contains(['\r', '\x1b']), "{:?}", r.stderr);
}

#[test]
fn progress_line_on_a_terminal_is_rewritten_in_place_and_cleared_before_the_summary() {
    let (status, stderr) = run_on_terminal(&["-n", "2", "--", "sleep", "2"]);
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    assert!(stderr.contains(&format!("\r{PROGRESS}")), "{stderr:?}");
    let summary = stderr.find("phantom: cluster ").unwrap_or_else(|| panic!("no summary: {stderr:?}"));
    let (before, after) = stderr.split_at(summary);
    assert!(before.ends_with(" events/s\x1b[K\r\x1b[K"), "the line is erased before the summary: {stderr:?}");
    assert!(!after.contains(['\r', '\x1b']), "{stderr:?}");
    // Every update starts at the start of the row and erases what the previous one left (after the warning
    // that no libraries are staged, printed before the ranks start).
    for update in before.split('\r').skip(1).filter(|u| *u != "\x1b[K") {
        assert!(update.starts_with(PROGRESS) && update.ends_with(" events/s\x1b[K"), "{update:?}");
    }
}
