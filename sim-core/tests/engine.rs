//! The coordinator's rules (matching, conservative answers, failure diagnosis) and the socket transport.
#![allow(clippy::too_many_arguments, clippy::type_complexity, clippy::clone_on_copy, clippy::useless_vec)]

use sim_core::config::ClusterConfig;
use sim_core::engine::client::SimClient;
use sim_core::engine::core::{ClientId, Coordinator};
use sim_core::engine::proto::*;
use sim_core::engine::server::{self, Listen};
use sim_core::net::CollOp;
use sim_core::{SimDuration, SimTime};

fn cfg(nodes: u32) -> ClusterConfig {
    let mut c = ClusterConfig::try_preset("dgx-h100").unwrap();
    c.nodes = nodes;
    c
}

fn t(ns: u64) -> SimTime {
    SimTime::from_nanos(ns)
}

fn allreduce(bytes: u64) -> OpDesc {
    OpDesc { kind: OpKind::Coll { op: CollOp::AllReduce, root: 0, redop: 0 }, bytes, count: bytes / 4, dtype: 7 }
}

/// A coordinator with `n` clients, each holding rank r of one communicator on GPU r.
fn world(n: u32) -> (Coordinator, Vec<ClientId>, CommId) {
    let mut c = Coordinator::new(&cfg(n.div_ceil(8))).unwrap();
    c.expect_clients(n as usize);
    let ids: Vec<ClientId> = (0..n).map(|_| c.connect()).collect();
    for (r, &id) in ids.iter().enumerate() {
        c.handle(id, ToSim::Hello { pid: 100 + r as u32, node: r as u32 / 8, label: String::new(), executes: false });
        c.handle(id, ToSim::Join {
            id: 1,
            join: Join::Init { key: 42, nranks: n, rank: r as u32 },
            member: Member { gpu: r as u32, algo: None, proto: None },
            lbts: t(0),
        });
    }
    for &id in &ids {
        c.handle(id, ToSim::JoinWait { req: 1, ids: vec![1] });
    }
    let mut comm = None;
    for (to, m) in c.take_outbox() {
        if let FromSim::Joined { infos, .. } = m {
            let info = infos[0].clone().unwrap().unwrap();
            assert_eq!(info.rank, to, "ranks are numbered in join order");
            assert_eq!(info.nranks, n);
            comm = Some(info.comm);
        }
    }
    (c, ids, comm.expect("every rank joined"))
}

fn submit(c: &mut Coordinator, client: ClientId, op: u64, comm: CommId, rank: u32, desc: OpDesc, ready: Ready, lbts: u64) {
    c.handle(client, ToSim::Submit { ops: vec![(OpId(op), comm, rank, desc, ready)], lbts: t(lbts) });
}

