//! The expansion: the original body moved into an inner fn, a `static` cache keyed by the
//! owned arguments, and a companion module (same name as the fn) with `len` and `clear`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::validate::Cached;
use crate::common::private;

/// The owned key type of an argument: `&T` keys by `<T as ToOwned>::Owned` (`&str` by
/// `String`), `T` by `<T as ToOwned>::Owned` (itself, for `Clone` types).
fn key_type(ty: &Type) -> TokenStream {
    let base = match ty {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    quote_spanned!(ty.span()=> <#base as ::std::borrow::ToOwned>::Owned)
}

pub(super) fn expand(cached: &Cached) -> TokenStream {
    let private = private();
    let function = &cached.function;
    let (attrs, vis, sig, block) = (&function.attrs, &function.vis, &function.sig, &function.block);
    let name = &sig.ident;
    let value = &cached.value;
    let cache =
        format_ident!("__GONEXT_WEAK_CACHE_{}", name.to_string().to_uppercase(), span = Span::mixed_site());
    let inner = format_ident!("__gonext_uncached_{}", name, span = Span::mixed_site());
    let key_types: Vec<TokenStream> = cached.arguments.iter().map(|a| key_type(&a.ty)).collect();
    let names: Vec<_> = cached.arguments.iter().map(|a| &a.name).collect();
    let key_checks =
        cached.arguments.iter().zip(&key_types).map(
            |(argument, key)| quote_spanned!(argument.ty.span()=> #private::assert_cache_key::<#key>();),
        );
    let owned_keys = cached.arguments.iter().map(|argument| {
        let name = &argument.name;
        match argument.ty {
            Type::Reference(_) => quote!(::std::borrow::ToOwned::to_owned(#name)),
            _ => quote!(::std::borrow::ToOwned::to_owned(&#name)),
        }
    });
    let mut inner_sig = sig.clone();
    inner_sig.ident = inner.clone();
    let load = if cached.fallible { quote!(try_get_or_load) } else { quote!(get_or_load) };
    let doc = format!("The cache of [`{name}`]: inspect or clear it.");
    quote! {
        #[allow(non_upper_case_globals)]
        static #cache: #private::WeakCache<(#(#key_types,)*), #value> = #private::WeakCache::new();

        #(#attrs)*
        #vis #sig {
            #inner_sig #block
            #(#key_checks)*
            let key = (#(#owned_keys,)*);
            #private::weak_cache::#load(&#cache, key, move || #inner(#(#names),*))
        }

        #[doc = #doc]
        #vis mod #name {
            /// The number of cached values that are still alive.
            pub fn len() -> usize {
                #private::weak_cache::len(&super::#cache)
            }

            /// Whether no cached value is alive.
            pub fn is_empty() -> bool {
                len() == 0
            }

            /// Forgets every cached value; the next call loads again.
            pub fn clear() {
                #private::weak_cache::clear(&super::#cache);
            }
        }
    }
}
