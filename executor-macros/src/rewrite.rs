//! Rewriting: every plain call `submit(f, a1, ..., an)` in the body becomes a call on the pool's
//! hidden scope, `SCOPE.submit(::concurrent_futures::__private::bind<n>(f, a1, ..., an))`.
//!
//! What is rewritten: a call whose function is the bare path `submit` (no `::`, no generics, not a
//! method), anywhere in the body, including closures and the arguments of other macros when those
//! arguments parse as expressions (`vec![submit(f, 1)]`, `println!("{:?}", submit(f, 1).result())`).
//! What is not: nested `pool!` invocations (their own expansion handles their `submit`s) and nested
//! items (`fn`s declared in the block cannot reach the pool).
//!
//! A call that cannot be rewritten (`submit()`, `map(f)`) becomes its compile error, in place; the
//! rest of the body is rewritten and expanded as usual, so the user's code around the mistake is
//! still type-checked and seen by the IDE (see `fallback`).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Error, Expr, ExprCall, ExprMethodCall, ExprPath, Item, Macro, Token};

use crate::backends::{BackendSpec, Placement};

/// The most arguments `submit` passes to the function; `concurrent_futures_runtime::__private::bind<n>`
/// exists for each count up to this.
pub(crate) const MAX_ARGS: usize = 12;