fn done(out: Vec<(ClientId, FromSim)>) -> Vec<(ClientId, Vec<SimTime>, Vec<(OpId, String)>)> {
    out.into_iter()
        .filter_map(|(to, m)| match m {
            FromSim::Done { times, failures, .. } => Some((to, times, failures)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_collective_starts_when_the_last_rank_is_ready_and_is_not_answered_early() {
    let (mut c, ids, comm) = world(2);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(1 << 20), Ready::at(t(1_000)), 1_000);
    c.handle(ids[0], ToSim::Wait { req: 9, ops: vec![OpId(1)] });
    assert!(done(c.take_outbox()).is_empty(), "rank 1 has not called it yet");
    // Rank 1 is ready later; but it still promises nothing beyond its own clock, so the answer can wait
    // only as long as rank 1 is running: once it blocks, the answer is final.
    submit(&mut c, ids[1], 1, comm, 1, allreduce(1 << 20), Ready::at(t(50_000)), 50_000);
    assert!(done(c.take_outbox()).is_empty(), "rank 1 may still submit traffic that overlaps");
    c.handle(ids[1], ToSim::Wait { req: 3, ops: vec![OpId(1)] });
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    let (t0, t1) = (d[0].1[0], d[1].1[0]);
    assert_eq!(t0, t1, "both ranks complete together");
    assert!(t0 > t(50_000), "the collective starts when the later rank is ready: {t0}");
    assert!(d.iter().all(|x| x.2.is_empty()));
}

#[test]
fn the_op_log_numbers_operations_and_keeps_each_parts_readiness() {
    let (mut c, ids, comm) = world(2);
    c.record_ops();
    c.record_links();
    submit(&mut c, ids[0], 1, comm, 0, allreduce(1 << 20), Ready::at(t(1_000)), 1_000);
    submit(&mut c, ids[1], 5, comm, 1, allreduce(1 << 20), Ready::at(t(50_000)), 50_000);
    // A second all-reduce right after the first on each rank's stream.
    for (&id, first) in ids.iter().zip([1, 5]) {
        let after = Ready { floor: t(0), after: vec![(OpId(first), SimDuration::ZERO)] };
        submit(&mut c, id, 9, comm, id, allreduce(1 << 10), after, 60_000);
    }
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(9)] });
    c.handle(ids[1], ToSim::Wait { req: 1, ops: vec![OpId(9)] });
    assert_eq!(done(c.take_outbox()).len(), 2);
    let log = c.take_op_log();
    let view: Vec<(u32, u64, u64, SimTime, SimTime)> = log.iter().map(|s| (s.pid, s.op.0, s.operation, s.ready, s.start)).collect();
    let first_end = log[0].end;
    assert_eq!(
        view,
        [(100, 1, 1, t(1_000), t(50_000)), (101, 5, 1, t(50_000), t(50_000)), (100, 9, 2, first_end, first_end), (101, 9, 2, first_end, first_end)]
    );
    // Two GPUs of one node: only their NVLinks carried traffic, each link sampled until it fell idle.
    let links = c.link_usage();
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["node0 gpu0 → nvswitch", "node0 gpu1 → nvswitch", "node0 nvswitch → gpu0", "node0 nvswitch → gpu1"]);
    let bytes: u64 = links.iter().map(|l| l.bytes).sum();
    assert_eq!(bytes, c.net().stats().bytes_on_links);
    assert!(links.iter().all(|l| l.samples.len() >= 2 && l.samples.last().unwrap().1 == 0.0), "{links:?}");
}

#[test]
fn readiness_follows_earlier_operations_on_the_stream() {
    let (mut c, ids, comm) = world(2);
    for (r, &id) in ids.iter().enumerate() {
        submit(&mut c, id, 1, comm, r as u32, allreduce(1 << 20), Ready::at(t(0)), 0);
        // The second collective follows the first on the same stream, 7 µs of local work later.
        let after = Ready { floor: t(0), after: vec![(OpId(1), SimDuration::from_micros(7))] };
        submit(&mut c, id, 2, comm, r as u32, allreduce(1 << 20), after, 0);
        c.handle(id, ToSim::Wait { req: 1, ops: vec![OpId(1), OpId(2)] });
    }
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    let (first, second) = (d[0].1[0], d[0].1[1]);
    let one = first.as_nanos();
    // Same size, same idle network: the second takes as long as the first, starting 7 µs after it ended.
    assert_eq!(second.as_nanos(), one + 7_000 + one, "first {first}, second {second}");
}

#[test]
fn point_to_point_meets_its_receive() {
    let (mut c, ids, comm) = world(2);
    let send = OpDesc { kind: OpKind::Send { peer: 1 }, bytes: 4096, count: 1024, dtype: 7 };
    let recv = OpDesc { kind: OpKind::Recv { peer: 0 }, bytes: 4096, count: 1024, dtype: 7 };
    submit(&mut c, ids[0], 5, comm, 0, send, Ready::at(t(0)), 0);
    submit(&mut c, ids[1], 6, comm, 1, recv, Ready::at(t(2_000)), 0);
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(5)] });
    c.handle(ids[1], ToSim::Wait { req: 1, ops: vec![OpId(6)] });
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].1, d[1].1);
    assert!(d[0].1[0] > t(2_000));
}

