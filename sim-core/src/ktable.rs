//! Kernel-time table (measured durations by kernel identity) and the fallback model for kernels it lacks.
//!
//! The text format is specified in `docs/kernel-table.md`. In short:
//!
//! ```text
//! # phantom kernel-time table v1
//! # gpu: h100-sxm-80gb
//! kernel<TAB>spin(float*, int)<TAB>2000,1,1<TAB>256,1,1<TAB>0<TAB>15000<TAB>12
//! kernel<TAB>spin<TAB>*<TAB>*<TAB>*<TAB>20000
//! call<TAB>cublasLt matmul m=768 n=8192 k=3072 batch=1 a=bf16/N b=bf16/T c=bf16 compute=f32<TAB>41250<TAB>5
//! ```
//!
//! One record per line, fields separated by a single tab. `kernel`: record type, name, grid, block, dynamic
//! shared memory bytes, duration in ns, optional sample count; `*` in a configuration field matches anything.
//! `call` (a library call such as a cuBLASLt matmul): record type, the library's key text, duration in ns,
//! optional sample count; looked up by exact key.

use crate::gpu::GpuSpec;
use crate::time::SimDuration;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The first line of every table this build reads and writes.
pub const TABLE_HEADER: &str = "# phantom kernel-time table v1";
/// The format version this build reads and writes.
pub const TABLE_VERSION: u32 = 1;
const HEADER_PREFIX: &str = "# phantom kernel-time table v";

/// What a kernel launch is identified by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    /// Demangled name with parameter list, e.g. `spin(float*, int)`; the mangled name if demangling failed.
    pub name: String,
    /// Grid dimensions in blocks (x, y, z).
    pub grid: [u32; 3],
    /// Block dimensions in threads (x, y, z).
    pub block: [u32; 3],
    /// Dynamic shared memory requested at launch, in bytes.
    pub shared_mem_bytes: u32,
}

/// Which of the sources of kernel time (DESIGN.md decision 7) timed a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// A kernel-time table entry.
    Table,
    /// The fallback model (no table lists the kernel).
    Model,
    /// Measured live on the real GPU.
    Profiled,
}

impl TimeSource {
    /// Lower-case name for reports and traces: `table`, `model` or `profiled`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Table => "table",
            TimeSource::Model => "model",
            TimeSource::Profiled => "profiled",
        }
    }
}

impl std::fmt::Display for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A table entry's key: a kernel name and a launch configuration in which any field may be a wildcard
/// (`None`, written `*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelPattern {
    /// Kernel name as written in the table (full demangled name, name without parameters, or mangled name).
    pub name: String,
    /// Grid dimensions in blocks; `None` matches any grid.
    pub grid: Option<[u32; 3]>,
    /// Block dimensions in threads; `None` matches any block.
    pub block: Option<[u32; 3]>,
    /// Dynamic shared memory in bytes; `None` matches any amount.
    pub shared_mem_bytes: Option<u32>,
}

impl From<&KernelKey> for KernelPattern {
    fn from(k: &KernelKey) -> Self {
        KernelPattern {
            name: k.name.clone(),
            grid: Some(k.grid),
            block: Some(k.block),
            shared_mem_bytes: Some(k.shared_mem_bytes),
        }
    }
}

impl From<KernelKey> for KernelPattern {
    fn from(k: KernelKey) -> Self {
        KernelPattern { name: k.name, grid: Some(k.grid), block: Some(k.block), shared_mem_bytes: Some(k.shared_mem_bytes) }
    }
}

/// The launch-configuration part of a pattern; `None` is a wildcard.
type Config = (Option<[u32; 3]>, Option<[u32; 3]>, Option<u32>);

/// One table entry's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRecord {
    /// The kernel's duration.
    pub duration: SimDuration,
    /// How many measurements the duration summarises (at least 1).
    pub samples: u32,
}

/// A set of kernel durations keyed by [`KernelPattern`] and of library-call durations keyed by the library's
/// key text, plus the file's metadata.
#[derive(Clone, Debug, Default)]
pub struct KernelTable {
    /// name → configuration → record. Ordered so that `to_text` is deterministic.
    entries: BTreeMap<String, BTreeMap<Config, TableRecord>>,
    /// Library calls (`call` records): trimmed key text → record.
    calls: BTreeMap<String, TableRecord>,
    /// `# key: value` metadata lines (e.g. `gpu`).
    meta: BTreeMap<String, String>,
    /// Lines skipped while parsing (unknown record types), each naming its line.
    warnings: Vec<String>,
}

/// Two tables are equal when their kernel entries, call entries and metadata are; parse warnings are not
/// compared.
impl PartialEq for KernelTable {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.calls == other.calls && self.meta == other.meta
    }
}

