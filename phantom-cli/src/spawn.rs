//! Starting rank processes and learning how they ended.
//!
//! Every rank is the leader of its own process group, so a signal sent to the group reaches the rank and
//! everything it started, and a Ctrl-C at the terminal reaches only `phantom`, which forwards it once. A rank
//! also gets SIGKILL if `phantom` itself dies (`PR_SET_PDEATHSIG`). One thread reaps the ranks with
//! `wait4(-1)` and reports each exit on a channel; it is started only after every rank is spawned, because
//! `std::process::Command::spawn` itself waits for a child whose `exec` failed.

use crate::signals;
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;

/// What the supervising loop waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A child of `phantom` ended, with its peak resident memory (KiB, from `wait4`).
    Exited { pid: i32, exit: Exit, max_rss_kib: u64 },
    /// `phantom` received a signal it forwards.
    Signal(i32),
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal { sig: i32, core_dumped: bool },
}

impl Exit {
    /// From a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Exit {
        let s = std::process::ExitStatus::from_raw(status);
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal { sig, core_dumped: s.core_dumped() },
            // Stopped/continued statuses are not asked for (no WUNTRACED), so this is not reached.
            (None, None) => Exit::Code(status),
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The shell's number for it: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal { sig, .. } => 128 + sig,
        }
    }

    /// `exited with code 1`, `was killed by signal 9 (SIGKILL)`.
    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exited with code {c}"),
            Exit::Signal { sig, core_dumped } => format!(
                "was killed by signal {sig} ({}){}",
                signals::name(sig),
                if core_dumped { ", core dumped" } else { "" }
            ),
        }
    }
}

/// Starts `command` with `env` added to phantom's environment, as the leader of a new process group.
/// Returns its pid (= its process group id). `stdin_null`: the process reads from /dev/null rather than
/// phantom's stdin.
pub fn spawn(command: &[OsString], env: &[(String, OsString)], stdin_null: bool) -> std::io::Result<i32> {
    let (program, args) = command.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).process_group(0);
    if stdin_null {
        cmd.stdin(Stdio::null());
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions (prctl, getppid, _exit)
    // and touches no memory but its own copy of `parent`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // phantom died before the line above took effect: nobody will reap or stop this process.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    // Dropping the `Child` neither waits for nor kills it; the reaper thread collects its status.
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// Reaps every child of this process until there are none left, sending each exit to `tx`. Start it only
/// after the last `spawn`.
pub fn reap_children(tx: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new().name("phantom-reaper".into()).spawn(move || loop {
        let mut status = 0;
        // SAFETY: all-zero is a valid `rusage`.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid out-pointers for the duration of the call.
        let pid = unsafe { libc::wait4(-1, &mut status, 0, &mut usage) };
        if pid > 0 {
            let max_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
            if tx.send(Event::Exited { pid, exit: Exit::from_wait_status(status), max_rss_kib }).is_err() {
                return;
            }
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // ECHILD: every child has been reaped.
            return;
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        // Linux encodings: exit code in bits 8..16; signal in the low 7 bits, 0x80 = core dumped.
        assert_eq!(Exit::from_wait_status(3 << 8), Exit::Code(3));
        assert_eq!(Exit::from_wait_status(9), Exit::Signal { sig: 9, core_dumped: false });
        assert_eq!(Exit::from_wait_status(11 | 0x80), Exit::Signal { sig: 11, core_dumped: true });
        assert!(Exit::Code(0).success());
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal { sig: 15, core_dumped: false }.code(), 143);
        assert_eq!(Exit::Code(1).describe(), "exited with code 1");
        assert_eq!(Exit::Signal { sig: 9, core_dumped: false }.describe(), "was killed by signal 9 (SIGKILL)");
        assert_eq!(
            Exit::Signal { sig: 11, core_dumped: true }.describe(),
            "was killed by signal 11 (SIGSEGV), core dumped"
        );
    }
}
