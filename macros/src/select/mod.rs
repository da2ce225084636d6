//! `select!`: wait on the first ready of several futures from blocking code.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

pub(crate) fn select(input: TokenStream) -> syn::Result<TokenStream> {
    let select = syn::parse2::<parse::Select>(input)?;
    validate::validate(&select)?;
    Ok(expand::expand(&select))
}
