//! `phantom calibrate` (docs/calibration.md) against tests/programs/fake_cuda_driver.c, the deterministic
//! stand-in for NVIDIA's driver that profiling mode's tests use (profile.rs). Its timing rule (the file's header):
//! every command runs when it is submitted and advances one clock, a copy of B bytes (any direction, any memory)
//! by B/10 + 1000 ns, a memset by B/20 + 1000 ns, the gate kernel `phantom_spin(ns)` by `ns`; events hold the
//! clock, and elapsed times pass through a float of milliseconds. So every GPU-side figure of the calibration is
//! known exactly: the gate's overhead and back-to-back period are 0, a 64 MiB device-to-device copy takes
//! 6 711 886 ns, which is 2 × 64 MiB / 6 711 886 ns = 19.997 GB/s of device-memory bandwidth.
//!
//! The launch latency is host time; the measurement routine takes the clock as an argument, so the in-process
//! test gives it one that advances by a fixed step per reading.

use phantom_real_gpu::calibrate::{self, Plan, Stream, Timed};
use phantom_real_gpu::driver::Driver;
use phantom_real_gpu::gate::Gate;
use phantom_tests::{compile_shared, phantom_bin, run_with_timeout, Output};
use sim_core::config::ClusterConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn fake_driver() -> &'static PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| compile_shared("fake_cuda_driver.c"))
}

/// The fake's time for a copy of `bytes`, as a reader of `cuEventElapsedTime` sees it: the clock's interval
/// (B/10 + 1000 ns) turned into float milliseconds and back into whole nanoseconds.
fn copy_ns(bytes: u64) -> u64 {
    through_float(bytes / 10 + 1000)
}

/// The same for a memset (B/20 + 1000 ns).
fn memset_ns(bytes: u64) -> u64 {
    through_float(bytes / 20 + 1000)
}

fn through_float(ns: u64) -> u64 {
    let ms = (ns as f64 / 1e6) as f32;
    (ms as f64 * 1e6).round() as u64
}

fn exact(bytes: u64, ns: u64) -> Timed {
    Timed { bytes, ns, min_ns: ns, max_ns: ns }
}

/// The measurement routines themselves, in this process, with a small plan and a host clock that advances by
/// 250 ns per reading.
#[test]
fn the_measurements_are_the_fake_gpus_figures() {
    let d = Driver::open(fake_driver()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.name, "Phantom fake GPU");
    assert_eq!(d.cuda_version().unwrap(), "13.0");
    assert!(d.opt.found().iter().all(|(_, f)| *f), "the fake has every optional function: {:?}", d.opt.found());
    let gate = Gate::new(&d).unwrap();
    // An empty kernel (a zero spin) takes no time on the fake: nothing to subtract.
    assert_eq!((gate.isolated_ns, gate.period_ns, gate.overhead_ns), (0, 0, 0));
    let stream = Stream::new(&d).unwrap();
    calibrate::wake(&d, &gate, &stream).unwrap();

    let plan = Plan { d2d_bytes: (64 * MIB) as usize, host_bytes: (4 * MIB) as usize, samples: 3, launch_samples: 5 };
    let c = calibrate::measure_copies(&d, &gate, &stream, &plan).unwrap();
    // 64 MiB / 10 + 1000 = 6_711_886 ns; / 20 + 1000 = 3_356_443 ns; 4 MiB / 10 + 1000 = 420_430 ns.
    assert_eq!(copy_ns(64 * MIB), 6_711_886);
    assert_eq!(memset_ns(64 * MIB), 3_356_443);
    assert_eq!(copy_ns(4 * MIB), 420_430);
    assert_eq!(c.d2d, exact(64 * MIB, 6_711_886));
    assert_eq!(c.memset, exact(64 * MIB, 3_356_443));
    for t in [c.h2d_pinned, c.d2h_pinned, c.h2d_pageable, c.d2h_pageable] {
        assert_eq!(t, exact(4 * MIB, 420_430));
    }
    // hbm = 2 × 64 MiB / 6_711_886 ns = 19.997 GB/s; every host direction 4 MiB / 420_430 ns = 9.977 GB/s.
    assert_eq!(c.hbm_bytes_per_s(), 2.0 * (64 * MIB) as f64 * 1e9 / 6_711_886.0);
    assert_eq!(format!("{:.3e}", c.hbm_bytes_per_s()), "2.000e10");
    assert_eq!(c.h2d_pinned.bytes_per_s(), (4 * MIB) as f64 * 1e9 / 420_430.0);
    assert_eq!(c.pageable_bytes_per_s(), (8 * MIB) as f64 * 1e9 / 840_860.0);

    // Each launch: the clock is read after the launch, cuStreamQuery says "not ready" once (the fake's gate
    // rule) and then "complete", and the clock is read again: one step. Less the period (0): the step.
    let mut clock = 0u64;
    let launch = calibrate::measure_launch(&d, &gate, &stream, plan.launch_samples, &mut || {
        clock += 250;
        clock
    })
    .unwrap();
    assert_eq!(launch, calibrate::Launch { round_trip_ns: 250, launch_latency_ns: 250, samples: 5 });
    assert_eq!(clock, 250 * 2 * 5, "two readings per launch");
}

