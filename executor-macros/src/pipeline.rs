//! The whole macro, stage by stage: parse (`ast`), check (`valid`), rewrite the `submit`/`map`
//! calls (`rewrite`), generate the block (`expand`). Apart from `lib.rs`, which only converts
//! between `proc_macro` and `proc_macro2` tokens, this is what `pool!` runs; the fuzz target
//! `fuzz/fuzz_targets/pool_input.rs` includes this file to run the same pipeline.

use proc_macro2::TokenStream;
use syn::visit_mut::VisitMut;

use crate::{ast, expand, rewrite, valid};

/// The expansion of `pool!(input)`, or the errors to report.
pub fn expand_pool(input: TokenStream) -> syn::Result<TokenStream> {
    let mut input: ast::PoolInput = syn::parse2(input)?;
    let backend = valid::validate(&input)?;
    let scope = rewrite::scope_ident();
    let binder = match backend {
        valid::Backend::Thread | valid::Backend::Auto => "bind",
        // Mpi workers run the same executable and take calls as Process workers do.
        valid::Backend::Process | valid::Backend::Mpi => "remote",
    };
    let mut rewriter = rewrite::SubmitRewriter::new(scope.clone(), binder);
    rewriter.visit_block_mut(&mut input.body);
    rewriter.into_result()?;
    Ok(expand::expand(input, backend, scope))
}
