//! What to do as ranks exit and signals arrive: a state machine with no I/O (the caller sends the signals it
//! asks for and prints its messages), so its policy is unit-tested.
//!
//! - A rank that fails on its own is reported (the first in full; a few more; then a count). The others get
//!   `fail_grace` to exit on their own (the simulator tells them about the failure), then they are stopped.
//! - A signal phantom receives is forwarded to every running rank, which stops them.
//! - Stopping = the polite signal (SIGTERM, or the one received) now, SIGKILL `kill_grace` later, or at once
//!   on a second signal.
//! - When a rank's leader process exits, whatever is left in its process group is killed.
//! - Exit code: the first failing rank's (128 + signal for a signal death); 0 if every rank exited 0, or
//!   128 + the signal phantom received if it was interrupted and no rank failed.

use crate::signals;
use crate::spawn::Exit;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Individually reported failures after the first, before the rest are only counted.
const MORE_REPORTED: usize = 7;

/// Signals to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub sig: i32,
    /// Process groups.
    pub groups: Vec<i32>,
}

struct Proc {
    label: String,
    pid: i32,
    exit: Option<Exit>,
    /// Running when phantom began stopping the ranks: its exit is not a failure of its own.
    stopped: bool,
}

struct Stopping {
    kill_at: Instant,
    killed: bool,
}

pub struct Supervisor {
    procs: Vec<Proc>,
    by_pid: HashMap<i32, usize>,
    fail_grace: Duration,
    kill_grace: Duration,
    /// First rank that failed on its own.
    first_failure: Option<usize>,
    /// First rank that exited unsuccessfully, for whatever reason.
    first_unsuccessful: Option<usize>,
    fail_deadline: Option<Instant>,
    stopping: Option<Stopping>,
    interrupted: Option<i32>,
    own_failures: usize,
    messages: Vec<String>,
}

impl Supervisor {
    /// `procs`: (label, pid) of each process started, e.g. `("rank 3 (pid 1234, node 0)", 1234)`.
    pub fn new(procs: Vec<(String, i32)>, fail_grace: Duration, kill_grace: Duration) -> Supervisor {
        let by_pid = procs.iter().enumerate().map(|(i, (_, pid))| (*pid, i)).collect();
        Supervisor {
            procs: procs.into_iter().map(|(label, pid)| Proc { label, pid, exit: None, stopped: false }).collect(),
            by_pid,
            fail_grace,
            kill_grace,
            first_failure: None,
            first_unsuccessful: None,
            fail_deadline: None,
            stopping: None,
            interrupted: None,
            own_failures: 0,
            messages: Vec::new(),
        }
    }

    pub fn live(&self) -> usize {
        self.procs.iter().filter(|p| p.exit.is_none()).count()
    }

    fn live_groups(&self) -> Vec<i32> {
        self.procs.iter().filter(|p| p.exit.is_none()).map(|p| p.pid).collect()
    }

