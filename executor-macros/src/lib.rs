//! The `pool!` macro of the [`executor`](https://docs.rs/executor) crate.
//!
//! The macro is a pipeline of plain functions over a typed model, one stage per module:
//! `ast` parses the input, `valid` checks it, `rewrite` turns each `submit(...)` call in the body
//! into a call on the pool, and `expand` generates the block that opens, uses and joins the pool.

mod ast;
mod expand;
mod rewrite;
mod valid;

use proc_macro::TokenStream;
use syn::visit_mut::VisitMut;

/// Runs the `submit(f, args...)` calls in a block concurrently and waits for all of them when the
/// block is left.
///
/// ```
/// use executor::pool;
///
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// let sums: Vec<u64> = pool!(Thread(max_workers = 2) => {
///     let futures: Vec<_> = (0..10).map(|i| submit(add, i, 100)).collect();
///     futures.into_iter().map(|f| f.result().unwrap()).collect()
/// });
/// assert_eq!(sums, (100..110).collect::<Vec<_>>());
/// ```
///
/// See the crate documentation of `executor` for the full contract.
#[proc_macro]
pub fn pool(input: TokenStream) -> TokenStream {
    expand_pool(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_pool(input: proc_macro2::TokenStream) -> syn::Result<proc_macro2::TokenStream> {
    let mut input: ast::PoolInput = syn::parse2(input)?;
    let backend = valid::validate(&input)?;
    let scope = rewrite::scope_ident();
    let binder = match backend {
        valid::Backend::Thread => "bind",
        // Mpi workers run the same executable and take calls as Process workers do.
        valid::Backend::Process | valid::Backend::Mpi => "remote",
    };
    let mut rewriter = rewrite::SubmitRewriter::new(scope.clone(), binder);
    rewriter.visit_block_mut(&mut input.body);
    rewriter.into_result()?;
    Ok(expand::expand(input, backend, scope))
}
