//! Named backends: `backend!(Fetch = Thread(max_workers = 16));` declares a name that blocks use
//! as a keyword, `pool!(Fetch => { ... })`, so that a program switches the backend of every such
//! block by changing one line (or a `cfg` over two).
//!
//! A proc macro keeps no state between invocations, so the name is carried by the compiler:
//! `backend!` checks the backend and its options as `pool!` would, then expands to a
//! `macro_rules!` macro of that name which re-opens the block on the backend it names, with its
//! options first and the block's own after them:
//!
//! ```text
//! pool!(Fetch(thread_name_prefix = "f") => { .. })
//!   -> Fetch! { @executor_pool (thread_name_prefix = "f") => { .. } }
//!   -> ::concurrent_futures::pool!(Thread(max_workers = 16, thread_name_prefix = "f") => { .. })
//! ```
//!
//! So an option given in both places is the `pool!`'s duplicate-option error, at the block's
//! token, and one its backend refuses is that backend's error. A name that is declared nowhere is
//! the compiler's "cannot find macro `Name` in this scope", at the name, with a suggestion when a
//! declared name is close; a near miss of a built-in keyword (`Thred`) keeps `pool!`'s own
//! "unknown backend" error. Like any `macro_rules!` macro, the name is visible after its
//! declaration, in the same module and the modules declared after it.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{token, Block, Error, Token};

use crate::ast::{parse_options, PoolInput, PoolOption};
use crate::backends::{self, BackendSpec};
use crate::valid;

/// The input of `backend!`: `Name = Backend` or `Name = Backend(name = value, ...)`, and an
/// optional `;`.
pub(crate) struct NamedBackend {
    name: Ident,
    backend: Ident,
    options: Vec<PoolOption>,
}

const EXAMPLE: &str = "as in `backend!(Fetch = Thread(max_workers = 16));`";

impl Parse for NamedBackend {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !input.peek(syn::Ident) {
            return Err(input.error(format!("expected the name to declare, {EXAMPLE}")));
        }
        let name: Ident = input.parse()?;
        if !input.peek(Token![=]) || input.peek(Token![==]) || input.peek(Token![=>]) {
            return Err(input.error(format!("expected `=` after `{name}`, {EXAMPLE}")));
        }
        input.parse::<Token![=]>()?;
        if !input.peek(syn::Ident) {
            return Err(input.error(format!(
                "expected a backend such as `Thread` after `=`, {EXAMPLE}"
            )));
        }
        let backend: Ident = input.parse()?;
        let options = parse_options(input)?;
        if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
        }
        if !input.is_empty() {
            return Err(input.error(format!(
                "unexpected tokens: `backend!` declares one name, {EXAMPLE}"
            )));
        }
        Ok(NamedBackend {
            name,
            backend,
            options,
        })
    }
}

/// The expansion of `backend!(input)`: the macro that stands for the named backend, or the
/// errors (the backend and its options are checked here, where they are written).
pub(crate) fn declare(input: TokenStream) -> TokenStream {
    match syn::parse2::<NamedBackend>(input).and_then(|named| expand(&named)) {
        Ok(tokens) => tokens,
        Err(error) => error.into_compile_error(),
    }
}

