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
use crate::backends::{BackendSpec, Placement};

/// The block for `input`, whose body `rewrite` has already rewritten against `scope`.
pub(crate) fn expand(input: &PoolInput, backend: &BackendSpec, scope: &Ident) -> TokenStream {
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
    let initializer = initializer(input, backend.placement, &options);
    let open = open(backend, &options);
    let body = &input.body;
    let facade = crate::facade::path();

    quote! {
        {
            let #options = {
                #[allow(unused_mut)]
                let mut #options = #facade::__private::PoolOptions::new();
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

/// `::concurrent_futures::__private::<opener>(options)`, from the backend's row; in an `unsafe` block when the
/// constructor is an `unsafe fn`, for the reason the row's `opener.safety` gives (the hidden join
/// guard). The block holds only the macro's own tokens: the options are a local computed before.
fn open(backend: &BackendSpec, options: &Ident) -> TokenStream {
    let path = backend
        .opener
        .path
        .split("::")
        .map(|segment| Ident::new(segment, Span::call_site()));
    let facade = crate::facade::path();
    let call = quote!(#facade::__private:: #(#path)::* (#options));
    match backend.opener.safety {
        // SAFETY: the row's argument (`Opener::safety`); for the thread backends, that the join
        // guard lives in a local the body cannot name, so it always joins before borrows end.
        Some(_) => quote!(unsafe { #call }),
        None => call,
    }
}

/// `initializer = f` with `initargs = (a, b, ...)` (or one value, or none): each worker calls
/// `f(a, b, ...)` once, before its first task. On threads the arguments are cloned for each worker;
/// for worker processes the call is encoded once, as a `submit` would be, and sent in each
/// worker's hello (on Mpi, before the block's first call there).
fn initializer(input: &PoolInput, placement: Placement, options: &Ident) -> TokenStream {
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
    match placement {
        Placement::Local => {
            let values: Vec<Ident> = (0..args.len())
                .map(|i| Ident::new(&format!("__executor_initarg{i}"), Span::mixed_site()))
                .collect();
            let function = Ident::new("__executor_initializer", Span::mixed_site());
            let facade = crate::facade::path_at(span);
            quote_spanned! {span=>
                #options.thread_initializer({
                    let #function = #func;
                    #(let #values = #args;)*
                    #facade::__private::ThreadInitializer::new(move || {
                        #function(#(::std::clone::Clone::clone(&#values)),*)
                    })
                });
            }
        }
        Placement::Remote => {
            let remote = format_ident!("remote{}", args.len(), span = span);
            let call = crate::rewrite::remote_call_value(&remote, func, &args, span);
            quote_spanned! {span=> #options.process_initializer(#call); }
        }
    }
}
