//! Generates the export glue of the shim libraries from the bindgen output and the golden export lists.
//!
//! `libcudart-phantom`: for every export of NVIDIA's library it emits:
//! - a method of the trait `CudartApi` whose *default* body is the "not supported" stub (or, for a `_ptsz` /
//!   `_ptds` variant, a call of the base function with the per-thread default stream selected);
//! - a `#[no_mangle] extern "C"` function that calls the method on `crate::Phantom` inside `export::guard`
//!   (no panic crosses the boundary);
//! - a `.symver NAME, NAME@@libcudart.so.13` directive, so our version table matches NVIDIA's exactly.
//!
//! Implementations override trait methods in `libcudart-phantom/src/api.rs`; nothing lists symbols by hand.
//!
//! `libnccl-phantom` (see [`nccl`]): one method of the trait `NcclApi` per function (`ncclX`; the profiling alias
//! `pncclX` shares it), whose default body is the "not supported" stub, and `#[no_mangle] extern "C"` functions
//! for both `ncclX` and `pncclX` calling it inside `export::guard`. NCCL is unversioned: no `.symver`.

use crate::golden::{read_golden, CUDART, NCCL};
use crate::{workspace_root, Result};
use quote::{format_ident, quote, ToTokens};
use std::collections::BTreeMap;

pub(crate) struct Decl {
    pub(crate) inputs: Vec<(syn::Ident, syn::Type)>,
    pub(crate) output: Option<syn::Type>,
}

pub(crate) const CUDART_BINDINGS: &str = "cuda-sys/src/cudart.rs";
pub(crate) const NCCL_BINDINGS: &str = "cuda-sys/src/nccl.rs";

/// The `extern "C"` declarations of a bindings file (relative to the workspace root), by name.
pub(crate) fn read_decls(bindings: &str) -> Result<BTreeMap<String, Decl>> {
    let path = workspace_root().join(bindings);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let mut decls = BTreeMap::new();
    for item in file.items {
        let syn::Item::ForeignMod(block) = item else { continue };
        for f in block.items {
            let syn::ForeignItem::Fn(f) = f else { continue };
            let mut inputs = Vec::new();
            for (i, arg) in f.sig.inputs.iter().enumerate() {
                let syn::FnArg::Typed(pt) = arg else { return Err("receiver in extern fn".into()) };
                let ident = match &*pt.pat {
                    syn::Pat::Ident(p) => p.ident.clone(),
                    _ => format_ident!("arg{i}"),
                };
                inputs.push((ident, (*pt.ty).clone()));
            }
            let output = match &f.sig.output {
                syn::ReturnType::Default => None,
                syn::ReturnType::Type(_, t) => Some((**t).clone()),
            };
            decls.insert(f.sig.ident.to_string(), Decl { inputs, output });
        }
    }
    Ok(decls)
}

pub fn run() -> Result<()> {
    cudart()?;
    write_error_names()?;
    nccl()
}

