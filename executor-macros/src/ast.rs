//! Parsing: the syntax of `pool!(BACKEND(name = value, ...) => { ... })`, nothing more.
//! Whether a backend or an option exists is checked afterwards, in `valid`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, parenthesized, token, Block, Expr, Ident, Token};

/// The whole macro input.
pub(crate) struct PoolInput {
    /// The backend's keyword, not yet looked up (`valid` does, in `backends`).
    pub(crate) backend: Ident,
    /// The options in the order written, duplicates included (`valid` reports them).
    pub(crate) options: Vec<PoolOption>,
    /// The block, before its `submit`/`map` calls are rewritten.
    pub(crate) body: Block,
}

/// One `name = value` option.
pub(crate) struct PoolOption {
    pub(crate) name: Ident,
    /// Any expression: literals that can never be right are refused in `valid`, other values are
    /// checked when the block is entered.
    pub(crate) value: Expr,
}

const EXAMPLE: &str =
    "as in `pool!(Thread => { ... })` or `pool!(Thread(max_workers = 4) => { ... })`";

impl Parse for PoolInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(format!("expected a backend, {EXAMPLE}")));
        }
        if !input.peek(Ident) {
            return Err(input.error(format!(
                "expected a backend name such as `Thread`, {EXAMPLE}"
            )));
        }
        let backend: Ident = input.parse()?;
        let options = parse_options(input)?;

        if !input.peek(Token![=>]) {
            return Err(input.error(format!("expected `=>` after the backend, {EXAMPLE}")));
        }
        input.parse::<Token![=>]>()?;

        if !input.peek(token::Brace) {
            return Err(input
                .error("expected a block `{ ... }` after `=>`: the body of a pool! is a block"));
        }
        let content;
        let brace_token = braced!(content in input);
        let stmts = content.call(Block::parse_within)?;
        let body = Block { brace_token, stmts };

        if !input.is_empty() {
            return Err(input.error(
                "unexpected tokens after the block: pool! takes one block and nothing after it",
            ));
        }
        Ok(PoolInput {
            backend,
            options,
            body,
        })
    }
}

/// The options after a backend's name, `(name = value, ...)`, if there are any (also read by
/// `named`, for `backend!(Name = Backend(...))`).
pub(crate) fn parse_options(input: ParseStream) -> syn::Result<Vec<PoolOption>> {
    if !input.peek(token::Paren) {
        return Ok(Vec::new());
    }
    let content;
    parenthesized!(content in input);
    Ok(
        Punctuated::<PoolOption, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect(),
    )
}

impl Parse for PoolOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !input.peek(Ident) {
            return Err(
                input.error("expected an option as `name = value`, such as `max_workers = 4`")
            );
        }
        let name: Ident = input.parse()?;
        if !input.peek(Token![=]) || input.peek(Token![==]) || input.peek(Token![=>]) {
            return Err(input.error(format!(
                "expected `=` after the option name `{name}`: options are `name = value`"
            )));
        }
        input.parse::<Token![=]>()?;
        if input.is_empty() || input.peek(Token![,]) {
            return Err(input.error(format!("expected a value for the option `{name}`")));
        }
        let value: Expr = input.parse()?;
        Ok(PoolOption { name, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse(tokens: proc_macro2::TokenStream) -> syn::Result<PoolInput> {
        syn::parse2(tokens)
    }

    #[test]
    fn backend_options_and_block() {
        let input =
            parse(quote!(Thread(max_workers = 2 + 2, thread_name_prefix = "x") => { 1 })).unwrap();
        assert_eq!(input.backend, "Thread");
        let names: Vec<String> = input.options.iter().map(|o| o.name.to_string()).collect();
        assert_eq!(names, ["max_workers", "thread_name_prefix"]);
        assert_eq!(input.body.stmts.len(), 1);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let message = |tokens| {
            parse(tokens)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(message(quote!()).contains("expected a backend"));
        assert!(message(quote!(Thread { 1 })).contains("expected `=>`"));
        assert!(message(quote!(Thread => 1)).contains("expected a block"));
        assert!(message(quote!(Thread => { 1 } 2)).contains("unexpected tokens after the block"));
        assert!(message(quote!(Thread(max_workers 4) => {}))
            .contains("expected `=` after the option name"));
        assert!(message(quote!(Thread(max_workers = ) => {})).contains("expected a value"));
    }
}
