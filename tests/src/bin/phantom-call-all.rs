//! Child process of the "call every export" test: `phantom-call-all zero|garbage <path of libcudart.so.13>`.
//!
//! Loads the library, then for every export of the generated table prints `CALL <name>` (flushed) before the
//! call and `RET <name> <cudaError_t or ->` after it, and finally `DONE <calls made>`. If the process dies, the
//! last `CALL` line names the culprit. Exit status 1 if an export is missing from the library.

use phantom_tests::call_all::{Args, EXCLUDED, EXPORTS};
use std::ffi::CString;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(lib)) = (argv.first(), argv.get(1)) else {
        eprintln!("usage: phantom-call-all zero|garbage <libcudart.so.13>");
        return ExitCode::from(2);
    };
    let args: Args = match mode.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let path = CString::new(lib.as_str()).expect("path without NUL");
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        let err = unsafe { std::ffi::CStr::from_ptr(libc::dlerror()) };
        eprintln!("dlopen {lib}: {}", err.to_string_lossy());
        return ExitCode::from(2);
    }

    let mut out = std::io::stdout().lock();
    let mut called = 0usize;
    let mut missing = 0usize;
    for export in EXPORTS.iter() {
        if let Some((_, why)) = EXCLUDED.iter().find(|(n, _)| *n == export.name) {
            let _ = writeln!(out, "SKIP {} ({why})", export.name);
            continue;
        }
        let name = CString::new(export.name).unwrap();
        let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if sym.is_null() {
            let _ = writeln!(out, "MISSING {}", export.name);
            missing += 1;
            continue;
        }
        let _ = writeln!(out, "CALL {}", export.name);
        let _ = out.flush();
        let ret = unsafe { (export.call)(sym, args) };
        let _ = match ret {
            Some(code) => writeln!(out, "RET {} {code}", export.name),
            None => writeln!(out, "RET {} -", export.name),
        };
        called += 1;
    }
    let _ = writeln!(out, "DONE {called}");
    let _ = out.flush();
    if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
