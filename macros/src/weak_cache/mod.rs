//! `#[weak_cache]`: memoize a fn returning `Ptr<V>` by its arguments, for as long as the
//! value lives.

mod expand;
mod validate;

use proc_macro2::TokenStream;

pub(crate) fn weak_cache(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(args, "#[weak_cache] takes no arguments"));
    }
    let cached = validate::validate(syn::parse2(item)?)?;
    Ok(expand::expand(&cached))
}