fn expand(named: &NamedBackend) -> syn::Result<TokenStream> {
    if backends::lookup(&named.name.to_string()).is_some() {
        return Err(Error::new(
            named.name.span(),
            format!(
                "`{}` is a built-in backend; a named backend needs a name of its own",
                named.name
            ),
        ));
    }
    // Checked as `pool!` checks a block's options: the same errors, at the same tokens.
    let checked = PoolInput {
        backend: named.backend.clone(),
        options: named
            .options
            .iter()
            .map(|o| PoolOption {
                name: o.name.clone(),
                value: o.value.clone(),
            })
            .collect(),
        body: Block {
            brace_token: token::Brace::default(),
            stmts: Vec::new(),
        },
    };
    let spec: &BackendSpec = valid::backend(&checked)?;
    valid::options(&checked, spec)?;

    let name = &named.name;
    let backend = &named.backend;
    let options: Vec<TokenStream> = named
        .options
        .iter()
        .map(|PoolOption { name, value }| quote!(#name = #value))
        .collect();
    let (alone, with_more) = if options.is_empty() {
        (quote!(#backend), quote!(#backend($($option)+)))
    } else {
        (
            quote!(#backend(#(#options),*)),
            quote!(#backend(#(#options),*, $($option)+)),
        )
    };
    let facade = crate::facade::path();
    let misuse = format!(
        "`{name}` is a backend declared with `backend!`: use it as `pool!({name} => {{ ... }})`"
    );
    Ok(quote_spanned! {name.span()=>
        #[allow(unused_macros)]
        macro_rules! #name {
            (@executor_pool () $($rest:tt)*) => {
                #facade::pool!(#alone $($rest)*)
            };
            (@executor_pool ($($option:tt)+) $($rest:tt)*) => {
                #facade::pool!(#with_more $($rest)*)
            };
            ($($other:tt)*) => {
                ::core::compile_error!(#misuse)
            };
        }
    })
}

/// Whether `name`, not a backend of the table, reads as a mistyped one (`Thred`, `thread`,
/// `Proces`): then `pool!` reports it as an unknown backend rather than look for a named one.
pub(crate) fn near_builtin(name: &str) -> bool {
    // One edit away, or two in a name of five letters or more: `Cpu` is not a mistyped `Mpi`.
    let most = if name.chars().count() >= 5 { 2 } else { 1 };
    backends::BACKENDS
        .iter()
        .any(|spec| spec.name.eq_ignore_ascii_case(name) || edit_distance(spec.name, name) <= most)
}

/// `pool!(Name(options) => { .. })` for a name that is not a built-in backend: the call of the
/// macro `backend!` declared for it, which re-opens the block on its backend.
pub(crate) fn delegate(input: &PoolInput) -> TokenStream {
    let name = &input.backend;
    let options = input
        .options
        .iter()
        .map(|PoolOption { name, value }| quote!(#name = #value));
    let body = &input.body;
    quote! {
        #name! { @executor_pool (#(#options),*) => #body }
    }
}

/// The Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(tokens: TokenStream) -> String {
        declare(tokens).to_string()
    }

    #[test]
    fn a_declaration_expands_to_a_macro_that_reopens_the_block() {
        let out = declared(quote!(Fetch = Thread(max_workers = 16);));
        assert!(out.contains("macro_rules ! Fetch"), "{out}");
        assert!(
            out.contains(
                ":: concurrent_futures :: pool ! (Thread (max_workers = 16) $ ($ rest) *)"
            ),
            "{out}"
        );
        assert!(
            out.contains("Thread (max_workers = 16 , $ ($ option) +)"),
            "{out}"
        );
        let bare = declared(quote!(Quick = Process));
        assert!(
            bare.contains(":: concurrent_futures :: pool ! (Process $ ($ rest) *)"),
            "{bare}"
        );
    }

    #[test]
    fn a_declaration_is_checked_as_a_block_would_be() {
        let refused = declared(quote!(Fetch = Thread(timeout = t)));
        assert!(
            refused.contains("the Thread backend has no `timeout`"),
            "{refused}"
        );
        let unknown = declared(quote!(Fetch = Fibers));
        assert!(unknown.contains("unknown backend `Fibers`"), "{unknown}");
        let builtin = declared(quote!(Thread = Process));
        assert!(builtin.contains("is a built-in backend"), "{builtin}");
        let twice = declared(quote!(Fetch = Thread(max_workers = 2, max_workers = 3)));
        assert!(twice.contains("duplicate option"), "{twice}");
    }

    #[test]
    fn near_misses_of_the_keywords_are_not_names() {
        for name in ["Thred", "thread", "Proces", "Autto", "process"] {
            assert!(near_builtin(name), "{name}");
        }
        for name in ["Fetch", "Fibers", "Crunch", "Io", "Cpu"] {
            assert!(!near_builtin(name), "{name}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
