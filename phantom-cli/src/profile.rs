//! `phantom run --profile` (docs/launcher.md, "Profiling"): each executing rank writes its measurements to
//! its own kernel-time table in the run's statistics directory at exit; after the run this module merges them
//! into the one table `--profile-table` names. Pure functions apart from reading and writing the files,
//! unit-tested.

use sim_core::ktable::KernelTable;
use std::path::{Path, PathBuf};

/// `execute` for the ranks of `--profile-ranks`, `follow` for the others.
pub const PROFILE_ENV: &str = "PHANTOM_PROFILE";
/// Where an executing rank writes its table.
pub const PROFILE_TABLE_ENV: &str = "PHANTOM_PROFILE_TABLE";
/// The merged table's `source` metadata.
pub const SOURCE: &str = "profiling";

/// The table rank `rank` writes in the run's directory `dir`.
pub fn rank_table(dir: &Path, rank: u32) -> PathBuf {
    dir.join(format!("profile-rank{rank}.table"))
}

/// The executing ranks' tables, merged.
#[derive(Debug, Default, PartialEq)]
pub struct Merged {
    /// Every rank's entries; a later rank's entry replaces an earlier rank's with the same key.
    pub table: KernelTable,
    /// Ranks whose table was read, ascending.
    pub measured: Vec<u32>,
    /// Ranks that wrote no table (they did not reach their exit handler).
    pub missing: Vec<u32>,
    /// Ranks whose table could not be parsed, with the reason.
    pub unreadable: Vec<(u32, String)>,
}

/// Reads the tables of `ranks` (ascending) from `dir` and merges them in that order; the result's `source`
/// is `profiling`, its `gpu` the ranks' own.
pub fn merge(dir: &Path, ranks: &[u32]) -> Merged {
    let mut m = Merged::default();
    for &r in ranks {
        let path = rank_table(dir, r);
        if !path.exists() {
            m.missing.push(r);
            continue;
        }
        match KernelTable::load(&path) {
            Ok(t) => {
                m.table.merge(t);
                m.measured.push(r);
            }
            Err(e) => m.unreadable.push((r, e)),
        }
    }
    m.table.set_metadata("source", SOURCE);
    m
}

/// Writes the merged table to `out`, unless no rank wrote one (then `out` is left as it was: `Ok(false)`).
pub fn write(out: &Path, m: &Merged) -> Result<bool, String> {
    if m.measured.is_empty() {
        return Ok(false);
    }
    std::fs::write(out, m.table.to_text()).map_err(|e| format!("cannot write the profile table {}: {e}", out.display()))?;
    Ok(true)
}

/// `ranks 0, 4` / `rank 0`.
fn ranks(rs: &[u32]) -> String {
    let list: Vec<String> = rs.iter().map(u32::to_string).collect();
    format!("rank{} {}", if rs.len() == 1 { "" } else { "s" }, list.join(", "))
}

