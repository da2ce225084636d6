//! The rules of `#[generator]`: no arguments, and a return type `impl Iterator<Item = T>`
//! (sync) or `impl Stream<Item = T>` (`async fn`).

use syn::spanned::Spanned;
use syn::{GenericArgument, ItemFn, PathArguments, ReturnType, Type, TypeParamBound};

use super::body::Flavor;
use super::parse::Input;

pub(super) struct Generator {
    pub(super) function: ItemFn,
    pub(super) flavor: Flavor,
    pub(super) item: Type,
    /// The item type is a `Result`: `?` in the body yields the error and ends the generator.
    pub(super) is_try: bool,
}

pub(super) fn validate(input: Input) -> syn::Result<Generator> {
    if !input.args.is_empty() {
        return Err(syn::Error::new_spanned(input.args, "#[generator] takes no arguments"));
    }
    let function = input.function;
    let (flavor, item) = item_type(&function.sig.output)?;
    match (flavor, &function.sig.asyncness) {
        (Flavor::Iterator, Some(asyncness)) => {
            return Err(syn::Error::new(
                asyncness.span(),
                "an `async` generator returns `impl Stream<Item = T>`; remove `async` to return an Iterator",
            ));
        }
        (Flavor::Stream, None) => {
            return Err(syn::Error::new(
                function.sig.output.span(),
                "a generator returning a Stream must be an `async fn`",
            ));
        }
        _ => {}
    }
    let is_try = is_result(&item);
    Ok(Generator { function, flavor, item, is_try })
}

const EXPECTED: &str = "#[generator] needs the return type `impl Iterator<Item = T>` (or `impl Stream<Item = T>` on an `async fn`)";

/// The flavor and item type of `-> impl Iterator<Item = T>` / `-> impl Stream<Item = T>`.
fn item_type(output: &ReturnType) -> syn::Result<(Flavor, Type)> {
    let ReturnType::Type(_, ty) = output else {
        return Err(syn::Error::new(output.span(), EXPECTED));
    };
    let Type::ImplTrait(bounds) = &**ty else {
        return Err(syn::Error::new(ty.span(), EXPECTED));
    };
    for bound in &bounds.bounds {
        let TypeParamBound::Trait(bound) = bound else { continue };
        let Some(last) = bound.path.segments.last() else { continue };
        let flavor = match last.ident.to_string().as_str() {
            "Iterator" => Flavor::Iterator,
            "Stream" => Flavor::Stream,
            _ => continue,
        };
        let PathArguments::AngleBracketed(args) = &last.arguments else { continue };
        for arg in &args.args {
            if let GenericArgument::AssocType(assoc) = arg
                && assoc.ident == "Item"
            {
                return Ok((flavor, assoc.ty.clone()));
            }
        }
    }
    Err(syn::Error::new(ty.span(), EXPECTED))
}

/// Whether the item type is spelled `Result<…>` (any path ending in `Result`).
fn is_result(item: &Type) -> bool {
    matches!(item, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Result"))
}
