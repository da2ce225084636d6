//! The annotated function, untyped.

use proc_macro2::TokenStream;
use syn::ItemFn;

pub(super) struct Input {
    pub(super) args: TokenStream,
    pub(super) function: ItemFn,
}

pub(super) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Input> {
    Ok(Input { args, function: syn::parse2(item)? })
}