#[test]
fn mismatched_sizes_are_reported_naming_both_ranks() {
    let (mut c, ids, comm) = world(2);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(4096), Ready::at(t(0)), 0);
    submit(&mut c, ids[1], 1, comm, 1, allreduce(8192), Ready::at(t(0)), 0);
    assert_eq!(c.failures().len(), 1);
    let f = &c.failures()[0].clone();
    assert!(f.starts_with("mismatched operation: rank 1 of communicator 0 (pid 101 (node 0), GPU 1 of node 0) called AllReduce(count=2048"), "{f}");
    assert!(f.contains("as collective #0, but rank 0 of communicator 0 (pid 100 (node 0), GPU 0 of node 0) called AllReduce(count=1024"), "{f}");
    // Both ranks' waits return at once, with the failure.
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    c.handle(ids[1], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|x| x.2.len() == 1 && x.2[0].1 == *f));
}

#[test]
fn a_rank_that_calls_after_the_mismatch_gets_the_same_diagnosis() {
    let (mut c, ids, comm) = world(3);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(4096), Ready::at(t(0)), 0);
    submit(&mut c, ids[1], 1, comm, 1, allreduce(8192), Ready::at(t(0)), 0);
    // Rank 2 agrees with rank 0, but the operation has already failed: it fails with the same reason.
    submit(&mut c, ids[2], 1, comm, 2, allreduce(4096), Ready::at(t(0)), 0);
    assert_eq!(c.failures().len(), 1, "{:?}", c.failures());
    let f = c.failures()[0].clone();
    assert!(f.starts_with("mismatched operation: rank 1 of communicator 0"), "{f}");
    for &id in &ids {
        c.handle(id, ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    }
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|x| x.2.len() == 1 && x.2[0].1 == f), "{d:?}");
}

#[test]
fn a_dead_rank_fails_what_waits_for_it() {
    let (mut c, ids, comm) = world(3);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(4096), Ready::at(t(0)), 0);
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    c.disconnect(ids[2], false);
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 1);
    let why = &d[0].2[0].1;
    assert!(why.starts_with("pid 102 (node 0) exited before rank 2 of communicator 0"), "{why}");
    assert!(why.contains("called AllReduce(count=1024"), "{why}");
}

#[test]
fn a_deadlock_names_the_rank_that_never_called() {
    let (mut c, ids, comm) = world(3);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(4096), Ready::at(t(0)), 0);
    submit(&mut c, ids[1], 1, comm, 1, allreduce(4096), Ready::at(t(0)), 0);
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    c.handle(ids[1], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    assert!(done(c.take_outbox()).is_empty(), "rank 2 is still running");
    // Rank 2 blocks on something else (its own first op of a split it never completes): now nobody can move.
    c.handle(ids[2], ToSim::Join {
        id: 7,
        join: Join::Split { parent: comm, seq: 0, rank: 2, color: 0, key: 0 },
        member: Member { gpu: 2, algo: None, proto: None },
        lbts: t(0),
    });
    c.handle(ids[2], ToSim::JoinWait { req: 2, ids: vec![7] });
    let out = c.take_outbox();
    let d = done(out.clone());
    assert_eq!(d.len(), 2, "{out:?}");
    let why = &d[0].2[0].1;
    assert!(why.starts_with("deadlock: rank "), "{why}");
    assert!(why.contains("ranks [2] of communicator 0 never called it"), "{why}");
    let split_failed = out.iter().any(|(to, m)| *to == ids[2] && matches!(m, FromSim::Joined { infos, .. } if infos[0].is_err()));
    assert!(split_failed, "{out:?}");
}

