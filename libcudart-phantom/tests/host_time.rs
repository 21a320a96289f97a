//! The interposed libc time functions, seen from unmodified programs: a C program that links
//! `libcudart.so.13` as a DT_NEEDED ahead of libc (as nccl-tests does), and Python with `LD_PRELOAD`.
//! Deterministic host time makes every printed duration exact.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The library under test: the staged `libcudart.so.13` (`cargo xtask stage`, which the test command runs
/// first), or else the cdylib cargo built next to this test binary (`cargo build -p libcudart-phantom`).
fn cdylib() -> PathBuf {
    let staged = std::env::var_os("PHANTOM_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/phantom/lib"))
        .join("libcudart.so.13");
    if staged.exists() {
        return staged;
    }
    let exe = std::env::current_exe().unwrap();
    let lib = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("libcudart_phantom.so");
    assert!(
        lib.exists(),
        "neither {} nor {} exists: run `cargo xtask stage` first",
        staged.display(),
        lib.display()
    );
    lib
}

/// A scratch directory holding `lib/libcudart.so.13` (Phantom) and, when asked, the C program.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("host_time-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::copy(cdylib(), dir.join("lib/libcudart.so.13")).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds tests/host_time.c against a stub `libcudart.so.13` that defines no libc names, so the program's
/// references carry glibc's symbol versions, exactly as in a program built against NVIDIA's library.
fn build_c_program(dir: &Path) -> PathBuf {
    let stub = dir.join("stub");
    std::fs::create_dir_all(&stub).unwrap();
    std::fs::write(stub.join("stub.c"), "void phantom_stub(void) {}\n").unwrap();
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libcudart.so.13", "-o"])
        .arg(stub.join("libcudart.so.13"))
        .arg(stub.join("stub.c")));
    let prog = dir.join("host_time");
    run(Command::new("cc")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/host_time.c"))
        .arg("-o")
        .arg(&prog)
        .arg("-Wl,--no-as-needed")
        .arg(format!("-L{}", stub.display()))
        .args(["-l:libcudart.so.13", "-lpthread"]));
    prog
}

const EXPECTED_DETERMINISTIC: &str = "\
cudaGetDeviceCount 0 8
nanosleep_1s 1.000000000
gettimeofday 1.000000
realtime 1.000000000
usleep_250ms 1.250000000
sleep_2s 3.250000000
clock_nanosleep_abs_500ms 3.750000000
clock_nanosleep_rel_125ms 3.875000000
time_matches_realtime 1
cond_timedwait_3s ETIMEDOUT
after_cond_timedwait 6.875000000
cond_clockwait_4s ETIMEDOUT
after_cond_clockwait 10.875000000
sem_timedwait_5s ETIMEDOUT
after_sem_timedwait 15.875000000
sem_timedwait_posted 0
after_posted_sem 15.875000000
new_thread 15.875000000
new_thread_after_usleep 15.876000000
main_after_join 15.876000000
worker_woken 15.879000000
main_woken 15.881000000
main_after_join_worker 15.882000000
process_cputime_rc 0
";

