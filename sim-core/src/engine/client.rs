//! A rank process's link to the simulator: a socket to the one `phantom run` started (`PHANTOM_SIM`), or
//! a simulator embedded in the process when there is none (DESIGN.md decision 3).
//!
//! Asynchronous messages are written and flushed at once (so a rank that computes for a long time after
//! queuing a collective never holds the others up). Blocking requests carry a request number; any thread
//! may wait for its reply while other threads keep submitting.

use super::core::Coordinator;
use super::lock;
use super::proto::{read_msg, write_msg, FromSim, ToSim};
use super::server::Conn;
use crate::config::ClusterConfig;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// The environment variable `phantom run` sets to the simulator's address (`unix:PATH` or `tcp:HOST:PORT`).
pub const SIM_ENV: &str = "PHANTOM_SIM";

pub struct SimClient {
    link: Link,
    next_req: AtomicU64,
}

enum Link {
    Embedded(Box<Mutex<Coordinator>>),
    Socket(Socket),
}

struct Socket {
    writer: Mutex<BufWriter<Conn>>,
    reader: Mutex<BufReader<Conn>>,
    inbox: Mutex<Inbox>,
    arrived: Condvar,
}

#[derive(Default)]
struct Inbox {
    /// Replies read by one thread for another.
    replies: HashMap<u64, FromSim>,
    /// A thread is reading the socket.
    reading: bool,
    /// The connection is gone; its error.
    closed: Option<String>,
}


impl SimClient {
    /// A simulator inside this process, for a run of exactly this one process.
    pub fn embedded(cfg: &ClusterConfig, hello: ToSim) -> Result<SimClient, String> {
        let mut coord = Coordinator::new(cfg).map_err(|e| e.to_string())?;
        coord.expect_clients(1);
        let id = coord.connect();
        coord.handle(id, hello);
        coord.take_outbox();
        Ok(SimClient { link: Link::Embedded(Box::new(Mutex::new(coord))), next_req: AtomicU64::new(1) })
    }

    /// Connects to the simulator at `address` (`unix:PATH` or `tcp:HOST:PORT`).
    pub fn connect(address: &str, hello: ToSim) -> Result<SimClient, String> {
        let conn = Conn::connect(address).map_err(|e| format!("cannot reach the simulator at {address}: {e}"))?;
        let mut reader = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
        match read_msg::<_, FromSim>(&mut reader) {
            Ok(Some(FromSim::Welcome { .. })) => {}
            Ok(other) => return Err(format!("the simulator at {address} answered {other:?} instead of a welcome")),
            Err(e) => return Err(format!("the simulator at {address} did not answer: {e}")),
        }
        let client = SimClient {
            link: Link::Socket(Socket {
                writer: Mutex::new(BufWriter::new(conn)),
                reader: Mutex::new(reader),
                inbox: Mutex::new(Inbox::default()),
                arrived: Condvar::new(),
            }),
            next_req: AtomicU64::new(1),
        };
        client.send(hello)?;
        Ok(client)
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.link, Link::Embedded(_))
    }

    /// Sends an asynchronous message.
    pub fn send(&self, msg: ToSim) -> Result<(), String> {
        match &self.link {
            Link::Embedded(c) => {
                let mut c = lock(c);
                c.handle(0, msg);
                c.take_outbox();
                Ok(())
            }
            Link::Socket(s) => {
                let mut w = lock(&s.writer);
                write_msg(&mut *w, &msg).and_then(|_| w.flush()).map_err(|e| format!("lost the simulator: {e}"))
            }
        }
    }

    /// Sends a blocking request built from a fresh request number and returns its reply.
    pub fn request(&self, build: impl FnOnce(u64) -> ToSim) -> Result<FromSim, String> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let msg = build(req);
        match &self.link {
            Link::Embedded(c) => {
                let mut c = lock(c);
                c.handle(0, msg);
                let out = c.take_outbox();
                out.into_iter()
                    .map(|(_, m)| m)
                    .find(|m| m.req() == Some(req))
                    .ok_or_else(|| "the embedded simulator could not answer (this process is the whole run: start multi-process runs with `phantom run`)".to_string())
            }
            Link::Socket(s) => {
                {
                    let mut w = lock(&s.writer);
                    write_msg(&mut *w, &msg).and_then(|_| w.flush()).map_err(|e| format!("lost the simulator: {e}"))?;
                }
                s.reply(req)
            }
        }
    }

    /// The measured duration of kernel `key` in nanoseconds (profiling mode; `ToSim::Lookup`), or `None` when
    /// no executing process measured it and none can be expected to soon (use the kernel table or the
    /// model). Blocks while an executing process may still publish it. An embedded simulator has no other
    /// process to wait for: what it does not know now is `None`.
    pub fn lookup(&self, key: &str) -> Result<Option<u64>, String> {
        if let Link::Embedded(c) = &self.link {
            // A lookup left waiting gets no reply here; asking through `request` would report that as an error.
            let req = self.next_req.fetch_add(1, Ordering::Relaxed);
            let mut c = lock(c);
            c.handle(0, ToSim::Lookup { req, key: key.to_string() });
            let out = c.take_outbox();
            return Ok(out.into_iter().find_map(|(_, m)| match m {
                FromSim::Measured { req: r, ns, .. } if r == req => ns,
                _ => None,
            }));
        }
        match self.request(|req| ToSim::Lookup { req, key: key.to_string() })? {
            FromSim::Measured { ns, .. } => Ok(ns),
            FromSim::Failed { message, .. } => Err(message),
            other => Err(format!("the simulator answered a lookup with {other:?}")),
        }
    }
}

