//! `#[virtual_time_test]`: a `#[test]` whose body runs in a virtual-time bubble.

mod expand;
mod parse;
pub(crate) mod validate;

use proc_macro2::TokenStream;

pub(crate) fn virtual_time_test(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let input = parse::parse(args, item)?;
    let test = validate::validate(input)?;
    Ok(expand::expand(&test))
}
