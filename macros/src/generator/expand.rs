//! The expansion: the same signature (minus `async`), with a body that builds the
//! generator around the rewritten statements.

use proc_macro2::TokenStream;
use quote::quote;

use super::body::{Flavor, Rewriter, yielder};
use super::validate::Generator;
use crate::common::private;

pub(super) fn expand(generator: Generator) -> syn::Result<TokenStream> {
    let Generator { mut function, flavor, item, is_try } = generator;
    Rewriter::new(flavor, is_try).rewrite(&mut function.block.stmts)?;
    let private = private();
    let yielder = yielder();
    let stmts = &function.block.stmts;
    let body = if is_try {
        let result = syn::Ident::new("__gonext_result", proc_macro2::Span::mixed_site());
        quote! {
            let #result: ::core::result::Result<(), <#item as #private::TryItem>::Error> = async move {
                #(#stmts)*
                #[allow(unreachable_code)]
                ::core::result::Result::Ok(())
            }
            .await;
            if let ::core::result::Result::Err(error) = #result {
                #yielder.yield_(<#item as #private::TryItem>::from_error(error)).await;
            }
        }
    } else {
        quote!(#(#stmts)*)
    };
    let constructor = match flavor {
        Flavor::Iterator => quote!(#private::Generator::<#item, _>),
        Flavor::Stream => quote!(#private::AsyncGenerator::<#item, _>),
    };
    function.sig.asyncness = None;
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #constructor::new(move |#yielder: #private::Yielder<#item>| async move {
                #body
            })
        }
    })
}
