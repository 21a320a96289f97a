//! The live progress line of `phantom run` (docs/launcher.md, "Progress"): ranks alive, simulated time, wall
//! time and simulator events per second, rewritten in place on a terminal by the supervision loop.
//!
//! The decisions and the text are pure functions ([`style`], [`line`], [`fit`]), unit-tested; [`Progress`]
//! only reads the clock, the simulator's counters and the terminal, and writes.

use crate::args::ProgressArg;
use sim_core::engine::server::ServerHandle;
use sim_core::time::{SimDuration, SimTime};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The line is rewritten at most this often.
pub const EVERY: Duration = Duration::from_millis(500);

/// Back to the start of the row and erase it (ANSI "erase to end of line").
const CLEAR: &str = "\r\x1b[K";

/// Whether the in-place line is on the screen now, so that the next line phantom prints must erase it first.
/// Process-wide because every line phantom prints (the `say!` macro in run.rs) must see it; it holds terminal
/// state only and has no effect on any simulated result.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// How the progress is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// One line rewritten in place: `\r`, the text, `\x1b[K` (stderr is a terminal).
    InPlace,
    /// A plain line each time, no control characters (`--progress always` when stderr is not a terminal).
    Lines,
}

/// Whether and how to show progress. `auto`: in place when stderr is a terminal, unless `--quiet`; `always`:
/// in place on a terminal, plain lines elsewhere, even with `--quiet` (it was asked for by name); `never`: no.
pub fn style(mode: ProgressArg, stderr_is_tty: bool, quiet: bool) -> Option<Style> {
    let s = if stderr_is_tty { Style::InPlace } else { Style::Lines };
    match mode {
        ProgressArg::Never => None,
        ProgressArg::Always => Some(s),
        ProgressArg::Auto if stderr_is_tty && !quiet => Some(s),
        ProgressArg::Auto => None,
    }
}

/// Who is alive, as the line counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alive {
    /// With `-n`: ranks still running, of the ranks started.
    Ranks { alive: usize, total: usize },
    /// Without `-n` (the command starts its own ranks): processes connected to the simulator now.
    Connected(usize),
}

/// The progress text, e.g. `phantom: 61/64 ranks alive · simulated 12.431 s · wall 1m23s · 18 200 events/s`.
pub fn line(alive: Alive, simulated: SimTime, wall: Duration, events_per_s: f64) -> String {
    let who = match alive {
        Alive::Ranks { alive, total } => format!("{alive}/{total} ranks alive"),
        Alive::Connected(1) => "1 process connected".to_string(),
        Alive::Connected(n) => format!("{n} processes connected"),
    };
    let rate = if events_per_s.is_finite() && events_per_s > 0.0 { events_per_s.round() as u64 } else { 0 };
    format!(
        "phantom: {who} · simulated {} · wall {} · {} events/s",
        sim_time(simulated),
        wall_time(wall),
        thousands(rate)
    )
}

/// Simulated time: seconds with three decimals from 1 s on, else as [`SimDuration`] prints (ns, us, ms).
fn sim_time(t: SimTime) -> String {
    match t.as_nanos() {
        ns if ns >= 1_000_000_000 => format!("{:.3} s", ns as f64 / 1e9),
        ns => SimDuration::from_nanos(ns).to_string(),
    }
}

/// Whole seconds: `42s`, `1m23s`, `2h05m07s`.
fn wall_time(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

/// `18200` as `18 200`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `text` cut to fit a terminal `columns` wide, one column to spare (a line that fills the row would wrap, and
/// `\r` would then return to the wrong row); `columns` 0 (unknown) cuts nothing. Every character of [`line`]
/// takes one column.
pub fn fit(text: &str, columns: usize) -> &str {
    if columns == 0 {
        return text;
    }
    match text.char_indices().nth(columns - 1) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The writer, driven by the supervision loop ([`Progress::tick`] on each wake-up).
pub struct Progress {
    style: Style,
    /// Ranks started with `-n`; `None` without.
    ranks: Option<usize>,
    /// When phantom started (the wall time shown is counted from here, as in the summary).
    started: Instant,
    /// The previous update (or the creation), and the simulator's events then.
    last: Instant,
    last_events: u64,
}

impl Progress {
    pub fn new(style: Style, ranks: Option<usize>, started: Instant, now: Instant) -> Progress {
        Progress { style, ranks, started, last: now, last_events: 0 }
    }

    /// Rewrites the line if [`EVERY`] has passed since the last update: `alive_ranks` are the ranks the
    /// supervisor still waits for (used with `-n`); the rest is read from the simulator under its lock, briefly.
    pub fn tick(&mut self, now: Instant, alive_ranks: usize, sim: &ServerHandle) {
        let since = now.saturating_duration_since(self.last);
        if since < EVERY {
            return;
        }
        let s = sim.live_stats();
        let alive = match self.ranks {
            Some(total) => Alive::Ranks { alive: alive_ranks, total },
            None => Alive::Connected(s.connections),
        };
        let rate = s.events.saturating_sub(self.last_events) as f64 / since.as_secs_f64();
        self.last = now;
        self.last_events = s.events;
        let text = line(alive, s.simulated_end, now.saturating_duration_since(self.started), rate);
        let out = match self.style {
            Style::Lines => format!("{text}\n"),
            // In the background (`phantom run ... &`, then `bg`), the terminal belongs to the shell: skip.
            Style::InPlace if !foreground() => return,
            Style::InPlace => format!("\r{}\x1b[K", fit(&text, columns())),
        };
        // One `write`, like every line phantom prints: the ranks share this stderr.
        if std::io::stderr().lock().write_all(out.as_bytes()).is_ok() && self.style == Style::InPlace {
            SHOWN.store(true, Ordering::Relaxed);
        }
    }
}

/// What to write before any other line phantom prints: [`CLEAR`] if the in-place line is on the screen (it is
/// then no longer), else nothing.
pub fn clear_prefix() -> &'static str {
    if SHOWN.swap(false, Ordering::Relaxed) {
        CLEAR
    } else {
        ""
    }
}

/// Erases the in-place line if it is on the screen (when the ranks are done: nothing may be left behind).
pub fn clear() {
    let c = clear_prefix();
    if !c.is_empty() {
        let _ = std::io::stderr().lock().write_all(c.as_bytes());
    }
}

/// Whether stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty(3) on a descriptor number; no memory is involved.
    unsafe { libc::isatty(2) == 1 }
}

