//! bf16 GEMMs through NVIDIA's cuBLASLt (`libcublasLt.so.13`), timed on the real GPU for `phantom calibrate
//! --gemm` (docs/calibration.md).
//!
//! The library is opened by absolute path ([`find_library`]: the folders the caller names, which are
//! `PHANTOM_REAL_LIBS` and the `nvidia/*/lib` folders of Python's `site-packages`, as Phantom's stubs search
//! them), `RTLD_LOCAL | RTLD_DEEPBIND`. It finds the driver by its soname, `libcuda.so.1`, which the dynamic
//! loader matches to the driver [`Driver::open`] already loaded by path, so both use the same driver and the
//! same primary context.
//!
//! Each GEMM is `D = Aᵀ·B` as `torch.nn.functional.linear` calls it (`TRANSA = T`, `TRANSB = N`, column-major:
//! A stored k×m, B k×n, D m×n), bf16 in and out, fp32 compute and scale (`CUBLAS_COMPUTE_32F`), β = 0, a 32 MiB
//! workspace, the first algorithm of `cublasLtMatmulAlgoGetHeuristic`. A and B hold pseudo-random values in
//! [−1, 1) (a GPU multiplies zeros faster: less power, higher clocks). After two untimed runs, one timed run
//! sizes a batch of back-to-back runs that lasts about [`BATCH_TARGET_NS`]; the figure is the median over the
//! samples of the batch's gated time divided by its runs.

use super::{gated, DeviceBuffer, Stream, Timed};
use crate::driver::Driver;
use crate::gate::Gate;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// cuBLASLt's file name.
pub const SONAME: &str = "libcublasLt.so.13";

/// What a timed batch of GEMMs should last.
pub const BATCH_TARGET_NS: u64 = 2_000_000;
/// The most GEMMs in one batch.
pub const MAX_BATCH: u64 = 200;
/// The workspace cuBLASLt may use (what PyTorch gives it on Hopper).
pub const WORKSPACE_BYTES: usize = 32 << 20;

// cublasLt.h, cublas_api.h, library_types.h (CUDA 13).
const CUDA_R_16BF: c_int = 14;
const CUDA_R_32F: c_int = 0;
const CUBLAS_COMPUTE_32F: c_int = 68;
const CUBLASLT_MATMUL_DESC_TRANSA: c_int = 3;
const CUBLASLT_MATMUL_DESC_TRANSB: c_int = 4;
const CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: c_int = 1;
const CUBLAS_OP_N: c_int = 0;
const CUBLAS_OP_T: c_int = 1;

type Ptr = *mut c_void;
type CPtr = *const c_void;

/// `cublasLtMatmulAlgo_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulAlgo {
    pub data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HeuristicResult {
    pub algo: MatmulAlgo,
    pub workspace_size: usize,
    pub state: c_int,
    pub waves_count: f32,
    pub reserved: [c_int; 4],
}

macro_rules! functions {
    ($($field:ident = $name:literal ($($arg:ty),*);)*) => {
        /// The cuBLASLt functions used, by their C names. All return `cublasStatus_t`.
        struct Fns {
            $($field: unsafe extern "C" fn($($arg),*) -> c_int,)*
        }

        impl Fns {
            fn load(lib: Ptr, path: &Path) -> Result<Fns, String> {
                Ok(Fns {
                    $($field: {
                        let name: &CStr = $name;
                        // SAFETY: a live dlopen handle and a NUL-terminated name.
                        let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
                        if p.is_null() {
                            return Err(format!("{} has no {}", path.display(), name.to_string_lossy()));
                        }
                        // SAFETY: the symbol is the cublasLt.h function of that name, of this signature.
                        unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) -> c_int>(p) }
                    },)*
                })
            }
        }
    };
}

functions! {
    create = c"cublasLtCreate"(*mut Ptr);
    destroy = c"cublasLtDestroy"(Ptr);
    desc_create = c"cublasLtMatmulDescCreate"(*mut Ptr, c_int, c_int);
    desc_destroy = c"cublasLtMatmulDescDestroy"(Ptr);
    desc_set = c"cublasLtMatmulDescSetAttribute"(Ptr, c_int, CPtr, usize);
    layout_create = c"cublasLtMatrixLayoutCreate"(*mut Ptr, c_int, u64, u64, i64);
    layout_destroy = c"cublasLtMatrixLayoutDestroy"(Ptr);
    pref_create = c"cublasLtMatmulPreferenceCreate"(*mut Ptr);
    pref_destroy = c"cublasLtMatmulPreferenceDestroy"(Ptr);
    pref_set = c"cublasLtMatmulPreferenceSetAttribute"(Ptr, c_int, CPtr, usize);
    heuristic = c"cublasLtMatmulAlgoGetHeuristic"(Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, c_int, *mut HeuristicResult, *mut c_int);
    matmul = c"cublasLtMatmul"(Ptr, Ptr, CPtr, CPtr, Ptr, CPtr, Ptr, CPtr, CPtr, Ptr, Ptr, Ptr, *const MatmulAlgo, Ptr, usize, Ptr);
}

