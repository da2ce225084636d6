//! The block as a generator: the rewritten statements in the body of an `Iterator` or
//! `Stream` generator, inside a `Result`-returning block for the try forms.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Stmt};

use super::Block;
use crate::common::private;
use crate::generator::body::{self, Flavor, Rules, yielder};

pub(super) fn expand(mut stmts: Vec<Stmt>, block: Block) -> syn::Result<TokenStream> {
    let rules = Rules {
        flavor: block.flavor,
        question: (!block.is_try).then_some(match block.flavor {
            Flavor::Iterator => {
                "`?` needs a block whose items are `Result`s: use `try_seq!` instead of `seq!`"
            }
            Flavor::Stream => {
                "`?` needs a block whose items are `Result`s: use `try_stream!` instead of `stream!`"
            }
        }),
        try_return: block.is_try,
        wrap_ok: block.is_try,
        yield_from: None,
    };
    let yields = body::rewrite(rules, &mut stmts)?;
    let private = private();
    let yielder = yielder();
    // Without a yield nothing would fix the item type: it is `()`, as in async-stream.
    let item = match (yields, block.is_try) {
        (0, false) => quote!(()),
        (0, true) => quote!(::core::result::Result<(), _>),
        _ => quote!(_),
    };
    let constructor = match block.flavor {
        Flavor::Iterator => quote!(#private::Generator),
        Flavor::Stream => quote!(#private::AsyncGenerator),
    };
    let body = if block.is_try { try_body(&stmts) } else { quote!(#(#stmts)*) };
    Ok(quote! {
        #constructor::new(move |#yielder: #private::Yielder<#item>| async move { #body })
    })
}

/// The statements run in a block returning `Result`; its error becomes the last item.
fn try_body(stmts: &[Stmt]) -> TokenStream {
    let yielder = yielder();
    let result = Ident::new("__gonext_result", Span::mixed_site());
    quote! {
        let #result: ::core::result::Result<(), _> = async move {
            #(#stmts)*
            #[allow(unreachable_code)]
            ::core::result::Result::Ok(())
        }
        .await;
        if let ::core::result::Result::Err(error) = #result {
            #yielder.yield_(::core::result::Result::Err(error)).await;
        }
    }
}
