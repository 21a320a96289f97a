//! `phantom calibrate`: measures this machine's one NVIDIA GPU and writes a **GPU profile**, a TOML file whose
//! `[gpu]` table overrides the measured `GpuSpec` fields of a GPU model (docs/calibration.md).
//!
//! The measurements are `phantom_real_gpu::calibrate`'s (NVIDIA's driver opened by absolute path, CUDA events
//! behind the gate of profiling mode); this module picks the model, turns the figures into `GpuSpec` fields,
//! writes the file and prints the report. Pure functions apart from [`calibrate`] and the searches, unit-tested.

use crate::args::CalibrateArgs;
use crate::table::preset_for_device;
use phantom_real_gpu::calibrate::gemm::{self, CublasLt, Shape};
use phantom_real_gpu::calibrate::{self as measure, Copies, Launch, Plan, Stream, Timed, DEFAULT_PLAN};
use phantom_real_gpu::driver::{driver_path, Driver, DRIVER_ENV};
use phantom_real_gpu::gate::Gate;
use sim_core::blas::{Gemm, Precision, GEMM_FIXED_NS};
use sim_core::config::ClusterConfig;
use sim_core::gpu::{gpu_preset, gpu_preset_names, GpuSpec};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The variable naming folders that hold NVIDIA's libraries (as for Phantom's stubs).
pub const REAL_LIBS_ENV: &str = "PHANTOM_REAL_LIBS";

/// The gate's own figures (`Gate::isolated_ns`, `period_ns`, `overhead_ns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateFigures {
    pub isolated_ns: u64,
    pub period_ns: u64,
    pub overhead_ns: u64,
}

/// One GEMM shape's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmRow {
    pub shape: Shape,
    pub result: Result<gemm::Measured, String>,
}

/// The GEMM part: where cuBLASLt came from, and each shape.
#[derive(Clone, Debug, PartialEq)]
pub enum GemmPart {
    /// `--gemm` was not given.
    NotAsked,
    /// cuBLASLt could not be found or opened: why.
    Skipped(String),
    Measured {
        library: PathBuf,
        version: usize,
        rows: Vec<GemmRow>,
    },
}

/// Everything measured, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub device: String,
    pub driver: PathBuf,
    /// The driver's release (`580.159.04`), from the name of the file its path leads to.
    pub driver_release: Option<String>,
    /// `cuDriverGetVersion` as `13.0`.
    pub cuda: String,
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The GPU model the profile overrides (`gpu.model`).
    pub model: String,
    pub plan: Plan,
    pub copies: Copies,
    pub launch: Launch,
    pub gate: GateFigures,
    pub gemm: GemmPart,
}

/// A value as the profile writes it: four significant digits (`2.956e12`), a TOML float.
pub fn sig4(x: f64) -> String {
    format!("{x:.3e}")
}

/// The fraction of the bf16 peak that makes the GEMM model (`sim_core::blas`) give exactly `ns` for a GEMM of
/// `flops`: `flops / (peak × (ns − GEMM_FIXED_NS))`; `None` when `ns` is not above the fixed cost.
pub fn fitted_efficiency(flops: f64, ns: u64, peak: f64) -> Option<f64> {
    (ns > GEMM_FIXED_NS && peak > 0.0).then(|| flops / (peak * (ns - GEMM_FIXED_NS) as f64 * 1e-9))
}

/// Whether the GEMM model times `shape` by its arithmetic at any efficiency up to 1: its FLOP per byte at
/// least the spec's bf16 peak over `hbm_bytes_per_s`.
pub fn compute_bound(shape: &Shape, peak: f64, hbm_bytes_per_s: f64) -> bool {
    shape.flops() / shape.bytes() as f64 >= peak / hbm_bytes_per_s
}

/// `gemm_efficiency`: the median (the upper one of an even count) of [`fitted_efficiency`] over the measured
/// compute-bound shapes, at most 1; `None` without one.
pub fn gemm_efficiency(rows: &[GemmRow], peak: f64, hbm_bytes_per_s: f64) -> Option<f64> {
    let mut v: Vec<f64> = rows
        .iter()
        .filter(|r| compute_bound(&r.shape, peak, hbm_bytes_per_s))
        .filter_map(|r| r.result.as_ref().ok())
        .filter_map(|m| fitted_efficiency(m.shape.flops(), m.time.ns, peak))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2].min(1.0))
}