#[test]
fn c_program_sees_virtual_time_through_dt_needed() {
    let dir = scratch("c");
    let prog = build_c_program(&dir);
    let out = run(Command::new(&prog)
        .env("LD_LIBRARY_PATH", dir.join("lib"))
        .env("PHANTOM_HOST_TIME", "deterministic")
        .env("PHANTOM_SLEEPS", "virtual")
        .env_remove("PHANTOM_CLUSTER")
        .env_remove("LD_PRELOAD"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), EXPECTED_DETERMINISTIC);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn measured_mode_adds_cpu_time_to_sleeps() {
    let dir = scratch("measured");
    let prog = build_c_program(&dir);
    let out = run(Command::new(&prog)
        .env("LD_LIBRARY_PATH", dir.join("lib"))
        .env("PHANTOM_HOST_TIME", "measured")
        .env("PHANTOM_SLEEPS", "virtual")
        .env_remove("PHANTOM_CLUSTER")
        .env_remove("LD_PRELOAD"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Same lines; every virtual duration is at least its deterministic value (CPU time only adds).
    let expected: Vec<&str> = EXPECTED_DETERMINISTIC.lines().collect();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), expected.len(), "{stdout}");
    for (g, e) in got.iter().zip(&expected) {
        let (gk, gv) = g.split_once(' ').unwrap();
        let (ek, ev) = e.split_once(' ').unwrap();
        assert_eq!(gk, ek);
        if gk == "time_matches_realtime" {
            // CPU time between the two reads may cross a second boundary.
            continue;
        }
        match (gv.parse::<f64>(), ev.parse::<f64>()) {
            (Ok(g), Ok(e)) if ev.contains('.') => assert!(g >= e, "{gk}: {g} < {e}"),
            _ => assert_eq!(gv, ev, "{gk}"),
        }
    }
}

fn have_python() -> bool {
    let ok = Command::new("python3").arg("-c").arg("pass").output().is_ok();
    if !ok {
        eprintln!("python3 not found; skipped");
    }
    ok
}

/// The default, real sleeps, under `LD_PRELOAD`: before the first CUDA call the clocks are the machine's; after
/// it a sleep advances the virtual clock by exactly what was asked (deterministic mode) *and* takes that long
/// for real, so waits for other processes keep their meaning.
#[test]
fn clocks_turn_virtual_at_the_first_cuda_call_and_sleeps_take_real_time() {
    if !have_python() {
        return;
    }
    let dir = scratch("py-real");
    let script = "import time, ctypes\n\
                  r = time.perf_counter(); w = time.time(); time.sleep(0.05)\n\
                  print('real_before_cuda', time.perf_counter() - r >= 0.05, abs(w - time.time()) < 60)\n\
                  n = ctypes.c_int(); ctypes.CDLL('libcudart.so.13').cudaGetDeviceCount(ctypes.byref(n))\n\
                  t = time.perf_counter(); time.sleep(0.3); print('sleep', n.value, round(time.perf_counter() - t, 9))\n";
    let started = std::time::Instant::now();
    let out = run(Command::new("python3")
        .args(["-S", "-c", script])
        .env("LD_PRELOAD", dir.join("lib/libcudart.so.13"))
        .env("PHANTOM_HOST_TIME", "deterministic")
        .env_remove("PHANTOM_SLEEPS")
        .env_remove("PHANTOM_CLUSTER"));
    let wall = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "real_before_cuda True True\nsleep 8 0.3\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(wall >= std::time::Duration::from_millis(350), "the sleeps took {wall:?} of real time");
}

#[test]
fn python_sleep_is_virtual_with_ld_preload() {
    if !have_python() {
        return;
    }
    let dir = scratch("py");
    let script = "import time, ctypes\n\
                  ctypes.CDLL('libcudart.so.13').cudaGetDeviceCount(ctypes.byref(ctypes.c_int()))\n\
                  t = time.perf_counter(); time.sleep(2); print(time.perf_counter() - t)\n\
                  import threading\n\
                  t = time.monotonic(); print(threading.Event().wait(3.5), time.monotonic() - t)\n";
    let out = run(Command::new("python3")
        .args(["-S", "-c", script])
        .env("LD_PRELOAD", dir.join("lib/libcudart.so.13"))
        .env("PHANTOM_HOST_TIME", "deterministic")
        .env("PHANTOM_SLEEPS", "virtual")
        .env_remove("PHANTOM_CLUSTER"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2.0\nFalse 3.5\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A new thread starts its clock where its creator's clock was (the interposed `pthread_create`), not at the
/// process watermark that a sleeping thread pushed 100 simulated seconds ahead.
#[test]
fn a_thread_starts_at_its_creators_time() {
    if !have_python() {
        return;
    }
    let dir = scratch("py-threads");
    let script = "import time, ctypes, threading\n\
                  ctypes.CDLL('libcudart.so.13').cudaGetDeviceCount(ctypes.byref(ctypes.c_int()))\n\
                  s = threading.Thread(target=lambda: time.sleep(100)); s.start(); s.join()\n\
                  t0 = time.monotonic(); seen = []\n\
                  c = threading.Thread(target=lambda: seen.append(time.monotonic() - t0)); c.start(); c.join()\n\
                  print(round(seen[0], 6))\n";
    let out = run(Command::new("python3")
        .args(["-S", "-c", script])
        .env("LD_PRELOAD", dir.join("lib/libcudart.so.13"))
        .env("PHANTOM_HOST_TIME", "deterministic")
        .env("PHANTOM_SLEEPS", "virtual")
        .env_remove("PHANTOM_CLUSTER"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0.0\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
