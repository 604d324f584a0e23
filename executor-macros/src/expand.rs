//! Generating: the block that opens the pool, runs the rewritten body and joins.
//!
//! ```text
//! {
//!     let options = { let mut o = PoolOptions::new(); o.max_workers(4); o };   // user values, checked
//!     let pool = unsafe { ThreadScope::new(options) };    // only our tokens inside `unsafe`
//!     let scope = &pool;                                  // what rewritten `submit`s use
//!     let guard = scope.join_guard();                     // joins in `Drop`: pins `'scope`
//!     let value = { BODY };                               // `?`/`return`/`break` act on the caller
//!     let value = { guard.finish(); value };              // join; report unread panics
//!     value
//! }                                                       // early exits join in `Drop`
//! ```
//! Every local is created with mixed-site hygiene, so the body cannot name the pool or the guard:
//! the guard cannot be moved or leaked, which is what makes borrowing tasks sound (its `Drop` always
//! runs before the data they borrow goes away).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Ident;

use crate::ast::PoolInput;
use crate::valid::Backend;

pub fn expand(input: PoolInput, backend: Backend, scope: Ident) -> TokenStream {
    let options = Ident::new("__executor_options", Span::mixed_site());
    let pool = Ident::new("__executor_pool", Span::mixed_site());
    let guard = Ident::new("__executor_guard", Span::mixed_site());
    let value = Ident::new("__executor_value", Span::mixed_site());

    let setters = input
        .options
        .iter()
        .filter(|option| option.name != "initializer" && option.name != "initargs")
        .map(|option| {
            let name = &option.name;
            let value = &option.value;
            quote_spanned! {value.span()=> #options.#name(#value); }
        });
    let initializer = initializer(&input, backend, &options);
    let open = match backend {
        Backend::Thread => quote! {
            // SAFETY: the pool and its join guard live in locals that user code cannot name
            // (mixed-site hygiene), so the guard cannot be leaked: it is dropped, joining every
            // task, before anything the tasks borrow goes out of scope.
            unsafe { ::executor::__private::ThreadScope::new(#options) }
        },
        Backend::Auto => quote! {
            // SAFETY: as for Thread: the guard lives in a local that user code cannot name.
            unsafe { ::executor::__private::ThreadScope::new_auto(#options) }
        },
        // Calls to worker processes borrow nothing once submitted: no invariant to uphold.
        Backend::Process => quote!(::executor::__private::ProcessScope::new(#options)),
        // As for Process: calls are encoded at `submit` and borrow nothing.
        Backend::Mpi => quote!(::executor::__private::MpiScope::new(#options)),
    };
    let body = &input.body;

    quote! {
        {
            let #options = {
                #[allow(unused_mut)]
                let mut #options = ::executor::__private::PoolOptions::new();
                #(#setters)*
                #initializer
                #options
            };
            let #pool = #open;
            let #scope = &#pool;
            let #guard = #scope.join_guard();
            let #value = #body;
            // A body that always leaves early (`return`) makes this unreachable, which is fine.
            #[allow(unreachable_code)]
            let #value = {
                #guard.finish();
                #value
            };
            #value
        }
    }
}

/// `initializer = f` with `initargs = (a, b, ...)` (or one value, or none): each worker calls
/// `f(a, b, ...)` once, before its first task. On Thread the arguments are cloned for each worker;
/// on Process the call is encoded once, as a `submit` would be, and sent in each worker's hello.
fn initializer(input: &PoolInput, backend: Backend, options: &Ident) -> TokenStream {
    let Some(init) = input.options.iter().find(|o| o.name == "initializer") else {
        return TokenStream::new();
    };
    let func = &init.value;
    let args: Vec<&syn::Expr> = match input.options.iter().find(|o| o.name == "initargs") {
        None => Vec::new(),
        Some(option) => match &option.value {
            syn::Expr::Tuple(tuple) => tuple.elems.iter().collect(),
            single => vec![single],
        },
    };
    let span = init.name.span();
    match backend {
        Backend::Thread | Backend::Auto => {
            let values: Vec<Ident> = (0..args.len())
                .map(|i| Ident::new(&format!("__executor_initarg{i}"), Span::mixed_site()))
                .collect();
            let function = Ident::new("__executor_initializer", Span::mixed_site());
            quote_spanned! {span=>
                #options.thread_initializer({
                    let #function = #func;
                    #(let #values = #args;)*
                    ::executor::__private::ThreadInitializer::new(move || {
                        #function(#(::std::clone::Clone::clone(&#values)),*)
                    })
                });
            }
        }
        // On Mpi the call goes to each worker before the block's first call there.
        Backend::Process | Backend::Mpi => {
            let remote = format_ident!("remote{}", args.len(), span = span);
            let call = crate::rewrite::remote_call_value(&remote, func, &args, span);
            quote_spanned! {span=> #options.process_initializer(#call); }
        }
    }
}
