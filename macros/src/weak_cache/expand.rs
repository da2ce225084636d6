//! The expansion: the original body moved into an inner fn, a `static` cache keyed by the
//! owned arguments, and a companion type (same name as the fn, no values) whose associated
//! fns inspect the cache: `len`, `clear`, `invalidate`, `stats`.
//!
//! The companion is an uninhabited enum with an inherent `impl`, not a module: an `impl`
//! resolves names in the scope the attribute sits in, so the cache and the argument types
//! are found in a fn body too, where a module (whose `super` is the enclosing module, not
//! the block) could not see them.
//!
//! A fn with a reference argument looks its key up by a *probe*: the arguments as passed,
//! hashed and compared borrowed, so a hit allocates nothing; they are owned into a key only
//! on a miss. A fn with only owned arguments owns them into the key up front (for most
//! such keys a copy), which keeps the type errors for an unusable key to `CacheKey`'s.

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
    let by_reference = cached.arguments.iter().any(|a| matches!(a.ty, Type::Reference(_)));
    let lookup = if by_reference {
        probe_lookup(cached, &cache, &inner)
    } else {
        let key = format_ident!("key", span = Span::mixed_site());
        quote! {
            let #key = (#(#owned_keys,)*);
            #private::weak_cache::#load(&#cache, #key, move || #inner(#(#names),*))
        }
    };
    let doc = format!("The cache of [`{name}()`]: inspect it, forget values, read its statistics.");
    let invalidate = invalidate(cached, &cache, by_reference);
    quote! {
        #[allow(non_upper_case_globals)]
        static #cache: #private::WeakCache<(#(#key_types,)*), #value> = #private::WeakCache::new();

        #(#attrs)*
        #vis #sig {
            #inner_sig #block
            #(#key_checks)*
            #lookup
        }

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Debug)]
        #vis enum #name {}

        impl #name {
            /// The number of cached values that are still alive.
            pub fn len() -> usize {
                #private::weak_cache::len(&#cache)
            }

            /// Whether no cached value is alive.
            pub fn is_empty() -> bool {
                #private::weak_cache::len(&#cache) == 0
            }

            /// Forgets every cached value; the next call loads again.
            pub fn clear() {
                #private::weak_cache::clear(&#cache);
            }

            #invalidate

            /// How many calls were answered from the cache (`hits`) and how many ran the
            /// body (`misses`).
            pub fn stats() -> #private::CacheStats {
                #private::weak_cache::stats(&#cache)
            }
        }
    }
}

/// The companion's `invalidate`: the fn's arguments, looked up as a call would look them up.
fn invalidate(cached: &Cached, cache: &proc_macro2::Ident, by_reference: bool) -> TokenStream {
    let private = private();
    let names: Vec<_> = cached.arguments.iter().map(|a| &a.name).collect();
    let types = cached.arguments.iter().map(|a| &a.ty);
    let body = if by_reference {
        let [hasher, key] = ["hasher", "key"].map(|n| format_ident!("{n}", span = Span::mixed_site()));
        let hashes = cached.arguments.iter().map(|argument| {
            let name = &argument.name;
            let arg = match argument.ty {
                Type::Reference(_) => quote!(#name),
                _ => quote!(&#name),
            };
            quote!(#cache.hash_arg(&mut #hasher, #arg);)
        });
        let compares = cached.arguments.iter().enumerate().map(|(i, argument)| {
            let (i, name) = (syn::Index::from(i), &argument.name);
            match &argument.ty {
                Type::Reference(reference) => {
                    let base = &reference.elem;
                    quote!(*::std::borrow::Borrow::<#base>::borrow(&#key.#i) == *#name)
                }
                _ => quote!(#key.#i == #name),
            }
        });
        quote! {
            let mut #hasher = #cache.probe_hasher();
            #(#hashes)*
            #cache.invalidate_by(::std::hash::Hasher::finish(&#hasher), |#key| true #(&& #compares)*)
        }
    } else {
        let owned = names.iter().map(|name| quote!(::std::borrow::ToOwned::to_owned(&#name)));
        quote!(#private::weak_cache::invalidate(&#cache, (#(#owned,)*)))
    };
    quote! {
        /// Forgets the value cached for these arguments (callers holding it keep it); the
        /// next call with them loads again. Returns whether a live value was cached.
        pub fn invalidate(#(#names: #types),*) -> bool {
            #body
        }
    }
}

/// The lookup of a fn with a reference argument: hash the arguments as passed (each hash
/// spanned on its argument), compare them with stored keys through `Borrow`, own them only
/// on a miss, and hand the arguments themselves to the body.
fn probe_lookup(cached: &Cached, cache: &proc_macro2::Ident, inner: &proc_macro2::Ident) -> TokenStream {
    let indices: Vec<syn::Index> = (0..cached.arguments.len()).map(syn::Index::from).collect();
    // Hygienic locals: a user argument may be called `hash` or `key`.
    let [hasher, hash, args, key] =
        ["hasher", "hash", "args", "key"].map(|n| format_ident!("{n}", span = Span::mixed_site()));
    let names: Vec<_> = cached.arguments.iter().map(|a| &a.name).collect();
    let hashes = cached.arguments.iter().map(|argument| {
        let name = &argument.name;
        let arg = match argument.ty {
            Type::Reference(_) => quote!(#name),
            _ => quote!(&#name),
        };
        quote_spanned!(argument.ty.span()=> #cache.hash_arg(&mut #hasher, #arg);)
    });
    let compares = cached.arguments.iter().zip(&indices).map(|(argument, i)| match &argument.ty {
        Type::Reference(reference) => {
            let base = &reference.elem;
            quote!(*::std::borrow::Borrow::<#base>::borrow(&#key.#i) == *#args.#i)
        }
        _ => quote!(#key.#i == #args.#i),
    });
    let owns = cached.arguments.iter().zip(&indices).map(|(argument, i)| match argument.ty {
        Type::Reference(_) => quote!(::std::borrow::ToOwned::to_owned(#args.#i)),
        _ => quote!(::std::borrow::ToOwned::to_owned(&#args.#i)),
    });
    let load = if cached.fallible { quote!(try_get_or_load_by) } else { quote!(get_or_load_by) };
    quote! {
        let mut #hasher = #cache.probe_hasher();
        #(#hashes)*
        let #hash = ::std::hash::Hasher::finish(&#hasher);
        #cache.#load(
            #hash,
            (#(#names,)*),
            |#args, #key| true #(&& #compares)*,
            |#args| (#(#owns,)*),
            move |#args| #inner(#(#args.#indices),*),
        )
    }
}
