//! Kernel measurements shared between rank processes (profiling mode; docs/simulator.md, "Measurements from
//! executing processes").
//!
//! Executing processes run their GPU work on a real GPU and publish what each distinct kernel took
//! (`ToSim::Measured`); following processes ask for a kernel's duration (`ToSim::Lookup`). A lookup whose key
//! is known is answered at once; otherwise it is parked until the measurement arrives, or until the
//! coordinator decides that it can no longer be expected soon ([`Measurements::give_up`], from the state of
//! the executing processes) or the wall-clock limit passed ([`Measurements::expire`]). An answer of `None`
//! sends the follower to its kernel table or model.
//!
//! Nothing here reads a clock: the one wall-clock rule takes `now` as an argument.

use super::core::ClientId;
use super::proto::FromSim;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys that begin with this are host figures (an executing process's host cost of a launch), not GPU work: a
/// lookup of one answered `None` is not counted as GPU work timed without a measurement.
pub const HOST_KEY_PREFIX: &str = "host\t";

/// Whether an unanswered lookup of `key` counts (see [`HOST_KEY_PREFIX`]).
fn counts(key: &str) -> bool {
    !key.starts_with(HOST_KEY_PREFIX)
}

/// A lookup waiting for its key's measurement.
#[derive(Debug)]
struct Parked {
    client: ClientId,
    req: u64,
    key: String,
    /// The first [`Measurements::expire`] call that saw it parked: its age counts from there.
    seen: Option<Instant>,
}

/// What the executing processes measured, and the lookups still waiting for a measurement.
#[derive(Debug, Default)]
pub struct Measurements {
    /// Canonical key → (nanoseconds, settled): the latest published.
    known: HashMap<String, (u64, bool)>,
    /// In arrival order (answers go out in that order).
    parked: Vec<Parked>,
    /// How many executing processes the run has, when the launcher said so.
    expected_executing: Option<usize>,
    /// Lookups of GPU work answered `None`.
    unanswered: u64,
}

impl Measurements {
    /// The run has exactly `n` executing processes.
    pub fn expect_executing(&mut self, n: usize) {
        self.expected_executing = Some(n);
    }

    /// Publishes measurements (a later entry for the same key replaces the earlier) and answers the parked
    /// lookups whose key is now known.
    pub fn publish(&mut self, entries: Vec<(String, u64, bool)>, out: &mut Vec<(ClientId, FromSim)>) {
        if entries.is_empty() {
            return;
        }
        for (key, ns, settled) in entries {
            self.known.insert(key, (ns, settled));
        }
        // A parked key was unknown when it was parked and every publication answers its keys' lookups at once,
        // so the lookups answered here are exactly those whose key this publication brought.
        let known = &self.known;
        self.parked.retain(|p| match known.get(&p.key) {
            Some(&(ns, settled)) => {
                out.push((p.client, FromSim::Measured { req: p.req, ns: Some(ns), settled }));
                false
            }
            None => true,
        });
    }

    /// `client` asks for `key`: answered at once when it is known, parked otherwise.
    pub fn lookup(&mut self, client: ClientId, req: u64, key: String, out: &mut Vec<(ClientId, FromSim)>) {
        match self.known.get(&key) {
            Some(&(ns, settled)) => out.push((client, FromSim::Measured { req, ns: Some(ns), settled })),
            None => self.parked.push(Parked { client, req, key, seen: None }),
        }
    }

    /// Whether some lookup waits for a measurement.
    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Whether `client` waits for a measurement.
    pub fn is_parked(&self, client: ClientId) -> bool {
        self.parked.iter().any(|p| p.client == client)
    }

    /// Answers every parked lookup with `None` when no measurement can be expected soon: every executing
    /// process the run expects has connected (`connected` of them said `Hello` as executing; without
    /// [`Measurements::expect_executing`], those are all there are) and none of them can publish
    /// (`can_publish`: some executing process is alive and not blocked in a wait). With no executing process
    /// at all and none expected, that is at once.
    pub fn give_up(&mut self, connected: usize, can_publish: bool, out: &mut Vec<(ClientId, FromSim)>) {
        if self.parked.is_empty() || can_publish || self.expected_executing.is_some_and(|n| connected < n) {
            return;
        }
        for p in std::mem::take(&mut self.parked) {
            self.unanswered += u64::from(counts(&p.key));
            out.push((p.client, FromSim::Measured { req: p.req, ns: None, settled: true }));
        }
    }

    /// Answers with `None` every lookup parked for at least `limit`, counted from the first call that saw it
    /// parked (so up to one call's interval late).
    pub fn expire(&mut self, now: Instant, limit: Duration, out: &mut Vec<(ClientId, FromSim)>) {
        let mut unanswered = 0;
        self.parked.retain_mut(|p| {
            let since = *p.seen.get_or_insert(now);
            if now.saturating_duration_since(since) < limit {
                return true;
            }
            unanswered += u64::from(counts(&p.key));
            out.push((p.client, FromSim::Measured { req: p.req, ns: None, settled: true }));
            false
        });
        self.unanswered += unanswered;
    }

    /// `client` is gone: its parked lookups can no longer be answered.
    pub fn forget(&mut self, client: ClientId) {
        self.parked.retain(|p| p.client != client);
    }

    /// Distinct keys published.
    pub fn keys(&self) -> usize {
        self.known.len()
    }

    /// Lookups of GPU work answered `None`.
    pub fn unanswered(&self) -> u64 {
        self.unanswered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(out: &mut Vec<(ClientId, FromSim)>) -> Vec<(ClientId, u64, Option<u64>)> {
        std::mem::take(out)
            .into_iter()
            .map(|(c, m)| match m {
                FromSim::Measured { req, ns, .. } => (c, req, ns),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_parked_lookup_is_answered_by_the_measurement_and_later_entries_replace_earlier_ones() {
        let mut m = Measurements::default();
        let mut out = Vec::new();
        m.lookup(3, 7, "gemm 128x128".into(), &mut out);
        m.lookup(4, 2, "gemm 128x128".into(), &mut out);
        m.lookup(4, 3, "softmax".into(), &mut out);
        assert!(out.is_empty());
        m.publish(vec![("gemm 128x128".into(), 1_000, false), ("gemm 128x128".into(), 1_250, false)], &mut out);
        assert_eq!(answers(&mut out), [(3, 7, Some(1_250)), (4, 2, Some(1_250))]);
        assert!(m.is_parked(4) && !m.is_parked(3));
        // Known now: answered at once, with the latest value.
        m.publish(vec![("gemm 128x128".into(), 1_300, true)], &mut out);
        assert!(out.is_empty());
        m.lookup(5, 1, "gemm 128x128".into(), &mut out);
        assert_eq!(answers(&mut out), [(5, 1, Some(1_300))]);
        assert_eq!((m.keys(), m.unanswered()), (1, 0));
    }

    #[test]
    fn giving_up_needs_every_expected_executing_process() {
        let mut m = Measurements::default();
        let mut out = Vec::new();
        m.lookup(1, 1, "k".into(), &mut out);
        m.give_up(1, true, &mut out);
        assert!(out.is_empty(), "an executing process can still publish");
        m.expect_executing(2);
        m.give_up(1, false, &mut out);
        assert!(out.is_empty(), "the second executing process has not connected");
        m.give_up(2, false, &mut out);
        assert_eq!(answers(&mut out), [(1, 1, None)]);
        assert_eq!(m.unanswered(), 1);
        assert!(!m.has_parked());
    }

    #[test]
    fn expiry_counts_from_the_first_call_that_saw_the_lookup() {
        let mut m = Measurements::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let limit = ms(1_000);
        m.lookup(1, 1, "a".into(), &mut out);
        m.expire(t0, limit, &mut out);
        m.lookup(2, 1, "b".into(), &mut out);
        m.expire(t0 + ms(600), limit, &mut out);
        m.expire(t0 + ms(999), limit, &mut out);
        assert!(out.is_empty());
        m.expire(t0 + ms(1_000), limit, &mut out);
        assert_eq!(answers(&mut out), [(1, 1, None)]);
        m.expire(t0 + ms(1_599), limit, &mut out);
        assert!(out.is_empty());
        m.expire(t0 + ms(1_600), limit, &mut out);
        assert_eq!(answers(&mut out), [(2, 1, None)]);
        assert_eq!(m.unanswered(), 2);
        // A host figure that never comes is answered the same way, but is not GPU work timed without one.
        m.lookup(3, 1, format!("{HOST_KEY_PREFIX}launch"), &mut out);
        m.expire(t0 + ms(1_600), limit, &mut out);
        m.expire(t0 + ms(2_600), limit, &mut out);
        assert_eq!((answers(&mut out), m.unanswered()), (vec![(3, 1, None)], 2));
    }

    #[test]
    fn a_gone_client_s_lookups_are_dropped_unanswered() {
        let mut m = Measurements::default();
        let mut out = Vec::new();
        m.lookup(1, 1, "a".into(), &mut out);
        m.lookup(2, 1, "a".into(), &mut out);
        m.forget(1);
        m.publish(vec![("a".into(), 5, true)], &mut out);
        assert_eq!(answers(&mut out), [(2, 1, Some(5))]);
        assert_eq!(m.unanswered(), 0);
    }
}
