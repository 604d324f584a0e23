//! Where the facade crate is, seen from the crate that calls the macro: the expansion names the
//! runtime through it (`<facade>::__private::...`), so it must use the name the caller's
//! `Cargo.toml` gives the dependency, which may be renamed (`pool = { package = "concurrent-futures", ... }`).
//! The caller's manifest is read, as well-kept proc-macro crates do, with `proc-macro-crate`.

use proc_macro2::{Ident, Punct, Spacing, Span, TokenStream};
use proc_macro_crate::FoundCrate;
use quote::quote;

/// The facade's package name, as it is published.
const PACKAGE: &str = "concurrent-futures";
/// Its crate name: what the facade calls itself (`extern crate self as ...` in its `lib.rs`), and
/// the name used when the caller's manifest cannot be read (a build without Cargo).
const CRATE: &str = "concurrent_futures";

/// The path of the facade, `::name`, for the crate being compiled, its tokens at `span`: an
/// error about an item reached through it (a bound of `remote1` that an argument does not meet)
/// is reported where the expansion put the path, the user's `submit` call.
pub(crate) fn path_at(span: Span) -> TokenStream {
    let name = match proc_macro_crate::crate_name(PACKAGE) {
        Ok(FoundCrate::Name(name)) => name,
        // The facade itself (its own doctests and tests name it by its crate name), or no
        // manifest to read.
        Ok(FoundCrate::Itself) | Err(_) => CRATE.to_string(),
    };
    let mut colons = Punct::new(':', Spacing::Joint);
    colons.set_span(span);
    let mut second = Punct::new(':', Spacing::Alone);
    second.set_span(span);
    let ident = Ident::new(&name, span);
    quote!(#colons #second #ident)
}

/// [`path_at`] the macro's call site.
pub(crate) fn path() -> TokenStream {
    path_at(Span::call_site())
}