impl Socket {
    /// Waits for the reply to `req`, reading the socket when no other thread is.
    fn reply(&self, req: u64) -> Result<FromSim, String> {
        let mut inbox = lock(&self.inbox);
        loop {
            if let Some(m) = inbox.replies.remove(&req) {
                return Ok(m);
            }
            if let Some(e) = &inbox.closed {
                return Err(e.clone());
            }
            if inbox.reading {
                inbox = self.arrived.wait(inbox).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            inbox.reading = true;
            drop(inbox);
            let got = read_msg::<_, FromSim>(&mut *lock(&self.reader));
            inbox = lock(&self.inbox);
            inbox.reading = false;
            match got {
                Ok(Some(m)) => {
                    if let Some(r) = m.req() {
                        inbox.replies.insert(r, m);
                    }
                }
                Ok(None) => inbox.closed = Some("the simulator closed the connection".into()),
                Err(e) => inbox.closed = Some(format!("lost the simulator: {e}")),
            }
            self.arrived.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::server::{self, Listen};

    fn hello(pid: u32, executes: bool) -> ToSim {
        ToSim::Hello { pid, node: 0, label: String::new(), executes }
    }

    fn cfg() -> ClusterConfig {
        ClusterConfig::try_preset("dgx-h100").unwrap()
    }

    #[test]
    fn an_embedded_follower_gets_none_and_an_embedded_executor_its_own_measurements() {
        let c = SimClient::embedded(&cfg(), hello(1, false)).unwrap();
        assert_eq!(c.lookup("gemm"), Ok(None));
        let c = SimClient::embedded(&cfg(), hello(1, true)).unwrap();
        assert_eq!(c.lookup("gemm"), Ok(None), "nobody else can publish it");
        c.send(ToSim::Measured { entries: vec![("gemm".into(), 1_500, true)] }).unwrap();
        assert_eq!(c.lookup("gemm"), Ok(Some(1_500)));
    }

    #[test]
    fn a_follower_waits_over_the_socket_for_the_executing_process() {
        let dir = std::env::temp_dir().join(format!("phantom-measure-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let handle = server::start(cfg(), Listen::Unix(dir.join("sim.sock"))).unwrap();
        handle.expect_executing(1);
        let addr = handle.address().to_string();
        let follower = std::thread::spawn(move || {
            let c = SimClient::connect(&addr, hello(2, false)).unwrap();
            let got = c.lookup("gemm 4096");
            c.send(ToSim::Bye).unwrap();
            got
        });
        // The follower's lookup waits: the one executing process has not even connected.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!follower.is_finished());
        let exec = SimClient::connect(handle.address(), hello(1, true)).unwrap();
        exec.send(ToSim::Measured { entries: vec![("gemm 4096".into(), 52_000, true)] }).unwrap();
        assert_eq!(follower.join().unwrap(), Ok(Some(52_000)));
        exec.send(ToSim::Bye).unwrap();
        drop(exec);
        let summary = handle.finish(std::time::Duration::from_secs(5));
        assert_eq!((summary.measurements, summary.lookups_unanswered), (1, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
