//! `seq!` and `stream!`: generator blocks with the real `yield` keyword.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Block;
use syn::parse::Parser;

use crate::common::private;
use crate::generator::body::{Flavor, Rewriter, braced, desugar_yield_from, yielder};

/// Parses the block (after turning `yield from x;` into `yield_from!(x);`), rewrites its
/// yields, and wraps it in a generator of `flavor`.
pub(crate) fn generator_block(input: TokenStream, flavor: Flavor) -> syn::Result<TokenStream> {
    let tokens = braced(desugar_yield_from(input));
    let mut block = (|input: syn::parse::ParseStream<'_>| {
        let content;
        syn::braced!(content in input);
        Ok(Block { brace_token: Default::default(), stmts: content.call(Block::parse_within)? })
    })
    .parse2(tokens)?;
    Rewriter::new(flavor, false).rewrite(&mut block.stmts)?;
    let private = private();
    let yielder = yielder();
    let constructor = match flavor {
        Flavor::Iterator => quote!(#private::Generator),
        Flavor::Stream => quote!(#private::AsyncGenerator),
    };
    let stmts = &block.stmts;
    Ok(quote! {
        #constructor::new(move |#yielder: #private::Yielder<_>| async move { #(#stmts)* })
    })
}
