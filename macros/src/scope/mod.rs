//! `scope!` and `try_scope!`: blocks whose `go` statements start tasks that are all joined
//! before the block's value is returned.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

/// Which macro: thread tasks returning `()` or `Result<(), E>`, or futures polled in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Infallible,
    Fallible,
    Async,
}

pub(crate) fn scope(input: TokenStream, flavor: Flavor) -> syn::Result<TokenStream> {
    let raw = parse::parse(input)?;
    if flavor == Flavor::Async
        && let Some(option) = raw.options.first()
    {
        return Err(syn::Error::new(option.key.span(), "async_scope! takes no options"));
    }
    let scope = validate::validate(raw)?;
    expand::expand(scope, flavor)
}
