//! `scope!`, `try_scope!`, `async_scope!` and `try_async_scope!`: blocks whose `go`
//! statements start tasks that are all joined before the block's value is returned.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

/// Which macro: tasks on the pool that cannot fail or may (`Result`), or futures polled in
/// place that cannot fail or may.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Infallible,
    Fallible,
    Async,
    TryAsync,
}

pub(crate) fn scope(input: TokenStream, flavor: Flavor) -> syn::Result<TokenStream> {
    let raw = parse::parse(input)?;
    let scope = validate::validate(raw, flavor)?;
    expand::expand(scope, flavor)
}