    /// Lines to print (each starts with `phantom:`).
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// When [`Supervisor::on_tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.stopping {
            Some(s) if !s.killed => Some(s.kill_at),
            Some(_) => None,
            None => self.fail_deadline,
        }
    }

    fn ranks(n: usize) -> String {
        format!("{n} rank{}", if n == 1 { "" } else { "s" })
    }

    fn stop(&mut self, sig: i32, why: String, now: Instant) -> Vec<Action> {
        let groups = self.live_groups();
        for p in self.procs.iter_mut().filter(|p| p.exit.is_none()) {
            p.stopped = true;
        }
        self.stopping = Some(Stopping { kill_at: now + self.kill_grace, killed: false });
        if groups.is_empty() {
            return Vec::new();
        }
        self.messages.push(format!(
            "phantom: {why}: sending {} to {} (SIGKILL after {:?}, --kill-grace-s)",
            signals::name(sig),
            Self::ranks(groups.len()),
            self.kill_grace
        ));
        vec![Action { sig, groups }]
    }

    fn kill_all(&mut self, why: &str) -> Vec<Action> {
        if let Some(s) = &mut self.stopping {
            s.killed = true;
        }
        let groups = self.live_groups();
        if groups.is_empty() {
            return Vec::new();
        }
        self.messages.push(format!("phantom: {why}: sending SIGKILL to {}", Self::ranks(groups.len())));
        vec![Action { sig: libc::SIGKILL, groups }]
    }

    /// A child exited. Unknown pids (not a rank) are ignored.
    pub fn on_exit(&mut self, pid: i32, exit: Exit, now: Instant) -> Vec<Action> {
        let Some(&i) = self.by_pid.get(&pid) else { return Vec::new() };
        if self.procs[i].exit.is_some() {
            return Vec::new();
        }
        self.procs[i].exit = Some(exit);
        // Whatever the rank started and left behind goes with it.
        let mut actions = vec![Action { sig: libc::SIGKILL, groups: vec![pid] }];
        if exit.success() {
            return actions;
        }
        self.first_unsuccessful.get_or_insert(i);
        if self.procs[i].stopped {
            return actions;
        }
        self.own_failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(i);
            self.messages.push(format!("phantom: {} {}", self.procs[i].label, exit.describe()));
            let live = self.live();
            if live > 0 {
                self.fail_deadline = Some(now + self.fail_grace);
                self.messages.push(format!(
                    "phantom: the other {} get {:?} to exit before they are stopped (--fail-grace-s)",
                    Self::ranks(live),
                    self.fail_grace
                ));
            }
            if self.fail_grace.is_zero() {
                actions.extend(self.on_tick(now));
            }
        } else if self.own_failures <= 1 + MORE_REPORTED {
            self.messages.push(format!("phantom: {} {}", self.procs[i].label, exit.describe()));
        }
        actions
    }

    /// phantom received `sig`: forward it (the first time), or SIGKILL (the second).
    pub fn on_signal(&mut self, sig: i32, now: Instant) -> Vec<Action> {
        if self.stopping.is_some() {
            return self.kill_all(&format!("received {} again", signals::name(sig)));
        }
        self.interrupted = Some(sig);
        self.stop(sig, format!("received {}", signals::name(sig)), now)
    }

    /// Acts on deadlines that have passed.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        match &self.stopping {
            Some(s) if !s.killed && now >= s.kill_at => {
                let grace = self.kill_grace;
                self.kill_all(&format!("still running {grace:?} after being stopped"))
            }
            Some(_) => Vec::new(),
            None => match (self.fail_deadline, self.first_failure) {
                (Some(d), Some(i)) if now >= d => {
                    let why = format!("{} failed {:?} ago", self.procs[i].label, self.fail_grace);
                    self.stop(libc::SIGTERM, why, now)
                }
                _ => Vec::new(),
            },
        }
    }

    /// Lines for the end of the run, once no rank is live.
    pub fn final_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let unreported = self.own_failures.saturating_sub(1 + MORE_REPORTED);
        if unreported > 0 {
            out.push(format!("phantom: {unreported} more rank{} failed", if unreported == 1 { "" } else { "s" }));
        }
        let stopped_failed = self.procs.iter().filter(|p| p.stopped && p.exit.is_some_and(|e| !e.success())).count();
        if stopped_failed > 0 {
            out.push(format!("phantom: {} stopped by phantom exited unsuccessfully", Self::ranks(stopped_failed)));
        }
        out
    }

    /// The launcher's exit code.
    pub fn exit_code(&self) -> i32 {
        match (self.first_failure.or(self.first_unsuccessful), self.interrupted) {
            (Some(i), _) => self.procs[i].exit.map_or(1, Exit::code),
            (None, Some(sig)) => 128 + sig,
            (None, None) => 0,
        }
    }

    /// The exits, for the summary: (succeeded, failed).
    pub fn tally(&self) -> (usize, usize) {
        let ok = self.procs.iter().filter(|p| p.exit.is_some_and(Exit::success)).count();
        (ok, self.procs.len() - ok - self.live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Duration = Duration::from_secs(30);
    const KILL: Duration = Duration::from_secs(10);

    fn sup(n: i32) -> Supervisor {
        let procs = (0..n).map(|r| (format!("rank {r} (pid {}, node 0)", 100 + r), 100 + r)).collect();
        Supervisor::new(procs, FAIL, KILL)
    }

    fn act(sig: i32, groups: &[i32]) -> Action {
        Action { sig, groups: groups.to_vec() }
    }

    #[test]
    fn all_succeed() {
        let mut s = sup(2);
        let t = Instant::now();
        assert_eq!(s.on_exit(100, Exit::Code(0), t), vec![act(libc::SIGKILL, &[100])]);
        assert_eq!(s.on_exit(999, Exit::Code(5), t), vec![], "not a rank");
        s.on_exit(101, Exit::Code(0), t);
        assert_eq!(s.live(), 0);
        assert_eq!(s.exit_code(), 0);
        assert!(s.take_messages().is_empty());
        assert_eq!(s.tally(), (2, 0));
    }

    #[test]
    fn first_failure_then_grace_then_stop_then_kill() {
        let mut s = sup(4);
        let t = Instant::now();
        s.on_exit(102, Exit::Code(3), t);
        assert_eq!(
            s.take_messages(),
            [
                "phantom: rank 2 (pid 102, node 0) exited with code 3",
                "phantom: the other 3 ranks get 30s to exit before they are stopped (--fail-grace-s)"
            ]
        );
        assert_eq!(s.next_deadline(), Some(t + FAIL));
        assert_eq!(s.on_tick(t + FAIL / 2), vec![]);
        // A second failure of its own is reported but does not change the exit code.
        s.on_exit(101, Exit::Signal { sig: 11, core_dumped: false }, t + Duration::from_secs(1));
        assert_eq!(s.take_messages(), ["phantom: rank 1 (pid 101, node 0) was killed by signal 11 (SIGSEGV)"]);
        assert_eq!(s.on_tick(t + FAIL), vec![act(libc::SIGTERM, &[100, 103])]);
        assert!(s.take_messages()[0]
            .starts_with("phantom: rank 2 (pid 102, node 0) failed 30s ago: sending SIGTERM to 2 ranks"));
        assert_eq!(s.next_deadline(), Some(t + FAIL + KILL));
        s.on_exit(100, Exit::Signal { sig: 15, core_dumped: false }, t + FAIL);
        assert!(s.take_messages().is_empty(), "a rank phantom stopped is not reported one by one");
        assert_eq!(s.on_tick(t + FAIL + KILL), vec![act(libc::SIGKILL, &[103])]);
        assert_eq!(s.next_deadline(), None);
        s.on_exit(103, Exit::Signal { sig: 9, core_dumped: false }, t + FAIL + KILL);
        assert_eq!(s.live(), 0);
        assert_eq!(s.exit_code(), 3);
        assert_eq!(s.final_messages(), ["phantom: 2 ranks stopped by phantom exited unsuccessfully"]);
        assert_eq!(s.tally(), (0, 4));
    }

    #[test]
    fn others_exit_within_the_grace() {
        let mut s = sup(2);
        let t = Instant::now();
        s.on_exit(101, Exit::Code(1), t);
        s.on_exit(100, Exit::Code(0), t);
        assert_eq!(s.live(), 0);
        assert_eq!(s.on_tick(t + FAIL), vec![], "nobody left to stop");
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn zero_fail_grace_stops_at_once() {
        let procs = vec![("rank 0".to_string(), 100), ("rank 1".to_string(), 101)];
        let mut s = Supervisor::new(procs, Duration::ZERO, KILL);
        let t = Instant::now();
        assert_eq!(s.on_exit(100, Exit::Code(2), t), vec![act(libc::SIGKILL, &[100]), act(libc::SIGTERM, &[101])]);
    }

    #[test]
    fn signals_are_forwarded_then_escalate() {
        let mut s = sup(3);
        let t = Instant::now();
        assert_eq!(s.on_signal(libc::SIGINT, t), vec![act(libc::SIGINT, &[100, 101, 102])]);
        assert_eq!(
            s.take_messages()[0],
            "phantom: received SIGINT: sending SIGINT to 3 ranks (SIGKILL after 10s, --kill-grace-s)"
        );
        s.on_exit(100, Exit::Code(0), t);
        assert_eq!(s.on_signal(libc::SIGINT, t), vec![act(libc::SIGKILL, &[101, 102])]);
        assert_eq!(s.take_messages(), ["phantom: received SIGINT again: sending SIGKILL to 2 ranks"]);
        assert_eq!(s.on_tick(t + KILL), vec![], "already killed");
        s.on_exit(101, Exit::Signal { sig: 9, core_dumped: false }, t);
        s.on_exit(102, Exit::Signal { sig: 9, core_dumped: false }, t);
        assert_eq!(s.exit_code(), 137);
    }

    #[test]
    fn interrupted_run_whose_ranks_exit_cleanly() {
        let mut s = sup(1);
        let t = Instant::now();
        s.on_signal(libc::SIGTERM, t);
        s.on_exit(100, Exit::Code(0), t);
        assert_eq!(s.exit_code(), 143);
    }

    #[test]
    fn many_failures_are_counted() {
        let mut s = sup(20);
        let t = Instant::now();
        for pid in 100..120 {
            s.on_exit(pid, Exit::Code(1), t);
        }
        let lines = s.take_messages();
        assert_eq!(lines.iter().filter(|l| l.contains("exited with code 1")).count(), 1 + MORE_REPORTED);
        assert_eq!(s.final_messages(), [format!("phantom: {} more ranks failed", 20 - 1 - MORE_REPORTED)]);
    }
}