impl Calibration {
    /// The base model's spec.
    pub fn base(&self) -> GpuSpec {
        gpu_preset(&self.model).expect("the model was checked")
    }

    /// `gemm_efficiency`, where GEMMs were measured and one was compute-bound (against the measured device
    /// bandwidth).
    pub fn gemm_efficiency(&self) -> Option<f64> {
        match &self.gemm {
            GemmPart::Measured { rows, .. } => {
                gemm_efficiency(rows, self.base().peak_flops.bf16, self.copies.hbm_bytes_per_s())
            }
            _ => None,
        }
    }

    /// The `[gpu]` keys and values the profile writes, in order (`model` first).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let c = &self.copies;
        let mut f = vec![
            ("model", format!("\"{}\"", self.model)),
            ("hbm_bytes_per_s", sig4(c.hbm_bytes_per_s())),
            ("pcie_h2d_bytes_per_s", sig4(c.h2d_pinned.bytes_per_s())),
            ("pcie_d2h_bytes_per_s", sig4(c.d2h_pinned.bytes_per_s())),
            ("pageable_bytes_per_s", sig4(c.pageable_bytes_per_s())),
            ("launch_latency_ns", self.launch.launch_latency_ns.to_string()),
        ];
        if let Some(e) = self.gemm_efficiency() {
            f.push(("gemm_efficiency", format!("{e:.3}")));
        }
        f
    }

    /// The profile's text: comments (device, driver, date, method, use), then `[gpu]`.
    pub fn to_toml(&self) -> String {
        let p = &self.plan;
        let mib = |b: usize| format!("{} MiB", b >> 20);
        let release = self.driver_release.as_deref().map(|r| format!("{r}, ")).unwrap_or_default();
        let mut s = String::new();
        s.push_str("# GPU profile written by `phantom calibrate` (docs/calibration.md).\n");
        s.push_str(&format!("# device: {}\n", self.device));
        s.push_str(&format!("# driver: {} ({release}CUDA {})\n", self.driver.display(), self.cuda));
        s.push_str(&format!("# date: {}\n", self.date));
        s.push_str(&format!("# base model: {} (fields not below keep its values)\n", self.model));
        s.push_str(&format!(
            "# method: medians of {} CUDA-event timings each, behind profiling mode's gate kernel (docs/profiling.md)\n",
            p.samples
        ));
        s.push_str(&format!(
            "#   hbm_bytes_per_s: 2 x {} / the time of one device-to-device cuMemcpyAsync\n",
            mib(p.d2d_bytes)
        ));
        s.push_str(&format!(
            "#   pcie_h2d_bytes_per_s, pcie_d2h_bytes_per_s: {} cuMemcpyAsync from / to cuMemHostAlloc memory\n",
            mib(p.host_bytes)
        ));
        s.push_str(&format!(
            "#   pageable_bytes_per_s: {} each way from / to malloc memory (no gate), both bytes over both times\n",
            mib(p.host_bytes)
        ));
        s.push_str(&format!(
            "#   launch_latency_ns: host time from cuLaunchKernel's return to cuStreamQuery's completion of an empty\n\
             #     kernel on an idle GPU (median of {}), less the kernel's back-to-back period\n",
            self.launch.samples
        ));
        match &self.gemm {
            GemmPart::Measured { library, version, .. } => {
                let what = match self.gemm_efficiency() {
                    Some(_) => "median over the compute-bound shapes of".to_string(),
                    None => "not written: no compute-bound shape ran; would be".to_string(),
                };
                s.push_str(&format!(
                    "#   gemm_efficiency: bf16 GEMMs through {} ({}); {what}\n\
                     #     FLOP / (peak_flops.bf16 of {} x (time - {} ns))\n",
                    library.display(),
                    lt_version(*version),
                    self.model,
                    GEMM_FIXED_NS
                ));
            }
            GemmPart::Skipped(why) => s.push_str(&format!("#   gemm_efficiency: not measured: {why}\n")),
            GemmPart::NotAsked => {
                s.push_str("#   gemm_efficiency: not measured (phantom calibrate --gemm measures it)\n")
            }
        }
        s.push_str("# use: PHANTOM_CLUSTER=<this file> or --cluster <this file> (one node of 8 such GPUs, the DGX\n");
        s.push_str(
            "#   network of its generation); or add `preset = \"...\"`, `nodes = N` lines above [gpu]; or copy the\n",
        );
        s.push_str("#   keys below into a cluster file's [gpu] table.\n\n[gpu]\n");
        for (k, v) in self.fields() {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }

    /// The printed report: one line per figure, with units.
    pub fn report(&self, output: &Path, calibrated: &GpuSpec) -> Vec<String> {
        let base = self.base();
        let c = &self.copies;
        let gbs = |x: f64| format!("{:.2} GB/s", x / 1e9);
        let us = |ns: u64| format!("{:.1} us", ns as f64 / 1e3);
        let spread = |t: &Timed| {
            format!("{} samples: {:.1} to {:.1} us", self.plan.samples, t.min_ns as f64 / 1e3, t.max_ns as f64 / 1e3)
        };
        let mib = |b: u64| format!("{} MiB", b >> 20);
        let release = self.driver_release.as_deref().map(|r| format!("driver {r}, ")).unwrap_or_default();
        let mut l = vec![format!(
            "phantom calibrate: {} ({release}CUDA {}), base model {}, {}",
            self.device, self.cuda, self.model, self.date
        )];
        let mut line = |name: &str, value: String, how: String| l.push(format!("  {name:<22} {value:>14}  {how}"));
        line(
            "hbm_bytes_per_s",
            gbs(c.hbm_bytes_per_s()),
            format!(
                "device-to-device copy of {} in {} (2 x bytes / time; {}); preset {}",
                mib(c.d2d.bytes),
                us(c.d2d.ns),
                spread(&c.d2d),
                gbs(base.hbm_bytes_per_s)
            ),
        );
        line(
            "(memset)",
            gbs(c.memset.bytes_per_s()),
            format!(
                "memset of {} in {} ({}); not written: the model uses hbm_bytes_per_s",
                mib(c.memset.bytes),
                us(c.memset.ns),
                spread(&c.memset)
            ),
        );
        for (name, t, preset) in [
            ("pcie_h2d_bytes_per_s", &c.h2d_pinned, base.pcie_h2d_bytes_per_s),
            ("pcie_d2h_bytes_per_s", &c.d2h_pinned, base.pcie_d2h_bytes_per_s),
        ] {
            line(
                name,
                gbs(t.bytes_per_s()),
                format!("pinned copy of {} in {} ({}); preset {}", mib(t.bytes), us(t.ns), spread(t), gbs(preset)),
            );
        }
        line(
            "pageable_bytes_per_s",
            gbs(c.pageable_bytes_per_s()),
            format!(
                "pageable copies of {}: to the device {} ({}), from it {} ({}); preset {}",
                mib(c.h2d_pageable.bytes),
                us(c.h2d_pageable.ns),
                gbs(c.h2d_pageable.bytes_per_s()),
                us(c.d2h_pageable.ns),
                gbs(c.d2h_pageable.bytes_per_s()),
                gbs(base.pageable_bytes_per_s)
            ),
        );
        line(
            "launch_latency_ns",
            format!("{} ns", self.launch.launch_latency_ns),
            format!(
                "launch-to-completion of an empty kernel on an idle GPU {} ns (median of {}) less its back-to-back period; preset {} ns",
                self.launch.round_trip_ns, self.launch.samples, base.launch_latency_ns
            ),
        );
        let g = self.gate;
        line(
            "(gate overhead)",
            format!("{} ns", g.overhead_ns),
            format!(
                "interval around one empty kernel behind the gate {} ns less the back-to-back period; not written",
                g.isolated_ns
            ),
        );
        line(
            "(back-to-back period)",
            format!("{} ns", g.period_ns),
            "of empty kernels queued 32 at a time; not written".into(),
        );
        match &self.gemm {
            GemmPart::NotAsked => {}
            GemmPart::Skipped(why) => line("gemm_efficiency", "-".into(), format!("not measured: {why}")),
            GemmPart::Measured { library, version, rows } => {
                let peak = base.peak_flops.bf16;
                let hbm = c.hbm_bytes_per_s();
                for r in rows {
                    let name = format!("(gemm {})", r.shape);
                    match &r.result {
                        Err(e) => line(&name, "-".into(), format!("not measured: {e}")),
                        Ok(m) => {
                            let flops = r.shape.flops() / (m.time.ns as f64 * 1e-9);
                            let bound =
                                if compute_bound(&r.shape, peak, hbm) { "compute-bound" } else { "memory-bound" };
                            let g = Gemm {
                                m: r.shape.m,
                                n: r.shape.n,
                                k: r.shape.k,
                                batch: 1,
                                precision: Precision::Bf16,
                                in_bytes: 2,
                                out_bytes: 2,
                            };
                            let model = g.time_ns(calibrated).map(|t| {
                                format!(
                                    "; the profile's model: {} ({:+.1} %)",
                                    us(t),
                                    (t as f64 / m.time.ns as f64 - 1.0) * 100.0
                                )
                            });
                            line(
                                &name,
                                format!("{:.1} TFLOP/s", flops / 1e12),
                                format!(
                                    "bf16 in {} ({:.1} % of the {:.1} TFLOP/s peak; {bound}; batches of {}, {}){}",
                                    us(m.time.ns),
                                    flops / peak * 100.0,
                                    peak / 1e12,
                                    m.batch,
                                    spread(&m.time),
                                    model.unwrap_or_default()
                                ),
                            );
                        }
                    }
                }
                let how = format!("through {} ({})", library.display(), lt_version(*version));
                match self.gemm_efficiency() {
                    Some(e) => line(
                        "gemm_efficiency",
                        format!("{e:.3}"),
                        format!(
                            "median over the compute-bound shapes of FLOP / (peak x (time - {GEMM_FIXED_NS} ns)), {how}; preset {}",
                            base.gemm_efficiency
                        ),
                    ),
                    None => line("gemm_efficiency", "-".into(), format!("not written: no compute-bound shape ran {how}")),
                }
            }
        }
        l.push(format!("phantom calibrate: wrote {}", output.display()));
        l
    }
}

