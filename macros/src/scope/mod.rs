//! `scope!` and `try_scope!`: blocks whose `go` statements start tasks that are all joined
//! before the block's value is returned.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

/// Which macro: tasks returning `()` or `Result<(), E>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Infallible,
    Fallible,
}

pub(crate) fn scope(input: TokenStream, flavor: Flavor) -> syn::Result<TokenStream> {
    let raw = parse::parse(input)?;
    let scope = validate::validate(raw)?;
    expand::expand(scope, flavor)
}
