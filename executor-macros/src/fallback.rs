//! What `pool!` emits for an input with errors: the errors, and with them the user's block,
//! expanded as it would be without the mistake, wherever that adds no error of its own.
//!
//! Emitting only `compile_error!` would hide the body from the compiler and from the IDE: while
//! an option is being typed (`pool!(Thread(max_wor) => { ... })`, an error until it is complete),
//! rust-analyzer would see no body, and neither complete nor check anything in it (tokio-macros
//! emits a function's body with its errors for the same reason). So the body is kept when the
//! mistake is outside it and its backend is known:
//!
//! - an option is wrong (`valid`): the block is expanded for the same backend with no options;
//! - the options do not parse (`ast`): the same, if the input still reads as a known backend, an
//!   optional parenthesised group, `=>` and a block that parses;
//! - a `submit`/`map` call cannot be rewritten: that call alone becomes its error (`rewrite`),
//!   and the block expands as usual; nothing here.
//!
//! The errors come first, as statements, and the kept block last, as the value: the block's value
//! has the type its context expects (`let v: Vec<u64> = pool!(...)` infers through it), so keeping
//! it adds no error of inference. The options are dropped rather than kept: their values would be
//! type-checked out of context (a generic `initializer` needs the setter to infer it), and no
//! type in the block depends on them. Since the program does not compile, the kept block never
//! runs. What it can add are only errors the body really has, which the user would meet next.
//!
//! The body is not kept for an unknown backend (or one this build lacks: `Mpi` without its
//! feature), as which one was meant decides whether `submit` takes closures or sendable
//! functions; nor when the input does not read as a backend and a block.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::quote;
use syn::{Block, Error};

use crate::ast::PoolInput;
use crate::backends::{self, BackendSpec};

/// The errors, with the expansion of the kept block if there is one: an expression either way,
/// of the compiler's error type when nothing is kept (so that it fits any context, as a bare
/// `compile_error!` does).
pub(crate) fn expand(errors: Error, kept: Option<TokenStream>) -> TokenStream {
    let errors = errors.into_compile_error();
    quote! {
        {
            #errors
            #kept
        }
    }
}

/// The backend and block of an input that did not parse, if it still reads as
/// `Backend(...) => { ... }` with a known backend and a block that parses; its options are not
/// looked at.
pub(crate) fn salvage(tokens: TokenStream) -> Option<(&'static BackendSpec, PoolInput)> {
    let mut tokens = tokens.into_iter().peekable();
    let backend = match tokens.next()? {
        TokenTree::Ident(ident) => ident,
        _ => return None,
    };
    let spec = backends::lookup(&backend.to_string()).filter(|spec| spec.available())?;
    if let Some(TokenTree::Group(group)) = tokens.peek() {
        if group.delimiter() == Delimiter::Parenthesis {
            tokens.next();
        }
    }
    match (tokens.next()?, tokens.next()?) {
        (TokenTree::Punct(eq), TokenTree::Punct(gt))
            if eq.as_char() == '=' && eq.spacing() == Spacing::Joint && gt.as_char() == '>' => {}
        _ => return None,
    }
    let TokenTree::Group(group) = tokens.next()? else {
        return None;
    };
    if group.delimiter() != Delimiter::Brace {
        return None;
    }
    let body: Block = syn::parse2(TokenStream::from(TokenTree::Group(group))).ok()?;
    let input = PoolInput {
        backend,
        options: Vec::new(),
        body,
    };
    Some((spec, input))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn salvaged(tokens: TokenStream) -> Option<String> {
        salvage(tokens).map(|(spec, input)| {
            let body = &input.body;
            format!("{} {}", spec.name, quote!(#body))
        })
    }

    #[test]
    fn the_block_of_an_input_whose_options_do_not_parse_is_kept() {
        assert_eq!(
            salvaged(quote!(Thread(max_workers 4) => { f(1) })).as_deref(),
            Some("Thread { f (1) }")
        );
        assert_eq!(
            salvaged(quote!(Process => { 1 } + 1)).as_deref(),
            Some("Process { 1 }")
        );
    }

    #[test]
    fn nothing_is_kept_without_a_known_backend_and_a_block_that_parses() {
        assert_eq!(salvaged(quote!()), None);
        assert_eq!(salvaged(quote!(4 => {})), None);
        assert_eq!(salvaged(quote!(Fibers => {})), None);
        assert_eq!(salvaged(quote!(Thread { 1 })), None);
        assert_eq!(salvaged(quote!(Thread => 1 + 1)), None);
        assert_eq!(salvaged(quote!(Thread = > {})), None);
        assert_eq!(salvaged(quote!(Thread => { let = ; })), None);
    }

    #[test]
    #[cfg(not(feature = "mpi"))]
    fn nothing_is_kept_for_a_backend_this_build_lacks() {
        assert_eq!(salvaged(quote!(Mpi(x) => {})), None);
    }

    #[test]
    fn the_errors_come_first_and_the_kept_block_is_the_value() {
        let errors = Error::new(proc_macro2::Span::call_site(), "wrong");
        let expansion = expand(errors.clone(), Some(quote!({ kept }))).to_string();
        assert_eq!(
            expansion,
            "{ :: core :: compile_error ! { \"wrong\" } { kept } }"
        );
        let expansion = expand(errors, None);
        assert!(syn::parse2::<syn::Expr>(expansion).is_ok());
    }
}
