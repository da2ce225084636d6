//! The expansion of `select!`: pin every future, poll them on the bubble-aware `block_on` (or
//! once, with `default`) in a fresh random order each time (in written order with `biased;`),
//! then run the winning branch's body.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::parse::Select;
use crate::common::private;

pub(super) fn expand(select: &Select) -> TokenStream {
    let private = private();
    let count = select.branches.len();
    let futures: Vec<_> = (0..count).map(|i| format_ident!("__gonext_select_future_{}", i)).collect();
    let variants: Vec<_> = (0..count).map(|i| format_ident!("Branch{}", i)).collect();
    let type_params: Vec<_> = (0..count).map(|i| format_ident!("T{}", i)).collect();
    let pin_futures = select.branches.iter().zip(&futures).map(|(branch, name)| {
        let future = &branch.future;
        quote!(let mut #name = ::core::pin::pin!(#future);)
    });
    let polls = select.branches.iter().zip(&futures).zip(&variants).enumerate().map(|(i, ((branch, name), variant))| {
        let pat = &branch.pat;
        quote! {
            #i => if !__gonext_disabled[#i] {
                let marker = #private::PendingMarker::new();
                if let ::core::task::Poll::Ready(output) = ::core::future::Future::poll(#name.as_mut(), cx) {
                    #[allow(unused_variables, irrefutable_let_patterns, clippy::redundant_pattern_matching)]
                    let matched = ::core::matches!(&output, #pat);
                    if matched {
                        return ::core::task::Poll::Ready(__GonextSelected::#variant(output));
                    }
                    __gonext_disabled[#i] = true;
                } else {
                    marker.foreign_if_silent(::core::panic::Location::caller());
                }
            },
        }
    });
    let arms = select.branches.iter().zip(&variants).map(|(branch, variant)| {
        let (pat, body) = (&branch.pat, &branch.body);
        quote!(::core::option::Option::Some(__GonextSelected::#variant(#pat)) => #body,)
    });
    let has_default = !select.defaults.is_empty();
    let order = match select.biased {
        Some(_) => quote!(0..#count),
        None => quote!(#private::select_order::<#count>()),
    };
    let fallback = match select.defaults.first() {
        Some(default) => {
            let body = &default.body;
            quote!(::core::option::Option::None | ::core::option::Option::Some(__GonextSelected::Disabled) => #body,)
        }
        None => quote! {
            ::core::option::Option::None | ::core::option::Option::Some(__GonextSelected::Disabled) => {
                ::core::panic!("select!: every branch completed without matching its pattern, and there is no `default`")
            }
        },
    };
    quote! {{
        enum __GonextSelected<#(#type_params),*> { #(#variants(#type_params),)* Disabled }
        #(#pin_futures)*
        let mut __gonext_disabled = [false; #count];
        let __gonext_selected = #private::select(
            #has_default,
            ::core::panic::Location::caller(),
            |cx: &mut ::core::task::Context<'_>| {
                for __gonext_branch in #order {
                    match __gonext_branch {
                        #(#polls)*
                        _ => ::core::unreachable!(),
                    }
                }
                if __gonext_disabled.iter().all(|disabled| *disabled) {
                    return ::core::task::Poll::Ready(__GonextSelected::Disabled);
                }
                ::core::task::Poll::Pending
            },
        );
        #[allow(unreachable_patterns)]
        match __gonext_selected {
            #(#arms)*
            #fallback
            ::core::option::Option::Some(_) => ::core::unreachable!(),
        }
    }}
}
