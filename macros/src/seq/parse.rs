//! The block's statements, once `yield from` and `for await` are made parseable.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Block, Stmt};

use crate::generator::tokens::{braced, desugar};

pub(super) fn parse(input: TokenStream) -> syn::Result<Vec<Stmt>> {
    let tokens = braced(desugar(input));
    (|input: syn::parse::ParseStream<'_>| {
        let content;
        syn::braced!(content in input);
        content.call(Block::parse_within)
    })
    .parse2(tokens)
}