/// The Process form of a `submit` call. The arguments are evaluated first, in order; then each
/// one's type picks how it crosses (`Probe`: owned, or a borrowed `&str`/`&[u8]`), and a borrowed
/// one is re-borrowed for a lifetime local to this call (`Pass`), which is what proves the function
/// cannot keep it. See `concurrent_futures_runtime::remote`.
fn remote_call(
    scope: &Ident,
    remote: &Ident,
    func: &Expr,
    args: &[&Expr],
    span: Span,
    options: Option<TokenStream>,
) -> TokenStream {
    let call = remote_call_value(remote, func, args, span);
    match options {
        None => quote_spanned! {span=> #scope.submit(#call) },
        Some(options) => {
            let hidden = Ident::new(
                "__executor_call_options",
                Span::mixed_site().located_at(span),
            );
            quote_spanned! {span=>
                {
                    let #hidden = #options;
                    #scope.submit_with(#call, #hidden)
                }
            }
        }
    }
}

/// The options one call may set, as `submit(call(f).<option>(...), args...)`: the method, how
/// many arguments it takes, and the block option whose table row decides whether the backend
/// takes it.
const CALL_OPTIONS: &[(&str, usize, &str)] = &[
    ("timeout", 1, "timeout"),
    ("retries", 1, "retries"),
    ("retry_panics", 0, "retries"),
];

/// `call(f).timeout(d).retries(n)` as the function of a `submit`: `f`, and the option methods in
/// the order written. `None` for any other function expression.
fn per_call_options(func: &Expr) -> Option<(&Expr, Vec<&ExprMethodCall>)> {
    let mut methods = Vec::new();
    let mut current = func;
    while let Expr::MethodCall(method) = current {
        methods.push(method);
        current = &method.receiver;
    }
    let Expr::Call(root) = current else {
        return None;
    };
    if !is_plain_call(&root.func, "call") || root.args.len() != 1 {
        return None;
    }
    methods.reverse();
    Some((&root.args[0], methods))
}

/// The `CallOptions` value that `methods` build, or the error of the first that `backend` does
/// not take (at its name, with the reason the block option gets) or that is not an option.
fn call_options_value(
    backend: &BackendSpec,
    methods: &[&ExprMethodCall],
    span: Span,
) -> Result<TokenStream, Error> {
    let options = Ident::new("__executor_options", Span::mixed_site().located_at(span));
    let facade = crate::facade::path_at(span);
    let mut setters = Vec::new();
    for method in methods {
        let name = method.method.to_string();
        let Some(&(_, arity, block_option)) = CALL_OPTIONS.iter().find(|o| o.0 == name) else {
            return Err(Error::new(
                method.method.span(),
                format!(
                    "unknown call option `.{name}(...)`; `call(f)` takes `.timeout(duration)`, \
                     `.retries(n)` and `.retry_panics()`"
                ),
            ));
        };
        if let Some(why) = backend.refuse(block_option) {
            return Err(Error::new(method.method.span(), why));
        }
        if method.args.len() != arity || method.turbofish.is_some() {
            let expected = if arity == 0 {
                "no argument"
            } else {
                "one argument"
            };
            return Err(Error::new(
                method.method.span(),
                format!("the call option `.{name}(...)` takes {expected}"),
            ));
        }
        let ident = &method.method;
        let args = method.args.iter();
        setters.push(quote_spanned! {method.method.span()=> #options.#ident(#(#args),*); });
    }
    Ok(quote_spanned! {span=>
        {
            let mut #options = #facade::__private::CallOptions::new();
            #(#setters)*
            #options
        }
    })
}

/// The expression that builds the `RemoteCall` of `func(args...)` for a worker process: used by
/// `submit` and by the `initializer` option.
pub(crate) fn remote_call_value(
    remote: &Ident,
    func: &Expr,
    args: &[&Expr],
    span: Span,
) -> TokenStream {
    // Unnameable by user code (mixed-site hygiene), but located at the `submit` call, so that an
    // error about one of them (an argument that is not `Serialize`) is reported there.
    let hidden = |name: String| Ident::new(&name, Span::mixed_site().located_at(span));
    let call = hidden("__executor_call".into());
    let shapes = hidden("__executor_shapes".into());
    let function = hidden("__executor_function".into());
    let values: Vec<Ident> = (0..args.len())
        .map(|i| hidden(format!("__executor_arg{i}")))
        .collect();
    let passed: Vec<Ident> = (0..args.len())
        .map(|i| hidden(format!("__executor_pass{i}")))
        .collect();
    let signature = format_ident!("signature{}", args.len(), span = span);
    let prepared = hidden("__executor_prepared".into());
    let facade = crate::facade::path_at(span);
    // The `unsafe` block carries the macro's span, not the user's: lints such as
    // `#![forbid(unsafe_code)]` apply to code the user wrote, and this block is the macro's. It
    // holds no generic call, so a type error (an argument that is not `Serialize`) is reported at
    // the `remote<n>` call above it, which carries the `submit` call's span.
    let unsafe_call = quote! { unsafe { #prepared.assume_call_local() } };
    // A function given by its path is named, for a worker's death to say what it was running
    // (`type_name` of the function item: free, a `&'static str`). A path is only named, never
    // evaluated, so mentioning it twice is harmless; `callee_name<n>` takes the arguments as they
    // were given (before `Pass` narrows a borrow's lifetime, so that it adds no borrow error of its
    // own: `signature<n>` reports those), so that a generic function's parameters are inferred.
    let name = hidden("__executor_name".into());
    let (name_it, unsafe_call) = match func {
        Expr::Path(_) => {
            let namer = format_ident!("callee_name{}", args.len(), span = span);
            (
                quote! { let #name = #facade::__private::#namer(&#func, #(&#values),*); },
                quote! { #facade::__private::RemoteCall::named(#unsafe_call, #name) },
            )
        }
        _ => (TokenStream::new(), unsafe_call),
    };
    quote_spanned! {span=>
        {
            #[allow(unused_imports)]
            use #facade::__private::{OwnedPass as _, OwnedProbe as _};
            let #call = ();
            #(let #values = #args;)*
            let #shapes = (#(#facade::__private::Probe(&#values).shape(),)*);
            #name_it
            #(let #passed = #facade::__private::Pass(#values).pass(&#call);)*
            let #function = #facade::__private::#signature(#func, #(&#passed),*);
            let #prepared = #facade::__private::#remote(#shapes, #function, #(#passed),*);
            // SAFETY: borrowed arguments went through `Pass` for the lifetime of `#call`, local to
            // this block, and `#function` takes exactly those types (`signature<n>`).
            #unsafe_call
        }
    }
}

/// Rewrites the `submit` calls of a body in place.
pub(crate) struct SubmitRewriter {
    scope: Ident,
    /// Local: a closure through `bind<n>`; remote: a function pointer and encoded arguments.
    placement: Placement,
    /// The backend's row: which per-call options it takes.
    backend: BackendSpec,
    /// Calls replaced so far, rewritten or by their error: a macro's arguments are replaced only
    /// when this grows while visiting them.
    replaced: usize,
    /// The errors, also in the body already; kept for the tests.
    errors: Vec<Error>,
    /// How many macro calls' arguments are being visited: a call that fails in there is also
    /// reported outside the body, since a macro may drop its input (`stringify!`, a user macro),
    /// and the error in place with it.
    in_macro: usize,
    /// The errors of calls inside macro arguments (see `in_macro`).
    errors_in_macros: Vec<Error>,
}

impl SubmitRewriter {
    /// `scope` is the hygienic local that holds `&` the pool's scope.
    pub(crate) fn new(scope: Ident, backend: &BackendSpec) -> Self {
        SubmitRewriter {
            scope,
            placement: backend.placement,
            backend: *backend,
            replaced: 0,
            errors: Vec::new(),
            in_macro: 0,
            errors_in_macros: Vec::new(),
        }
    }

    /// The errors of calls inside a macro's arguments, combined, if any: the block cannot be
    /// kept with them in place (a macro that drops its input would drop the error), so the caller
    /// reports them instead of the block.
    pub(crate) fn errors_in_macros(&mut self) -> Option<Error> {
        let mut errors = std::mem::take(&mut self.errors_in_macros).into_iter();
        let mut first = errors.next()?;
        first.extend(errors);
        Some(first)
    }

    /// The errors found, combined, if any.
    #[cfg(test)]
    pub(crate) fn into_result(self) -> Result<(), Error> {
        let mut errors = self.errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(errors);
                Err(first)
            }
        }
    }

    /// A call that cannot be rewritten, replaced by its error. The error is an expression of
    /// the compiler's error type, which fits whatever the call's context expects, so it causes no
    /// second error there (`map(f).count()` reports only the `map`). The arguments stay, evaluated
    /// and discarded, so that their tokens still reach the compiler and the IDE.
    fn failed(&mut self, call: &ExprCall, error: Error) -> Expr {
        let args: Vec<&Expr> = call.args.iter().collect();
        self.failed_keeping(&args, error)
    }

    /// As [`failed`](Self::failed), keeping `args` (a call whose options are wrong keeps `f`, the
    /// options' arguments and the call's, not `call(...)`, which means nothing outside `submit`).
    fn failed_keeping(&mut self, args: &[&Expr], error: Error) -> Expr {
        let compile_error = error.to_compile_error();
        if self.in_macro > 0 {
            self.errors_in_macros.push(error.clone());
        }
        self.errors.push(error);
        self.replaced += 1;
        let args = args.iter();
        let tokens = quote! {
            {
                let _ = (#(#args,)*);
                #compile_error
            }
        };
        syn::parse2(tokens).expect("a failed call's replacement is an expression")
    }

    fn rewrite(&mut self, call: &ExprCall) -> Expr {
        let submit_span = call.func.span();
        let mut args = call.args.iter();
        let Some(func) = args.next() else {
            let error = Error::new(
                call.paren_token.span.join(),
                "submit() needs a function to call: `submit(f, args...)`",
            );
            return self.failed(call, error);
        };
        let args: Vec<&Expr> = args.collect();
        // `submit(call(f).timeout(d), args...)`: `f`, with options of its own.
        let (func, options) = match per_call_options(func) {
            None => (func, None),
            Some((func, methods)) if methods.is_empty() => (func, None),
            Some((func, methods)) => match call_options_value(&self.backend, &methods, submit_span)
            {
                Ok(options) => (func, Some(options)),
                Err(error) => {
                    let kept: Vec<&Expr> = std::iter::once(func)
                        .chain(methods.iter().flat_map(|method| method.args.iter()))
                        .chain(args.iter().copied())
                        .collect();
                    return self.failed_keeping(&kept, error);
                }
            },
        };
        if args.len() > MAX_ARGS {
            let error = Error::new_spanned(
                args[MAX_ARGS],
                format!(
                    "submit passes at most {MAX_ARGS} arguments to the function; group the rest in a tuple or a struct"
                ),
            );
            return self.failed(call, error);
        }
        self.replaced += 1;
        let binder = self.placement.binder();
        let bind = format_ident!("{binder}{}", args.len(), span = submit_span);
        let scope = &self.scope;
        let facade = crate::facade::path_at(submit_span);
        let tokens = match self.placement {
            Placement::Remote => remote_call(scope, &bind, func, &args, submit_span, options),
            // Every per-call option is refused on threads (above), so none is left here.
            Placement::Local => quote_spanned! {submit_span=>
                #scope.submit(#facade::__private::#bind(#func #(, #args)*))
            },
        };
        syn::parse2(tokens).expect("the rewritten submit call is an expression")
    }

    /// `map(f, items)` or `map(f, items, chunksize)` becomes the pool's `map`, and
    /// `map_unordered(...)` its `map_unordered` (`method`). The chunk size applies to Process;
    /// Thread evaluates and ignores it (as Python's `ThreadPoolExecutor.map`), so the same block
    /// compiles under both keywords.
    fn rewrite_map(&mut self, call: &ExprCall, method: &str) -> Expr {
        let span = call.func.span();
        let args: Vec<&Expr> = call.args.iter().collect();
        if !(2..=3).contains(&args.len()) {
            let error = Error::new(
                call.paren_token.span.join(),
                format!(
                    "{method} takes a function and an iterable, and on Process an optional chunk \
                     size: `{method}(f, items)` or `{method}(f, items, chunksize)`"
                ),
            );
            return self.failed(call, error);
        }
        self.replaced += 1;
        let scope = &self.scope;
        let method = Ident::new(method, span);
        let (func, items) = (args[0], args[1]);
        let tokens = match (self.placement, args.get(2)) {
            (Placement::Remote, Some(chunksize)) => {
                quote_spanned! {span=> #scope.#method(#func, #items, #chunksize) }
            }
            (Placement::Remote, None) => quote_spanned! {span=> #scope.#method(#func, #items, 1) },
            (Placement::Local, Some(chunksize)) => quote_spanned! {span=>
                {
                    let _: usize = #chunksize;
                    #scope.#method(#func, #items)
                }
            },
            (Placement::Local, None) => quote_spanned! {span=> #scope.#method(#func, #items) },
        };
        syn::parse2(tokens).expect("the rewritten map call is an expression")
    }

    /// Rewrites inside a macro's arguments when they parse as expressions. The tokens are replaced
    /// only if something was rewritten, so macros whose input is not expressions are untouched.
    fn rewrite_macro_arguments(&mut self, mac: &mut Macro) {
        self.in_macro += 1;
        self.rewrite_macro_arguments_counted(mac);
        self.in_macro -= 1;
    }

    fn rewrite_macro_arguments_counted(&mut self, mac: &mut Macro) {
        let before = self.replaced;
        let comma_separated = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(mut exprs) = comma_separated.parse2(mac.tokens.clone()) {
            for expr in exprs.iter_mut() {
                self.visit_expr_mut(expr);
            }
            if self.replaced > before {
                mac.tokens = exprs.into_token_stream();
            }
            return;
        }
        // `vec![element; count]`
        let repeat = |input: syn::parse::ParseStream| {
            let element: Expr = input.parse()?;
            let semi: Token![;] = input.parse()?;
            let count: Expr = input.parse()?;
            Ok((element, semi, count))
        };
        if let Ok((mut element, semi, mut count)) = repeat.parse2(mac.tokens.clone()) {
            self.visit_expr_mut(&mut element);
            self.visit_expr_mut(&mut count);
            if self.replaced > before {
                let mut tokens = TokenStream::new();
                element.to_tokens(&mut tokens);
                semi.to_tokens(&mut tokens);
                count.to_tokens(&mut tokens);
                mac.tokens = tokens;
            }
        }
    }
}

/// `submit`, alone: not `a::submit`, not `submit::<T>`, not `<T>::submit`.
fn is_plain_submit(func: &Expr) -> bool {
    is_plain_call(func, "submit")
}

/// Whether `func` is the bare path `name`.
fn is_plain_call(func: &Expr, name: &str) -> bool {
    match func {
        Expr::Path(ExprPath {
            qself: None,
            path,
            attrs,
        }) => {
            attrs.is_empty()
                && path.leading_colon.is_none()
                && path.segments.len() == 1
                && path.segments[0].ident == name
                && path.segments[0].arguments.is_none()
        }
        _ => false,
    }
}

fn is_pool_macro(mac: &Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "pool")
}

impl VisitMut for SubmitRewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // Arguments first, so `submit(f, submit(g).result().unwrap())` rewrites both.
        visit_mut::visit_expr_mut(self, expr);
        if let Expr::Call(call) = expr {
            if is_plain_submit(&call.func) {
                *expr = self.rewrite(call);
            } else if is_plain_call(&call.func, "map") {
                *expr = self.rewrite_map(call, "map");
            } else if is_plain_call(&call.func, "map_unordered") {
                *expr = self.rewrite_map(call, "map_unordered");
            }
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        if !is_pool_macro(mac) {
            self.rewrite_macro_arguments(mac);
        }
    }

    fn visit_item_mut(&mut self, _item: &mut Item) {
        // A nested `fn` or `impl` cannot capture the scope; its `submit` stays unresolved.
    }
}

/// The name of the hidden local holding the scope: mixed-site hygiene makes it invisible to the
/// user's tokens, so no user code can name, move or leak it.
pub(crate) fn scope_ident() -> Ident {
    Ident::new("__executor_scope", Span::mixed_site())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn rewrite(body: TokenStream) -> String {
        let mut block: syn::Block = syn::parse2(body).unwrap();
        let mut rewriter =
            SubmitRewriter::new(scope_ident(), crate::backends::lookup("Thread").unwrap());
        rewriter.visit_block_mut(&mut block);
        rewriter.into_result().unwrap();
        block.into_token_stream().to_string()
    }

    #[test]
    fn plain_calls_are_rewritten_with_their_arity() {
        let out = rewrite(quote!({
            submit(f, 1, 2);
            submit(g)
        }));
        assert!(
            out.contains(
                "__executor_scope . submit (:: concurrent_futures :: __private :: bind2 (f , 1 , 2))"
            ),
            "{out}"
        );
        assert!(out.contains("bind0 (g)"), "{out}");
    }

    #[test]
    fn closures_nested_calls_and_macro_arguments_are_rewritten() {
        let out = rewrite(quote!({
            let v = xs.iter().map(|x| submit(f, *x)).collect::<Vec<_>>();
            submit(f, submit(g).result());
            let w = vec![submit(h, 1)];
            let z = vec![submit(h, 2); 3];
        }));
        assert_eq!(out.matches("__executor_scope").count(), 5, "{out}");
        assert!(!out.replace(". submit (", "").contains("submit ("), "{out}");
    }

    #[test]
    fn qualified_methods_items_and_nested_pools_are_left_alone() {
        let out = rewrite(quote!({
            other::submit(f);
            x.submit(f);
            submit::<u8>(f);
            fn inner() {
                submit(f)
            }
            pool!(Thread => { submit(f) });
            matches!(x, Some(_));
        }));
        assert!(!out.contains("__executor_scope"), "{out}");
    }

    #[test]
    fn a_call_that_cannot_be_rewritten_becomes_its_error_with_its_arguments() {
        let out = rewrite_with_errors(quote!({
            println!("{:?}", map(f).count());
            submit(g, 1)
        }));
        assert!(
            out.contains(
                "println ! (\"{:?}\" , { let _ = (f ,) ; :: core :: compile_error ! { \"map takes"
            ),
            "{out}"
        );
        assert!(out.contains("bind1 (g , 1)"), "{out}");
    }

    /// The rewritten block, errors included, whether or not there are any.
    fn rewrite_with_errors(body: TokenStream) -> String {
        let mut block: syn::Block = syn::parse2(body).unwrap();
        let mut rewriter =
            SubmitRewriter::new(scope_ident(), crate::backends::lookup("Thread").unwrap());
        rewriter.visit_block_mut(&mut block);
        block.into_token_stream().to_string()
    }

    #[test]
    fn call_options_become_the_calls_options_on_process_and_errors_on_threads() {
        let body = quote!({ submit(call(f).timeout(d).retries(2).retry_panics(), 1) });
        let mut block: syn::Block = syn::parse2(body.clone()).unwrap();
        let process = crate::backends::lookup("Process").unwrap();
        let mut rewriter = SubmitRewriter::new(scope_ident(), process);
        rewriter.visit_block_mut(&mut block);
        rewriter.into_result().unwrap();
        let out = block.into_token_stream().to_string();
        assert!(out.contains("CallOptions :: new ()"), "{out}");
        assert!(out.contains(". timeout (d) ;"), "{out}");
        assert!(out.contains(". retries (2) ;"), "{out}");
        assert!(out.contains(". retry_panics () ;"), "{out}");
        assert!(out.contains("__executor_scope . submit_with ("), "{out}");
        assert!(!out.contains("call ("), "{out}");

        let out = rewrite_with_errors(body);
        assert!(
            out.contains("compile_error ! { \"the Thread backend has no `timeout`"),
            "{out}"
        );
        // `f`, the options' arguments and the call's arguments stay; `call(...)` does not.
        assert!(out.contains("let _ = (f , d , 2 , 1 ,)"), "{out}");

        // Without options, `call(f)` is `f`.
        let out = rewrite(quote!({ submit(call(f), 1) }));
        assert!(out.contains("bind1 (f , 1)"), "{out}");
    }

    #[test]
    fn missing_function_and_too_many_arguments_are_errors() {
        let mut block: syn::Block = syn::parse2(quote!({
            submit();
            submit(f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
        }))
        .unwrap();
        let mut rewriter =
            SubmitRewriter::new(scope_ident(), crate::backends::lookup("Thread").unwrap());
        rewriter.visit_block_mut(&mut block);
        let error = rewriter
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>();
        assert_eq!(error.len(), 2);
        assert!(error[0].starts_with("submit() needs a function"));
        assert!(error[1].starts_with("submit passes at most 12 arguments"));
    }
}
