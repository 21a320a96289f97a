//! cuBLAS's and cuBLASLt's enumerations as the words of their library-call keys (docs/profiling.md, "Library
//! calls"): one spelling for both libraries, so that a key names a type or an operation the same way in each.

/// `cudaDataType_t` as a key word (library_types.h's name, lower-case: `f32`, `bf16`, `e4m3`, …).
pub fn dtype_name(t: impl Into<i64>) -> String {
    const NAMES: [&str; 35] = [
        "f32", "f64", "f16", "i8", "c32f", "c64f", "c16f", "ci8", "u8", "cu8", "i32", "ci32", "u32", "cu32", "bf16",
        "cbf16", "i4", "ci4", "u4", "cu4", "i16", "ci16", "u16", "cu16", "i64", "ci64", "u64", "cu64", "e4m3",
        "e5m2", "ue8m0", "e2m3", "e3m2", "e2m1", "ue5m3",
    ];
    let t = t.into();
    usize::try_from(t).ok().and_then(|i| NAMES.get(i)).map_or_else(|| format!("type{t}"), |s| s.to_string())
}

/// `cublasComputeType_t` as a key word (cublas_api.h's name, lower-case, without `CUBLAS_COMPUTE_`).
pub fn compute_name(c: impl Into<i64>) -> String {
    let c = c.into();
    let name = match c {
        64 => "f16",
        65 => "f16_pedantic",
        68 => "f32",
        69 => "f32_pedantic",
        70 => "f64",
        71 => "f64_pedantic",
        72 => "i32",
        73 => "i32_pedantic",
        74 => "f32_fast_f16",
        75 => "f32_fast_bf16",
        77 => "f32_fast_tf32",
        78 => "f32_emulated_16bfx9",
        79 => "f64_emulated_fixedpoint",
        _ => return format!("compute{c}"),
    };
    name.to_string()
}

/// `cublasOperation_t` as a key word: `N`, `T`, `C`, `CONJG`.
pub fn op_name(op: impl Into<i64>) -> String {
    match op.into() {
        0 => "N".into(),
        1 => "T".into(),
        2 => "C".into(),
        3 => "CONJG".into(),
        op => format!("op{op}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(dtype_name(14), "bf16");
        assert_eq!(dtype_name(28i64), "e4m3");
        assert_eq!(dtype_name(99), "type99");
        assert_eq!(compute_name(77), "f32_fast_tf32");
        assert_eq!(compute_name(1), "compute1");
        assert_eq!((op_name(0), op_name(3), op_name(7)), ("N".into(), "CONJG".into(), "op7".into()));
    }
}
