//! The simulator's socket server (started by `phantom run`).

use super::lock;
use super::core::{ClientId, Coordinator, OpSpan};
use super::proto::{read_msg, write_msg, FromSim, ToSim};
use crate::config::ClusterConfig;
use crate::time::SimTime;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often the server looks for idle clients and for lookups that waited too long.
const IDLE_TICK: Duration = Duration::from_millis(20);

/// How long a client that holds simulated time back while others wait may stay silent before it counts as
/// idle: `PHANTOM_IDLE_MS`, default 200 ms.
fn idle_after() -> Duration {
    let ms = std::env::var("PHANTOM_IDLE_MS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(200);
    Duration::from_millis(ms)
}

/// How long a lookup may wait for an executing process to publish its kernel's measurement before it is
/// answered `None` (the follower then uses its kernel table or model): `PHANTOM_PROFILE_WAIT_MS`, default
/// 60 000 ms.
fn profile_wait() -> Duration {
    let ms = std::env::var("PHANTOM_PROFILE_WAIT_MS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(60_000);
    Duration::from_millis(ms)
}

/// Where the server listens.
#[derive(Clone, Debug, PartialEq)]
pub enum Listen {
    /// A Unix socket at this path (created; removed on shutdown).
    Unix(PathBuf),
    /// A TCP address such as `0.0.0.0:0` (port 0 picks a free port).
    Tcp(String),
}

/// What the simulator saw during a run (printed by the launcher).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Rank processes that connected.
    pub clients: usize,
    /// Communicators created.
    pub communicators: u64,
    /// Collective and point-to-point operations completed (each counted once, not per rank).
    pub operations: u64,
    /// Bytes moved over links by those operations.
    pub bytes_on_links: u64,
    /// The latest simulated completion time of any operation.
    pub simulated_end: SimTime,
    /// Simulator events processed (flow starts, completions, rate changes).
    pub events: u64,
    /// One line per failure diagnosed (mismatch, dead rank, deadlock), naming rank, communicator and operation.
    pub failures: Vec<String>,
    /// Every rank's part of every completed operation, when [`ServerHandle::record_ops`] asked for them
    /// (`phantom run --trace`); empty otherwise.
    pub ops: Vec<OpSpan>,
    /// Operations and bytes per kind of operation (`CoordStats::by_kind`).
    pub by_kind: std::collections::BTreeMap<String, super::core::KindTotals>,
    /// Every network link that carried traffic, in topology order: bytes and busy time always, the rate over
    /// time only when [`ServerHandle::record_links`] asked for it (`phantom run --trace`).
    pub links: Vec<crate::net::LinkUsage>,
    /// Distinct kernel keys the executing processes published (profiling mode).
    pub measurements: usize,
    /// Lookups of following processes answered without a measurement (they used the kernel table or model).
    pub lookups_unanswered: u64,
}

/// The run so far, for the launcher's progress line ([`ServerHandle::live_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveStats {
    /// The latest simulated completion time of any operation so far (what [`RunSummary::simulated_end`] will be).
    pub simulated_end: SimTime,
    /// Simulator events processed so far.
    pub events: u64,
    /// Operations completed so far.
    pub operations: u64,
    /// Connections open now.
    pub connections: usize,
    /// Rank processes that connected so far.
    pub clients: usize,
}

