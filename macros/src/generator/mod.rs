//! `#[generator]`: a fn returning `impl Iterator` / `impl Coroutine` (or, `async`,
//! `impl Stream` / `impl AsyncCoroutine`) whose body yields with `yield_!`; and the shared
//! body rewriting used by `seq!`/`stream!` too.

pub(crate) mod body;
mod expand;
mod parse;
pub(crate) mod tokens;
mod validate;

use proc_macro2::TokenStream;

pub(crate) fn generator(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let input = parse::parse(args, item)?;
    let generator = validate::validate(input)?;
    expand::expand(generator)
}