impl KernelTable {
    /// Parses the text format. Errors name the 1-based line: `line 7: ...`.
    pub fn parse(text: &str) -> Result<KernelTable, String> {
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("").trim_end();
        check_header(first)?;
        let mut t = KernelTable::default();
        for (i, line) in lines.enumerate() {
            let lineno = i + 2;
            let trimmed = line.trim_start();
            if trimmed.trim_end().is_empty() {
                continue;
            }
            if let Some(comment) = trimmed.strip_prefix('#') {
                if let Some((k, v)) = parse_meta(comment) {
                    t.meta.insert(k.to_string(), v.to_string());
                }
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[0] {
                "kernel" => {
                    let (pattern, record) = parse_kernel(&fields).map_err(|e| format!("line {lineno}: {e}"))?;
                    t.insert_record(pattern, record);
                }
                "call" => {
                    let (key, record) = parse_call(&fields).map_err(|e| format!("line {lineno}: {e}"))?;
                    t.calls.insert(key.to_string(), record);
                }
                other if is_identifier(other) => {
                    t.warnings.push(format!("line {lineno}: skipped record of unknown type `{other}`"));
                }
                other => {
                    return Err(format!(
                        "line {lineno}: expected a record type (`kernel` or `call`) followed by a tab, found `{}`",
                        other.chars().take(40).collect::<String>()
                    ))
                }
            }
        }
        Ok(t)
    }

    /// Reads and parses a table file; errors start with the path.
    pub fn load(path: &Path) -> Result<KernelTable, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        KernelTable::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds `other`'s kernel and call entries; an entry with the same pattern, or a call with the same key, is
    /// replaced by `other`'s (later table wins). Metadata keys of `other` replace ours; warnings are kept from
    /// both.
    pub fn merge(&mut self, other: KernelTable) {
        for (name, configs) in other.entries {
            self.entries.entry(name).or_default().extend(configs);
        }
        self.calls.extend(other.calls);
        self.meta.extend(other.meta);
        self.warnings.extend(other.warnings);
    }

    /// Adds or replaces one entry. A [`KernelKey`] converts into a pattern with no wildcards.
    /// `samples` of 0 is stored as 1.
    pub fn insert(&mut self, pattern: impl Into<KernelPattern>, duration: SimDuration, samples: u32) {
        self.insert_record(pattern.into(), TableRecord { duration, samples: samples.max(1) });
    }

    /// Entries are filed under the normalised name ([`normalize_name`]), so tables written with either
    /// demangler's spelling match launches named by the other.
    fn insert_record(&mut self, p: KernelPattern, record: TableRecord) {
        let name = match normalize_name(&p.name) {
            Cow::Borrowed(_) => p.name,
            Cow::Owned(n) => n,
        };
        self.entries.entry(name).or_default().insert((p.grid, p.block, p.shared_mem_bytes), record);
    }

    /// Adds or replaces the duration of a library call, keyed by the library's key text (`docs/profiling.md`
    /// lists each library model's keys). The key is trimmed; a key that is then empty or that contains a tab or
    /// a line break cannot be written as a `call` record and is ignored. `samples` of 0 is stored as 1.
    pub fn insert_call(&mut self, key: &str, duration: SimDuration, samples: u32) {
        let key = key.trim();
        if key.is_empty() || key.contains(['\t', '\n', '\r']) {
            return;
        }
        self.calls.insert(key.to_string(), TableRecord { duration, samples: samples.max(1) });
    }

    /// The duration of a library call: the `call` entry whose key equals `key` (both trimmed), else `None`.
    /// No wildcards, no partial matches.
    pub fn lookup_call(&self, key: &str) -> Option<SimDuration> {
        self.calls.get(key.trim()).map(|r| r.duration)
    }

    /// Iterates over every library-call entry, sorted by key (the `to_text` order).
    pub fn calls(&self) -> impl Iterator<Item = (&str, TableRecord)> + '_ {
        self.calls.iter().map(|(k, r)| (k.as_str(), *r))
    }

    /// Number of library-call entries (`call` records).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Number of kernel entries (`kernel` records: one per name and configuration pattern). Library calls are
    /// not counted; [`KernelTable::call_count`] counts those.
    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    /// Whether the table has neither kernel entries nor library-call entries. A table with only `call`
    /// records is not empty, although its [`len`](KernelTable::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.calls.is_empty()
    }

    /// The duration for a launch, or `None` if no entry matches (see [`KernelTable::lookup_record`]).
    pub fn lookup(&self, key: &KernelKey) -> Option<SimDuration> {
        self.lookup_record(key).map(|r| r.duration)
    }

    /// The entry for a launch. Names are tried in this order: the full name; the name without its parameter
    /// list; that without a leading return type. For each name the most specific matching configuration
    /// wins: an exact grid beats a wildcard grid, then the same for block, then for shared memory.
    /// Names are compared after [`normalize_name`].
    pub fn lookup_record(&self, key: &KernelKey) -> Option<TableRecord> {
        let name = normalize_name(&key.name);
        let (no_params, short) = name_variants(&name);
        let mut names = [Some(name.as_ref()), Some(no_params), Some(short)];
        if no_params == name {
            names[1] = None;
        }
        if short == no_params {
            names[2] = None;
        }
        for n in names.into_iter().flatten() {
            if let Some(r) = self.lookup_name(n, key) {
                return Some(r);
            }
        }
        None
    }

    fn lookup_name(&self, name: &str, key: &KernelKey) -> Option<TableRecord> {
        let configs = self.entries.get(name)?;
        let g = [Some(key.grid), None];
        let b = [Some(key.block), None];
        let s = [Some(key.shared_mem_bytes), None];
        for grid in g {
            for block in b {
                for smem in s {
                    if let Some(r) = configs.get(&(grid, block, smem)) {
                        return Some(*r);
                    }
                }
            }
        }
        None
    }

    /// Iterates over every kernel entry in `to_text` order (library calls: [`KernelTable::calls`]).
    pub fn iter(&self) -> impl Iterator<Item = (KernelPattern, TableRecord)> + '_ {
        self.entries.iter().flat_map(|(name, configs)| {
            configs.iter().map(move |(&(grid, block, shared_mem_bytes), r)| {
                (KernelPattern { name: name.clone(), grid, block, shared_mem_bytes }, *r)
            })
        })
    }

    /// Metadata value of a `# key: value` line, e.g. `metadata("gpu")`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    /// Sets a metadata value (written by `to_text`). Keys are lower-case words (`[a-z0-9_-]+`); values
    /// must not contain line breaks. Invalid keys or values are ignored.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        if is_meta_key(key) && !value.contains(['\n', '\r']) {
            self.meta.insert(key.to_string(), value.trim().to_string());
        }
    }

    /// The GPU model key the table was recorded on, from its `# gpu:` line.
    pub fn gpu(&self) -> Option<&str> {
        self.metadata("gpu")
    }

    /// Lines the parser skipped, e.g. `line 9: skipped record of unknown type `copy``.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The table in the text format; `parse(&t.to_text())` gives back an equal table. Kernel entries are
    /// sorted by name, then configuration (wildcards first), followed by the `call` entries sorted by key;
    /// durations are written in whole nanoseconds, sample counts always.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(TABLE_HEADER);
        out.push('\n');
        for (k, v) in &self.meta {
            let _ = writeln!(out, "# {k}: {v}");
        }
        for (p, r) in self.iter() {
            let _ = writeln!(
                out,
                "kernel\t{}\t{}\t{}\t{}\t{}\t{}",
                p.name,
                fmt_dim(p.grid),
                fmt_dim(p.block),
                p.shared_mem_bytes.map_or("*".to_string(), |s| s.to_string()),
                r.duration.as_nanos(),
                r.samples
            );
        }
        for (key, r) in self.calls() {
            let _ = writeln!(out, "call\t{key}\t{}\t{}", r.duration.as_nanos(), r.samples);
        }
        out
    }
}

