//! A yes/no decided once, on first use, and then read with one relaxed load: the switches of tracing, of the
//! API track, of statistics and of clock interposition, which hot paths (every API call, every launch) test.

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

pub struct LazyFlag(AtomicU8);

impl LazyFlag {
    pub const fn new() -> Self {
        LazyFlag(AtomicU8::new(UNKNOWN))
    }

    /// The flag, deciding it with `decide` on first use. Threads racing on the first use may each call
    /// `decide`; it must give every caller the same answer (it reads the environment, or a `OnceLock`).
    #[inline]
    pub fn get(&self, decide: impl FnOnce() -> bool) -> bool {
        match self.0.load(Ordering::Relaxed) {
            OFF => false,
            ON => true,
            _ => self.decide(decide),
        }
    }

    #[cold]
    fn decide(&self, decide: impl FnOnce() -> bool) -> bool {
        let on = decide();
        self.0.store(if on { ON } else { OFF }, Ordering::Relaxed);
        on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_once_then_read() {
        let f = LazyFlag::new();
        assert!(f.get(|| true));
        assert!(f.get(|| panic!("decided already")));
        let g = LazyFlag::new();
        assert!(!g.get(|| false));
        assert!(!g.get(|| panic!("decided already")));
    }
}
