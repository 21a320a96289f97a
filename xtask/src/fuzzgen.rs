//! `cargo xtask fuzzgen`: generates the tables the "call every export" test walks, one per library of
//! [`TABLES`] (`tests/src/generated/call_all.rs` for `libcudart.so.13`, `call_all_nccl.rs` for `libnccl.so.2`).
//! For every export in the golden list it emits a function that transmutes the `dlsym` result to the
//! export's exact C signature (from the bindgen declarations; a `_ptsz`/`_ptds` variant takes its base
//! function's, a `pncclX` its `ncclX`'s) and calls it with either
//! - all-zero arguments (`std::mem::zeroed()` for each: null pointers, zero handles and integers, zeroed
//!   structs), or
//! - "garbage": every integer, float, enum newtype and integer handle all-ones, pointers (and pointer handles,
//!   callbacks, by-value structs) still zero. Where the table says so (NCCL), the library's own opaque handles
//!   (`ncclComm_t`, `ncclWindow_t`, …) are all-ones too: a handle the library never handed out must be an error,
//!   not a dereference.
//!
//! Exports without a C declaration in the headers (graphics interop and a few private entry points) are called
//! as `extern "C" fn() -> i32`, which is what Phantom exports for them.

use crate::codegen::{nccl_base, read_decls, CUDART_BINDINGS, NCCL_BINDINGS};
use crate::golden::{read_golden, Library, CUDART, NCCL};
use crate::{workspace_root, Result};
use quote::{format_ident, quote, ToTokens};
use std::collections::{BTreeMap, BTreeSet};

/// One generated table.
struct Table {
    library: Library,
    /// Bindings file with the declarations (relative to the workspace root).
    bindings: &'static str,
    /// Output file name in `tests/src/generated/`.
    out: &'static str,
    /// The library's status type: calls returning it report the code.
    status: &'static str,
    /// The export whose declaration an export without its own uses (its base function).
    base: fn(&str) -> &str,
    /// Prefix of the opaque handle types (pointer aliases) that the garbage call sets to all-ones; `None`: all
    /// pointers stay null.
    garbage_handles: Option<&'static str>,
}

const TABLES: &[Table] = &[
    Table {
        library: CUDART,
        bindings: CUDART_BINDINGS,
        out: "call_all.rs",
        status: "cudaError_t",
        base: |name| name.strip_suffix("_ptsz").or_else(|| name.strip_suffix("_ptds")).unwrap_or(name),
        garbage_handles: None,
    },
    Table {
        library: NCCL,
        bindings: NCCL_BINDINGS,
        out: "call_all_nccl.rs",
        status: "ncclResult_t",
        base: nccl_base,
        garbage_handles: Some("nccl"),
    },
];

/// How an argument is filled in the "garbage" call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// An opaque handle of the library (pointer alias named with the table's handle prefix): all-ones if the
    /// table says so, else null.
    Handle,
    /// Raw pointer, pointer handle, optional callback: stays null.
    Pointer,
    /// Integer, float, enum newtype, integer handle: all-ones.
    Scalar,
    /// By-value struct or union (may hold pointers), or `bool` (all-ones is not a valid Rust `bool`): zeroed.
    Aggregate,
}

/// What the bindings say about type names: aliases (`type X = Y;`, `use self::Y as X;`) and enum newtypes.
struct Types {
    aliases: BTreeMap<String, syn::Type>,
    newtypes: BTreeSet<String>,
}

