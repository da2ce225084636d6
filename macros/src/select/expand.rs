//! The expansion of `select!`: pin every future, poll them in order on the bubble-aware
//! `block_on` (or once, with `default`), then run the winning branch's body.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::parse::Select;
use crate::common::private;

pub(super) fn expand(select: &Select) -> TokenStream {
    let private = private();
    let futures: Vec<_> = (0..select.branches.len()).map(|i| format_ident!("__gonext_select_future_{}", i)).collect();
    let variants: Vec<_> = (0..select.branches.len()).map(|i| format_ident!("Branch{}", i)).collect();
    let pin_futures = select.branches.iter().zip(&futures).map(|(branch, name)| {
        let future = &branch.future;
        quote!(let mut #name = ::core::pin::pin!(#future);)
    });
    let polls = futures.iter().zip(&variants).map(|(name, variant)| {
        quote! {
            if let ::core::task::Poll::Ready(output) = ::core::future::Future::poll(#name.as_mut(), cx) {
                return ::core::task::Poll::Ready(__GonextSelected::#variant(output));
            }
        }
    });
    let arms = select.branches.iter().zip(&variants).map(|(branch, variant)| {
        let (pat, body) = (&branch.pat, &branch.body);
        quote!(::core::option::Option::Some(__GonextSelected::#variant(#pat)) => #body,)
    });
    let has_default = !select.defaults.is_empty();
    let default_arm = match select.defaults.first() {
        Some(default) => {
            let body = &default.body;
            quote!(::core::option::Option::None => #body,)
        }
        None => quote!(::core::option::Option::None => ::core::unreachable!(),),
    };
    let type_params: Vec<_> = (0..select.branches.len()).map(|i| format_ident!("T{}", i)).collect();
    quote! {{
        enum __GonextSelected<#(#type_params),*> { #(#variants(#type_params)),* }
        #(#pin_futures)*
        let __gonext_selected = #private::select(
            #has_default,
            ::core::panic::Location::caller(),
            |cx: &mut ::core::task::Context<'_>| {
                #(#polls)*
                ::core::task::Poll::Pending
            },
        );
        match __gonext_selected {
            #(#arms)*
            #default_arm
        }
    }}
}
