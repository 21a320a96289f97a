//! NVTX ranges and marks in simulated time (docs/trace.md, "NVTX ranges").
//!
//! NVTX v3 is header-only: a program's `nvtxRangePushA`, `nvtxMarkA`, ... call through function pointers
//! that do nothing until an injection library attaches. On a program's first NVTX call, NVTX `dlopen`s the
//! library named by `NVTX_INJECTION64_PATH` (`phantom run` names this one, which it also preloads, so the
//! `dlopen` returns the library already in the process) and calls its `InitializeInjectionNvtx2` with a
//! function that hands out export tables. The injection asks the callbacks table for each module's array of
//! function-pointer slots and writes its handlers into the slots it implements; NVTX turns every slot left
//! alone into a no-op. Every copy of the NVTX headers compiled into a program or library has its own hidden
//! tables and initialises on its own first call, so [`initialize`] may run several times; each run fills
//! that copy's slots with the same handlers.
//!
//! Protocol facts relied on (NVIDIA's `nvtxDetail/nvtxTypes.h` and `nvtxImpl.h`, NVTX version 3):
//! - export table id 1 is the callbacks table `{ size_t struct_size; int (*GetModuleFunctionTable)(module,
//!   NvtxFunctionTable* out_table, unsigned* out_size) }`; the function returns nonzero on success;
//! - a module's table is an array of pointers to function-pointer slots indexed by callback id; entry 0 and
//!   entry `out_size` are null, so ids `1..out_size` are valid;
//! - module 1 (core) and module 5 (core2: domains and registered strings), with the callback ids below;
//! - `nvtxEventAttributes_t` v2 layout (below); message types 1 ASCII, 2 wide (`wchar_t`, 32-bit here),
//!   3 registered string handle;
//! - push returns the new range's 0-based level, pop the level of the range it ended, a negative value on
//!   error; each domain (the default one being the null handle) has its own push/pop stack per thread;
//!   start/end ranges are process-wide, identified by the id `RangeStart` returns.
//!
//! Time: every handler is a free call. It reads the calling thread's virtual clock the way a runtime API
//! call does (`clock::api_enter`: the application's CPU time so far is charged) and leaves it with
//! `api_exit(0)`: Phantom's own CPU time is discarded and nothing is added. With tracing and statistics off
//! nothing reads the clock: the per-thread stacks are kept only for the levels push and pop return.
//!
//! Recording: a completed range (at pop or end) and a mark become a [`trace::Record::Nvtx`]; names are
//! interned once ([`intern`]) so the record stays small and `Copy`, and are looked up when the trace buffer is
//! written ([`name`]). Ranges still open when the process exits are not recorded. Completed top-level ranges
//! of the default domain also go to `stats` (the steps of the run summary).

use crate::trace::{self, intern, NameId, NvtxKind, Record};
use once_cell::sync::Lazy;
use sim_core::{SimDuration, SimTime};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

type WChar = libc::wchar_t;

/// `NVTX_ETID_CALLBACKS`.
const ETID_CALLBACKS: u32 = 1;
/// `NVTX_CB_MODULE_CORE`, `NVTX_CB_MODULE_CORE2`.
const MODULE_CORE: c_int = 1;
const MODULE_CORE2: c_int = 5;

/// Core module callback ids (`NvtxCallbackIdCore`).
mod core_id {
    pub const MARK_EX: usize = 1;
    pub const MARK_A: usize = 2;
    pub const MARK_W: usize = 3;
    pub const RANGE_START_EX: usize = 4;
    pub const RANGE_START_A: usize = 5;
    pub const RANGE_START_W: usize = 6;
    pub const RANGE_END: usize = 7;
    pub const RANGE_PUSH_EX: usize = 8;
    pub const RANGE_PUSH_A: usize = 9;
    pub const RANGE_PUSH_W: usize = 10;
    pub const RANGE_POP: usize = 11;
    pub const NAME_OS_THREAD_A: usize = 14;
    pub const NAME_OS_THREAD_W: usize = 15;
}