/// The first `dir/soname` of `dirs` that is a file and is not one of `skip` (Phantom's own stub of it, compared
/// after resolving links).
pub fn find_library(soname: &str, dirs: &[PathBuf], skip: &[PathBuf]) -> Option<PathBuf> {
    let skip: Vec<PathBuf> = skip.iter().filter_map(|p| p.canonicalize().ok()).collect();
    dirs.iter().map(|d| d.join(soname)).find(|p| p.is_file() && !p.canonicalize().is_ok_and(|c| skip.contains(&c)))
}

/// The folders to search for NVIDIA's libraries: `real_libs` (the value of `PHANTOM_REAL_LIBS`, colon-separated)
/// first, then the `nvidia/*/lib` folders of each of `site_packages`, each sorted by name.
pub fn library_dirs(real_libs: Option<&str>, site_packages: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        real_libs.unwrap_or("").split(':').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    for root in site_packages {
        if let Ok(rd) = std::fs::read_dir(root.join("nvidia")) {
            let mut found: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect();
            found.sort();
            for f in found {
                if !dirs.contains(&f) {
                    dirs.push(f);
                }
            }
        }
    }
    dirs
}

/// NVIDIA's cuBLASLt with one handle.
pub struct CublasLt {
    f: Fns,
    status_string: Option<unsafe extern "C" fn(c_int) -> *const c_char>,
    handle: Ptr,
    pub path: PathBuf,
    /// `cublasLtGetVersion()`, e.g. 130100 for 13.1.0 (0 where the library does not say).
    pub version: usize,
}

impl CublasLt {
    /// Opens the library at `path` and creates a handle (on the calling thread's current context).
    pub fn open(path: &Path) -> Result<CublasLt, String> {
        let c =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| format!("{}: bad path", path.display()))?;
        // SAFETY: dlopen with a NUL-terminated path.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND) };
        if lib.is_null() {
            // SAFETY: dlerror returns a thread-local message or null.
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() {
                "unknown error".into()
            } else {
                unsafe { CStr::from_ptr(why) }.to_string_lossy().into_owned()
            };
            return Err(format!("cannot open {}: {why}", path.display()));
        }
        let f = Fns::load(lib, path)?;
        // SAFETY: `size_t cublasLtGetVersion(void)` and `const char* cublasLtGetStatusString(cublasStatus_t)`,
        // where the library has them.
        let version = match unsafe { libc::dlsym(lib, c"cublasLtGetVersion".as_ptr()) } {
            p if p.is_null() => 0,
            p => unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> usize>(p)() },
        };
        let status_string = match unsafe { libc::dlsym(lib, c"cublasLtGetStatusString".as_ptr()) } {
            p if p.is_null() => None,
            p => Some(unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int) -> *const c_char>(p) }),
        };
        let mut lt = CublasLt { f, status_string, handle: std::ptr::null_mut(), path: path.to_path_buf(), version };
        let mut handle: Ptr = std::ptr::null_mut();
        lt.status(unsafe { (lt.f.create)(&mut handle) }, "cublasLtCreate")?;
        lt.handle = handle;
        Ok(lt)
    }

    /// `Ok` for `CUBLAS_STATUS_SUCCESS`, else the call named `what` with the status and its name.
    fn status(&self, status: c_int, what: &str) -> Result<(), String> {
        if status == 0 {
            return Ok(());
        }
        let name = self.status_string.map(|f| unsafe { f(status) }).filter(|s| !s.is_null());
        let name = name.map(|s| format!(" ({})", unsafe { CStr::from_ptr(s) }.to_string_lossy())).unwrap_or_default();
        Err(format!("{what}: cublasStatus_t {status}{name}"))
    }
}

impl Drop for CublasLt {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            let _ = unsafe { (self.f.destroy)(self.handle) };
        }
    }
}

/// A GEMM's shape: D is m×n, the inner dimension k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub m: u64,
    pub n: u64,
    pub k: u64,
}

impl Shape {
    pub const fn new(m: u64, n: u64, k: u64) -> Shape {
        Shape { m, n, k }
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// A, B and D in bf16.
    pub fn bytes(&self) -> u64 {
        2 * (self.m * self.k + self.k * self.n + self.m * self.n)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.n, self.k)
    }
}

