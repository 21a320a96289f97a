//! The simulator's failure diagnosis, end to end: tests/programs/nccl_faults.cu (compiled with NVIDIA's nvcc
//! against NVIDIA's nccl.h) run as 4 ranks by the staged `phantom run -n 4 --host-time deterministic` on the
//! `dgx-h100` preset (one node; rank r on GPU r of node 0).
//!
//! Each scenario asserts the diagnosis `phantom run` prints (`phantom: simulator: …`, the texts of
//! sim-core/src/engine/core.rs, with the ranks' real pids), that every rank ends on its own with the error
//! code NCCL gives it (`ncclCommGetAsyncError`: ncclInvalidUsage = 5 for a mismatch, ncclRemoteError = 6 for
//! a dead peer or a deadlock), that `ncclGetLastError` carries the same diagnosis, and the launcher's exit code
//! (the first failing rank's). The program orders the ranks' calls where the diagnosis depends on which rank
//! the simulator hears from first (see the program's header), so every line is exact.
//! A run that does not end within `PROGRAM_TIMEOUT` (60 s) is killed and fails the test; nothing asserts on
//! wall-clock durations.

use phantom_tests::{compile, phantom_bin, run_with_timeout, Output, PROGRAM_TIMEOUT};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const RANKS: u32 = 4;
/// The program's element count: 1 MiB of floats.
const N: u64 = 262_144;
/// `ncclDataType_t`: ncclFloat16 (ncclHalf), ncclFloat32 (ncclFloat).
const HALF: i32 = 6;
const FLOAT: i32 = 7;

fn program() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("nccl_faults.cu"))
}