/// Core2 module callback ids (`NvtxCallbackIdCore2`).
mod core2_id {
    pub const DOMAIN_MARK_EX: usize = 1;
    pub const DOMAIN_RANGE_START_EX: usize = 2;
    pub const DOMAIN_RANGE_END: usize = 3;
    pub const DOMAIN_RANGE_PUSH_EX: usize = 4;
    pub const DOMAIN_RANGE_POP: usize = 5;
    pub const DOMAIN_REGISTER_STRING_A: usize = 10;
    pub const DOMAIN_REGISTER_STRING_W: usize = 11;
    pub const DOMAIN_CREATE_A: usize = 12;
    pub const DOMAIN_CREATE_W: usize = 13;
}

/// `nvtxMessageType_t`.
const MESSAGE_ASCII: i32 = 1;
const MESSAGE_UNICODE: i32 = 2;
const MESSAGE_REGISTERED: i32 = 3;

/// `nvtxEventAttributes_t` (version 2 of the structure, NVTX 3's).
#[repr(C)]
struct EventAttributes {
    version: u16,
    size: u16,
    category: u32,
    color_type: i32,
    color: u32,
    payload_type: i32,
    reserved0: i32,
    payload: u64,
    message_type: i32,
    message: *const c_void,
}

/// A generic slot value (`NvtxFunctionPointer`): cast to the callback's real type by NVTX.
type Slot = Option<unsafe extern "C" fn()>;
type GetModuleFunctionTable = unsafe extern "C" fn(
    module: c_int,
    out_table: *mut *mut *mut Slot,
    out_size: *mut c_uint,
) -> c_int;
/// `NvtxGetExportTableFunc_t`.
pub type GetExportTable = unsafe extern "C" fn(export_table_id: u32) -> *const c_void;

/// `NvtxExportTableCallbacks`.
#[repr(C)]
struct CallbacksTable {
    struct_size: usize,
    get_module_function_table: Option<GetModuleFunctionTable>,
}

/// Handles given to the application for domains and registered strings are interned names + 1 (never null,
/// and a domain created twice under one name gets the same handle, as NVTX specifies).
fn handle_of(id: NameId) -> *mut c_void {
    (id.0 as usize + 1) as *mut c_void
}

/// The name behind a handle from [`handle_of`]; `None` for null or a value this library never handed out.
fn from_handle(h: *const c_void) -> Option<NameId> {
    let i = (h as usize).checked_sub(1)?;
    let known = trace::names_known();
    (i < known).then_some(NameId(i as u32))
}

/// A domain: `None` is NVTX's default (global) domain, the null handle.
type Domain = Option<NameId>;

fn domain_of(h: *const c_void) -> Domain {
    from_handle(h)
}

/// A message as the application passed it.
#[derive(Clone, Copy)]
enum Message {
    Ascii(*const c_char),
    Wide(*const WChar),
    Registered(*const c_void),
    Missing,
}

/// Longest wide string read (characters): a missing terminator must not run away.
const MAX_WIDE: usize = 4096;

/// Text of a NUL-terminated `wchar_t` string (UTF-32 on Linux); invalid code points become U+FFFD.
unsafe fn wide_text(p: *const WChar) -> String {
    let mut s = String::new();
    if p.is_null() {
        return s;
    }
    for i in 0..MAX_WIDE {
        let c = unsafe { *p.add(i) };
        if c == 0 {
            break;
        }
        s.push(char::from_u32(c as u32).unwrap_or('\u{fffd}'));
    }
    s
}

impl Message {
    /// The message of an event-attributes structure; a null pointer, a structure too small to hold the
    /// message or an unknown message type is [`Message::Missing`].
    unsafe fn of_attributes(a: *const EventAttributes) -> Message {
        if a.is_null() {
            return Message::Missing;
        }
        let size = unsafe { (*a).size } as usize;
        if size
            < std::mem::offset_of!(EventAttributes, message) + std::mem::size_of::<*const c_void>()
        {
            return Message::Missing;
        }
        let (ty, p) = unsafe { ((*a).message_type, (*a).message) };
        match ty {
            MESSAGE_ASCII => Message::Ascii(p as *const c_char),
            MESSAGE_UNICODE => Message::Wide(p as *const WChar),
            MESSAGE_REGISTERED => Message::Registered(p),
            _ => Message::Missing,
        }
    }