fn read_types(bindings: &str) -> Result<Types> {
    let path = workspace_root().join(bindings);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file = syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let mut types = Types { aliases: BTreeMap::new(), newtypes: BTreeSet::new() };
    for item in file.items {
        match item {
            syn::Item::Type(t) => {
                types.aliases.insert(t.ident.to_string(), (*t.ty).clone());
            }
            syn::Item::Use(u) => {
                if let syn::UseTree::Path(p) = &u.tree {
                    if let syn::UseTree::Rename(r) = &*p.tree {
                        let target = &r.ident;
                        types.aliases.insert(r.rename.to_string(), syn::parse_quote!(#target));
                    }
                }
            }
            syn::Item::Struct(s) => {
                if let syn::Fields::Unnamed(f) = &s.fields {
                    if f.unnamed.len() == 1 {
                        types.newtypes.insert(s.ident.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(types)
}

const SCALARS: &[&str] = &[
    "c_char",
    "c_schar",
    "c_uchar",
    "c_short",
    "c_ushort",
    "c_int",
    "c_uint",
    "c_long",
    "c_ulong",
    "c_longlong",
    "c_ulonglong",
    "c_float",
    "c_double",
    "i8",
    "u8",
    "i16",
    "u16",
    "i32",
    "u32",
    "i64",
    "u64",
    "isize",
    "usize",
    "f32",
    "f64",
];

fn classify(ty: &syn::Type, types: &Types, handles: Option<&str>, depth: usize) -> Result<Kind> {
    if depth > 16 {
        return Err(format!("type alias loop at {}", ty.to_token_stream()));
    }
    // `ncclComm_t` = `*mut ncclComm`: an alias (not a pointer written out at the use) of the library's prefix
    // whose target is a pointer to a struct.
    if let (Some(prefix), syn::Type::Path(p)) = (handles, ty) {
        let last = p.path.segments.last().ok_or("empty type path")?.ident.to_string();
        if last.starts_with(prefix) {
            if let Some(syn::Type::Ptr(ptr)) = types.aliases.get(&last) {
                if matches!(&*ptr.elem, syn::Type::Path(_)) {
                    return Ok(Kind::Handle);
                }
            }
        }
    }
    match ty {
        syn::Type::Ptr(_) | syn::Type::BareFn(_) => Ok(Kind::Pointer),
        syn::Type::Paren(p) => classify(&p.elem, types, handles, depth + 1),
        syn::Type::Path(p) => {
            let last = p.path.segments.last().ok_or("empty type path")?.ident.to_string();
            if last == "Option" {
                return Ok(Kind::Pointer); // Option<unsafe extern "C" fn ...>: a nullable callback
            }
            if last == "bool" {
                return Ok(Kind::Aggregate);
            }
            if SCALARS.contains(&last.as_str()) {
                return Ok(Kind::Scalar);
            }
            if let Some(target) = types.aliases.get(&last) {
                return classify(target, types, handles, depth + 1);
            }
            if types.newtypes.contains(&last) {
                return Ok(Kind::Scalar);
            }
            Ok(Kind::Aggregate)
        }
        syn::Type::Array(_) => Ok(Kind::Aggregate),
        other => Err(format!("unexpected argument type {}", other.to_token_stream())),
    }
}

pub fn run() -> Result<()> {
    TABLES.iter().try_for_each(generate)
}

fn generate(table: &Table) -> Result<()> {
    let decls = read_decls(table.bindings)?;
    // The NCCL bindings re-export the runtime's types (`cudaStream_t`, …): know those too.
    let mut types = read_types(CUDART_BINDINGS)?;
    let own = read_types(table.bindings)?;
    types.aliases.extend(own.aliases);
    types.newtypes.extend(own.newtypes);
    let golden = read_golden(&table.library)?;
    let golden_file = format!("cuda-sys/abi/{}.symbols", table.library.soname);

    let mut entries = Vec::new();
    let mut fns = Vec::new();
    let mut undeclared = Vec::new();
    for export in &golden {
        let name = export.name.as_str();
        let call = format_ident!("call_{}", name);
        let decl = decls.get(name).or_else(|| decls.get((table.base)(name)));
        let body = match decl {
            Some(d) => {
                let tys: Vec<_> = d.inputs.iter().map(|(_, t)| t).collect();
                let zero: Vec<_> = tys.iter().map(|_| quote!(zeroed())).collect();
                let mut garbage = Vec::new();
                for t in &tys {
                    garbage.push(
                        match classify(t, &types, table.garbage_handles, 0).map_err(|e| format!("{name}: {e}"))? {
                            Kind::Scalar | Kind::Handle => quote!(ones()),
                            Kind::Pointer | Kind::Aggregate => quote!(zeroed()),
                        },
                    );
                }
                let (ret, result) = match &d.output {
                    None => (quote!(()), quote!(Returned::Nothing)),
                    Some(t) if t.to_token_stream().to_string() == table.status => {
                        (quote!(#t), quote!(Returned::Status(r.0 as u32)))
                    }
                    Some(t @ syn::Type::Ptr(_)) => (quote!(#t), quote!(Returned::Pointer(r as usize))),
                    Some(t) => (quote!(#t), quote!(Returned::Other)),
                };
                quote! {
                    let f = transmute::<*mut c_void, unsafe extern "C" fn(#(#tys),*) -> #ret>(sym);
                    #[allow(unused_variables)]
                    let r = match args { Args::Zero => f(#(#zero),*), Args::Garbage => f(#(#garbage),*) };
                    #result
                }
            }
            None => {
                undeclared.push(name.to_string());
                quote! {
                    let f = transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(sym);
                    let _ = args;
                    Returned::Status(f() as u32)
                }
            }
        };
        fns.push(quote! {
            unsafe fn #call(sym: *mut c_void, args: Args) -> Returned { #body }
        });
        entries.push(quote!(Export { name: #name, call: #call }));
    }

    let count = golden.len();
    let sys =
        if table.bindings == NCCL_BINDINGS { quote!(phantom_cuda_sys::nccl::*) } else { quote!(phantom_cuda_sys::*) };
    let file: syn::File = syn::parse2(quote! {
        use super::{ones, Args, Export, Returned};
        use #sys;
        use std::ffi::c_void;
        use std::mem::{transmute, zeroed};

        /// Every export of the golden list, in its order.
        pub static EXPORTS: [Export; #count] = [#(#entries),*];

        #(#fns)*
    })
    .map_err(|e| format!("generated code does not parse: {e}"))?;
    let header = format!(
        "// @generated by `cargo xtask fuzzgen` from {} and {golden_file}.\n\
         // Do not edit: regenerate instead (docs/testing.md). {} exports, {} called as `fn() -> i32` (no C declaration).\n\
         #![allow(non_snake_case, clippy::all, unused_unsafe)]\n\n",
        table.bindings,
        count,
        undeclared.len()
    );
    let dir = workspace_root().join("tests/src/generated");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join(table.out);
    std::fs::write(&out, header + &prettyplease::unparse(&file)).map_err(|e| format!("cannot write: {e}"))?;
    eprintln!("wrote {} ({count} exports; without declaration: {})", out.display(), undeclared.join(" "));
    Ok(())
}
