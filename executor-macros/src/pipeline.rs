//! The whole macro, stage by stage: parse (`ast`), check (`valid`), rewrite the `submit`/`map`
//! calls (`rewrite`), generate the block (`expand`); on an error, `fallback` says what to emit
//! with it. Apart from `lib.rs`, which only converts between `proc_macro` and `proc_macro2`
//! tokens, this is what `pool!` runs; the fuzz target `fuzz/fuzz_targets/pool_input.rs` includes
//! this file to run the same pipeline.

use proc_macro2::TokenStream;
use syn::visit_mut::VisitMut;

use crate::backends::{self, BackendSpec};
use crate::{ast, expand, fallback, named, rewrite, valid};

/// The expansion of `pool!(input)`: always one expression, the pool's block or, for an input with
/// errors, the errors with as much of the user's block as `fallback` keeps.
pub(crate) fn expand_pool(input: TokenStream) -> TokenStream {
    let parsed: syn::Result<ast::PoolInput> = syn::parse2(input.clone());
    let input = match parsed {
        Ok(input) => input,
        Err(error) => {
            let kept = fallback::salvage(input).map(|(backend, input)| generate(input, backend));
            return fallback::expand(error, kept);
        }
    };
    let name = input.backend.to_string();
    if backends::lookup(&name).is_none() && !named::near_builtin(&name) {
        // Not a keyword: a name declared with `backend!`, whose macro re-opens the block.
        return named::delegate(&input);
    }
    let backend = match valid::backend(&input) {
        Ok(backend) => backend,
        Err(error) => return fallback::expand(error, None),
    };
    if let Err(error) = valid::options(&input, backend) {
        let without_options = ast::PoolInput {
            options: Vec::new(),
            ..input
        };
        return fallback::expand(error, Some(generate(without_options, backend)));
    }
    generate(input, backend)
}

/// Rewrites the body's calls for the backend and generates the block. A call that cannot be
/// rewritten is left as its error, in place (see `rewrite`); one inside a macro's arguments, which
/// the macro may drop, is reported instead of the block.
fn generate(mut input: ast::PoolInput, backend: &BackendSpec) -> TokenStream {
    let scope = rewrite::scope_ident();
    let mut rewriter = rewrite::SubmitRewriter::new(scope.clone(), backend);
    rewriter.visit_block_mut(&mut input.body);
    if let Some(errors) = rewriter.errors_in_macros() {
        return fallback::expand(errors, None);
    }
    expand::expand(&input, backend, &scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expansion(tokens: TokenStream) -> String {
        let expansion = expand_pool(tokens);
        assert!(
            syn::parse2::<syn::Expr>(expansion.clone()).is_ok(),
            "not an expression: {expansion}"
        );
        expansion.to_string()
    }

    #[test]
    fn a_valid_input_opens_the_backends_scope() {
        let out = expansion(quote!(Thread(max_workers = 2) => { submit(f, 1) }));
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains(
                "unsafe { :: concurrent_futures :: __private :: ThreadScope :: new (__executor_options) }"
            ),
            "{out}"
        );
        assert!(out.contains("bind1 (f , 1)"), "{out}");
        let out = expansion(quote!(Process => { submit(f, 1) }));
        assert!(
            out.contains(
                "= :: concurrent_futures :: __private :: ProcessScope :: new (__executor_options) ;"
            ),
            "{out}"
        );
        assert!(out.contains("remote1"), "{out}");
    }

    #[test]
    fn an_invalid_option_keeps_the_body_without_the_options() {
        let out = expansion(quote!(Thread(timeout = t, max_workers = 2) => {
            let local = 1;
            submit(f, local).result()
        }));
        assert!(
            out.starts_with("{ :: core :: compile_error ! { \"the Thread backend has no `timeout`"),
            "{out}"
        );
        assert!(out.contains("let local = 1 ;"), "{out}");
        assert!(
            out.contains(
                "__executor_scope . submit (:: concurrent_futures :: __private :: bind1 (f , local))"
            ),
            "{out}"
        );
        assert!(out.contains("ThreadScope :: new"), "{out}");
        assert!(!out.contains("max_workers (2)"), "{out}");
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
    }

    #[test]
    fn options_that_do_not_parse_keep_the_body() {
        let out = expansion(quote!(Process(max_wor) => { submit(f, 1) }));
        assert!(
            out.contains("expected `=` after the option name `max_wor`"),
            "{out}"
        );
        assert!(out.contains("ProcessScope :: new"), "{out}");
        assert!(out.contains("remote1"), "{out}");
    }

    #[test]
    fn an_unknown_backend_keeps_no_body() {
        let out = expansion(quote!(Thred => { submit(f, 1) }));
        assert_eq!(
            out,
            "{ :: core :: compile_error ! { \"unknown backend `Thred`; expected `Thread`, `Auto`, `Process`"
                .to_owned()
                + if cfg!(feature = "mpi") { ", `Mpi`" } else { "" }
                + "\" } }"
        );
    }

    #[test]
    fn another_name_is_handed_to_the_macro_backend_declared_for_it() {
        let out = expansion(quote!(Fetch(thread_name_prefix = "f") => { submit(f, 1) }));
        assert_eq!(
            out,
            "Fetch ! { @ executor_pool (thread_name_prefix = \"f\") => { submit (f , 1) } }"
        );
    }

    #[test]
    fn a_call_that_cannot_be_rewritten_is_its_error_in_place() {
        let out = expansion(quote!(Thread => {
            let n = map(double).count();
            submit(f, n)
        }));
        assert!(
            out.contains("let n = { let _ = (double ,) ; :: core :: compile_error ! { \"map takes a function"),
            "{out}"
        );
        assert!(out.contains("bind1 (f , n)"), "{out}");
        assert!(out.contains("ThreadScope :: new"), "{out}");
    }

    #[test]
    fn a_bad_call_inside_a_macro_is_reported_instead_of_the_body() {
        // `ignore!` could drop its input, and the error in place with it: the block goes.
        let out = expansion(quote!(Thread => {
            ignore!(submit());
            submit(f, 1)
        }));
        assert!(
            out.starts_with("{ :: core :: compile_error ! { \"submit() needs a function to call"),
            "{out}"
        );
        assert!(!out.contains("ThreadScope"), "{out}");
    }
}