#[test]
fn splits_group_by_colour_and_order_by_key() {
    let (mut c, ids, comm) = world(4);
    // Ranks 0 and 2 take colour 5 with keys that reverse their order; rank 1 colour 9; rank 3 opts out.
    let choices = [(5, 10), (9, 0), (5, 1), (-1, 0)];
    for (r, &id) in ids.iter().enumerate() {
        let (color, key) = choices[r];
        c.handle(id, ToSim::Join {
            id: 2,
            join: Join::Split { parent: comm, seq: 0, rank: r as u32, color, key },
            member: Member { gpu: r as u32, algo: None, proto: None },
            lbts: t(0),
        });
        c.handle(id, ToSim::JoinWait { req: 5, ids: vec![2] });
    }
    let mut got = vec![None; 4];
    for (to, m) in c.take_outbox() {
        if let FromSim::Joined { infos, .. } = m {
            got[to as usize] = Some(infos[0].clone().unwrap());
        }
    }
    let info = |r: usize| got[r].clone().expect("answered");
    assert_eq!(info(0).unwrap().rank, 1);
    assert_eq!(info(2).unwrap().rank, 0);
    assert_eq!(info(0).unwrap().nranks, 2);
    assert_eq!(info(0).unwrap().comm, info(2).unwrap().comm);
    assert_eq!(info(1).unwrap().nranks, 1);
    assert_eq!(info(3), None);
}