fn check_header(first: &str) -> Result<(), String> {
    if first == TABLE_HEADER {
        return Ok(());
    }
    if let Some(v) = first.strip_prefix(HEADER_PREFIX) {
        return Err(format!(
            "line 1: unsupported kernel-time table version `v{v}` (this build reads v{TABLE_VERSION})"
        ));
    }
    Err(format!("line 1: expected the header `{TABLE_HEADER}`"))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_meta_key(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `" gpu: h100-sxm-80gb"` (the text after `#`) → `("gpu", "h100-sxm-80gb")`.
fn parse_meta(comment: &str) -> Option<(&str, &str)> {
    let (k, v) = comment.split_once(':')?;
    let k = k.trim();
    is_meta_key(k).then(|| (k, v.trim()))
}

fn parse_kernel(f: &[&str]) -> Result<(KernelPattern, TableRecord), String> {
    if f.len() != 6 && f.len() != 7 {
        return Err(format!(
            "a kernel record has 6 or 7 tab-separated fields (kernel, name, grid, block, shared_mem_bytes, \
             duration_ns[, samples]); found {}",
            f.len()
        ));
    }
    let name = f[1].trim();
    if name.is_empty() {
        return Err("empty kernel name".into());
    }
    let grid = parse_dim(f[2]).map_err(|e| format!("grid: {e}"))?;
    let block = parse_dim(f[3]).map_err(|e| format!("block: {e}"))?;
    let shared_mem_bytes = match f[4].trim() {
        "*" => None,
        s => Some(
            s.parse::<u32>()
                .map_err(|_| format!("shared_mem_bytes: expected a number of bytes or `*`, found `{s}`"))?,
        ),
    };
    let duration = parse_duration(f[5].trim())?;
    let samples = parse_samples(f.get(6).copied())?;
    Ok((KernelPattern { name: name.to_string(), grid, block, shared_mem_bytes }, TableRecord { duration, samples }))
}

/// `call<TAB>KEY<TAB>DURATION_NS[<TAB>SAMPLES]` → (trimmed key, record).
fn parse_call<'a>(f: &[&'a str]) -> Result<(&'a str, TableRecord), String> {
    if f.len() != 3 && f.len() != 4 {
        return Err(format!("call: expected 3 or 4 fields, found {}", f.len()));
    }
    let key = f[1].trim();
    if key.is_empty() {
        return Err("call: empty key".into());
    }
    let duration = parse_duration(f[2].trim())?;
    let samples = parse_samples(f.get(3).copied())?;
    Ok((key, TableRecord { duration, samples }))
}

/// The optional `SAMPLES` field: an integer ≥ 1, default 1.
fn parse_samples(field: Option<&str>) -> Result<u32, String> {
    match field.map(str::trim) {
        None => Ok(1),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("samples: expected a positive integer, found `{s}`")),
        },
    }
}

fn parse_dim(s: &str) -> Result<Option<[u32; 3]>, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(None);
    }
    let bad = || format!("expected `x,y,z` (three positive integers) or `*`, found `{s}`");
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    let mut d = [0u32; 3];
    for (slot, p) in d.iter_mut().zip(&parts) {
        *slot = p.trim().parse::<u32>().ok().filter(|&v| v >= 1).ok_or_else(bad)?;
    }
    Ok(Some(d))
}

/// Non-negative decimal nanoseconds, rounded to the nearest whole nanosecond (halves round up).
fn parse_duration(s: &str) -> Result<SimDuration, String> {
    let bad = || format!("duration_ns: expected a non-negative decimal number of nanoseconds, found `{s}`");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if s.ends_with('.') {
        return Err(bad());
    }
    let whole: u64 = int.parse().map_err(|_| bad())?;
    let round_up = frac.as_bytes().first().is_some_and(|&d| d >= b'5');
    Ok(SimDuration::from_nanos(whole.checked_add(round_up as u64).ok_or_else(bad)?))
}

fn fmt_dim(d: Option<[u32; 3]>) -> String {
    match d {
        None => "*".into(),
        Some([x, y, z]) => format!("{x},{y},{z}"),
    }
}

/// Integer literal casts as the `cpp_demangle` crate writes them, longest first, and the suffix GNU's
/// demangler (`__cxa_demangle`, `c++filt`) writes instead.
const LITERAL_CASTS: [(&str, &str); 6] = [
    ("(unsigned long long)", "ull"),
    ("(unsigned long)", "ul"),
    ("(unsigned int)", "u"),
    ("(long long)", "ll"),
    ("(long)", "l"),
    ("(int)", ""),
];

/// A demangled name in the spelling of GNU's demangler (`__cxa_demangle`, as NVIDIA's tools and the PyTorch
/// profiler print kernel names). Phantom's runtime demangles with the `cpp_demangle` crate, which spells two
/// things differently (see `docs/kernel-table.md`, "Names"):
///
/// - integer template arguments: `(unsigned int)32`, `(unsigned long)2` → `32u`, `2ul` (also `l`, `ll`,
///   `ull`; `(int)5` → `5`);
/// - the return type of a function template whose local entity (a lambda) appears inside the name:
///   `void at::native::gpu_kernel_impl_nocast<F>(…)::{lambda(int)#1}` → `at::native::gpu_kernel_impl_nocast<F>(…)::{lambda(int)#1}`.
///   The outermost name keeps its return type (`void k<…>(…)`), as both demanglers write it.
///
/// A name already in GNU's spelling is returned unchanged (borrowed), so normalising twice changes nothing.
pub fn normalize_name(name: &str) -> Cow<'_, str> {
    let literals = rewrite_literal_casts(name);
    let text = literals.as_deref().unwrap_or(name);
    match strip_local_return_types(text) {
        Some(s) => Cow::Owned(s),
        None => literals.map_or(Cow::Borrowed(name), Cow::Owned),
    }
}