/// A running server.
pub struct ServerHandle {
    pub(crate) address: String,
    pub(crate) inner: Arc<Shared>,
    pub(crate) acceptor: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The address to hand to rank processes in `PHANTOM_SIM` (`unix:/path` or `tcp:host:port`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Failures diagnosed so far (the launcher prints them as they appear).
    pub fn failures(&self) -> Vec<String> {
        lock(&self.inner.coord).failures().to_vec()
    }

    /// The run so far (`phantom run`'s progress line). Takes the simulator's lock once, briefly, and the
    /// connection counters' locks after it.
    pub fn live_stats(&self) -> LiveStats {
        let (simulated_end, operations, events) = {
            let c = lock(&self.inner.coord);
            let s = c.stats();
            (s.simulated_end, s.operations, c.net().stats().events)
        };
        let connections = *lock(&self.inner.live);
        let clients = *lock(&self.inner.connected);
        LiveStats { simulated_end, events, operations, connections, clients }
    }

    /// The run has exactly `n` rank processes (`phantom run -n`): a communicator that waits for a process
    /// that never connects can then be reported as a deadlock.
    pub fn expect_clients(&self, n: usize) {
        let mut c = lock(&self.inner.coord);
        c.expect_clients(n);
        let out = c.take_outbox();
        drop(c);
        self.inner.deliver(out);
    }

    /// The run has exactly `n` executing processes (profiling mode): a following process's lookup for a kernel
    /// not measured yet is answered `None` only once all of them have connected (or after
    /// `PHANTOM_PROFILE_WAIT_MS`).
    pub fn expect_executing(&self, n: usize) {
        let mut c = lock(&self.inner.coord);
        c.expect_executing(n);
        let out = c.take_outbox();
        drop(c);
        self.inner.deliver(out);
    }

    /// Keep the start and end of every operation for [`RunSummary::ops`] (`phantom run --trace`). Call before
    /// the ranks start. Changes no simulated time.
    pub fn record_ops(&self) {
        lock(&self.inner.coord).record_ops();
    }

    /// Keep every link's rate over time for [`RunSummary::links`] (`phantom run --trace`). Call before the
    /// ranks start. Changes no simulated time.
    pub fn record_links(&self) {
        lock(&self.inner.coord).record_links();
    }

    /// Stops accepting, waits for connected clients to disconnect (at most `grace`), and returns the summary.
    pub fn finish(mut self, grace: std::time::Duration) -> RunSummary {
        self.inner.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees `stopping`.
        let _ = Conn::connect(&self.address);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let deadline = Instant::now() + grace;
        let mut live = lock(&self.inner.live);
        while *live > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            live = self.inner.idle.wait_timeout(live, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(live);
        if let Some(p) = &self.inner.unix_path {
            let _ = std::fs::remove_file(p);
        }
        let mut c = lock(&self.inner.coord);
        let stats = c.stats();
        let net = c.net().stats();
        RunSummary {
            clients: *lock(&self.inner.connected),
            communicators: stats.communicators,
            operations: stats.operations,
            bytes_on_links: net.bytes_on_links,
            simulated_end: stats.simulated_end,
            events: net.events,
            failures: c.failures().to_vec(),
            ops: c.take_op_log(),
            by_kind: stats.by_kind,
            links: c.link_usage(),
            measurements: c.measurements(),
            lookups_unanswered: c.lookups_unanswered(),
        }
    }
}




/// A connection over either kind of socket.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    /// Connects to `unix:PATH` or `tcp:HOST:PORT`.
    pub fn connect(address: &str) -> std::io::Result<Conn> {
        if let Some(p) = address.strip_prefix("unix:") {
            UnixStream::connect(p).map(Conn::Unix)
        } else if let Some(a) = address.strip_prefix("tcp:") {
            let s = TcpStream::connect(a)?;
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s))
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{address}` is neither unix:PATH nor tcp:HOST:PORT")))
        }
    }

    pub fn try_clone(&self) -> std::io::Result<Conn> {
        match self {
            Conn::Unix(s) => s.try_clone().map(Conn::Unix),
            Conn::Tcp(s) => s.try_clone().map(Conn::Tcp),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn accept(&self) -> std::io::Result<Conn> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        }
    }
}

/// State shared by the acceptor and the connection threads.
pub(crate) struct Shared {
    coord: Mutex<Coordinator>,
    writers: Mutex<HashMap<ClientId, Arc<Mutex<BufWriter<Conn>>>>>,
    stopping: AtomicBool,
    /// Connections open now, and ever.
    live: Mutex<usize>,
    connected: Mutex<usize>,
    idle: Condvar,
    unix_path: Option<PathBuf>,
    /// When each client last sent a message.
    heard: Mutex<HashMap<ClientId, Instant>>,
}

impl Shared {
    /// Sends replies; a client that cannot be written to is left to its reader thread to notice.
    fn deliver(&self, out: Vec<(ClientId, FromSim)>) {
        for (client, msg) in out {
            let w = lock(&self.writers).get(&client).cloned();
            if let Some(w) = w {
                let mut w = lock(&w);
                let _ = write_msg(&mut *w, &msg).and_then(|_| w.flush());
            }
        }
    }

    /// Declares idle every client that holds simulated time back while others wait and has been silent for
    /// `after` (docs/simulator.md, "Idle processes").
    fn promote_idle(&self, after: Duration) {
        let mut c = lock(&self.coord);
        if !c.has_waiters() {
            return;
        }
        let silent: Vec<ClientId> = {
            let heard = lock(&self.heard);
            c.holding_back().into_iter().filter(|id| heard.get(id).is_none_or(|t| t.elapsed() >= after)).collect()
        };
        for id in silent {
            c.set_idle(id);
        }
        let out = c.take_outbox();
        drop(c);
        self.deliver(out);
    }

    /// Answers `None` to the lookups that have waited for a measurement for `limit`.
    fn expire_lookups(&self, limit: Duration) {
        let mut c = lock(&self.coord);
        c.expire_lookups(Instant::now(), limit);
        let out = c.take_outbox();
        drop(c);
        self.deliver(out);
    }

    /// Serves one client until its connection closes.
    fn serve(self: Arc<Self>, conn: Conn) {
        let Ok(write_half) = conn.try_clone() else { return };
        let writer = Arc::new(Mutex::new(BufWriter::new(write_half)));
        let client = {
            let mut c = lock(&self.coord);
            let id = c.connect();
            lock(&self.writers).insert(id, writer);
            lock(&self.heard).insert(id, Instant::now());
            let out = c.take_outbox();
            drop(c);
            self.deliver(out);
            id
        };
        let mut reader = BufReader::new(conn);
        let mut clean = false;
        loop {
            match read_msg::<_, ToSim>(&mut reader) {
                Ok(Some(msg)) => {
                    clean = msg == ToSim::Bye;
                    lock(&self.heard).insert(client, Instant::now());
                    let mut c = lock(&self.coord);
                    c.handle(client, msg);
                    let out = c.take_outbox();
                    drop(c);
                    self.deliver(out);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("phantom simulator: client {client}: {e}");
                    break;
                }
            }
        }
        lock(&self.writers).remove(&client);
        let mut c = lock(&self.coord);
        c.disconnect(client, clean);
        let out = c.take_outbox();
        drop(c);
        self.deliver(out);
        *lock(&self.live) -= 1;
        self.idle.notify_all();
    }
}

/// Starts the simulator for `cfg`, listening at `listen`.
pub fn start(cfg: ClusterConfig, listen: Listen) -> std::io::Result<ServerHandle> {
    let coord = Coordinator::new(&cfg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let (listener, address, unix_path) = match &listen {
        Listen::Unix(p) => {
            let _ = std::fs::remove_file(p);
            (Listener::Unix(UnixListener::bind(p)?), format!("unix:{}", p.display()), Some(p.clone()))
        }
        Listen::Tcp(a) => {
            let l = TcpListener::bind(a.as_str())?;
            let addr = l.local_addr()?;
            (Listener::Tcp(l), format!("tcp:{addr}"), None)
        }
    };
    let inner = Arc::new(Shared {
        coord: Mutex::new(coord),
        writers: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
        live: Mutex::new(0),
        connected: Mutex::new(0),
        idle: Condvar::new(),
        unix_path,
        heard: Mutex::new(HashMap::new()),
    });
    let ticker = inner.clone();
    let idle_after = idle_after();
    let profile_wait = profile_wait();
    std::thread::Builder::new().name("phantom-sim-idle".into()).spawn(move || {
        while !ticker.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(IDLE_TICK);
            ticker.promote_idle(idle_after);
            ticker.expire_lookups(profile_wait);
        }
    })?;
    let shared = inner.clone();
    let acceptor = std::thread::Builder::new().name("phantom-sim-accept".into()).spawn(move || loop {
        let conn = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        *lock(&shared.live) += 1;
        *lock(&shared.connected) += 1;
        let s = shared.clone();
        if std::thread::Builder::new().name("phantom-sim-conn".into()).spawn(move || s.serve(conn)).is_err() {
            tracing::error!("phantom simulator: cannot start a thread for a new client");
        }
    })?;
    Ok(ServerHandle { address, inner, acceptor: Some(acceptor) })
}