fn lt_version(v: usize) -> String {
    if v == 0 {
        "version unknown".into()
    } else {
        format!("cuBLASLt {}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    }
}

/// `YYYY-MM-DD HH:MM UTC` of `secs` since the Unix epoch (the proleptic Gregorian calendar).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m) = (secs % 86_400 / 3600, secs % 3600 / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// The driver's release from the file its path leads to: `libcuda.so.580.159.04` → `580.159.04`.
pub fn driver_release(path: &Path) -> Option<String> {
    let real = path.canonicalize().ok()?;
    let name = real.file_name()?.to_str()?;
    let v = name.strip_prefix("libcuda.so.")?;
    (v.contains('.') && v.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| v.to_string())
}

/// The `site-packages` / `dist-packages` folders of `python3`'s `sys.path` (none without a `python3`).
fn python_site_packages() -> Vec<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print('\\n'.join(sys.path))"])
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.file_name().is_some_and(|n| n == "site-packages" || n == "dist-packages"))
        .collect()
}

/// Phantom's own libraries beside this binary (`<bin>/../lib`), which the search must pass over.
fn own_library(soname: &str) -> Vec<PathBuf> {
    std::env::current_exe().ok().and_then(|e| e.parent().map(|b| b.join("../lib").join(soname))).into_iter().collect()
}