/// `(unsigned int)32` → `32u` etc.; `None` when there is nothing to rewrite.
fn rewrite_literal_casts(s: &str) -> Option<String> {
    if !s.contains(")") {
        return None;
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = s[i..].find('(') {
        let at = i + off;
        let found = LITERAL_CASTS.iter().find_map(|&(cast, suffix)| {
            let rest = s[at..].strip_prefix(cast)?;
            let sign = usize::from(rest.starts_with('-'));
            let digits = rest[sign..].bytes().take_while(u8::is_ascii_digit).count();
            (digits > 0).then(|| (cast.len() + sign + digits, &rest[..sign + digits], suffix))
        });
        match found {
            Some((len, number, suffix)) => {
                out.push_str(&s[copied..at]);
                out.push_str(number);
                out.push_str(suffix);
                copied = at + len;
                i = copied;
            }
            None => i = at + 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// Drops the return type in front of each function-template scope of a local name
/// (`void f<int>(int)::{lambda()#1}` → `f<int>(int)::{lambda()#1}`), at the start of the name and of every
/// template argument and parameter. `None` when there is none.
fn strip_local_return_types(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    let mut element_start = true;
    while i < bytes.len() {
        if element_start {
            element_start = false;
            if let Some(len) = local_scope_return_type_len(&s[i..]) {
                out.push_str(&s[copied..i]);
                i += len;
                copied = i;
                continue;
            }
        }
        match bytes[i] {
            b'<' | b'(' => element_start = true,
            b',' => {
                while bytes.get(i + 1) == Some(&b' ') {
                    i += 1;
                }
                element_start = true;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// For a name element (`void at::f<int>(int)::{lambda()#1}, …`) that is a local entity of a function with a
/// return type: the length of that return type and its space (`void `).
fn local_scope_return_type_len(e: &str) -> Option<usize> {
    let bytes = e.as_bytes();
    let mut depth = 0i32; // <...> and {...}
    let mut j = 0;
    while j < bytes.len() {
        match bytes[j] {
            b'<' | b'{' => depth += 1,
            b'>' | b'}' | b',' | b')' if depth == 0 => return None,
            b'>' | b'}' => depth -= 1,
            b'(' if depth == 0 => {
                let close = matching_paren(bytes, j)?;
                // `(anonymous namespace)::`, a literal cast `(E)1`, a function pointer's `(*)`: not the parameter
                // list of a function, which follows the function's name directly.
                if j == 0 || e[..j].ends_with([':', ' ']) {
                    j = close + 1;
                    continue;
                }
                let mut rest = &e[close + 1..];
                for qualifier in [" const", " volatile", " &&", " &"] {
                    rest = rest.strip_prefix(qualifier).unwrap_or(rest);
                }
                if !rest.starts_with("::") {
                    return None;
                }
                let function = &e[..j];
                let name_len = strip_return_type(function).len();
                return (name_len < function.len()).then(|| function.len() - name_len);
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// The two shorter forms of a demangled name tried by lookup:
/// (name without its parameter list, that without a leading return type).
///
/// `void foo<int, float>(int*, float)` → (`void foo<int, float>`, `foo<int, float>`).
/// Template arguments are kept; `(anonymous namespace)::` qualifiers are not taken for a parameter list.
pub fn name_variants(name: &str) -> (&str, &str) {
    let no_params = strip_params(name);
    (no_params, strip_return_type(no_params))
}

fn strip_params(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut angle = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => angle += 1,
            b'>' => angle -= 1,
            b'(' if angle <= 0 => {
                let close = matching_paren(bytes, i);
                match close {
                    Some(c) if name[c + 1..].starts_with("::") => {
                        i = c + 1;
                        continue;
                    }
                    _ => return name[..i].trim_end(),
                }
            }
            _ => {}
        }
        i += 1;
    }
    name.trim_end()
}

fn matching_paren(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Text after the last space outside `<...>` and `(...)`.
fn strip_return_type(s: &str) -> &str {
    let (mut angle, mut paren) = (0i32, 0i32);
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'<' => angle += 1,
            b'>' => angle -= 1,
            b'(' => paren += 1,
            b')' => paren -= 1,
            b' ' if angle <= 0 && paren <= 0 => start = i + 1,
            _ => {}
        }
    }
    &s[start..]
}

/// Duration of a kernel no table lists: `base_ns + waves × per_wave_ns`, where
/// `waves = ceil(blocks / (sm_count × resident_blocks_per_sm))` (see `docs/kernel-table.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackModel {
    /// Fixed cost of every kernel, in ns.
    pub base_ns: u64,
    /// Cost of each wave of blocks (one full load of every SM), in ns.
    pub per_wave_ns: u64,
}

impl Default for FallbackModel {
    fn default() -> Self {
        FallbackModel { base_ns: 2_000, per_wave_ns: 1_000 }
    }
}

impl FallbackModel {
    /// Number of waves a launch of `key` takes: blocks (at least 1) divided by the blocks the whole GPU holds
    /// at once, rounded up. Zero SMs or zero resident blocks count as one.
    pub fn waves(spec: &GpuSpec, key: &KernelKey, resident_blocks_per_sm: u32) -> u64 {
        let blocks = key.grid.iter().map(|&g| g as u64).product::<u64>().max(1);
        let per_wave = spec.sm_count.max(1) as u64 * resident_blocks_per_sm.max(1) as u64;
        blocks.div_ceil(per_wave)
    }

    /// `resident_blocks_per_sm`: how many blocks of this launch fit on one SM at once (occupancy).
    pub fn kernel_time(&self, spec: &GpuSpec, key: &KernelKey, resident_blocks_per_sm: u32) -> SimDuration {
        let waves = Self::waves(spec, key, resident_blocks_per_sm);
        SimDuration::from_nanos(self.base_ns.saturating_add(waves.saturating_mul(self.per_wave_ns)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::gpu_preset;

    fn key(name: &str, grid: [u32; 3], block: [u32; 3], smem: u32) -> KernelKey {
        KernelKey { name: name.into(), grid, block, shared_mem_bytes: smem }
    }

    fn ns(n: u64) -> Option<SimDuration> {
        Some(SimDuration::from_nanos(n))
    }

    const SAMPLE: &str = "# phantom kernel-time table v1\n\
        # gpu: h100-sxm-80gb\n\
        # a free comment\n\
        \n\
        kernel\tspin(float*, int)\t2000,1,1\t256,1,1\t0\t15000\t12\n\
        kernel\tspin(float*, int)\t*\t256,1,1\t*\t16000\n\
        kernel\tspin\t*\t*\t*\t20000\n\
        kernel\tscale<float>\t4,1,1\t*\t0\t700.5\t3\n";

    #[test]
    fn parses_entries_and_metadata() {
        let t = KernelTable::parse(SAMPLE).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.gpu(), Some("h100-sxm-80gb"));
        assert_eq!(t.metadata("a free comment"), None);
        assert!(t.warnings().is_empty());
        let r = t.lookup_record(&key("spin(float*, int)", [2000, 1, 1], [256, 1, 1], 0)).unwrap();
        assert_eq!(r, TableRecord { duration: SimDuration::from_nanos(15_000), samples: 12 });
    }

    #[test]
    fn lookup_order() {
        let t = KernelTable::parse(SAMPLE).unwrap();
        // exact
        assert_eq!(t.lookup(&key("spin(float*, int)", [2000, 1, 1], [256, 1, 1], 0)), ns(15_000));
        // same full name, wildcard grid and smem
        assert_eq!(t.lookup(&key("spin(float*, int)", [10, 1, 1], [256, 1, 1], 64)), ns(16_000));
        // same full name, but no full-name pattern matches block 128 → short name `spin`
        assert_eq!(t.lookup(&key("spin(float*, int)", [10, 1, 1], [128, 1, 1], 0)), ns(20_000));
        // a different overload falls back to the short name too
        assert_eq!(t.lookup(&key("spin(double*, int)", [2000, 1, 1], [256, 1, 1], 0)), ns(20_000));
        // template name with return type and parameters → `scale<float>`; 700.5 rounds to 701
        assert_eq!(t.lookup(&key("void scale<float>(float*, int)", [4, 1, 1], [32, 1, 1], 0)), ns(701));
        assert_eq!(t.lookup(&key("void scale<float>(float*, int)", [5, 1, 1], [32, 1, 1], 0)), None);
        assert_eq!(t.lookup(&key("scale<double>", [4, 1, 1], [32, 1, 1], 0)), None);
        assert_eq!(t.lookup(&key("other", [1, 1, 1], [1, 1, 1], 0)), None);
    }

    #[test]
    fn most_specific_pattern_wins() {
        let mut t = KernelTable::default();
        t.insert(KernelPattern { name: "k".into(), grid: None, block: Some([64, 1, 1]), shared_mem_bytes: None }, SimDuration::from_nanos(1), 1);
        t.insert(KernelPattern { name: "k".into(), grid: Some([8, 1, 1]), block: None, shared_mem_bytes: None }, SimDuration::from_nanos(2), 1);
        t.insert(KernelPattern { name: "k".into(), grid: Some([8, 1, 1]), block: None, shared_mem_bytes: Some(0) }, SimDuration::from_nanos(3), 1);
        // grid exact beats block exact; then smem exact beats smem wildcard
        assert_eq!(t.lookup(&key("k", [8, 1, 1], [64, 1, 1], 0)), ns(3));
        assert_eq!(t.lookup(&key("k", [8, 1, 1], [64, 1, 1], 16)), ns(2));
        assert_eq!(t.lookup(&key("k", [9, 1, 1], [64, 1, 1], 16)), ns(1));
        assert_eq!(t.lookup(&key("k", [9, 1, 1], [32, 1, 1], 16)), None);
        t.insert(key("k", [9, 1, 1], [32, 1, 1], 16), SimDuration::from_nanos(4), 0);
        assert_eq!(t.lookup_record(&key("k", [9, 1, 1], [32, 1, 1], 16)).unwrap().samples, 1);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn name_variants_strip_params_and_return_type() {
        assert_eq!(name_variants("spin(float*, int)"), ("spin", "spin"));
        assert_eq!(name_variants("spin"), ("spin", "spin"));
        assert_eq!(
            name_variants("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, at::detail::Array<char*, 1> >(int, at::native::FillFunctor<float>, at::detail::Array<char*, 1>)"),
            (
                "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, at::detail::Array<char*, 1> >",
                "at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, at::detail::Array<char*, 1> >"
            )
        );
        assert_eq!(name_variants("(anonymous namespace)::fill(float*)"), ("(anonymous namespace)::fill", "(anonymous namespace)::fill"));
        assert_eq!(name_variants("_Z4spinPfi"), ("_Z4spinPfi", "_Z4spinPfi"));
    }

    /// Kernel names as Phantom's runtime (`cpp_demangle`) and the PyTorch profiler (GNU `__cxa_demangle`)
    /// print them, from calibration/torch/h100-sxm-80gb (GPT-2 on an H100).
    const DIALECTS: [(&str, &str); 3] = [
        (
            "void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernelTemplate<float, float, (unsigned int)32, (unsigned int)32, (unsigned int)256, false, true, false>(long, long, float const*, float const*, float const*, float const*, float*, float*)",
            "void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernelTemplate<float, float, 32u, 32u, 256u, false, true, false>(long, long, float const*, float const*, float const*, float const*, float*, float*)",
        ),
        (
            "void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#1}, std::array<char*, (unsigned long)2> >(int, at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#1}, std::array<char*, (unsigned long)2>)",
            "void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#1}, std::array<char*, 2ul> >(int, at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#1}, std::array<char*, 2ul>)",
        ),
        (
            "void at::native::elementwise_kernel<128, 2, void at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<float> >(at::TensorIteratorBase&, at::native::CUDAFunctor_add<float> const&)::{lambda(int)#1}>(int, void at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<float> >(at::TensorIteratorBase&, at::native::CUDAFunctor_add<float> const&)::{lambda(int)#1})",
            "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<float> >(at::TensorIteratorBase&, at::native::CUDAFunctor_add<float> const&)::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<float> >(at::TensorIteratorBase&, at::native::CUDAFunctor_add<float> const&)::{lambda(int)#1})",
        ),
    ];

    #[test]
    fn normalize_name_makes_the_demanglers_agree() {
        for (phantom, gnu) in DIALECTS {
            assert_eq!(normalize_name(phantom), gnu);
            assert!(matches!(normalize_name(gnu), Cow::Borrowed(_)), "{gnu}");
        }
        // Every integer literal cast; other casts (enums, char) are written the same by both.
        assert_eq!(
            normalize_name("k<(int)-3, (long)4, (unsigned long long)5, (long long)6, (at::native::NormType)1, (char)65>(int)"),
            "k<-3, 4l, 5ull, 6ll, (at::native::NormType)1, (char)65>(int)"
        );
        // A return type nested at any depth, of any type, with qualifiers after the parameter list.
        assert_eq!(
            normalize_name("void k<x::y<unsigned int a::f<(unsigned int)2>(int) const::{lambda()#1}> >(void const*, void*)"),
            "void k<x::y<a::f<2u>(int) const::{lambda()#1}> >(void const*, void*)"
        );
        assert_eq!(
            normalize_name("void k<void (anonymous namespace)::f<int>(int)::{lambda()#1}>(int)"),
            "void k<(anonymous namespace)::f<int>(int)::{lambda()#1}>(int)"
        );
        // Anonymous namespaces, plain and top-level names are left alone.
        for same in [
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<int>(int)",
            "(anonymous namespace)::fill(float*)",
            "spin(float*, int)",
            "void scale<float>(float*, int)",
            "nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT",
            "void k<at::f(int)::{lambda()#1}>(void (*)(int))",
            "void (anonymous namespace)::elementwise_kernel_with_index<int, at::native::arange_cuda_out(at::Tensor&)::{lambda(long)#1}>(int)",
            "k<void (anonymous namespace)::f<int>(int)>",
        ] {
            assert!(matches!(normalize_name(same), Cow::Borrowed(_)), "{same}");
        }
    }

    #[test]
    fn lookup_matches_either_dialect() {
        let mut gnu = KernelTable::default();
        let mut phantom = KernelTable::default();
        for (i, (p, g)) in DIALECTS.iter().enumerate() {
            gnu.insert(key(g, [8, 1, 1], [256, 1, 1], 0), SimDuration::from_nanos(100 + i as u64), 3);
            phantom.insert(key(p, [8, 1, 1], [256, 1, 1], 0), SimDuration::from_nanos(100 + i as u64), 3);
        }
        assert_eq!(gnu, phantom);
        for (i, (p, g)) in DIALECTS.iter().enumerate() {
            assert_eq!(gnu.lookup(&key(p, [8, 1, 1], [256, 1, 1], 0)), ns(100 + i as u64), "{p}");
            assert_eq!(phantom.lookup(&key(g, [8, 1, 1], [256, 1, 1], 0)), ns(100 + i as u64), "{g}");
        }
        // The text holds GNU's spelling and reads back equal.
        let text = phantom.to_text();
        assert!(text.contains("std::array<char*, 2ul>") && !text.contains("(unsigned"), "{text}");
        assert_eq!(KernelTable::parse(&text).unwrap(), phantom);
        // Short names are normalised too.
        let t = KernelTable::parse(&format!("{TABLE_HEADER}\nkernel\tk<(unsigned int)4>\t*\t*\t*\t9\n")).unwrap();
        assert_eq!(t.lookup(&key("void k<4u>(float*)", [1, 1, 1], [1, 1, 1], 0)), ns(9));
    }

    #[test]
    fn merge_later_wins() {
        let mut a = KernelTable::parse(SAMPLE).unwrap();
        let b = KernelTable::parse(
            "# phantom kernel-time table v1\n# gpu: h200-141gb\nkernel\tspin\t*\t*\t*\t30000\t2\nkernel\tnew\t1,1,1\t1,1,1\t0\t5\n",
        )
        .unwrap();
        a.merge(b);
        assert_eq!(a.len(), 5);
        assert_eq!(a.gpu(), Some("h200-141gb"));
        assert_eq!(a.lookup(&key("spin(int)", [1, 1, 1], [1, 1, 1], 0)), ns(30_000));
        assert_eq!(a.lookup(&key("new", [1, 1, 1], [1, 1, 1], 0)), ns(5));
        assert_eq!(a.lookup(&key("spin(float*, int)", [2000, 1, 1], [256, 1, 1], 0)), ns(15_000));
    }

    #[test]
    fn to_text_round_trips() {
        let t = KernelTable::parse(SAMPLE).unwrap();
        let text = t.to_text();
        assert_eq!(
            text,
            "# phantom kernel-time table v1\n\
             # gpu: h100-sxm-80gb\n\
             kernel\tscale<float>\t4,1,1\t*\t0\t701\t3\n\
             kernel\tspin\t*\t*\t*\t20000\t1\n\
             kernel\tspin(float*, int)\t*\t256,1,1\t*\t16000\t1\n\
             kernel\tspin(float*, int)\t2000,1,1\t256,1,1\t0\t15000\t12\n"
        );
        assert_eq!(KernelTable::parse(&text).unwrap(), t);
        let mut empty = KernelTable::default();
        assert_eq!(empty.to_text(), "# phantom kernel-time table v1\n");
        empty.set_metadata("source", "calibration");
        assert_eq!(KernelTable::parse(&empty.to_text()).unwrap().metadata("source"), Some("calibration"));
    }

    #[test]
    fn crlf_and_durations() {
        let t = KernelTable::parse("# phantom kernel-time table v1\r\nkernel\ta\t*\t*\t*\t0.49\r\nkernel\tb\t*\t*\t*\t7\r\n").unwrap();
        assert_eq!(t.lookup(&key("a", [1, 1, 1], [1, 1, 1], 0)), ns(0));
        assert_eq!(t.lookup(&key("b", [1, 1, 1], [1, 1, 1], 0)), ns(7));
    }

    #[test]
    fn header_errors() {
        assert_eq!(KernelTable::parse("").unwrap_err(), "line 1: expected the header `# phantom kernel-time table v1`");
        assert_eq!(
            KernelTable::parse("kernel\ta\t*\t*\t*\t1\n").unwrap_err(),
            "line 1: expected the header `# phantom kernel-time table v1`"
        );
        assert_eq!(
            KernelTable::parse("# phantom kernel-time table v2\n").unwrap_err(),
            "line 1: unsupported kernel-time table version `v2` (this build reads v1)"
        );
    }

    #[test]
    fn record_errors_name_the_line() {
        let err = |body: &str| KernelTable::parse(&format!("{TABLE_HEADER}\n# c\n{body}\n")).unwrap_err();
        assert_eq!(
            err("kernel\ta\t*\t*\t1"),
            "line 3: a kernel record has 6 or 7 tab-separated fields (kernel, name, grid, block, shared_mem_bytes, duration_ns[, samples]); found 5"
        );
        assert_eq!(err("kernel\ta\t1,1\t*\t*\t1"), "line 3: grid: expected `x,y,z` (three positive integers) or `*`, found `1,1`");
        assert_eq!(err("kernel\ta\t*\t0,1,1\t*\t1"), "line 3: block: expected `x,y,z` (three positive integers) or `*`, found `0,1,1`");
        assert_eq!(err("kernel\ta\t*\t*\t-1\t1"), "line 3: shared_mem_bytes: expected a number of bytes or `*`, found `-1`");
        assert_eq!(err("kernel\ta\t*\t*\t*\t1e3"), "line 3: duration_ns: expected a non-negative decimal number of nanoseconds, found `1e3`");
        assert_eq!(err("kernel\ta\t*\t*\t*\t-5"), "line 3: duration_ns: expected a non-negative decimal number of nanoseconds, found `-5`");
        assert_eq!(err("kernel\ta\t*\t*\t*\t5\t0"), "line 3: samples: expected a positive integer, found `0`");
        assert_eq!(err("kernel\t \t*\t*\t*\t5"), "line 3: empty kernel name");
        assert_eq!(
            err("kernel a * * * 5"),
            "line 3: expected a record type (`kernel` or `call`) followed by a tab, found `kernel a * * * 5`"
        );
    }

    fn rec(n: u64, samples: u32) -> TableRecord {
        TableRecord { duration: SimDuration::from_nanos(n), samples }
    }

    const MATMUL: &str = "cublasLt matmul m=768 n=8192 k=3072 batch=1 a=bf16/N b=bf16/T c=bf16 compute=f32 epilogue=bias";
    const SDPA: &str = "cudnn graph sdpa_fwd b=8 h=12 s=1024 d=64 io=bf16 causal=1";

    /// Kernel and call records mixed, as profiling writes them (calls may come in any order in a file).
    fn with_calls() -> String {
        format!(
            "{TABLE_HEADER}\n\
             # gpu: h100-sxm-80gb\n\
             kernel\tspin\t*\t*\t*\t20000\n\
             call\t{SDPA}\t98000\n\
             call\t {MATMUL} \t41250.5\t5\n\
             kernel\tscale<float>\t4,1,1\t*\t0\t700\t3\n"
        )
    }

    #[test]
    fn parses_kernel_and_call_records() {
        let t = KernelTable::parse(&with_calls()).unwrap();
        assert!(t.warnings().is_empty(), "{:?}", t.warnings());
        assert_eq!((t.len(), t.call_count()), (2, 2));
        // 41250.5 rounds to 41251; the key was trimmed.
        assert_eq!(t.lookup_call(MATMUL), ns(41_251));
        assert_eq!(t.lookup_call(&format!("  {MATMUL}\t")), ns(41_251));
        assert_eq!(t.lookup_call(SDPA), ns(98_000));
        // Exact match only: no prefix, no other epilogue, no kernel name.
        assert_eq!(t.lookup_call("cublasLt matmul m=768 n=8192 k=3072"), None);
        assert_eq!(t.lookup_call(&MATMUL.replace("epilogue=bias", "epilogue=none")), None);
        assert_eq!(t.lookup_call("spin"), None);
        // Sorted by key, not in file order.
        let calls: Vec<(&str, TableRecord)> = t.calls().collect();
        assert_eq!(
            calls,
            [
                (MATMUL, rec(41_251, 5)),
                (SDPA, rec(98_000, 1)),
            ]
        );
        // The kernel records are unaffected.
        assert_eq!(t.lookup(&key("spin(int)", [1, 1, 1], [1, 1, 1], 0)), ns(20_000));
        assert_eq!(t.lookup(&key("void scale<float>(float*)", [4, 1, 1], [32, 1, 1], 0)), ns(700));
    }

    #[test]
    fn later_call_with_the_same_key_wins() {
        // Within a file; the second key differs only in surrounding spaces.
        let t = KernelTable::parse(&format!("{TABLE_HEADER}\ncall\t{MATMUL}\t41000\t2\ncall\t{MATMUL}  \t39500\t8\n"))
            .unwrap();
        assert_eq!(t.call_count(), 1);
        assert_eq!(t.calls().next(), Some((MATMUL, rec(39_500, 8))));
        // By merge: `b`'s matmul replaces `a`'s, `a`'s attention stays, `b`'s new key is added.
        let mut a = KernelTable::parse(&with_calls()).unwrap();
        let mut b = KernelTable::default();
        b.insert_call(MATMUL, SimDuration::from_nanos(40_000), 3);
        let small = "cublasLt matmul m=64 n=64 k=64 batch=1 a=f32/N b=f32/N c=f32 compute=f32";
        b.insert_call(small, SimDuration::from_nanos(4_100), 0);
        a.merge(b);
        assert_eq!((a.len(), a.call_count()), (2, 3));
        assert_eq!(a.lookup_call(MATMUL), ns(40_000));
        assert_eq!(a.lookup_call(SDPA), ns(98_000));
        assert_eq!(a.lookup_call(small), ns(4_100));
        // Inserting replaces too, and 0 samples are stored as 1.
        a.insert_call(&format!(" {SDPA}"), SimDuration::from_nanos(97_000), 0);
        assert_eq!(a.calls().find(|&(k, _)| k == SDPA), Some((SDPA, rec(97_000, 1))));
    }

    #[test]
    fn calls_round_trip_through_to_text() {
        let t = KernelTable::parse(&with_calls()).unwrap();
        let text = t.to_text();
        assert_eq!(
            text,
            format!(
                "{TABLE_HEADER}\n\
                 # gpu: h100-sxm-80gb\n\
                 kernel\tscale<float>\t4,1,1\t*\t0\t700\t3\n\
                 kernel\tspin\t*\t*\t*\t20000\t1\n\
                 call\t{MATMUL}\t41251\t5\n\
                 call\t{SDPA}\t98000\t1\n"
            )
        );
        assert_eq!(KernelTable::parse(&text).unwrap(), t);
        // The same table built through the API is equal; one differing call makes it unequal.
        let mut built = KernelTable::default();
        built.set_metadata("gpu", "h100-sxm-80gb");
        built.insert(KernelPattern { name: "spin".into(), grid: None, block: None, shared_mem_bytes: None }, SimDuration::from_nanos(20_000), 1);
        built.insert(KernelPattern { name: "scale<float>".into(), grid: Some([4, 1, 1]), block: None, shared_mem_bytes: Some(0) }, SimDuration::from_nanos(700), 3);
        built.insert_call(SDPA, SimDuration::from_nanos(98_000), 1);
        built.insert_call(MATMUL, SimDuration::from_nanos(41_251), 5);
        assert_eq!(built, t);
        built.insert_call(MATMUL, SimDuration::from_nanos(41_252), 5);
        assert_ne!(built, t);
    }

    #[test]
    fn call_errors_name_the_line() {
        let err = |body: &str| KernelTable::parse(&format!("{TABLE_HEADER}\n# c\n{body}\n")).unwrap_err();
        // Missing duration.
        assert_eq!(err(&format!("call\t{MATMUL}")), "line 3: call: expected 3 or 4 fields, found 2");
        assert_eq!(err("call"), "line 3: call: expected 3 or 4 fields, found 1");
        assert_eq!(err("call\tk\t5\t1\t1"), "line 3: call: expected 3 or 4 fields, found 5");
        assert_eq!(err("call\tk\t"), "line 3: duration_ns: expected a non-negative decimal number of nanoseconds, found ``");
        // Spaces instead of tabs.
        assert_eq!(
            err("call cublasLt matmul m=768 5000"),
            "line 3: expected a record type (`kernel` or `call`) followed by a tab, found `call cublasLt matmul m=768 5000`"
        );
        // Negative or otherwise malformed values.
        assert_eq!(err("call\tk\t-5"), "line 3: duration_ns: expected a non-negative decimal number of nanoseconds, found `-5`");
        assert_eq!(err("call\tk\t5\t-1"), "line 3: samples: expected a positive integer, found `-1`");
        assert_eq!(err("call\tk\t5\t0"), "line 3: samples: expected a positive integer, found `0`");
        assert_eq!(err("call\t  \t5"), "line 3: call: empty key");
    }

    #[test]
    fn a_table_with_only_calls_is_not_empty() {
        let t = KernelTable::parse(&format!("{TABLE_HEADER}\ncall\t{SDPA}\t98000\t4\n")).unwrap();
        assert!(!t.is_empty());
        assert_eq!((t.len(), t.call_count()), (0, 1));
        assert_ne!(t, KernelTable::default());
        // Keys that cannot be written as a `call` record are ignored.
        let mut u = KernelTable::default();
        assert!(u.is_empty());
        for bad in ["", "   ", "a\tb", "a\nb"] {
            u.insert_call(bad, SimDuration::from_nanos(1), 1);
        }
        assert!(u.is_empty());
        u.insert_call(SDPA, SimDuration::from_nanos(5), 1);
        assert!(!u.is_empty());
        assert_eq!(u.len(), 0);
    }

    #[test]
    fn unknown_record_types_are_skipped_with_a_warning() {
        let t = KernelTable::parse(&format!("{TABLE_HEADER}\ngemm\tbf16\t4096,4096,4096\t123\nkernel\ta\t*\t*\t*\t1\n")).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.warnings(), ["line 2: skipped record of unknown type `gemm`"]);
    }

    #[test]
    fn fallback_model() {
        let h100 = gpu_preset("h100-sxm-80gb").unwrap();
        assert_eq!(h100.sm_count, 132);
        let m = FallbackModel::default();
        // 132 SMs × 8 resident blocks = 1056 per wave; 2000 blocks → 2 waves
        let k = key("k", [2000, 1, 1], [128, 1, 1], 0);
        assert_eq!(FallbackModel::waves(&h100, &k, 8), 2);
        assert_eq!(m.kernel_time(&h100, &k, 8), SimDuration::from_nanos(4_000));
        // exactly one full wave, then one block more
        assert_eq!(m.kernel_time(&h100, &key("k", [1056, 1, 1], [1, 1, 1], 0), 8), SimDuration::from_nanos(3_000));
        assert_eq!(m.kernel_time(&h100, &key("k", [33, 33, 1], [1, 1, 1], 0), 8), SimDuration::from_nanos(4_000));
        // a zero-size grid counts as one block; zero occupancy as one block per SM
        assert_eq!(m.kernel_time(&h100, &key("k", [0, 1, 1], [1, 1, 1], 0), 0), SimDuration::from_nanos(3_000));
        let custom = FallbackModel { base_ns: 500, per_wave_ns: 250 };
        assert_eq!(custom.kernel_time(&h100, &key("k", [133, 1, 1], [1, 1, 1], 0), 1), SimDuration::from_nanos(1_000));
    }
}