#[test]
fn the_socket_server_answers_clients_in_other_threads() {
    let dir = std::env::temp_dir().join(format!("phantom-engine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handle = server::start(cfg(1), Listen::Unix(dir.join("sim.sock"))).unwrap();
    handle.expect_clients(2);
    let addr = handle.address().to_string();
    let ranks: Vec<_> = (0..2u32)
        .map(|r| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let c = SimClient::connect(&addr, ToSim::Hello { pid: r, node: 0, label: String::new(), executes: false }).unwrap();
                c.send(ToSim::Join { id: 1, join: Join::Init { key: 7, nranks: 2, rank: r }, member: Member { gpu: r, algo: None, proto: None }, lbts: t(0) }).unwrap();
                let FromSim::Joined { infos, .. } = c.request(|req| ToSim::JoinWait { req, ids: vec![1] }).unwrap() else { panic!() };
                let info = infos[0].clone().unwrap().unwrap();
                c.send(ToSim::Submit { ops: vec![(OpId(1), info.comm, info.rank, allreduce(1 << 30), Ready::at(t(0)))], lbts: t(0) }).unwrap();
                let FromSim::Done { times, failures, .. } = c.request(|req| ToSim::Wait { req, ops: vec![OpId(1)] }).unwrap() else { panic!() };
                assert!(failures.is_empty());
                c.send(ToSim::Bye).unwrap();
                times[0]
            })
        })
        .collect();
    let times: Vec<SimTime> = ranks.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(times[0], times[1]);
    // 1 GiB over NVLink takes milliseconds, not nanoseconds.
    assert!(times[0] > t(1_000_000), "{}", times[0]);
    let summary = handle.finish(std::time::Duration::from_secs(5));
    assert_eq!(summary.clients, 2);
    assert_eq!(summary.communicators, 1);
    assert_eq!(summary.operations, 1);
    assert_eq!(summary.simulated_end, times[0]);
    assert!(summary.failures.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_embedded_simulator_serves_one_process_driving_several_gpus() {
    let c = SimClient::embedded(&cfg(1), ToSim::Hello { pid: 1, node: 0, label: String::new(), executes: false }).unwrap();
    for r in 0..4 {
        c.send(ToSim::Join { id: r as u64, join: Join::Init { key: 9, nranks: 4, rank: r }, member: Member { gpu: r, algo: None, proto: None }, lbts: t(0) }).unwrap();
    }
    let FromSim::Joined { infos, .. } = c.request(|req| ToSim::JoinWait { req, ids: vec![0, 1, 2, 3] }).unwrap() else { panic!() };
    let comm = infos[0].clone().unwrap().unwrap().comm;
    let ops = (0..4).map(|r| (OpId(10 + r as u64), comm, r, allreduce(8), Ready::at(t(0)))).collect();
    c.send(ToSim::Submit { ops, lbts: t(0) }).unwrap();
    let FromSim::Done { times, .. } = c.request(|req| ToSim::Wait { req, ops: vec![OpId(10), OpId(13)] }).unwrap() else { panic!() };
    assert_eq!(times[0], times[1]);
    assert!(times[0] > t(0));
    // A communicator this process alone can never complete is a deadlock, reported at once.
    c.send(ToSim::Join { id: 50, join: Join::Init { key: 10, nranks: 2, rank: 0 }, member: Member { gpu: 0, algo: None, proto: None }, lbts: t(0) }).unwrap();
    let FromSim::Joined { infos, .. } = c.request(|req| ToSim::JoinWait { req, ids: vec![50] }).unwrap() else { panic!() };
    let why = infos[0].clone().unwrap_err();
    assert_eq!(why, "deadlock: communicator initialisation (2 ranks) waits for ranks [1], which never joined");
}

#[test]
fn a_gpu_outside_the_cluster_is_refused_naming_the_fix() {
    let mut c = Coordinator::new(&cfg(1)).unwrap();
    let id = c.connect();
    c.handle(id, ToSim::Hello { pid: 9, node: 1, label: String::new(), executes: false });
    c.handle(id, ToSim::Join { id: 1, join: Join::Init { key: 1, nranks: 2, rank: 0 }, member: Member { gpu: 8, algo: None, proto: None }, lbts: t(0) });
    c.handle(id, ToSim::JoinWait { req: 4, ids: vec![1] });
    let out = c.take_outbox();
    let why = out
        .iter()
        .find_map(|(_, m)| match m {
            FromSim::Joined { infos, .. } => Some(infos[0].clone().unwrap_err()),
            _ => None,
        })
        .expect("answered");
    assert_eq!(why, "pid 9 (node 1) uses GPU 0 of node 1, but the cluster has 1 nodes of 8 GPUs (set the node count with --nodes or PHANTOM_NODES)");
}

#[test]
fn an_idle_process_stops_holding_time_back_until_it_speaks() {
    let (mut c, ids, comm) = world(2);
    // Rank 0's all-reduce is queued by both; rank 0 waits. Rank 1 promised only time 0 and then went silent
    // (say, into an MPI barrier that waits for rank 0).
    submit(&mut c, ids[0], 1, comm, 0, allreduce(1 << 20), Ready::at(t(0)), 0);
    submit(&mut c, ids[1], 1, comm, 1, allreduce(1 << 20), Ready::at(t(0)), 0);
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    assert!(done(c.take_outbox()).is_empty());
    assert!(c.has_waiters());
    assert_eq!(c.holding_back(), vec![ids[1]]);
    c.set_idle(ids[1]);
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 1, "answered once the silent rank no longer holds time back");
    let end = d[0].1[0];
    // When it speaks again, what it queues starts no earlier than where the network has got to.
    submit(&mut c, ids[1], 2, comm, 1, allreduce(8), Ready::at(t(0)), 0);
    submit(&mut c, ids[0], 2, comm, 0, allreduce(8), Ready::at(end), end.as_nanos());
    c.handle(ids[0], ToSim::Wait { req: 2, ops: vec![OpId(2)] });
    c.handle(ids[1], ToSim::Wait { req: 2, ops: vec![OpId(2)] });
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    assert!(d[0].1[0] > end);
    assert!(!c.has_waiters());
}

#[test]
fn an_idle_process_is_not_a_deadlock() {
    let (mut c, ids, comm) = world(2);
    submit(&mut c, ids[0], 1, comm, 0, allreduce(4096), Ready::at(t(0)), 0);
    c.handle(ids[0], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    // Rank 1 is silent (in an MPI barrier, say) and has not called the all-reduce yet.
    c.set_idle(ids[1]);
    assert!(done(c.take_outbox()).is_empty(), "rank 1 may still call it");
    assert!(c.failures().is_empty());
    submit(&mut c, ids[1], 1, comm, 1, allreduce(4096), Ready::at(t(0)), 0);
    c.handle(ids[1], ToSim::Wait { req: 1, ops: vec![OpId(1)] });
    let d = done(c.take_outbox());
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|x| x.2.is_empty()));
}