/// The summary line: `phantom: profiling: 37 kernel configurations measured on rank 0 -> phantom-profile.table`,
/// then what is missing, separated by `;`. `unanswered`: the following ranks' lookups the simulator answered
/// without a measurement (`RunSummary::lookups_unanswered`; those kernels were timed by a table or the model).
/// `real`: what each executing rank ran on the real GPU (from its statistics file).
pub fn line(m: &Merged, out: &Path, unanswered: u64, real: &[(u64, crate::stats::RealGpu)]) -> String {
    let mut parts = vec![if m.measured.is_empty() {
        format!("nothing measured, {} not written", out.display())
    } else {
        let n = m.table.len();
        let calls = m.table.call_count();
        format!(
            "{n} kernel configuration{}{} measured on {} -> {}",
            if n == 1 { "" } else { "s" },
            if calls > 0 { format!(" and {calls} library call{}", if calls == 1 { "" } else { "s" }) } else { String::new() },
            ranks(&m.measured),
            out.display()
        )
    }];
    for (rank, r) in real {
        parts.push(format!(
            "rank {rank} ran {} launch{} and {} library call{} on {}{}",
            r.launches,
            if r.launches == 1 { "" } else { "es" },
            r.library_calls,
            if r.library_calls == 1 { "" } else { "s" },
            if r.device.is_empty() { "the real GPU" } else { &r.device },
            if r.gate_misses > 0 { format!(" ({} measurements include host time: gate too short)", r.gate_misses) } else { String::new() }
        ));
        if r.refined > 0 && r.refined_gated_ns > 0 {
            parts.push(format!(
                "running samples replaced {} figure{} ({:+.1} % of their gated time)",
                r.refined,
                if r.refined == 1 { "" } else { "s" },
                (r.refined_ns as f64 / r.refined_gated_ns as f64 - 1.0) * 100.0
            ));
        }
        if r.launch_host_ns > 0 {
            parts.push(format!("its driver took {:.1} µs of host time per launch", r.launch_host_ns as f64 / 1e3));
        }
    }
    if !m.missing.is_empty() {
        parts.push(format!("{} wrote no table", ranks(&m.missing)));
    }
    for (r, e) in &m.unreadable {
        parts.push(format!("rank {r}'s table is unreadable: {e}"));
    }
    if unanswered > 0 {
        parts.push(format!(
            "{unanswered} lookup{} of following ranks found no measurement",
            if unanswered == 1 { "" } else { "s" }
        ));
    }
    format!("phantom: profiling: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::ktable::{KernelKey, KernelPattern, TableRecord};
    use sim_core::SimDuration;

    fn key(name: &str, grid: u32) -> KernelKey {
        KernelKey { name: name.into(), grid: [grid, 1, 1], block: [256, 1, 1], shared_mem_bytes: 0 }
    }

    fn table(entries: &[(&str, u32, u64)]) -> String {
        let mut t = KernelTable::default();
        t.set_metadata("gpu", "h100-sxm-80gb");
        t.set_metadata("source", "phantom profile");
        for &(name, grid, ns) in entries {
            t.insert(key(name, grid), SimDuration::from_nanos(ns), 1);
        }
        t.to_text()
    }

    #[test]
    fn merges_rank_tables_later_ranks_win() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(rank_table(d.path(), 0), table(&[("gemm", 132, 15_000), ("relu", 64, 2_000)])).unwrap();
        std::fs::write(rank_table(d.path(), 4), table(&[("gemm", 132, 16_000), ("softmax", 8, 900)])).unwrap();
        assert_eq!(rank_table(d.path(), 4), d.path().join("profile-rank4.table"));

        let m = merge(d.path(), &[0, 4, 5]);
        assert_eq!((m.measured.clone(), m.missing.clone(), m.unreadable.clone()), (vec![0, 4], vec![5], vec![]));
        let entries: Vec<(KernelPattern, TableRecord)> = m.table.iter().collect();
        let rec = |ns| TableRecord { duration: SimDuration::from_nanos(ns), samples: 1 };
        assert_eq!(
            entries,
            [
                (KernelPattern::from(key("gemm", 132)), rec(16_000)),
                (KernelPattern::from(key("relu", 64)), rec(2_000)),
                (KernelPattern::from(key("softmax", 8)), rec(900)),
            ]
        );
        assert_eq!(m.table.metadata("source"), Some("profiling"));
        assert_eq!(m.table.gpu(), Some("h100-sxm-80gb"));

        let out = d.path().join("phantom-profile.table");
        assert_eq!(write(&out, &m), Ok(true));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "# phantom kernel-time table v1\n# gpu: h100-sxm-80gb\n# source: profiling\n\
             kernel\tgemm\t132,1,1\t256,1,1\t0\t16000\t1\n\
             kernel\trelu\t64,1,1\t256,1,1\t0\t2000\t1\n\
             kernel\tsoftmax\t8,1,1\t256,1,1\t0\t900\t1\n"
        );
        assert_eq!(KernelTable::load(&out).unwrap(), m.table);
        assert_eq!(
            line(&m, Path::new("phantom-profile.table"), 0, &[]),
            "phantom: profiling: 3 kernel configurations measured on ranks 0, 4 -> phantom-profile.table; \
             rank 5 wrote no table"
        );
    }

    #[test]
    fn nothing_measured_leaves_the_output_alone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(rank_table(d.path(), 1), "not a table\n").unwrap();
        let m = merge(d.path(), &[0, 1]);
        assert_eq!((m.measured.clone(), m.missing.clone()), (vec![], vec![0]));
        assert_eq!(m.unreadable.len(), 1);
        let out = d.path().join("out.table");
        std::fs::write(&out, "previous").unwrap();
        assert_eq!(write(&out, &m), Ok(false));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
        let l = line(&m, Path::new("out.table"), 0, &[]);
        assert!(
            l.starts_with(
                "phantom: profiling: nothing measured, out.table not written; rank 0 wrote no table; \
                 rank 1's table is unreadable: "
            ),
            "{l}"
        );
        assert!(l.ends_with("profile-rank1.table: line 1: expected the header `# phantom kernel-time table v1`"), "{l}");
    }

    #[test]
    fn one_rank_one_configuration() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(rank_table(d.path(), 0), table(&[("gemm", 1, 10)])).unwrap();
        let m = merge(d.path(), &[0]);
        assert_eq!(
            line(&m, Path::new("/t/p.table"), 0, &[]),
            "phantom: profiling: 1 kernel configuration measured on rank 0 -> /t/p.table"
        );
        assert_eq!(
            line(&m, Path::new("/t/p.table"), 1, &[]),
            "phantom: profiling: 1 kernel configuration measured on rank 0 -> /t/p.table; \
             1 lookup of following ranks found no measurement"
        );
        assert!(line(&m, Path::new("t"), 12, &[]).ends_with("; 12 lookups of following ranks found no measurement"));
        let real = [(0u64, crate::stats::RealGpu { device: "NVIDIA H100 80GB HBM3".into(), launches: 24, library_calls: 1, measurements: 4, gate_misses: 0, ..Default::default() })];
        assert!(line(&m, Path::new("t"), 0, &real).ends_with("; rank 0 ran 24 launches and 1 library call on NVIDIA H100 80GB HBM3"));
        let real = [(0u64, crate::stats::RealGpu { launch_host_ns: 2_940, ..real[0].1.clone() })];
        assert!(line(&m, Path::new("t"), 0, &real).ends_with("on NVIDIA H100 80GB HBM3; its driver took 2.9 µs of host time per launch"));
        let real = [(0u64, crate::stats::RealGpu { refined: 3, refined_gated_ns: 40_000, refined_ns: 41_000, ..real[0].1.clone() })];
        assert!(line(&m, Path::new("t"), 0, &real).ends_with(
            "on NVIDIA H100 80GB HBM3; running samples replaced 3 figures (+2.5 % of their gated time); its driver took 2.9 µs of host time per launch"
        ));
    }
}