/// Opens NVIDIA's cuBLASLt: `PHANTOM_REAL_LIBS`, then the `nvidia/*/lib` folders of python3's site-packages.
fn open_cublaslt() -> Result<CublasLt, String> {
    let env = std::env::var(REAL_LIBS_ENV).ok();
    let dirs = gemm::library_dirs(env.as_deref(), &python_site_packages());
    match gemm::find_library(gemm::SONAME, &dirs, &own_library(gemm::SONAME)) {
        Some(p) => CublasLt::open(&p),
        None => {
            let looked = if dirs.is_empty() {
                "no folder: no PHANTOM_REAL_LIBS, and python3 has no site-packages with nvidia/*/lib".into()
            } else {
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            };
            Err(format!(
                "NVIDIA's {} was not found (looked in {looked}); set {REAL_LIBS_ENV} to its folder",
                gemm::SONAME
            ))
        }
    }
}

/// One line: newlines (a loader's message may have some) become spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `phantom calibrate`: returns the exit code (0, or 1 after a one-line error on stderr).
pub fn calibrate(a: &CalibrateArgs) -> i32 {
    match run(a) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            0
        }
        Err(e) => {
            eprintln!("phantom calibrate: error: {}", one_line(&e));
            1
        }
    }
}

fn run(a: &CalibrateArgs) -> Result<Vec<String>, String> {
    // Before a minute of measuring: the profile must have somewhere to go.
    let parent = a.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!("cannot write {}: {} is not a directory", a.output.display(), parent.display()));
    }
    let env = std::env::var(DRIVER_ENV).ok();
    let path = driver_path(env.as_deref())?;
    let d = Driver::open(&path)?;
    let missing: Vec<&str> = d.opt.found().into_iter().filter(|(_, f)| !f).map(|(n, _)| n).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the driver {} has no {} (phantom calibrate needs them)",
            path.display(),
            missing.join(", ")
        ));
    }
    let model = match &a.gpu {
        Some(g) => g.clone(),
        None => preset_for_device(&d.name).map(str::to_string).ok_or_else(|| {
            format!(
                "no GPU model is named `{}`: give --gpu, the model whose other figures the profile keeps (one of {})",
                d.name,
                gpu_preset_names().join(", ")
            )
        })?,
    };
    let cuda = d.cuda_version()?;
    let gate = Gate::new(&d)?;
    let stream = Stream::new(&d)?;
    measure::wake(&d, &gate, &stream)?;
    let plan = DEFAULT_PLAN;
    let copies = measure::measure_copies(&d, &gate, &stream, &plan)?;
    let start = Instant::now();
    let launch =
        measure::measure_launch(&d, &gate, &stream, plan.launch_samples, &mut || start.elapsed().as_nanos() as u64)?;
    let gemm = if a.gemm {
        match open_cublaslt() {
            // Said in the report's gemm_efficiency line and in the file.
            Err(why) => GemmPart::Skipped(one_line(&why)),
            Ok(lt) => {
                let results = gemm::measure(&d, &gate, &stream, &lt, gemm::SHAPES, plan.samples);
                let rows = gemm::SHAPES.iter().zip(results).map(|(&shape, result)| GemmRow { shape, result }).collect();
                GemmPart::Measured { library: lt.path.clone(), version: lt.version, rows }
            }
        }
    } else {
        GemmPart::NotAsked
    };
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let c = Calibration {
        device: d.name.clone(),
        driver: path.clone(),
        driver_release: driver_release(&path),
        cuda,
        date: utc_date(secs),
        model,
        plan,
        copies,
        launch,
        gate: GateFigures { isolated_ns: gate.isolated_ns, period_ns: gate.period_ns, overhead_ns: gate.overhead_ns },
        gemm,
    };
    let text = c.to_toml();
    // The profile must be what the config loader accepts (it is also a cluster file by itself).
    let calibrated = ClusterConfig::from_toml_str(&text, Path::new("."))
        .map_err(|e| format!("the profile does not load as a cluster file: {e}"))?
        .gpu;
    std::fs::write(&a.output, &text).map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    Ok(c.report(&a.output, &calibrated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phantom_real_gpu::calibrate::gemm::Measured;

    fn timed(bytes: u64, ns: u64) -> Timed {
        Timed { bytes, ns, min_ns: ns, max_ns: ns }
    }

    fn sample(gemm: GemmPart) -> Calibration {
        let mib = 1u64 << 20;
        Calibration {
            device: "NVIDIA H100 80GB HBM3".into(),
            driver: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
            driver_release: Some("580.159.04".into()),
            cuda: "13.0".into(),
            date: "2026-11-30 14:02 UTC".into(),
            model: "h100-sxm-80gb".into(),
            plan: DEFAULT_PLAN,
            copies: Copies {
                // 2 × 256 MiB in 180 µs: 2.983e12 B/s.
                d2d: timed(256 * mib, 180_000),
                memset: timed(256 * mib, 95_000),
                h2d_pinned: timed(64 * mib, 1_300_000),
                d2h_pinned: timed(64 * mib, 1_250_000),
                h2d_pageable: timed(64 * mib, 3_000_000),
                d2h_pageable: timed(64 * mib, 4_000_000),
            },
            launch: Launch { round_trip_ns: 4_500, launch_latency_ns: 3_000, samples: 51 },
            gate: GateFigures { isolated_ns: 3_600, period_ns: 1_500, overhead_ns: 2_100 },
            gemm,
        }
    }

    fn row(m: u64, n: u64, k: u64, ns: u64) -> GemmRow {
        let shape = Shape::new(m, n, k);
        GemmRow { shape, result: Ok(Measured { shape, time: timed(shape.bytes(), ns), batch: 10 }) }
    }

    fn measured(rows: Vec<GemmRow>) -> GemmPart {
        GemmPart::Measured { library: "/site/nvidia/cu13/lib/libcublasLt.so.13".into(), version: 130_100, rows }
    }

    #[test]
    fn the_profile_holds_the_measured_fields() {
        let c = sample(GemmPart::NotAsked);
        assert_eq!(
            c.fields(),
            [
                ("model", "\"h100-sxm-80gb\"".to_string()),
                ("hbm_bytes_per_s", "2.983e12".into()),
                ("pcie_h2d_bytes_per_s", "5.162e10".into()),
                ("pcie_d2h_bytes_per_s", "5.369e10".into()),
                ("pageable_bytes_per_s", "1.917e10".into()),
                ("launch_latency_ns", "3000".into()),
            ]
        );
        let text = c.to_toml();
        assert!(text.starts_with("# GPU profile written by `phantom calibrate` (docs/calibration.md).\n# device: NVIDIA H100 80GB HBM3\n"), "{text}");
        assert!(text.contains("# driver: /usr/lib/x86_64-linux-gnu/libcuda.so.1 (580.159.04, CUDA 13.0)\n"), "{text}");
        assert!(text.contains("# date: 2026-11-30 14:02 UTC\n"), "{text}");
        assert!(
            text.ends_with(
                "\n[gpu]\nmodel = \"h100-sxm-80gb\"\nhbm_bytes_per_s = 2.983e12\npcie_h2d_bytes_per_s = 5.162e10\n\
             pcie_d2h_bytes_per_s = 5.369e10\npageable_bytes_per_s = 1.917e10\nlaunch_latency_ns = 3000\n"
            ),
            "{text}"
        );
        assert!(text.lines().filter(|l| !l.is_empty()).take_while(|l| *l != "[gpu]").all(|l| l.starts_with('#')));
    }

    #[test]
    fn the_profile_loads_alone_and_under_a_preset() {
        let mut c = sample(measured(vec![row(4096, 4096, 4096, 190_000)]));
        let text = c.to_toml();
        // By itself: a cluster file of the base model with the measured fields.
        let alone = ClusterConfig::from_toml_str(&text, Path::new(".")).unwrap();
        let base = gpu_preset("h100-sxm-80gb").unwrap();
        assert_eq!(alone.gpu.hbm_bytes_per_s, 2.983e12);
        assert_eq!(alone.gpu.pcie_h2d_bytes_per_s, 5.162e10);
        assert_eq!(alone.gpu.pcie_d2h_bytes_per_s, 5.369e10);
        assert_eq!(alone.gpu.pageable_bytes_per_s, 1.917e10);
        assert_eq!(alone.gpu.launch_latency_ns, 3000);
        // 137_438_953_472 FLOP / (989.4e12 × 187_000 ns) = 0.74282…
        assert_eq!(alone.gpu.gemm_efficiency, 0.743);
        assert_eq!(alone.gpu.sm_count, base.sm_count);
        assert_eq!((alone.nodes, alone.gpus_per_node), (1, 8));
        // Under preset and node lines.
        let cluster =
            ClusterConfig::from_toml_str(&format!("preset = \"dgx-h100\"\nnodes = 4\n{text}"), Path::new(".")).unwrap();
        assert_eq!((cluster.name.as_str(), cluster.nodes), ("dgx-h100", 4));
        assert_eq!(cluster.gpu, alone.gpu);
        // Another base model's profile: its own peak.
        c.model = "h200-141gb".into();
        let h200 = ClusterConfig::from_toml_str(&c.to_toml(), Path::new(".")).unwrap();
        assert_eq!(h200.gpu.key, "h200-141gb");
        assert_eq!(h200.gpu.memory_bytes, gpu_preset("h200-141gb").unwrap().memory_bytes);
    }

    #[test]
    fn gemm_efficiency_is_the_median_of_the_compute_bound_shapes() {
        let peak = 989.4e12;
        let hbm = 3.0e12;
        // 2·4096³ FLOP in 188_216 ns is exactly the default model: 0.75 (to rounding).
        let e = fitted_efficiency(2.0 * 4096f64.powi(3), 188_216, peak).unwrap();
        assert!((e - 0.75).abs() < 1e-5, "{e}");
        assert_eq!(fitted_efficiency(1.0, GEMM_FIXED_NS, peak), None);
        assert!(compute_bound(&Shape::new(4096, 4096, 4096), peak, hbm));
        assert!(compute_bound(&Shape::new(8192, 1024, 8192), peak, hbm));
        assert!(!compute_bound(&Shape::new(8192, 128, 8192), peak, hbm));
        assert!(!compute_bound(&Shape::new(8192, 16, 8192), peak, hbm));
        let flops = |n: u64| 2.0 * (n as f64).powi(3);
        // Efficiencies 0.5, 0.6, 0.7 for three squares; a memory-bound shape and a failed one are left out.
        let ns = |n: u64, e: f64| (flops(n) / (peak * e) * 1e9).round() as u64 + GEMM_FIXED_NS;
        let rows = vec![
            row(2048, 2048, 2048, ns(2048, 0.5)),
            row(4096, 4096, 4096, ns(4096, 0.7)),
            row(8192, 8192, 8192, ns(8192, 0.6)),
            row(8192, 16, 8192, 1_000_000_000),
            GemmRow { shape: Shape::new(16384, 16384, 16384), result: Err("out of memory".into()) },
        ];
        let e = gemm_efficiency(&rows, peak, hbm).unwrap();
        assert!((e - 0.6).abs() < 1e-6, "{e}");
        assert_eq!(gemm_efficiency(&rows[3..], peak, hbm), None);
        // Faster than the peak allows is capped at 1.
        assert_eq!(gemm_efficiency(&[row(4096, 4096, 4096, ns(4096, 1.5))], peak, hbm), Some(1.0));
    }

    #[test]
    fn a_skipped_gemm_says_why_in_the_file_and_the_report() {
        let c = sample(GemmPart::Skipped("NVIDIA's libcublasLt.so.13 was not found (looked in /x)".into()));
        assert!(!c.to_toml().contains("gemm_efficiency ="));
        assert!(c
            .to_toml()
            .contains("#   gemm_efficiency: not measured: NVIDIA's libcublasLt.so.13 was not found (looked in /x)\n"));
        let spec = gpu_preset("h100-sxm-80gb").unwrap();
        let report = c.report(Path::new("p.toml"), &spec);
        assert!(
            report.iter().any(|l| l.starts_with("  gemm_efficiency") && l.contains("not measured: NVIDIA's")),
            "{report:#?}"
        );
    }

    #[test]
    fn the_report_has_one_line_per_figure_with_units() {
        let c = sample(measured(vec![row(4096, 4096, 4096, 190_000), row(8192, 16, 8192, 50_000)]));
        let spec = ClusterConfig::from_toml_str(&c.to_toml(), Path::new(".")).unwrap().gpu;
        let r = c.report(Path::new("gpu-profile.toml"), &spec);
        assert_eq!(r[0], "phantom calibrate: NVIDIA H100 80GB HBM3 (driver 580.159.04, CUDA 13.0), base model h100-sxm-80gb, 2026-11-30 14:02 UTC");
        let find = |name: &str| {
            r.iter().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("no {name}: {r:#?}"))
        };
        assert!(find("hbm_bytes_per_s ").contains("2982.62 GB/s"), "{r:#?}");
        assert!(find("hbm_bytes_per_s ").contains("device-to-device copy of 256 MiB in 180.0 us"), "{r:#?}");
        assert!(find("(memset)").contains("2825.64 GB/s"), "{r:#?}");
        assert!(find("pcie_h2d_bytes_per_s").contains("51.62 GB/s"), "{r:#?}");
        assert!(find("pageable_bytes_per_s").contains("19.17 GB/s"), "{r:#?}");
        assert!(find("launch_latency_ns").contains("3000 ns"), "{r:#?}");
        assert!(find("(gate overhead)").contains("2100 ns"), "{r:#?}");
        assert!(find("(back-to-back period)").contains("1500 ns"), "{r:#?}");
        // 137.4 GFLOP in 190 µs: 723.4 TFLOP/s, 73.1 % of 989.4; the profile's model (efficiency 0.743) gives
        // 186_961 + 3_000 ns = 189.961 µs, 0.02 % less.
        let g = find("(gemm 4096x4096x4096)");
        assert!(g.contains("723.4 TFLOP/s") && g.contains("73.1 % of the 989.4 TFLOP/s peak; compute-bound"), "{g}");
        assert!(g.contains("the profile's model: 190.0 us (-0.0 %)"), "{g}");
        assert!(find("(gemm 8192x16x8192)").contains("memory-bound"), "{r:#?}");
        assert!(find("gemm_efficiency").contains("0.743"), "{r:#?}");
        assert_eq!(r.last().unwrap(), "phantom calibrate: wrote gpu-profile.toml");
    }

    #[test]
    fn dates_and_driver_releases() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_796_047_320), "2026-11-30 14:02 UTC");
        let dir = std::env::temp_dir().join(format!("phantom-calibrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libcuda.so.580.159.04"), b"").unwrap();
        std::os::unix::fs::symlink("libcuda.so.580.159.04", dir.join("libcuda.so.1")).unwrap();
        std::fs::write(dir.join("fake_cuda_driver.so"), b"").unwrap();
        assert_eq!(driver_release(&dir.join("libcuda.so.1")).as_deref(), Some("580.159.04"));
        assert_eq!(driver_release(&dir.join("fake_cuda_driver.so")), None);
        assert_eq!(driver_release(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The profile `phantom calibrate --gemm` wrote on an H100 (calibration/calibrate/h100-sxm-80gb/) loads, and
    /// its GEMM model gives the measured 8192³ and 4096³ bf16 GEMMs (1379.1 µs and 173.6 µs in its report) within
    /// 1 %.
    #[test]
    fn the_profile_recorded_on_an_h100_loads_and_fits_its_gemms() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../calibration/calibrate/h100-sxm-80gb/gpu-profile.toml");
        let c = ClusterConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let g = &c.gpu;
        assert_eq!(g.key, "h100-sxm-80gb");
        assert_eq!((g.hbm_bytes_per_s, g.pcie_h2d_bytes_per_s, g.pcie_d2h_bytes_per_s), (3.000e12, 5.446e10, 5.496e10));
        assert_eq!((g.pageable_bytes_per_s, g.launch_latency_ns, g.gemm_efficiency), (8.364e9, 3841, 0.808));
        for (n, measured_ns) in [(8192u64, 1_379_100.0), (4096, 173_600.0)] {
            let gemm = Gemm { m: n, n, k: n, batch: 1, precision: Precision::Bf16, in_bytes: 2, out_bytes: 2 };
            let model = gemm.time_ns(g).unwrap() as f64;
            assert!((model / measured_ns - 1.0).abs() < 0.01, "{n}: model {model} ns, measured {measured_ns} ns");
        }
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("cannot open x:\n  no such file\n"), "cannot open x: no such file");
    }
}