/// A small operation's data travels: each rank's `Payload` goes before its `Submit`; after the operation
/// completed, `Fetch` returns what that rank received (an all-gather of 8-byte ints in rank order here), and
/// an operation without data (or fetched twice) returns no bytes.
#[test]
fn small_operations_deliver_their_data() {
    let (mut c, ids, comm) = world(3);
    let gather = OpDesc { kind: OpKind::Coll { op: CollOp::AllGather, root: 0, redop: 0 }, bytes: 8, count: 1, dtype: 4 };
    for (r, &id) in ids.iter().enumerate() {
        c.handle(id, ToSim::Payload { op: OpId(1), data: (10 * r as i64 + 1).to_le_bytes().to_vec() });
        submit(&mut c, id, 1, comm, r as u32, gather, Ready::at(t(1_000)), 1_000);
    }
    // Fetching before the operation completed is an error, not a wait.
    c.handle(ids[0], ToSim::Fetch { req: 5, op: OpId(1) });
    assert!(matches!(&c.take_outbox()[..], [(0, FromSim::Failed { req: 5, .. })]));
    for &id in &ids {
        c.handle(id, ToSim::Wait { req: 6, ops: vec![OpId(1)] });
    }
    assert_eq!(done(c.take_outbox()).len(), 3);
    let want: Vec<u8> = [1i64, 11, 21].iter().flat_map(|v| v.to_le_bytes()).collect();
    for &id in &ids {
        c.handle(id, ToSim::Fetch { req: 7, op: OpId(1) });
        assert_eq!(c.take_outbox(), vec![(id, FromSim::Payload { req: 7, data: want.clone() })]);
    }
    c.handle(ids[1], ToSim::Fetch { req: 8, op: OpId(1) });
    assert_eq!(c.take_outbox(), vec![(ids[1], FromSim::Payload { req: 8, data: vec![] })]);
    // Without payloads: completes as before, and a fetch finds nothing.
    for (r, &id) in ids.iter().enumerate() {
        submit(&mut c, id, 2, comm, r as u32, allreduce(1 << 20), Ready::at(t(2_000_000)), 2_000_000);
        c.handle(id, ToSim::Wait { req: 9, ops: vec![OpId(2)] });
    }
    assert_eq!(done(c.take_outbox()).len(), 3);
    c.handle(ids[2], ToSim::Fetch { req: 10, op: OpId(2) });
    assert_eq!(c.take_outbox(), vec![(ids[2], FromSim::Payload { req: 10, data: vec![] })]);
}

/// A part that sends no bytes holds zeros: an all-reduce where only rank 1 remembers a value delivers that
/// value to every rank.
#[test]
fn a_part_without_data_counts_as_zeros() {
    let (mut c, ids, comm) = world(3);
    let sum = OpDesc { kind: OpKind::Coll { op: CollOp::AllReduce, root: 0, redop: 0 }, bytes: 8, count: 1, dtype: 4 };
    c.handle(ids[1], ToSim::Payload { op: OpId(1), data: 42i64.to_le_bytes().to_vec() });
    for (r, &id) in ids.iter().enumerate() {
        submit(&mut c, id, 1, comm, r as u32, sum, Ready::at(t(1_000)), 1_000);
        c.handle(id, ToSim::Wait { req: 2, ops: vec![OpId(1)] });
    }
    assert_eq!(done(c.take_outbox()).len(), 3);
    for &id in &ids {
        c.handle(id, ToSim::Fetch { req: 3, op: OpId(1) });
        assert_eq!(c.take_outbox(), vec![(id, FromSim::Payload { req: 3, data: 42i64.to_le_bytes().to_vec() })]);
    }
}