/// Runs `phantom run -n 4 --cluster dgx-h100 --host-time deterministic -- nccl_faults <scenario>` in a fresh
/// directory (where the ranks exchange the unique id); fails the test if it had to be killed.
fn run(scenario: &str) -> Run {
    let phantom = phantom_bin();
    let dir = std::env::temp_dir().join(format!("phantom-faults-{}-{scenario}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(phantom);
    cmd.current_dir(&dir)
        .args(["run", "-n", &RANKS.to_string(), "--cluster", "dgx-h100", "--host-time", "deterministic", "--"])
        .arg(program())
        .arg(scenario);
    // Nothing from the caller's environment may change the cluster or where the ranks' messages go.
    for var in ["PHANTOM_CLUSTER", "PHANTOM_NODES", "PHANTOM_KERNEL_TABLE", "PHANTOM_LOG", "PHANTOM_LOG_FILE", "NCCL_ALGO", "NCCL_PROTO", "NCCL_FAULTS_ID_FILE"] {
        cmd.env_remove(var);
    }
    let out = run_with_timeout(cmd, PROGRAM_TIMEOUT);
    assert!(!out.timed_out && out.signal.is_none(), "{scenario}: phantom run did not end on its own: {}", out.describe());
    let _ = std::fs::remove_dir_all(&dir);
    Run { exits: exits(&out), out }
}

struct Run {
    out: Output,
    /// From the launcher's `phantom: rank R (pid P, node 0) exited with code C` lines: rank → (pid, code).
    exits: BTreeMap<u32, (u32, i32)>,
}

impl Run {
    /// The pid of a rank that failed (the launcher names it).
    fn pid(&self, rank: u32) -> u32 {
        self.exits.get(&rank).unwrap_or_else(|| panic!("phantom did not report rank {rank}: {}", self.out.describe())).0
    }

    /// How the simulator names a rank: `rank R of communicator 0 (process P (RANK R, node 0), GPU R of node 0)`.
    fn rank_label(&self, rank: u32) -> String {
        format!("rank {rank} of communicator 0 (process {} (RANK {rank}, node 0), GPU {rank} of node 0)", self.pid(rank))
    }

    fn stderr_lines(&self) -> Vec<&str> {
        self.out.stderr.lines().collect()
    }

    /// The diagnoses `phantom run` printed, in order.
    fn diagnoses(&self) -> Vec<&str> {
        self.stderr_lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("phantom: simulator: "))
            .filter(|l| !l.contains(" processes connected, "))
            .collect()
    }

    /// The `rank R: NCCL error …` line the program printed for `rank`.
    fn nccl_error(&self, rank: u32) -> &str {
        let prefix = format!("rank {rank}: NCCL error ");
        let lines: Vec<&str> = self.stderr_lines().into_iter().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(lines.len(), 1, "rank {rank} should report one NCCL error: {}", self.out.describe());
        lines[0]
    }

    /// Every rank in `ranks` reported `code` (`name` from ncclGetErrorString) with `diagnosis` from
    /// ncclGetLastError, and exited with code 3.
    fn assert_ranks_failed(&self, ranks: impl IntoIterator<Item = u32>, code: i32, name: &str, diagnosis: &str) {
        for r in ranks {
            let line = self.nccl_error(r);
            let head = format!("rank {r}: NCCL error {code} ({name}");
            let tail = format!(") : {diagnosis}");
            assert!(line.starts_with(&head) && line.ends_with(&tail), "rank {r}:\n  got      {line}\n  expected {head}…{tail}");
            assert_eq!(self.exits.get(&r).map(|e| e.1), Some(3), "rank {r}'s exit code: {}", self.out.describe());
        }
    }

    fn assert_summary(&self, line: &str) {
        assert!(self.stderr_lines().contains(&line), "no `{line}` line: {}", self.out.describe());
    }
}

fn exits(out: &Output) -> BTreeMap<u32, (u32, i32)> {
    let mut m = BTreeMap::new();
    for l in out.stderr.lines() {
        // phantom: rank 2 (pid 1234, node 0) exited with code 7
        let Some(rest) = l.strip_prefix("phantom: rank ") else { continue };
        let Some((rank, rest)) = rest.split_once(" (pid ") else { continue };
        let Some((pid, rest)) = rest.split_once(", node 0) exited with code ") else { continue };
        let (Ok(rank), Ok(pid), Ok(code)) = (rank.parse(), pid.parse(), rest.parse()) else { continue };
        assert!(m.insert(rank, (pid, code)).is_none(), "rank {rank} reported twice:\n{}", out.stderr);
    }
    m
}

fn allreduce(count: u64, dtype: i32) -> String {
    format!("AllReduce(count={count}, datatype={dtype}, redop=0)")
}

/// A mismatch scenario: rank 1 called `odd`, ranks 0, 2, 3 called `even`. The simulator names rank 1 against
/// rank 0 (whose call it heard first), once; every rank gets ncclInvalidUsage with that diagnosis.
fn assert_mismatch(scenario: &str, odd: &str, even: &str) {
    let run = run(scenario);
    let diagnosis = format!(
        "mismatched operation: {} called {odd} as collective #0, but {} called {even}",
        run.rank_label(1),
        run.rank_label(0)
    );
    assert_eq!(run.diagnoses(), [diagnosis.as_str()], "{}", run.out.describe());
    run.assert_ranks_failed(0..RANKS, 5, "invalid usage", &diagnosis);
    assert_eq!(run.out.code, Some(3), "{}", run.out.describe());
    assert_eq!(run.exits.len(), RANKS as usize, "every rank ends on its own: {}", run.out.describe());
    assert!(run.out.stdout.is_empty(), "no rank completes: {}", run.out.describe());
    run.assert_summary("phantom: the simulator diagnosed 1 failure (printed above)");
    run.assert_summary("phantom: 4 of 4 processes failed; exit code 3");
}

#[test]
fn matching_collectives_succeed() {
    let run = run("ok");
    assert_eq!(run.out.code, Some(0), "{}", run.out.describe());
    let mut lines: Vec<&str> = run.out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["rank 0 ok", "rank 1 ok", "rank 2 ok", "rank 3 ok"], "{}", run.out.describe());
    assert!(run.diagnoses().is_empty(), "{}", run.out.describe());
    assert!(run.exits.is_empty(), "{}", run.out.describe());
    assert!(!run.out.stderr.contains("NCCL error") && !run.out.stderr.contains("ERROR"), "{}", run.out.describe());
    // Two all-reduces, each counted once.
    let summary = run.stderr_lines().into_iter().find(|l| l.starts_with("phantom: simulator: 4 processes connected, "));
    assert!(
        summary.is_some_and(|l| l.starts_with("phantom: simulator: 4 processes connected, 1 communicator, 2 operations, ")),
        "{}",
        run.out.describe()
    );
    run.assert_summary("phantom: all 4 processes exited 0");
}