/// Whether phantom is in the foreground of the terminal on stderr; true when that cannot be told (the terminal
/// is not phantom's controlling terminal).
fn foreground() -> bool {
    // SAFETY: tcgetpgrp(3) and getpgrp(2) take no pointers.
    let (fg, own) = unsafe { (libc::tcgetpgrp(2), libc::getpgrp()) };
    fg < 0 || fg == own
}

/// The terminal's width in columns; 0 if unknown.
fn columns() -> usize {
    // SAFETY: TIOCGWINSZ writes one `winsize` to the pointer given, which points to a live local.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    match unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } {
        0 => ws.ws_col as usize,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_shows_only_on_a_terminal_and_not_when_quiet() {
        use ProgressArg::*;
        let cases = [
            // (option, stderr is a terminal, --quiet) -> style
            (Auto, true, false, Some(Style::InPlace)),
            (Auto, false, false, None),
            (Auto, true, true, None),
            (Auto, false, true, None),
            (Always, true, false, Some(Style::InPlace)),
            (Always, false, false, Some(Style::Lines)),
            (Always, true, true, Some(Style::InPlace)),
            (Always, false, true, Some(Style::Lines)),
            (Never, true, false, None),
            (Never, false, false, None),
            (Never, true, true, None),
        ];
        for (mode, tty, quiet, want) in cases {
            assert_eq!(style(mode, tty, quiet), want, "{mode:?} tty={tty} quiet={quiet}");
        }
    }

    #[test]
    fn the_line() {
        let l = line(
            Alive::Ranks { alive: 61, total: 64 },
            SimTime::from_nanos(12_431_000_000),
            Duration::from_millis(83_900),
            18_200.4,
        );
        assert_eq!(l, "phantom: 61/64 ranks alive · simulated 12.431 s · wall 1m23s · 18 200 events/s");
        let l = line(Alive::Connected(1), SimTime::ZERO, Duration::from_millis(999), 0.0);
        assert_eq!(l, "phantom: 1 process connected · simulated 0 ns · wall 0s · 0 events/s");
        let l = line(Alive::Connected(16), SimTime::from_nanos(12_345_678), Duration::from_secs(7627), 1_234_567.6);
        assert_eq!(l, "phantom: 16 processes connected · simulated 12.346 ms · wall 2h07m07s · 1 234 568 events/s");
        let l = line(Alive::Ranks { alive: 0, total: 8 }, SimTime::from_nanos(2_500), Duration::ZERO, f64::NAN);
        assert_eq!(l, "phantom: 0/8 ranks alive · simulated 2500 ns · wall 0s · 0 events/s");
    }

    #[test]
    fn number_forms() {
        let t: Vec<String> = [0, 7, 999, 1_000, 18_200, 100_000, 1_000_000].into_iter().map(thousands).collect();
        assert_eq!(t, ["0", "7", "999", "1 000", "18 200", "100 000", "1 000 000"]);
        assert_eq!(wall_time(Duration::from_secs(59)), "59s");
        assert_eq!(wall_time(Duration::from_secs(60)), "1m00s");
        assert_eq!(wall_time(Duration::from_secs(3600)), "1h00m00s");
        assert_eq!(sim_time(SimTime::from_nanos(999_000_000)), "999.000 ms");
        assert_eq!(sim_time(SimTime::from_nanos(1_500_000_000)), "1.500 s");
    }

    #[test]
    fn fit_leaves_one_column() {
        assert_eq!(fit("phantom: a · b", 0), "phantom: a · b");
        assert_eq!(fit("phantom: a · b", 15), "phantom: a · b");
        assert_eq!(fit("phantom: a · b", 14), "phantom: a · ");
        assert_eq!(fit("phantom: a · b", 13), "phantom: a ·");
        assert_eq!(fit("phantom: a · b", 1), "");
    }
}