    /// The interned name (empty for a missing message or a null string; `<registered string>` for a handle
    /// this library did not hand out).
    unsafe fn intern(self) -> NameId {
        match self {
            Message::Ascii(p) if !p.is_null() => {
                intern(&unsafe { CStr::from_ptr(p) }.to_string_lossy())
            }
            Message::Wide(p) => intern(&unsafe { wide_text(p) }),
            Message::Registered(h) => {
                from_handle(h).unwrap_or_else(|| intern("<registered string>"))
            }
            Message::Ascii(_) | Message::Missing => intern(""),
        }
    }
}

/// A push/pop range open on this thread.
struct Open {
    domain: Domain,
    /// Name and start: only with tracing on.
    traced: Option<(NameId, SimTime)>,
    /// The process's host-time tally when a top-level range opened, with `PHANTOM_LOG=phantom::host=info`.
    host: Option<crate::clock::TallySnapshot>,
}

/// Whether each top-level push/pop range logs where its host time went (`PHANTOM_LOG=phantom::host=info`:
/// docs/time.md, "Where host time goes").
fn host_log_on() -> bool {
    tracing::enabled!(target: "phantom::host", tracing::Level::INFO)
}

/// Logs the host time charged between two tallies (`crate::clock::Tally`) for the range `name`.
fn log_host(name: &str, before: crate::clock::TallySnapshot, after: crate::clock::TallySnapshot) {
    let d: Vec<f64> = after.iter().zip(before).map(|(a, b)| a.saturating_sub(b) as f64 / 1e6).collect();
    tracing::info!(
        target: "phantom::host",
        "phantom: host time in {name:?}: application {:.3} ms, call costs {:.3} ms, NVIDIA's driver {:.3} ms, NVIDIA's libraries {:.3} ms; Phantom's own CPU {:.3} ms, CPU waiting for the real GPU {:.3} ms (not charged)",
        d[0], d[1], d[2], d[3], d[4], d[5]
    );
}

/// A start/end range open in the process (only with tracing on).
struct Started {
    domain: Domain,
    name: NameId,
    tid: u32,
    start: SimTime,
}