/// The squares 1024 to 16384, and four skinny shapes: two compute-bound ones with a short side (a projection
/// of 1024 features, a 1024-token batch), and two memory-bound ones (128 and 16 tokens through an 8192² weight).
pub const SHAPES: &[Shape] = &[
    Shape::new(1024, 1024, 1024),
    Shape::new(2048, 2048, 2048),
    Shape::new(4096, 4096, 4096),
    Shape::new(8192, 8192, 8192),
    Shape::new(16384, 16384, 16384),
    Shape::new(8192, 8192, 1024),
    Shape::new(8192, 1024, 8192),
    Shape::new(8192, 128, 8192),
    Shape::new(8192, 16, 8192),
];

/// One measured GEMM: its duration (per GEMM; median, fastest and slowest sample) and the batch size used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub shape: Shape,
    pub time: Timed,
    pub batch: u64,
}

/// Pseudo-random bf16 values in [−1, 1), 16 MiB of them, from a fixed seed.
fn random_bf16() -> Vec<u16> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..8 << 20)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            (v.to_bits() >> 16) as u16
        })
        .collect()
}

/// Fills `buf` with copies of `pattern` (synchronously).
fn fill(d: &Driver, stream: &Stream, buf: &DeviceBuffer, pattern: &[u16]) -> Result<(), String> {
    let chunk = std::mem::size_of_val(pattern);
    let mut off = 0;
    while off < buf.bytes {
        let n = chunk.min(buf.bytes - off);
        d.check(
            unsafe { (d.f.cuMemcpyAsync)(buf.ptr + off as u64, pattern.as_ptr() as u64, n, stream.handle) },
            "cuMemcpyAsync (filling a matrix)",
        )?;
        stream.synchronize()?;
        off += n;
    }
    Ok(())
}

/// Descriptors of one GEMM, destroyed on drop.
struct Plan<'l> {
    lt: &'l CublasLt,
    desc: Ptr,
    layouts: [Ptr; 3],
    pref: Ptr,
    algo: MatmulAlgo,
}

impl Drop for Plan<'_> {
    fn drop(&mut self) {
        let f = &self.lt.f;
        unsafe {
            if !self.pref.is_null() {
                (f.pref_destroy)(self.pref);
            }
            for l in self.layouts {
                if !l.is_null() {
                    (f.layout_destroy)(l);
                }
            }
            if !self.desc.is_null() {
                (f.desc_destroy)(self.desc);
            }
        }
    }
}

impl<'l> Plan<'l> {
    fn new(lt: &'l CublasLt, s: Shape) -> Result<Plan<'l>, String> {
        let f = &lt.f;
        let mut p = Plan {
            lt,
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            pref: std::ptr::null_mut(),
            algo: MatmulAlgo::default(),
        };
        lt.status(unsafe { (f.desc_create)(&mut p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) }, "cublasLtMatmulDescCreate")?;
        let set = |attr: c_int, v: c_int| unsafe { (f.desc_set)(p.desc, attr, &v as *const c_int as CPtr, 4) };
        lt.status(set(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T), "cublasLtMatmulDescSetAttribute(TRANSA)")?;
        lt.status(set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N), "cublasLtMatmulDescSetAttribute(TRANSB)")?;
        // A: k×m (ld k), B: k×n (ld k), C and D: m×n (ld m).
        for (slot, (rows, cols)) in p.layouts.iter_mut().zip([(s.k, s.m), (s.k, s.n), (s.m, s.n)]) {
            lt.status(
                unsafe { (f.layout_create)(slot, CUDA_R_16BF, rows, cols, rows as i64) },
                "cublasLtMatrixLayoutCreate",
            )?;
        }
        lt.status(unsafe { (f.pref_create)(&mut p.pref) }, "cublasLtMatmulPreferenceCreate")?;
        let ws = WORKSPACE_BYTES as u64;
        lt.status(
            unsafe { (f.pref_set)(p.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws as *const u64 as CPtr, 8) },
            "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)",
        )?;
        let mut result = HeuristicResult::default();
        let mut found: c_int = 0;
        let [a, b, c] = p.layouts;
        lt.status(
            unsafe { (f.heuristic)(lt.handle, p.desc, a, b, c, c, p.pref, 1, &mut result, &mut found) },
            "cublasLtMatmulAlgoGetHeuristic",
        )?;
        if found < 1 {
            return Err(format!("cuBLASLt has no algorithm for a {s} bf16 GEMM"));
        }
        p.algo = result.algo;
        Ok(p)
    }
}

/// Measures each of `shapes` (`samples` timed batches each, after two untimed runs). A shape that cannot run
/// (out of memory, no algorithm) gives its error and the others go on.
pub fn measure(
    d: &Driver,
    gate: &Gate,
    stream: &Stream,
    lt: &CublasLt,
    shapes: &[Shape],
    samples: usize,
) -> Vec<Result<Measured, String>> {
    let pattern = random_bf16();
    let workspace = match DeviceBuffer::new(d, WORKSPACE_BYTES) {
        Ok(w) => w,
        Err(e) => return shapes.iter().map(|_| Err(e.clone())).collect(),
    };
    shapes.iter().map(|&s| measure_one(d, gate, stream, lt, s, samples.max(1), &pattern, &workspace)).collect()
}