#[test]
fn a_different_count_is_a_mismatch() {
    assert_mismatch("mismatch-size", &allreduce(2 * N, FLOAT), &allreduce(N, FLOAT));
}

#[test]
fn a_different_collective_is_a_mismatch() {
    // Rank 1's all-gather sends N / 4 floats per rank.
    assert_mismatch("mismatch-op", &format!("AllGather(count={}, datatype={FLOAT}, redop=0)", N / 4), &allreduce(N, FLOAT));
}

#[test]
fn a_different_root_is_a_mismatch() {
    let bcast = |root: u32| format!("Broadcast(count={N}, datatype={FLOAT}, redop=0, root={root})");
    assert_mismatch("mismatch-root", &bcast(1), &bcast(0));
}

#[test]
fn a_different_datatype_is_a_mismatch() {
    assert_mismatch("mismatch-type", &allreduce(N, HALF), &allreduce(N, FLOAT));
}

#[test]
fn a_rank_that_exits_fails_the_collective_it_never_called() {
    let run = run("dead");
    // Rank 2 is the first (and only) rank to fail on its own account: phantom exits with its code.
    assert_eq!(run.exits.get(&2).map(|e| e.1), Some(7), "{}", run.out.describe());
    let first = run.stderr_lines().into_iter().find(|l| l.starts_with("phantom: rank "));
    assert_eq!(first, Some(format!("phantom: rank 2 (pid {}, node 0) exited with code 7", run.pid(2)).as_str()), "{}", run.out.describe());
    assert_eq!(run.out.code, Some(7), "{}", run.out.describe());
    let diagnosis = format!("process {} (RANK 2, node 0) exited before {} called {}", run.pid(2), run.rank_label(2), allreduce(N, FLOAT));
    assert_eq!(run.diagnoses(), [diagnosis.as_str()], "{}", run.out.describe());
    run.assert_ranks_failed([0, 1, 3], 6, "remote process exited", &diagnosis);
    assert!(!run.out.stderr.contains("rank 2: NCCL error"), "{}", run.out.describe());
    assert!(run.out.stdout.is_empty(), "{}", run.out.describe());
    run.assert_summary("phantom: the simulator diagnosed 1 failure (printed above)");
    run.assert_summary("phantom: 4 of 4 processes failed; exit code 7");
}

#[test]
fn sends_that_nobody_receives_are_a_deadlock() {
    let run = run("deadlock");
    assert_eq!(run.exits.len(), RANKS as usize, "every rank ends on its own: {}", run.out.describe());
    assert_eq!(run.out.code, Some(3), "{}", run.out.describe());
    // Every rank waits in its send to the next one, which never posted the receive: one line per rank.
    let expected: Vec<String> = (0..RANKS)
        .map(|r| {
            let next = (r + 1) % RANKS;
            format!(
                "deadlock: {} waits in Send(count={N}, datatype={FLOAT}, peer={next}) (point-to-point operation #0); ranks [{next}] of communicator 0 never called it",
                run.rank_label(r)
            )
        })
        .collect();
    let mut got = run.diagnoses();
    got.sort();
    assert_eq!(got, expected, "{}", run.out.describe());
    for (r, diagnosis) in expected.iter().enumerate() {
        run.assert_ranks_failed([r as u32], 6, "remote process exited", diagnosis);
    }
    assert!(run.out.stdout.is_empty(), "{}", run.out.describe());
    run.assert_summary("phantom: the simulator diagnosed 4 failures (printed above)");
    run.assert_summary("phantom: 4 of 4 processes failed; exit code 3");
}