thread_local! {
    static OPEN: RefCell<Vec<Open>> = const { RefCell::new(Vec::new()) };
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Ids handed out by `nvtxRangeStart*` (0 is never one).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static STARTED: Lazy<Mutex<HashMap<u64, Started>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The calling thread's OS thread id.
fn tid() -> u32 {
    TID.try_with(|t| {
        if t.get() == 0 {
            // SAFETY: a system call without arguments.
            t.set(unsafe { libc::syscall(libc::SYS_gettid) } as u32);
        }
        t.get()
    })
    .unwrap_or_else(|_| unsafe { libc::syscall(libc::SYS_gettid) } as u32)
}

/// Leaves the free call begun in [`timed`] even if the handler unwinds.
struct FreeCall;

impl Drop for FreeCall {
    fn drop(&mut self) {
        crate::clock::api_exit(SimDuration::ZERO);
    }
}

/// Runs `f` with the calling thread's virtual time when tracing or statistics are on (`None` when off), as a
/// free call.
fn timed<R>(f: impl FnOnce(Option<SimTime>) -> R) -> R {
    if !trace::on() && !crate::stats::on() {
        return f(None);
    }
    let now = crate::clock::api_enter();
    let _leave = FreeCall;
    f(Some(now))
}

/// Opens a push/pop range on this thread; returns its 0-based level in `domain`.
fn push_at(domain: Domain, traced: Option<(NameId, SimTime)>) -> c_int {
    OPEN.try_with(|o| {
        let mut o = o.borrow_mut();
        let level = o.iter().filter(|r| r.domain == domain).count();
        let host = (level == 0 && host_log_on()).then(|| crate::clock::TALLY.snapshot());
        o.push(Open { domain, traced, host });
        level as c_int
    })
    .unwrap_or(-1)
}

/// Closes this thread's innermost range of `domain` at `now`: its level (negative when none is open) and,
/// with tracing on, its record.
fn pop_at(domain: Domain, now: Option<SimTime>) -> (c_int, Option<Record>) {
    let popped = OPEN
        .try_with(|o| {
            let mut o = o.borrow_mut();
            let i = o.iter().rposition(|r| r.domain == domain)?;
            let r = o.remove(i);
            Some((o[..i].iter().filter(|x| x.domain == domain).count(), r))
        })
        .ok()
        .flatten();
    let Some((level, open)) = popped else {
        return (-1, None);
    };
    if let (Some(before), Some((name, _))) = (open.host, open.traced) {
        log_host(&trace::name_text(name), before, crate::clock::TALLY.snapshot());
    }
    let record = match (open.traced, now) {
        (Some((name, start)), Some(end)) => Some(Record::Nvtx {
            tid: tid(),
            domain,
            name,
            kind: NvtxKind::Push {
                level: level as u32,
            },
            start,
            end: end.max(start),
        }),
        _ => None,
    };
    (level as c_int, record)
}

fn push(domain: Domain, m: Message) -> c_int {
    timed(|now| push_at(domain, now.map(|t| (unsafe { m.intern() }, t))))
}

fn pop(domain: Domain) -> c_int {
    timed(|now| {
        let (level, record) = pop_at(domain, now);
        if let Some(r) = record {
            crate::stats::nvtx(&r);
            trace::record(r);
        }
        level
    })
}

fn start(domain: Domain, m: Message) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    timed(|now| {
        if let Some(start) = now {
            let s = Started {
                domain,
                name: unsafe { m.intern() },
                tid: tid(),
                start,
            };
            STARTED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, s);
        }
    });
    id
}

/// Closes start/end range `id` at `end`; its record, or `None` for an id that is not open.
fn end_at(id: u64, end: SimTime) -> Option<Record> {
    let s = STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)?;
    Some(Record::Nvtx {
        tid: s.tid,
        domain: s.domain,
        name: s.name,
        kind: NvtxKind::StartEnd { id },
        start: s.start,
        end: end.max(s.start),
    })
}

fn end(id: u64) {
    timed(|now| {
        if let Some(r) = now.and_then(|t| end_at(id, t)) {
            trace::record(r);
        }
    })
}

fn mark(domain: Domain, m: Message) {
    timed(|now| {
        if let Some(t) = now {
            let name = unsafe { m.intern() };
            trace::record(Record::Nvtx {
                tid: tid(),
                domain,
                name,
                kind: NvtxKind::Mark,
                start: t,
                end: t,
            });
        }
    })
}

fn name_thread(os_tid: u32, name: String) {
    if trace::on() {
        trace::record(Record::NvtxThreadName {
            tid: os_tid,
            name: intern(&name),
        });
    }
}

/// Runs a handler body; a panic is logged and becomes `fallback` (nothing unwinds into the program).
fn guarded<R>(name: &'static str, fallback: R, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            phantom_log::internal_error(name, &*p);
            fallback
        }
    }
}

// The handlers NVTX calls through the slots (one per callback; the types are NVTX's `*_impl_fntype`).