fn cudart() -> Result<()> {
    let decls = read_decls(CUDART_BINDINGS)?;
    let golden = read_golden(&CUDART)?;
    let version = golden.first().map(|e| e.version.clone()).unwrap_or_default();

    let mut trait_items = Vec::new();
    let mut exports = Vec::new();
    let mut symver = String::new();
    let mut undeclared = Vec::new();
    for export in &golden {
        let name = export.name.as_str();
        let ident = format_ident!("{}", name);
        let base = name.strip_suffix("_ptsz").or_else(|| name.strip_suffix("_ptds"));
        let decl = decls.get(name).or_else(|| base.and_then(|b| decls.get(b)));
        let (params, args, ret) = match decl {
            Some(d) => {
                let params: Vec<_> = d.inputs.iter().map(|(i, t)| quote!(#i: #t)).collect();
                let args: Vec<_> = d.inputs.iter().map(|(i, _)| quote!(#i)).collect();
                let ret = d.output.clone().map(|t| t.into_token_stream()).unwrap_or(quote!(()));
                (params, args, ret)
            }
            None => {
                undeclared.push(name.to_string());
                (vec![], vec![], quote!(cudaError_t))
            }
        };
        let default_body = match (base, decls.contains_key(name)) {
            (Some(b), false) if decls.contains_key(b) => {
                let b = format_ident!("{}", b);
                quote!(crate::export::per_thread_default_stream(|| Self::#b(#(#args),*)))
            }
            _ => quote!(<#ret as crate::export::FfiReturn>::unsupported(#name)),
        };
        trait_items.push(quote! {
            unsafe fn #ident(#(#params),*) -> #ret { #default_body }
        });
        exports.push(quote! {
            #[no_mangle]
            pub unsafe extern "C" fn #ident(#(#params),*) -> #ret {
                crate::export::guard(#name, || unsafe { <crate::Phantom as CudartApi>::#ident(#(#args),*) })
            }
        });
        symver.push_str(&format!(".symver {name}, {name}@@{version}\n"));
    }

    let file: syn::File = syn::parse2(quote! {
        use phantom_cuda_sys::*;

        /// Every export of NVIDIA's `libcudart.so.13`. Default bodies are the "not supported" stub; the
        /// implemented ones are overridden in `api.rs`.
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc, unused_variables)]
        pub trait CudartApi {
            #(#trait_items)*
        }

        #[cfg(not(test))]
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc)]
        mod exports {
            use super::*;
            #(#exports)*
        }

        #[cfg(not(test))]
        std::arch::global_asm!(#symver);
    })
    .map_err(|e| format!("generated code does not parse: {e}"))?;

    let header = format!(
        "// @generated by `cargo xtask codegen` from cuda-sys/src/cudart.rs and cuda-sys/abi/libcudart.so.13.symbols.\n\
         // Do not edit: regenerate instead (docs/abi.md). {} exports, {} without a C declaration in the headers.\n\n",
        golden.len(),
        undeclared.len()
    );
    let out = workspace_root().join("libcudart-phantom/src/generated/cudart_exports.rs");
    std::fs::write(&out, header + &prettyplease::unparse(&file)).map_err(|e| format!("cannot write: {e}"))?;
    eprintln!("wrote {} ({} exports; undeclared: {})", out.display(), golden.len(), undeclared.join(" "));
    Ok(())
}

/// The function an NCCL export implements: `pncclX` (NCCL's profiling-interface alias) is `ncclX`.
pub(crate) fn nccl_base(name: &str) -> &str {
    match name.strip_prefix('p') {
        Some(base) if base.starts_with("nccl") => base,
        _ => name,
    }
}

/// `libnccl-phantom/src/generated/nccl_exports.rs`.
fn nccl() -> Result<()> {
    let decls = read_decls(NCCL_BINDINGS)?;
    let golden = read_golden(&NCCL)?;

    // One trait method per function, named after `ncclX` even where only `pncclX` is exported.
    let mut methods: BTreeMap<&str, (Vec<proc_macro2::TokenStream>, Vec<syn::Ident>, proc_macro2::TokenStream)> =
        BTreeMap::new();
    let mut exports = Vec::new();
    let mut undeclared = Vec::new();
    for export in &golden {
        let name = export.name.as_str();
        if !export.version.is_empty() {
            return Err(format!(
                "{name}: NVIDIA's libnccl.so.2 is unversioned, the golden list says {}",
                export.version
            ));
        }
        let base = nccl_base(name);
        let decl = decls.get(base).or_else(|| decls.get(name));
        let (params, args, ret) = match decl {
            Some(d) => (
                d.inputs.iter().map(|(i, t)| quote!(#i: #t)).collect::<Vec<_>>(),
                d.inputs.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(),
                d.output.clone().map(|t| t.into_token_stream()).unwrap_or(quote!(())),
            ),
            None => {
                undeclared.push(name.to_string());
                (vec![], vec![], quote!(ncclResult_t))
            }
        };
        methods.entry(base).or_insert_with(|| (params.clone(), args.clone(), ret.clone()));
        let ident = format_ident!("{}", name);
        let method = format_ident!("{}", base);
        exports.push(quote! {
            #[no_mangle]
            pub unsafe extern "C" fn #ident(#(#params),*) -> #ret {
                crate::export::guard(#name, || unsafe { <crate::Phantom as NcclApi>::#method(#(#args),*) })
            }
        });
    }
    let trait_items = methods.iter().map(|(name, (params, _, ret))| {
        let ident = format_ident!("{}", name);
        quote! {
            unsafe fn #ident(#(#params),*) -> #ret { <#ret as crate::export::FfiReturn>::unsupported(#name) }
        }
    });

    let file: syn::File = syn::parse2(quote! {
        use phantom_cuda_sys::nccl::*;

        /// Every function NVIDIA's `libnccl.so.2` exports (as `ncclX`, and as `pncclX` where NCCL has that alias).
        /// Default bodies are the "not supported" stub; the implemented ones are overridden in `api.rs`.
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc, unused_variables)]
        pub trait NcclApi {
            #(#trait_items)*
        }

        #[cfg(not(test))]
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::missing_safety_doc)]
        mod exports {
            use super::*;
            #(#exports)*
        }
    })
    .map_err(|e| format!("generated code does not parse: {e}"))?;

    let header = format!(
        "// @generated by `cargo xtask codegen` from {NCCL_BINDINGS} and cuda-sys/abi/libnccl.so.2.symbols.\n\
         // Do not edit: regenerate instead (docs/abi.md). {} exports ({} functions), {} without a C declaration.\n\n",
        golden.len(),
        methods.len(),
        undeclared.len()
    );
    let dir = workspace_root().join("libnccl-phantom/src/generated");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join("nccl_exports.rs");
    std::fs::write(&out, header + &prettyplease::unparse(&file)).map_err(|e| format!("cannot write: {e}"))?;
    eprintln!("wrote {} ({} exports; undeclared: {})", out.display(), golden.len(), undeclared.join(" "));
    Ok(())
}

/// `cudaError` constant names by value, for `cudaGetErrorName` / `cudaGetErrorString`.
fn write_error_names() -> Result<()> {
    let path = workspace_root().join(CUDART_BINDINGS);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let mut arms = Vec::new();
    for item in file.items {
        let syn::Item::Impl(imp) = item else { continue };
        if imp.self_ty.to_token_stream().to_string() != "cudaError" {
            continue;
        }
        for it in imp.items {
            let syn::ImplItem::Const(c) = it else { continue };
            let syn::Expr::Call(call) = &c.expr else { continue };
            let Some(syn::Expr::Lit(lit)) = call.args.first() else { continue };
            let value = lit.lit.to_token_stream();
            let name = format!("{}", c.ident);
            let cname = syn::LitCStr::new(&std::ffi::CString::new(name).unwrap(), proc_macro2::Span::call_site());
            arms.push(quote!(#value => Some(#cname)));
        }
    }
    let file: syn::File = syn::parse2(quote! {
        /// The identifier of a `cudaError_t` value, e.g. `cudaErrorInvalidValue`.
        pub fn error_name(code: u32) -> Option<&'static std::ffi::CStr> {
            match code {
                #(#arms,)*
                _ => None,
            }
        }
    })
    .map_err(|e| format!("generated code does not parse: {e}"))?;
    let out = workspace_root().join("libcudart-phantom/src/generated/cudart_errors.rs");
    let header = "// @generated by `cargo xtask codegen` from cuda-sys/src/cudart.rs. Do not edit.\n\n";
    std::fs::write(&out, format!("{header}{}", prettyplease::unparse(&file)))
        .map_err(|e| format!("cannot write: {e}"))?;
    eprintln!("wrote {} ({} error codes)", out.display(), arms.len());
    Ok(())
}
