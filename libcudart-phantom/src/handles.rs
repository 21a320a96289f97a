//! Opaque handles handed to the application (streams, events, graphs, …). A handle is a number from a
//! per-type range, looked up in a map: a wrong, foreign or destroyed handle is an error, never a dereference.
//! Handles are numbered in creation order, so runs are repeatable.

use dashmap::DashMap;
use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct HandleMap<T> {
    map: Lazy<DashMap<usize, Arc<T>>>,
    next: AtomicUsize,
}

/// Distance between consecutive handles (keeps them aligned like real pointers).
const STEP: usize = 0x40;

impl<T> HandleMap<T> {
    /// `base`: first handle value; each type gets its own range so handles of different types never collide.
    pub const fn new(base: usize) -> Self {
        HandleMap { map: Lazy::new(DashMap::new), next: AtomicUsize::new(base) }
    }

    /// Creates an object that knows its own handle.
    pub fn insert_with(&self, make: impl FnOnce(usize) -> T) -> usize {
        let h = self.next.fetch_add(STEP, Ordering::Relaxed);
        self.map.insert(h, Arc::new(make(h)));
        h
    }

    pub fn insert(&self, value: T) -> usize {
        self.insert_with(|_| value)
    }

    pub fn get(&self, h: usize) -> Option<Arc<T>> {
        self.map.get(&h).map(|r| r.value().clone())
    }

    pub fn remove(&self, h: usize) -> Option<Arc<T>> {
        self.map.remove(&h).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_sequential_and_removal_invalidates() {
        let m: HandleMap<u32> = HandleMap::new(0x1000);
        let a = m.insert(7);
        let b = m.insert(8);
        assert_eq!((a, b), (0x1000, 0x1040));
        assert_eq!(m.get(a).as_deref(), Some(&7));
        assert_eq!(m.remove(a).as_deref(), Some(&7));
        assert!(m.get(a).is_none());
        assert!(m.get(0x1020).is_none());
        assert_eq!(m.len(), 1);
    }
}