unsafe extern "C" fn mark_ex(a: *const EventAttributes) {
    guarded("nvtxMarkEx", (), || {
        mark(None, unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn mark_a(m: *const c_char) {
    guarded("nvtxMarkA", (), || mark(None, Message::Ascii(m)))
}
unsafe extern "C" fn mark_w(m: *const WChar) {
    guarded("nvtxMarkW", (), || mark(None, Message::Wide(m)))
}
unsafe extern "C" fn range_start_ex(a: *const EventAttributes) -> u64 {
    guarded("nvtxRangeStartEx", 0, || {
        start(None, unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn range_start_a(m: *const c_char) -> u64 {
    guarded("nvtxRangeStartA", 0, || start(None, Message::Ascii(m)))
}
unsafe extern "C" fn range_start_w(m: *const WChar) -> u64 {
    guarded("nvtxRangeStartW", 0, || start(None, Message::Wide(m)))
}
unsafe extern "C" fn range_end(id: u64) {
    guarded("nvtxRangeEnd", (), || end(id))
}
unsafe extern "C" fn range_push_ex(a: *const EventAttributes) -> c_int {
    guarded("nvtxRangePushEx", -1, || {
        push(None, unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn range_push_a(m: *const c_char) -> c_int {
    guarded("nvtxRangePushA", -1, || push(None, Message::Ascii(m)))
}
unsafe extern "C" fn range_push_w(m: *const WChar) -> c_int {
    guarded("nvtxRangePushW", -1, || push(None, Message::Wide(m)))
}
unsafe extern "C" fn range_pop() -> c_int {
    guarded("nvtxRangePop", -1, || pop(None))
}
unsafe extern "C" fn name_os_thread_a(os_tid: u32, n: *const c_char) {
    guarded("nvtxNameOsThreadA", (), || {
        if !n.is_null() {
            name_thread(
                os_tid,
                unsafe { CStr::from_ptr(n) }.to_string_lossy().into_owned(),
            );
        }
    })
}
unsafe extern "C" fn name_os_thread_w(os_tid: u32, n: *const WChar) {
    guarded("nvtxNameOsThreadW", (), || {
        if !n.is_null() {
            name_thread(os_tid, unsafe { wide_text(n) });
        }
    })
}
unsafe extern "C" fn domain_mark_ex(d: *const c_void, a: *const EventAttributes) {
    guarded("nvtxDomainMarkEx", (), || {
        mark(domain_of(d), unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn domain_range_start_ex(d: *const c_void, a: *const EventAttributes) -> u64 {
    guarded("nvtxDomainRangeStartEx", 0, || {
        start(domain_of(d), unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn domain_range_end(_d: *const c_void, id: u64) {
    guarded("nvtxDomainRangeEnd", (), || end(id))
}
unsafe extern "C" fn domain_range_push_ex(d: *const c_void, a: *const EventAttributes) -> c_int {
    guarded("nvtxDomainRangePushEx", -1, || {
        push(domain_of(d), unsafe { Message::of_attributes(a) })
    })
}
unsafe extern "C" fn domain_range_pop(d: *const c_void) -> c_int {
    guarded("nvtxDomainRangePop", -1, || pop(domain_of(d)))
}
unsafe extern "C" fn domain_register_string_a(_d: *const c_void, s: *const c_char) -> *mut c_void {
    guarded("nvtxDomainRegisterStringA", std::ptr::null_mut(), || {
        handle_of(unsafe { Message::Ascii(s).intern() })
    })
}
unsafe extern "C" fn domain_register_string_w(_d: *const c_void, s: *const WChar) -> *mut c_void {
    guarded("nvtxDomainRegisterStringW", std::ptr::null_mut(), || {
        handle_of(unsafe { Message::Wide(s).intern() })
    })
}
unsafe extern "C" fn domain_create_a(n: *const c_char) -> *mut c_void {
    guarded("nvtxDomainCreateA", std::ptr::null_mut(), || {
        handle_of(unsafe { Message::Ascii(n).intern() })
    })
}
unsafe extern "C" fn domain_create_w(n: *const WChar) -> *mut c_void {
    guarded("nvtxDomainCreateW", std::ptr::null_mut(), || {
        handle_of(unsafe { Message::Wide(n).intern() })
    })
}

macro_rules! slot {
    ($f:expr) => {
        // SAFETY: NVTX casts the slot back to the callback's own type before calling it.
        Some(unsafe { std::mem::transmute::<*const (), unsafe extern "C" fn()>($f as *const ()) })
    };
}

fn core_handlers() -> [(usize, Slot); 13] {
    use core_id::*;
    [
        (MARK_EX, slot!(mark_ex)),
        (MARK_A, slot!(mark_a)),
        (MARK_W, slot!(mark_w)),
        (RANGE_START_EX, slot!(range_start_ex)),
        (RANGE_START_A, slot!(range_start_a)),
        (RANGE_START_W, slot!(range_start_w)),
        (RANGE_END, slot!(range_end)),
        (RANGE_PUSH_EX, slot!(range_push_ex)),
        (RANGE_PUSH_A, slot!(range_push_a)),
        (RANGE_PUSH_W, slot!(range_push_w)),
        (RANGE_POP, slot!(range_pop)),
        (NAME_OS_THREAD_A, slot!(name_os_thread_a)),
        (NAME_OS_THREAD_W, slot!(name_os_thread_w)),
    ]
}

fn core2_handlers() -> [(usize, Slot); 9] {
    use core2_id::*;
    [
        (DOMAIN_MARK_EX, slot!(domain_mark_ex)),
        (DOMAIN_RANGE_START_EX, slot!(domain_range_start_ex)),
        (DOMAIN_RANGE_END, slot!(domain_range_end)),
        (DOMAIN_RANGE_PUSH_EX, slot!(domain_range_push_ex)),
        (DOMAIN_RANGE_POP, slot!(domain_range_pop)),
        (DOMAIN_REGISTER_STRING_A, slot!(domain_register_string_a)),
        (DOMAIN_REGISTER_STRING_W, slot!(domain_register_string_w)),
        (DOMAIN_CREATE_A, slot!(domain_create_a)),
        (DOMAIN_CREATE_W, slot!(domain_create_w)),
    ]
}

/// Writes `handlers` into `module`'s slots; false when NVTX has no table for the module.
unsafe fn fill(get: GetModuleFunctionTable, module: c_int, handlers: &[(usize, Slot)]) -> bool {
    let mut table: *mut *mut Slot = std::ptr::null_mut();
    let mut size: c_uint = 0;
    if unsafe { get(module, &mut table, &mut size) } == 0 || table.is_null() {
        return false;
    }
    for &(id, f) in handlers {
        if id < size as usize {
            let slot = unsafe { *table.add(id) };
            if !slot.is_null() {
                unsafe { *slot = f };
            }
        }
    }
    true
}

/// Attaches to one NVTX instance: fills its core and core2 slots. Nonzero on success (NVTX unloads the
/// injection and turns every call into a no-op on zero).
pub unsafe fn initialize(get_export_table: Option<GetExportTable>) -> c_int {
    let Some(get) = get_export_table else {
        return 0;
    };
    let table = unsafe { get(ETID_CALLBACKS) } as *const CallbacksTable;
    if table.is_null() || unsafe { (*table).struct_size } < std::mem::size_of::<CallbacksTable>() {
        return 0;
    }
    let Some(get_module) = (unsafe { (*table).get_module_function_table }) else {
        return 0;
    };
    let core = unsafe { fill(get_module, MODULE_CORE, &core_handlers()) };
    // Core2 (domains, registered strings) is absent from NVTX versions before 2: not an error.
    unsafe { fill(get_module, MODULE_CORE2, &core2_handlers()) };
    core as c_int
}

/// The entry point NVTX looks up in the library named by `NVTX_INJECTION64_PATH`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn InitializeInjectionNvtx2(
    get_export_table: Option<GetExportTable>,
) -> c_int {
    guarded("InitializeInjectionNvtx2", 0, || unsafe {
        initialize(get_export_table)
    })
}

// NVIDIA's library has no such export; give it the library's version like every other export (docs/abi.md).
#[cfg(not(test))]
std::arch::global_asm!(
    ".symver InitializeInjectionNvtx2, InitializeInjectionNvtx2@@libcudart.so.13"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: u64) -> Option<SimTime> {
        Some(SimTime::from_nanos(ns))
    }

    #[test]
    fn push_and_pop_return_levels_per_domain() {
        std::thread::spawn(|| {
            let d = Some(intern("other domain"));
            let a = intern("a");
            assert_eq!(pop_at(None, None).0, -1);
            assert_eq!(push_at(None, Some((a, SimTime::from_nanos(10)))), 0);
            assert_eq!(push_at(d, None), 0);
            assert_eq!(
                push_at(None, Some((intern("b"), SimTime::from_nanos(20)))),
                1
            );
            assert_eq!(push_at(d, None), 1);
            // The innermost range of the default domain, though the other domain's opened later.
            let (level, r) = pop_at(None, t(50));
            assert_eq!(level, 1);
            assert_eq!(
                r,
                Some(Record::Nvtx {
                    tid: tid(),
                    domain: None,
                    name: intern("b"),
                    kind: NvtxKind::Push { level: 1 },
                    start: SimTime::from_nanos(20),
                    end: SimTime::from_nanos(50),
                })
            );
            assert_eq!(pop_at(d, t(60)), (1, None), "untraced push: level only");
            assert_eq!(pop_at(d, t(60)).0, 0);
            assert_eq!(pop_at(d, t(60)).0, -1);
            let (level, r) = pop_at(None, t(70));
            assert_eq!(level, 0);
            assert!(matches!(r, Some(Record::Nvtx { name, start, end, .. })
                if name == a && start.as_nanos() == 10 && end.as_nanos() == 70));
            assert_eq!(pop_at(None, t(80)).0, -1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn start_end_ranges_are_process_wide() {
        let id = 1_000_001;
        let s = Started {
            domain: None,
            name: intern("epoch"),
            tid: 42,
            start: SimTime::from_nanos(5),
        };
        STARTED.lock().unwrap().insert(id, s);
        // Ended on another thread: the record keeps the starting thread.
        let r = std::thread::spawn(move || end_at(id, SimTime::from_nanos(9)))
            .join()
            .unwrap();
        assert_eq!(
            r,
            Some(Record::Nvtx {
                tid: 42,
                domain: None,
                name: intern("epoch"),
                kind: NvtxKind::StartEnd { id },
                start: SimTime::from_nanos(5),
                end: SimTime::from_nanos(9),
            })
        );
        assert_eq!(end_at(id, SimTime::from_nanos(10)), None, "ended twice");
    }

    #[test]
    fn messages_ascii_wide_registered_and_attributes() {
        let wide: Vec<WChar> = "wide ü".chars().map(|c| c as WChar).chain([0]).collect();
        unsafe {
            assert_eq!(trace::name_text(Message::Ascii(c"step 0".as_ptr()).intern()), "step 0");
            assert_eq!(trace::name_text(Message::Wide(wide.as_ptr()).intern()), "wide ü");
            assert_eq!(trace::name_text(Message::Missing.intern()), "");
            assert_eq!(trace::name_text(Message::Ascii(std::ptr::null()).intern()), "");
            let h = domain_register_string_a(std::ptr::null(), c"registered".as_ptr());
            assert_eq!(trace::name_text(Message::Registered(h).intern()), "registered");
            assert_eq!(
                trace::name_text(Message::Registered(usize::MAX as *const c_void).intern()),
                "<registered string>"
            );
            // Domains with one name share a handle; null is the default domain.
            let d1 = domain_create_a(c"com.example".as_ptr());
            assert_eq!(d1, domain_create_a(c"com.example".as_ptr()));
            assert_eq!(domain_of(d1).map(trace::name_text).as_deref(), Some("com.example"));
            assert_eq!(domain_of(std::ptr::null()), None);

            let mut a = EventAttributes {
                version: 3,
                size: std::mem::size_of::<EventAttributes>() as u16,
                category: 0,
                color_type: 1,
                color: 0xff00ff00,
                payload_type: 0,
                reserved0: 0,
                payload: 0,
                message_type: MESSAGE_UNICODE,
                message: wide.as_ptr() as *const c_void,
            };
            assert_eq!(std::mem::size_of::<EventAttributes>(), 48);
            assert_eq!(trace::name_text(Message::of_attributes(&a).intern()), "wide ü");
            a.message_type = MESSAGE_REGISTERED;
            a.message = h;
            assert_eq!(trace::name_text(Message::of_attributes(&a).intern()), "registered");
            a.size = 40;
            assert!(matches!(Message::of_attributes(&a), Message::Missing));
            assert!(matches!(
                Message::of_attributes(std::ptr::null()),
                Message::Missing
            ));
        }
    }

    // A stand-in for one NVTX instance: its core table has 16 entries (ids 1..15 and a null end), core2 the
    // same; the injection must fill exactly the slots it implements.
    const SIZE: usize = 16;
    static mut CORE_SLOTS: [Slot; SIZE] = [None; SIZE];
    static mut CORE2_SLOTS: [Slot; SIZE] = [None; SIZE];
    static mut CORE_TABLE: [*mut Slot; SIZE + 1] = [std::ptr::null_mut(); SIZE + 1];
    static mut CORE2_TABLE: [*mut Slot; SIZE + 1] = [std::ptr::null_mut(); SIZE + 1];

    unsafe extern "C" fn get_module(
        module: c_int,
        out: *mut *mut *mut Slot,
        size: *mut c_uint,
    ) -> c_int {
        let table = match module {
            MODULE_CORE => &raw mut CORE_TABLE,
            MODULE_CORE2 => &raw mut CORE2_TABLE,
            _ => return 0,
        };
        unsafe {
            *out = (*table).as_mut_ptr();
            *size = SIZE as c_uint;
        }
        1
    }

    static CALLBACKS: CallbacksTable = CallbacksTable {
        struct_size: std::mem::size_of::<CallbacksTable>(),
        get_module_function_table: Some(get_module),
    };

    unsafe extern "C" fn get_export_table(id: u32) -> *const c_void {
        if id == ETID_CALLBACKS {
            &CALLBACKS as *const CallbacksTable as *const c_void
        } else {
            std::ptr::null()
        }
    }

    #[test]
    fn initialize_fills_the_core_and_core2_slots() {
        unsafe {
            for i in 1..SIZE {
                CORE_TABLE[i] = (&raw mut CORE_SLOTS[i]) as *mut Slot;
                CORE2_TABLE[i] = (&raw mut CORE2_SLOTS[i]) as *mut Slot;
            }
            assert_eq!(initialize(Some(get_export_table)), 1);
            let core = &*(&raw const CORE_SLOTS);
            let filled: Vec<usize> = (0..SIZE).filter(|&i| core[i].is_some()).collect();
            assert_eq!(filled, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15]);
            let core2 = &*(&raw const CORE2_SLOTS);
            let filled: Vec<usize> = (0..SIZE).filter(|&i| core2[i].is_some()).collect();
            assert_eq!(filled, [1, 2, 3, 4, 5, 10, 11, 12, 13]);

            // Call through the slots as NVTX does: push and pop (tracing is off in unit tests).
            let push: unsafe extern "C" fn(*const c_char) -> c_int =
                std::mem::transmute(core[core_id::RANGE_PUSH_A].unwrap());
            let pop: unsafe extern "C" fn() -> c_int =
                std::mem::transmute(core[core_id::RANGE_POP].unwrap());
            std::thread::spawn(move || {
                assert_eq!(push(c"outer".as_ptr()), 0);
                assert_eq!(push(c"inner".as_ptr()), 1);
                assert_eq!(pop(), 1);
                assert_eq!(pop(), 0);
                assert!(pop() < 0);
            })
            .join()
            .unwrap();
            let start: unsafe extern "C" fn(*const c_char) -> u64 =
                std::mem::transmute(core[core_id::RANGE_START_A].unwrap());
            let (a, b) = (start(c"x".as_ptr()), start(c"y".as_ptr()));
            assert!(a != 0 && b != a);
        }
        assert_eq!(unsafe { initialize(None) }, 0);
    }
}
