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
