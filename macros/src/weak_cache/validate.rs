//! The rules of `#[weak_cache]`: a plain (non-generic, non-async, non-method) fn whose
//! arguments are simple bindings and whose return type is `Ptr<V>` or `Result<Ptr<V>, E>`.

use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

pub(super) struct Argument {
    pub(super) name: Ident,
    pub(super) ty: Type,
}

pub(super) struct Cached {
    pub(super) function: ItemFn,
    pub(super) arguments: Vec<Argument>,
    pub(super) value: Type,
    pub(super) fallible: bool,
}

const RETURN: &str = "#[weak_cache] needs the return type `Ptr<V>` or `Result<Ptr<V>, E>`";

pub(super) fn validate(function: ItemFn) -> syn::Result<Cached> {
    let sig = &function.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "#[weak_cache] cannot cache a generic fn: each instantiation would need its own cache",
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        errors.push(syn::Error::new(
            asyncness.span(),
            "#[weak_cache] does not support `async fn`: the singleflight wait would block the executor",
        ));
    }
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new(
                receiver.span(),
                "#[weak_cache] caches free functions; `self` cannot be part of a global cache key",
            )),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
                    arguments.push(Argument { name: binding.ident.clone(), ty: (*typed.ty).clone() });
                }
                other => {
                    errors.push(syn::Error::new(other.span(), "#[weak_cache] arguments must be plain names"));
                }
            },
        }
    }
    let returned = cached_value(&sig.output);
    if let Err(error) = &returned {
        errors.push(error.clone());
    }
    let mut errors = errors.into_iter();
    if let Some(first) = errors.next() {
        return Err(errors.fold(first, |mut all, next| {
            all.combine(next);
            all
        }));
    }
    let (value, fallible) = returned?;
    Ok(Cached { function, arguments, value, fallible })
}

/// `V` and whether the fn is fallible, from `Ptr<V>` / `Result<Ptr<V>, E>`.
fn cached_value(output: &ReturnType) -> syn::Result<(Type, bool)> {
    let ReturnType::Type(_, ty) = output else {
        return Err(syn::Error::new(output.span(), RETURN));
    };
    if let Some(value) = generic_of(ty, "Ptr") {
        return Ok((value, false));
    }
    match generic_of(ty, "Result").and_then(|ok| generic_of(&ok, "Ptr")) {
        Some(value) => Ok((value, true)),
        None => Err(syn::Error::new(ty.span(), RETURN)),
    }
}

/// The first type argument of `ty` when its last path segment is `name`.
fn generic_of(ty: &Type, name: &str) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last().filter(|segment| segment.ident == name)?;
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}
