//! The little data device memory holds (docs/gpu-model.md, "Data").
//!
//! Phantom moves no data (DESIGN.md decision 6): kernels compute nothing and device memory has no backing.
//! Programs still steer by a few small values that pass through the GPU: `torch.distributed` sends parameter
//! shapes, bucket layouts and pickled objects through tiny collectives and reads them back. So small writes
//! are remembered here, sparsely, by address:
//!
//! - a host-to-device or device-to-device copy, or a memset, of at most [`MAX_BYTES`] records its bytes; a
//!   larger one forgets what its range held (reads give zeros there);
//! - a small communication operation records, for its receive buffer, *which operation* fills it
//!   ([`received`]); the bytes are fetched from the simulator when first read, after the operation completed;
//! - a device-to-host or device-to-device copy reads what is recorded, zeros elsewhere;
//! - freeing memory forgets its range.
//!
//! Kernels are not seen: what a kernel writes is not recorded, and a recorded value stays readable where a
//! kernel has since overwritten it. So that such stale values do not outlive their purpose (control data is
//! read right after it is written), an entry is forgotten once [`EXPIRY_LAUNCHES`] kernels have been launched
//! in this process after it was written.

use sim_core::engine::proto::OpId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Largest copy, memset or communication part whose bytes are kept (the simulator's limit for operations).
pub const MAX_BYTES: u64 = sim_core::engine::payload::MAX_BYTES;
/// Kernel launches after which a recorded value is forgotten.
pub const EXPIRY_LAUNCHES: u64 = 256;

#[derive(Clone, Debug, PartialEq)]
enum Content {
    Bytes(Vec<u8>),
    /// Bytes `offset..offset + len` of what operation `op` delivered to this process.
    Received { op: OpId, offset: u64 },
}

#[derive(Clone, Debug, PartialEq)]
struct Extent {
    len: u64,
    content: Content,
    /// `LAUNCHES` when it was written.
    born: u64,
}

static STORE: Mutex<BTreeMap<u64, Extent>> = Mutex::new(BTreeMap::new());
static LAUNCHES: AtomicU64 = AtomicU64::new(0);

fn store() -> std::sync::MutexGuard<'static, BTreeMap<u64, Extent>> {
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kernel (or library work) was launched.
pub fn note_launch() {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
}

/// Removes `[addr, addr + len)` from `s`, keeping the parts of extents outside it.
fn carve(s: &mut BTreeMap<u64, Extent>, addr: u64, len: u64) {
    let end = addr.saturating_add(len);
    let first = s.range(..addr).next_back().filter(|(a, e)| *a + e.len > addr).map(|(a, _)| *a);
    let overlapping: Vec<u64> = first.into_iter().chain(s.range(addr..end).map(|(a, _)| *a)).collect();
    for a in overlapping {
        let e = s.remove(&a).expect("listed");
        let e_end = a + e.len;
        if a < addr {
            s.insert(a, slice(&e, 0, addr - a));
        }
        if e_end > end {
            s.insert(end, slice(&e, end - a, e_end - end));
        }
    }
}

/// Bytes `from..from + len` of extent `e` as an extent.
fn slice(e: &Extent, from: u64, len: u64) -> Extent {
    let content = match &e.content {
        Content::Bytes(b) => Content::Bytes(b[from as usize..(from + len) as usize].to_vec()),
        Content::Received { op, offset } => Content::Received { op: *op, offset: offset + from },
    };
    Extent { len, content, born: e.born }
}

/// Records `data` at `addr` (a device address); more than [`MAX_BYTES`] forgets the range instead.
pub fn write(addr: u64, data: &[u8]) {
    let mut s = store();
    carve(&mut s, addr, data.len() as u64);
    if !data.is_empty() && data.len() as u64 <= MAX_BYTES {
        s.insert(addr, Extent { len: data.len() as u64, content: Content::Bytes(data.to_vec()), born: LAUNCHES.load(Ordering::Relaxed) });
    }
}

/// Forgets what `[addr, addr + len)` held.
pub fn clear(addr: u64, len: u64) {
    carve(&mut store(), addr, len);
}

/// `[addr, addr + len)` will hold what operation `op` delivers to this process.
pub fn received(addr: u64, len: u64, op: OpId) {
    let mut s = store();
    carve(&mut s, addr, len);
    if len > 0 {
        s.insert(addr, Extent { len, content: Content::Received { op, offset: 0 }, born: LAUNCHES.load(Ordering::Relaxed) });
    }
}

/// Fills `out` with what `[addr, addr + out.len())` holds: recorded bytes, zeros elsewhere. Reading the
/// result of a communication operation waits for it to complete (`fetch_result` blocks on the simulator).
pub fn read(addr: u64, out: &mut [u8]) {
    read_with(addr, out, crate::net::received)
}

fn read_with(addr: u64, out: &mut [u8], fetch_result: impl Fn(OpId) -> Vec<u8>) {
    out.fill(0);
    let len = out.len() as u64;
    let end = addr.saturating_add(len);
    let now = LAUNCHES.load(Ordering::Relaxed);
    // Operations whose results are needed: fetched without holding the store's lock.
    let pending: Vec<OpId> = {
        let mut s = store();
        let expired: Vec<u64> = s.iter().filter(|(_, e)| now - e.born > EXPIRY_LAUNCHES).map(|(a, _)| *a).collect();
        for a in expired {
            s.remove(&a);
        }
        let mut ops: Vec<OpId> = overlapping(&s, addr, end)
            .filter_map(|(_, e)| match e.content {
                Content::Received { op, .. } => Some(op),
                Content::Bytes(_) => None,
            })
            .collect();
        ops.sort();
        ops.dedup();
        ops
    };
    for op in pending {
        let data = fetch_result(op);
        let mut s = store();
        let of_op: Vec<u64> = s.iter().filter(|(_, e)| matches!(e.content, Content::Received { op: o, .. } if o == op)).map(|(a, _)| *a).collect();
        for a in of_op {
            let e = s.get_mut(&a).expect("listed");
            let Content::Received { offset, .. } = e.content else { continue };
            let bytes: Vec<u8> = (offset..offset + e.len).map(|i| data.get(i as usize).copied().unwrap_or(0)).collect();
            e.content = Content::Bytes(bytes);
        }
    }
    let s = store();
    for (a, e) in overlapping(&s, addr, end) {
        let Content::Bytes(b) = &e.content else { continue };
        let from = a.max(addr);
        let to = (a + e.len).min(end);
        out[(from - addr) as usize..(to - addr) as usize].copy_from_slice(&b[(from - a) as usize..(to - a) as usize]);
    }
}

fn overlapping(s: &BTreeMap<u64, Extent>, addr: u64, end: u64) -> impl Iterator<Item = (u64, &Extent)> {
    let first = s.range(..addr).next_back().filter(|(a, e)| **a + e.len > addr);
    first.into_iter().chain(s.range(addr..end)).map(|(a, e)| (*a, e))
}

/// Whether anything is remembered in `[addr, addr + len)` (what a read there would not fill with zeros; an
/// operation's result not fetched yet counts).
pub fn holds(addr: u64, len: u64) -> bool {
    let now = LAUNCHES.load(Ordering::Relaxed);
    let s = store();
    let end = addr.saturating_add(len);
    let any = overlapping(&s, addr, end).any(|(_, e)| now - e.born <= EXPIRY_LAUNCHES);
    any
}

/// A device-to-device copy of `len` bytes: the destination gets what the source holds.
pub fn copy(dst: u64, src: u64, len: u64) {
    if len > MAX_BYTES {
        clear(dst, len);
        return;
    }
    let mut buf = vec![0u8; len as usize];
    read(src, &mut buf);
    write(dst, &buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The store and the launch count are process-wide: one test, run in sequence.
    #[test]
    fn store() {
        writes_overlay_and_reads_fill_zeros();
        received_data_is_fetched_once_when_read();
        values_expire_after_many_launches();
    }

    fn writes_overlay_and_reads_fill_zeros() {
        let base = 0x1000_0000;
        write(base + 4, &[1, 2, 3, 4]);
        write(base + 6, &[9, 9, 9]);
        let mut out = [7u8; 12];
        read_with(base, &mut out, |_| unreachable!());
        assert_eq!(out, [0, 0, 0, 0, 1, 2, 9, 9, 9, 0, 0, 0]);
        clear(base + 5, 2);
        read_with(base, &mut out, |_| unreachable!());
        assert_eq!(out, [0, 0, 0, 0, 1, 0, 0, 9, 9, 0, 0, 0]);
        // Too large to keep: the range is forgotten.
        assert!(holds(base + 7, 1) && !holds(base + 9, 100));
        write(base, &vec![5u8; MAX_BYTES as usize + 1]);
        read_with(base, &mut out, |_| unreachable!());
        assert_eq!(out, [0; 12]);
        assert!(!holds(base, 12));
    }

    fn received_data_is_fetched_once_when_read() {
        let base = 0x2000_0000;
        received(base, 8, OpId(77));
        let fetched = std::cell::Cell::new(0);
        let fetch = |op: OpId| {
            assert_eq!(op, OpId(77));
            fetched.set(fetched.get() + 1);
            (10u8..18).collect()
        };
        let mut out = [0u8; 4];
        read_with(base + 2, &mut out, fetch);
        assert_eq!(out, [12, 13, 14, 15]);
        read_with(base, &mut out, fetch);
        assert_eq!((out, fetched.get()), ([10, 11, 12, 13], 1));
        // A device-to-device copy carries it on.
        copy(base + 100, base + 4, 4);
        read_with(base + 100, &mut out, |_| unreachable!());
        assert_eq!(out, [14, 15, 16, 17]);
    }

    fn values_expire_after_many_launches() {
        let base = 0x3000_0000;
        write(base, &[1]);
        for _ in 0..EXPIRY_LAUNCHES {
            note_launch();
        }
        let mut out = [0u8; 1];
        read_with(base, &mut out, |_| unreachable!());
        assert_eq!(out, [1]);
        note_launch();
        read_with(base, &mut out, |_| unreachable!());
        assert_eq!(out, [0]);
    }
}