/// The counters the fake writes at exit (`FAKE_CUDA_STATS`): `name value` lines.
fn fake_counters(dir: &Path) -> BTreeMap<String, u64> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fake-cuda-"))
        .collect();
    assert_eq!(files.len(), 1, "one process loaded the fake: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    text.lines()
        .filter(|l| !l.starts_with("kernel "))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}


fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("phantom-calibrate-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn calibrate_command(dir: &Path, driver: &Path) -> Command {
    let mut cmd = Command::new(phantom_bin());
    cmd.current_dir(dir).env("PHANTOM_REAL_DRIVER", driver).env_remove("PHANTOM_REAL_LIBS").arg("calibrate");
    cmd
}

/// `phantom calibrate` with its default plan (256 MiB device-to-device, 64 MiB host copies, 5 samples each)
/// writes the fake's figures, four significant digits, into a profile the config loader accepts alone and under
/// a preset, prints one line per figure, and frees what it allocated.
#[test]
fn phantom_calibrate_writes_a_gpu_profile_of_the_fake_gpu() {
    let dir = tempdir("profile");
    let stats = dir.join("stats");
    std::fs::create_dir_all(&stats).unwrap();
    let mut cmd = calibrate_command(&dir, fake_driver());
    cmd.env("FAKE_CUDA_STATS", &stats).args(["--gpu", "h100-sxm-80gb", "-o", "h100.toml"]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.stderr, "", "{}", out.describe());

    // 256 MiB / 10 + 1000 = 26_844_545 ns (the float keeps it), / 20 + 1000 = 13_422_772 ns; 64 MiB / 10 + 1000
    // = 6_711_886 ns.
    let (d2d, memset, host) = (copy_ns(256 * MIB), memset_ns(256 * MIB), copy_ns(64 * MIB));
    assert_eq!((d2d, memset, host), (26_844_545, 13_422_772, 6_711_886));
    let sig4 = |x: f64| format!("{x:.3e}");
    let hbm = sig4(2.0 * (256 * MIB) as f64 * 1e9 / d2d as f64);
    let pcie = sig4((64 * MIB) as f64 * 1e9 / host as f64);
    assert_eq!((hbm.as_str(), pcie.as_str()), ("2.000e10", "9.999e9"));

    let text = std::fs::read_to_string(dir.join("h100.toml")).unwrap();
    let (head, table) = text.split_once("\n[gpu]\n").unwrap_or_else(|| panic!("no [gpu] table:\n{text}"));
    assert!(head.lines().all(|l| l.is_empty() || l.starts_with('#')), "{text}");
    for want in [
        "# GPU profile written by `phantom calibrate` (docs/calibration.md).",
        "# device: Phantom fake GPU",
        &format!("# driver: {} (CUDA 13.0)", fake_driver().display()),
        "# base model: h100-sxm-80gb (fields not below keep its values)",
        "#   hbm_bytes_per_s: 2 x 256 MiB / the time of one device-to-device cuMemcpyAsync",
        "#   gemm_efficiency: not measured (phantom calibrate --gemm measures it)",
    ] {
        assert!(head.lines().any(|l| l == want), "no `{want}` in:\n{text}");
    }
    assert!(head.lines().any(|l| l.starts_with("# date: 20") && l.ends_with(" UTC")), "{text}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "model = \"h100-sxm-80gb\"".to_string(),
            format!("hbm_bytes_per_s = {hbm}"),
            format!("pcie_h2d_bytes_per_s = {pcie}"),
            format!("pcie_d2h_bytes_per_s = {pcie}"),
            format!("pageable_bytes_per_s = {pcie}"),
        ],
        "{text}"
    );
    // Host time on this machine: present, an integer, and well under a millisecond on the fake.
    assert_eq!(lines.len(), 6, "{text}");
    let latency: u64 =
        lines[5].strip_prefix("launch_latency_ns = ").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    assert!(latency < 1_000_000, "{latency}");

    // The config loader takes the file as a cluster file, alone or under preset and node lines.
    let alone = ClusterConfig::load(&dir.join("h100.toml")).unwrap_or_else(|e| panic!("{e}"));
    let g = &alone.gpu;
    assert_eq!((g.key.as_str(), alone.nodes, alone.gpus_per_node), ("h100-sxm-80gb", 1, 8));
    assert_eq!(
        (g.hbm_bytes_per_s, g.pcie_h2d_bytes_per_s, g.pcie_d2h_bytes_per_s, g.pageable_bytes_per_s),
        (2.0e10, 9.999e9, 9.999e9, 9.999e9)
    );
    assert_eq!(g.launch_latency_ns, latency);
    assert_eq!(g.gemm_efficiency, 0.75, "not measured: the model's default");
    let cluster = dir.join("cluster.toml");
    std::fs::write(&cluster, format!("preset = \"dgx-h100\"\nnodes = 4\n{text}")).unwrap();
    let c = ClusterConfig::load(&cluster).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.name.as_str(), c.nodes), ("dgx-h100", 4));
    assert_eq!(&c.gpu, g);

    // The report: a title, one line per figure, the file.
    let report: Vec<&str> = out.stdout.lines().collect();
    assert!(
        report[0].starts_with("phantom calibrate: Phantom fake GPU (CUDA 13.0), base model h100-sxm-80gb, "),
        "{}",
        out.stdout
    );
    let line = |name: &str| {
        *report
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}: {}", out.stdout))
    };
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
    assert!(
        line("hbm_bytes_per_s").contains(&format!("20.00 GB/s  device-to-device copy of 256 MiB in {} us", us(d2d))),
        "{}",
        out.stdout
    );
    assert!(
        line("(memset)").contains(&format!("20.00 GB/s  memset of 256 MiB in {} us", us(memset))),
        "{}",
        out.stdout
    );
    for name in ["pcie_h2d_bytes_per_s", "pcie_d2h_bytes_per_s"] {
        assert!(
            line(name).contains(&format!("10.00 GB/s  pinned copy of 64 MiB in {} us (5 samples", us(host))),
            "{}",
            out.stdout
        );
    }
    assert!(line("pageable_bytes_per_s").contains("10.00 GB/s  pageable copies of 64 MiB"), "{}", out.stdout);
    assert!(line("launch_latency_ns").contains(&format!("{latency} ns")), "{}", out.stdout);
    assert!(line("(gate overhead)").contains(" 0 ns  "), "{}", out.stdout);
    assert!(line("(back-to-back period)").contains(" 0 ns  "), "{}", out.stdout);
    assert_eq!(report.last(), Some(&"phantom calibrate: wrote h100.toml"), "{}", out.stdout);
    assert_eq!(report.len(), 10, "{}", out.stdout);

    // What the fake saw: two device buffers and one pinned buffer, all freed; each copy once to warm up and five
    // times timed (device-to-device, pinned both ways, pageable both ways), the memset likewise.
    let n = fake_counters(&stats);
    assert_eq!((n["allocs"], n["host_allocs"], n["live_allocs"]), (2, 1, 0), "{n:?}");
    assert_eq!((n["memcpys"], n["memsets"]), (5 * 6, 6), "{n:?}");
    assert_eq!(n["memcpy_bytes"], 6 * 256 * MIB + 4 * 6 * 64 * MIB, "{n:?}");
    assert_eq!(n["mapped_peak_bytes"], 2 * 256 * MIB, "{n:?}");
    assert_eq!(n["launches"], 0, "only gate kernels ran: {n:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn one_error_line(out: &Output) -> String {
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert_eq!(out.stdout, "", "{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", out.describe());
    lines[0].to_string()
}

/// No driver, or a device no model is named after without --gpu: one line on stderr, exit code 1, no file.
#[test]
fn phantom_calibrate_errors_are_one_line() {
    let dir = tempdir("errors");
    let out =
        run_with_timeout(calibrate_command(&dir, Path::new("/nonexistent/libcuda.so.1")), Duration::from_secs(60));
    let e = one_error_line(&out);
    assert!(e.starts_with("phantom calibrate: error: cannot open the real driver /nonexistent/libcuda.so.1: "), "{e}");
    let out = run_with_timeout(calibrate_command(&dir, fake_driver()), Duration::from_secs(60));
    assert_eq!(
        one_error_line(&out),
        "phantom calibrate: error: no GPU model is named `Phantom fake GPU`: give --gpu, the model whose other figures \
         the profile keeps (one of h100-sxm-80gb, h200-141gb, a100-sxm-80gb, b200)"
    );
    assert!(!dir.join("gpu-profile.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
