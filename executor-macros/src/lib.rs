//! The `pool!` macro of the [`concurrent-futures`](https://docs.rs/concurrent-futures) crate.
//!
//! The macro is a pipeline of plain functions over a typed model, one stage per module:
//! `ast` parses the input, `valid` checks it, `rewrite` turns each `submit(...)` call in the body
//! into a call on the pool, and `expand` generates the block that opens, uses and joins the pool;
//! `pipeline` runs them in that order. What differs between backends is one row each in
//! `backends`, which the stages read. On an error, `fallback` emits the user's block with the
//! error where it can, so that the compiler and the IDE still see the body. `named` is
//! `backend!`: a name for a backend and its options, which blocks use as their keyword.

mod ast;
mod backends;
mod expand;
mod facade;
mod fallback;
mod named;
mod pipeline;
mod rewrite;
mod valid;

use proc_macro::TokenStream;

/// Runs the `submit(f, args...)` calls in a block concurrently and waits for all of them when the
/// block is left.
///
/// ```
/// use concurrent_futures::pool;
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
/// See the crate documentation of `concurrent-futures` for the full contract.
#[proc_macro]
pub fn pool(input: TokenStream) -> TokenStream {
    pipeline::expand_pool(input.into()).into()
}

/// Declares a named backend: `backend!(Fetch = Thread(max_workers = 16));`, then
/// `pool!(Fetch => { ... })` in any number of blocks runs them on that backend with those options
/// (and any the block adds). Switch a whole program by changing the one line, or with a `cfg`:
///
/// ```
/// use concurrent_futures::{backend, pool};
///
/// #[cfg(feature = "no-such-feature")]
/// backend!(Work = Process(max_workers = 2));
/// #[cfg(not(feature = "no-such-feature"))]
/// backend!(Work = Thread(max_workers = 2));
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let total: u64 = pool!(Work => {
///     (1..=3).map(|x| submit(square, x)).map(|f| f.result().unwrap()).sum()
/// });
/// assert_eq!(total, 14);
/// ```
///
/// The backend and its options are checked here, as `pool!` checks a block's. The name is a
/// `macro_rules!` macro underneath: it is visible after its declaration, in the same module and in
/// the modules declared after it; a name declared nowhere is the compiler's "cannot find macro".
#[proc_macro]
pub fn backend(input: TokenStream) -> TokenStream {
    named::declare(input.into()).into()
}
