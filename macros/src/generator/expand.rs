//! The expansion: the same signature (minus `async`; a boxed generator's return type named),
//! with a body that builds the generator around the rewritten statements.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Stmt};

use super::body::{self, Flavor, Rules, yielder};
use super::validate::{Boxing, Generator, Kind};
use crate::common::private;

const QUESTION_NEEDS_RESULT: &str = "`?` in a generator needs items of type `Result<T, E>` (the error is yielded, \
                                     then the generator ends); declare such an item type";
const YIELD_FROM_IN_COROUTINE: &str = "yield_from! is not available in a coroutine, whose every yield receives a \
                                       resume argument; yield the items one by one with yield_!";

pub(super) fn expand(generator: Generator) -> syn::Result<TokenStream> {
    let Generator { mut function, flavor, kind, item, is_try, boxing, lifetime, first } = generator;
    let coroutine = matches!(kind, Kind::Coroutine { .. });
    let rules = Rules {
        flavor,
        question: (!coroutine && !is_try).then_some(QUESTION_NEEDS_RESULT),
        try_return: is_try,
        wrap_ok: false,
        yield_from: coroutine.then_some(YIELD_FROM_IN_COROUTINE),
    };
    body::rewrite(rules, &mut function.block.stmts)?;
    let private = private();
    let yielder = yielder();
    let stmts = &function.block.stmts;
    let body = if is_try { try_body(stmts, &item) } else { quote!(#(#stmts)*) };
    let (constructor, yielder_ty, body) = match &kind {
        Kind::Items => {
            let constructor = match (flavor, boxing) {
                (Flavor::Iterator, Boxing::Inline) => quote!(#private::Generator::<#item, _>::new),
                (Flavor::Iterator, Boxing::Boxed) => {
                    quote!(#private::BoxGenerator::<#lifetime, #item>::boxed)
                }
                (Flavor::Iterator, Boxing::BoxedLocal) => {
                    quote!(#private::LocalBoxGenerator::<#lifetime, #item>::boxed_local)
                }
                (Flavor::Stream, Boxing::Inline) => quote!(#private::AsyncGenerator::<#item, _>::new),
                (Flavor::Stream, Boxing::Boxed) => {
                    quote!(#private::BoxAsyncGenerator::<#lifetime, #item>::boxed)
                }
                (Flavor::Stream, Boxing::BoxedLocal) => {
                    quote!(#private::LocalBoxAsyncGenerator::<#lifetime, #item>::boxed_local)
                }
            };
            (constructor, quote!(#private::Yielder<#item>), body)
        }
        Kind::Coroutine { resume } => {
            let constructor = match flavor {
                Flavor::Iterator => quote!(#private::SyncCoroutine::<#item, #resume, _>::new),
                Flavor::Stream => quote!(#private::AsyncStacklessCoroutine::<#item, #resume, _>::new),
            };
            let start = match &first {
                Some((pat, ty)) => quote!(let #pat: #ty = #yielder.first_resume().await;),
                None => quote!(#yielder.first_resume().await;),
            };
            (constructor, quote!(#private::CoYielder<#item, #resume>), quote!(#start #body))
        }
    };
    if let Some(named) = boxed_output(flavor, boxing, &lifetime, &item) {
        function.sig.output = named;
    }
    function.sig.asyncness = None;
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #constructor(move |#yielder: #yielder_ty| async move {
                #body
            })
        }
    })
}

/// The body of a try-generator: the statements run in a block returning `Result`, whose
/// error becomes the last item.
fn try_body(stmts: &[Stmt], item: &syn::Type) -> TokenStream {
    let private = private();
    let yielder = yielder();
    let result = Ident::new("__gonext_result", Span::mixed_site());
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
}

/// The named return type of a boxed generator.
fn boxed_output(
    flavor: Flavor,
    boxing: Boxing,
    lifetime: &syn::Lifetime,
    item: &syn::Type,
) -> Option<syn::ReturnType> {
    let private = private();
    let name = match (flavor, boxing) {
        (_, Boxing::Inline) => return None,
        (Flavor::Iterator, Boxing::Boxed) => quote!(BoxGenerator),
        (Flavor::Iterator, Boxing::BoxedLocal) => quote!(LocalBoxGenerator),
        (Flavor::Stream, Boxing::Boxed) => quote!(BoxAsyncGenerator),
        (Flavor::Stream, Boxing::BoxedLocal) => quote!(LocalBoxAsyncGenerator),
    };
    Some(syn::parse_quote!(-> #private::#name<#lifetime, #item>))
}
