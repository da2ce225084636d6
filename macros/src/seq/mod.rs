//! `seq!`, `stream!`, `try_seq!` and `try_stream!`: generator blocks with the real `yield`
//! keyword, parsed, rewritten (which checks every rule) and wrapped in a generator.

mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::generator::body::Flavor;

/// Which of the four block macros is expanded.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub(crate) flavor: Flavor,
    /// `try_seq!` / `try_stream!`: `?` ends the block with an `Err` item, `yield v` yields `Ok(v)`.
    pub(crate) is_try: bool,
}

pub(crate) fn generator_block(input: TokenStream, block: Block) -> syn::Result<TokenStream> {
    let stmts = parse::parse(input)?;
    expand::expand(stmts, block)
}