#[allow(clippy::too_many_arguments)]
fn measure_one(
    d: &Driver,
    gate: &Gate,
    stream: &Stream,
    lt: &CublasLt,
    s: Shape,
    samples: usize,
    pattern: &[u16],
    workspace: &DeviceBuffer,
) -> Result<Measured, String> {
    let a = DeviceBuffer::new(d, (2 * s.m * s.k) as usize)?;
    let b = DeviceBuffer::new(d, (2 * s.k * s.n) as usize)?;
    let out = DeviceBuffer::new(d, (2 * s.m * s.n) as usize)?;
    fill(d, stream, &a, pattern)?;
    fill(d, stream, &b, pattern)?;
    let plan = Plan::new(lt, s)?;
    let [la, lb, lc] = plan.layouts;
    let (alpha, beta) = (1.0f32, 0.0f32);
    let run = |times: u64| -> Result<(), String> {
        for _ in 0..times {
            let status = unsafe {
                (lt.f.matmul)(
                    lt.handle,
                    plan.desc,
                    &alpha as *const f32 as CPtr,
                    a.ptr as CPtr,
                    la,
                    b.ptr as CPtr,
                    lb,
                    &beta as *const f32 as CPtr,
                    out.ptr as CPtr,
                    lc,
                    out.ptr as Ptr,
                    lc,
                    &plan.algo,
                    workspace.ptr as Ptr,
                    workspace.bytes,
                    stream.handle,
                )
            };
            lt.status(status, &format!("cublasLtMatmul ({s})"))?;
        }
        Ok(())
    };
    run(2)?;
    stream.synchronize()?;
    let one = gated(d, gate, stream, || run(1))?;
    let batch = BATCH_TARGET_NS.div_ceil(one.max(1)).clamp(1, MAX_BATCH);
    let v = (0..samples)
        .map(|_| gated(d, gate, stream, || run(batch)).map(|t| t.div_ceil(batch)))
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Measured { shape: s, time: Timed::from_samples(s.bytes(), v), batch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heuristic_result_has_cublaslt_h_layout() {
        assert_eq!(std::mem::size_of::<MatmulAlgo>(), 64);
        assert_eq!(std::mem::size_of::<HeuristicResult>(), 96);
    }

    #[test]
    fn shapes() {
        let s = Shape::new(8192, 16, 8192);
        assert_eq!(s.to_string(), "8192x16x8192");
        assert_eq!(s.flops(), 2.0 * 8192.0 * 16.0 * 8192.0);
        assert_eq!(s.bytes(), 2 * (8192 * 8192 + 8192 * 16 + 8192 * 16));
        assert_eq!(SHAPES.iter().filter(|s| s.m == s.n && s.n == s.k).count(), 5);
    }

    #[test]
    fn random_values_are_bf16_in_range() {
        let v = random_bf16();
        assert_eq!(v.len() * 2, 16 << 20);
        let f = |b: u16| f32::from_bits((b as u32) << 16);
        assert!(v.iter().all(|&b| (-1.0..1.0).contains(&f(b))));
        assert!(v.iter().filter(|&&b| f(b) < 0.0).count() > v.len() / 3, "both signs");
        assert_eq!(v, random_bf16(), "deterministic");
    }

    #[test]
    fn library_search() {
        let root = std::env::temp_dir().join(format!("phantom-libsearch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let site = root.join("site-packages");
        for d in ["nvidia/cu13/lib", "nvidia/cudnn/lib", "nvidia/empty"] {
            std::fs::create_dir_all(site.join(d)).unwrap();
        }
        let own = root.join("phantom/lib");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join(SONAME), b"stub").unwrap();
        std::fs::write(site.join("nvidia/cu13/lib").join(SONAME), b"real").unwrap();

        let env = format!("{}: /nonexistent ", own.display());
        let dirs = library_dirs(Some(&env), &[site.clone(), root.join("no-such-site")]);
        assert_eq!(
            dirs,
            [own.clone(), PathBuf::from("/nonexistent"), site.join("nvidia/cu13/lib"), site.join("nvidia/cudnn/lib")]
        );
        // Phantom's own stub is passed over; the first real one is found.
        assert_eq!(find_library(SONAME, &dirs, &[own.join(SONAME)]), Some(site.join("nvidia/cu13/lib").join(SONAME)));
        assert_eq!(find_library(SONAME, &dirs, &[]), Some(own.join(SONAME)));
        assert_eq!(find_library("libnothing.so", &dirs, &[]), None);
        assert_eq!(library_dirs(None, &[]), Vec::<PathBuf>::new());
        let _ = std::fs::remove_dir_all(&root);
    }
}
