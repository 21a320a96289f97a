//! Child process of the "call every export" test: `phantom-call-all cudart|nccl zero|garbage <path of library>`.
//!
//! Loads the library, then for every export of the table prints `CALL <name>` (flushed) before the call and
//! `RET <name> <what it returned>` after it (`status <n>`, `ptr <0x…>`, `void` or `-`), and finally
//! `DONE <calls made>`. If the process dies, the last `CALL` line names the culprit. Exit status 1 if an export is
//! missing from the library.

use phantom_tests::call_all::{Args, TABLES};
use std::ffi::CString;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: phantom-call-all cudart|nccl zero|garbage <library>";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (Some(table), Some(mode), Some(lib)) = (argv.first(), argv.get(1), argv.get(2)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Some(table) = TABLES.iter().find(|t| t.name == table) else {
        eprintln!("unknown table `{table}`; {USAGE}");
        return ExitCode::from(2);
    };
    let args: Args = match mode.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}; {USAGE}");
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
    for export in table.exports {
        if let Some((_, why)) = table.excluded.iter().find(|(n, _)| *n == export.name) {
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
        let _ = writeln!(out, "RET {} {ret}", export.name);
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
