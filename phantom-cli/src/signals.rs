//! Signals: receiving the ones phantom forwards, sending to a rank's process group, and naming them.

use crate::spawn::Event;
use std::sync::mpsc::Sender;

/// The signals `phantom run` forwards to every rank.
pub const FORWARDED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// From now on, SIGINT, SIGTERM and SIGHUP no longer end this process: each arrives on `tx` as
/// [`Event::Signal`]. Call before starting any rank, so that none is lost. (The handlers are reset to the
/// default in the ranks by `exec`.)
pub fn forward_to(tx: Sender<Event>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
    std::thread::Builder::new().name("phantom-signals".into()).spawn(move || {
        for sig in signals.forever() {
            if tx.send(Event::Signal(sig)).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// Sends `sig` to the process group `pgid` (a rank and whatever it started). A group that is already gone
/// is not an error.
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names a process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// `SIGTERM`-style name of a Linux signal number.
pub fn name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig).ok().and_then(|s| s.checked_sub(1)).and_then(|i| NAMES.get(i)) {
        Some(n) => (*n).to_string(),
        None if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) => format!("SIGRTMIN+{}", sig - libc::SIGRTMIN()),
        None => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGKILL), "SIGKILL");
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(name(libc::SIGSYS), "SIGSYS");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(name(0), "signal 0");
    }
}
