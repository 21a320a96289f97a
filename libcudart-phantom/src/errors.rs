//! `cudaGetErrorName` / `cudaGetErrorString`. Names come from the generated table; descriptions are
//! Phantom's own short phrases, derived from the name where no phrase is written here.

use crate::generated::cudart_errors::error_name;
use dashmap::DashMap;
use once_cell::sync::Lazy;
use std::ffi::{CStr, CString};

pub fn name(code: u32) -> Option<&'static CStr> {
    error_name(code)
}

fn phrase(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "no error",
        1 => "invalid argument",
        2 => "out of memory",
        3 => "initialization error (see Phantom's log for the configuration problem)",
        100 => "no CUDA-capable device is detected",
        101 => "invalid device ordinal",
        400 => "invalid resource handle",
        600 => "device not ready",
        801 => "operation not supported by Phantom",
        _ => return None,
    })
}

/// "cudaErrorInvalidDevicePointer" → "invalid device pointer".
fn from_name(name: &str) -> String {
    let stem = name.trim_start_matches("cudaError").trim_start_matches("cuda");
    let mut out = String::new();
    for (i, c) in stem.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

static DESCRIPTIONS: Lazy<DashMap<u32, &'static CStr>> = Lazy::new(DashMap::new);

/// A description for every code; unknown codes get "unrecognized error code", as CUDA does.
pub fn description(code: u32) -> &'static CStr {
    if let Some(d) = DESCRIPTIONS.get(&code) {
        return *d;
    }
    let text = match (phrase(code), name(code)) {
        (Some(p), _) => p.to_string(),
        (None, Some(n)) => from_name(&n.to_string_lossy()),
        (None, None) => "unrecognized error code".to_string(),
    };
    let leaked: &'static CStr = Box::leak(CString::new(text).unwrap_or_default().into_boxed_c_str());
    *DESCRIPTIONS.entry(code).or_insert(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions() {
        assert_eq!(name(2).unwrap().to_str().unwrap(), "cudaErrorMemoryAllocation");
        assert_eq!(description(2).to_str().unwrap(), "out of memory");
        assert_eq!(description(17).to_str().unwrap(), "invalid device pointer");
        assert_eq!(description(987_654).to_str().unwrap(), "unrecognized error code");
        assert!(name(987_654).is_none());
    }
}
