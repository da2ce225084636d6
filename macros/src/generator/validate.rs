//! The rules of `#[generator]`: the options `boxed` / `boxed_local`; a return type
//! `impl Iterator<Item = T>`, `impl Coroutine<A, Yield = Y, Return = R>` (sync) or
//! `impl Stream<Item = T>`, `impl AsyncCoroutine<…>` (`async fn`); and a `#[resume]`
//! parameter exactly where a coroutine needs one.

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{
    AngleBracketedGenericArguments, GenericArgument, Ident, ItemFn, Lifetime, Pat, PathArguments, ReturnType,
    Type, TypeImplTrait, TypeParamBound,
};

use super::body::Flavor;
use super::parse::{Input, ResumeParam};

/// What the generator is, by its declared return type.
pub(super) enum Kind {
    /// `impl Iterator` / `impl Stream`.
    Items,
    /// `impl Coroutine` / `impl AsyncCoroutine`, resumed with values of `resume`.
    Coroutine { resume: Box<Type> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Boxing {
    Inline,
    Boxed,
    BoxedLocal,
}

pub(super) struct Generator {
    pub(super) function: ItemFn,
    pub(super) flavor: Flavor,
    pub(super) kind: Kind,
    /// The item (or, for a coroutine, yield) type.
    pub(super) item: Type,
    /// The item type is a `Result`: `?` in the body yields the error and ends the generator.
    pub(super) is_try: bool,
    pub(super) boxing: Boxing,
    /// The lifetime bound of the return type (`'static` without one): a boxed body's.
    pub(super) lifetime: Lifetime,
    /// The `#[resume]` parameter's pattern and type.
    pub(super) first: Option<(Pat, Type)>,
}

pub(super) fn validate(input: Input) -> syn::Result<Generator> {
    let Input { options, function, resume } = input;
    let boxing = boxing(&options)?;
    let declared = declared(&function.sig.output)?;
    check_asyncness(&function, declared.flavor)?;
    let (kind, first) = match declared.resume {
        None => {
            if let Some(param) = resume.first() {
                return Err(syn::Error::new_spanned(
                    &param.attr,
                    "#[resume] marks the parameter that receives a coroutine's first `resume` argument; \
                     this generator returns an Iterator or Stream",
                ));
            }
            (Kind::Items, None)
        }
        Some(resume_ty) => {
            if boxing != Boxing::Inline {
                return Err(syn::Error::new_spanned(
                    &options[0],
                    "`boxed` applies to Iterator and Stream generators; box a coroutine as \
                     `Box<dyn Coroutine<…>>` (which implements Coroutine)",
                ));
            }
            let first = first_resume(&resume, &resume_ty, &function.sig.output)?;
            (Kind::Coroutine { resume: Box::new(resume_ty) }, first)
        }
    };
    let is_try = matches!(kind, Kind::Items) && is_result(&declared.item);
    Ok(Generator {
        function,
        flavor: declared.flavor,
        kind,
        item: declared.item,
        is_try,
        boxing,
        lifetime: declared.lifetime,
        first,
    })
}

fn boxing(options: &[Ident]) -> syn::Result<Boxing> {
    let mut boxing = Boxing::Inline;
    for option in options {
        let wanted = match option.to_string().as_str() {
            "boxed" => Boxing::Boxed,
            "boxed_local" => Boxing::BoxedLocal,
            _ => {
                return Err(syn::Error::new_spanned(
                    option,
                    "unknown #[generator] option; expected `boxed` or `boxed_local`",
                ));
            }
        };
        if boxing != Boxing::Inline {
            return Err(syn::Error::new_spanned(
                option,
                "#[generator] takes one of `boxed` or `boxed_local`, once",
            ));
        }
        boxing = wanted;
    }
    Ok(boxing)
}

fn check_asyncness(function: &ItemFn, flavor: Flavor) -> syn::Result<()> {
    match (flavor, &function.sig.asyncness) {
        (Flavor::Iterator, Some(asyncness)) => Err(syn::Error::new(
            asyncness.span(),
            "an `async` generator returns `impl Stream<Item = T>` or `impl AsyncCoroutine<…>`; remove \
             `async` to return an Iterator or Coroutine",
        )),
        (Flavor::Stream, None) => Err(syn::Error::new(
            function.sig.output.span(),
            "a generator returning a Stream or AsyncCoroutine must be an `async fn`",
        )),
        _ => Ok(()),
    }
}

/// The `#[resume]` binding of a coroutine resumed with `resume_ty`.
fn first_resume(
    params: &[ResumeParam],
    resume_ty: &Type,
    output: &ReturnType,
) -> syn::Result<Option<(Pat, Type)>> {
    if let Some(second) = params.get(1) {
        return Err(syn::Error::new_spanned(&second.attr, "a coroutine has one #[resume] parameter"));
    }
    let Some(param) = params.first() else {
        if is_unit(resume_ty) {
            return Ok(None);
        }
        return Err(syn::Error::new_spanned(
            output,
            format!(
                "a coroutine resumed with `{}` receives its first `resume` argument in a parameter marked \
                 `#[resume]` (write `#[resume] _first: {0}` to drop it)",
                spelled(resume_ty)
            ),
        ));
    };
    let Some((pat, ty)) = &param.binding else {
        return Err(syn::Error::new_spanned(&param.arg, "`self` cannot be the #[resume] parameter"));
    };
    if !same_tokens(ty, resume_ty) {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "the #[resume] parameter has type `{}`, but the coroutine is resumed with `{}`",
                spelled(ty),
                spelled(resume_ty)
            ),
        ));
    }
    Ok(Some((pat.clone(), ty.clone())))
}

/// What the return type declares.
struct Declared {
    flavor: Flavor,
    item: Type,
    /// `Some` for coroutines: the resume type (`()` when not written).
    resume: Option<Type>,
    lifetime: Lifetime,
}

const EXPECTED: &str = "#[generator] needs the return type `impl Iterator<Item = T>` or `impl Coroutine<A, Yield = Y, \
                        Return = R>` (`impl Stream<Item = T>` or `impl AsyncCoroutine<…>` on an `async fn`)";

fn declared(output: &ReturnType) -> syn::Result<Declared> {
    let ReturnType::Type(_, ty) = output else {
        return Err(syn::Error::new(output.span(), EXPECTED));
    };
    let Type::ImplTrait(bounds) = &**ty else {
        return Err(syn::Error::new(ty.span(), EXPECTED));
    };
    let lifetime = lifetime_bound(bounds);
    for bound in &bounds.bounds {
        let TypeParamBound::Trait(bound) = bound else { continue };
        let Some(last) = bound.path.segments.last() else { continue };
        let (flavor, coroutine) = match last.ident.to_string().as_str() {
            "Iterator" => (Flavor::Iterator, false),
            "Stream" => (Flavor::Stream, false),
            "Coroutine" => (Flavor::Iterator, true),
            "AsyncCoroutine" => (Flavor::Stream, true),
            _ => continue,
        };
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return Err(syn::Error::new(last.span(), EXPECTED));
        };
        let item_name = if coroutine { "Yield" } else { "Item" };
        let Some(item) = assoc_type(args, item_name) else {
            return Err(syn::Error::new(args.span(), format!("the return type needs `{item_name} = T`")));
        };
        let resume = coroutine.then(|| resume_type(args)).transpose()?;
        return Ok(Declared { flavor, item, resume, lifetime });
    }
    Err(syn::Error::new(ty.span(), EXPECTED))
}

fn assoc_type(args: &AngleBracketedGenericArguments, name: &str) -> Option<Type> {
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::AssocType(assoc) if assoc.ident == name => Some(assoc.ty.clone()),
        _ => None,
    })
}

/// The `A` of `Coroutine<A, …>`; `()` when it is not written.
fn resume_type(args: &AngleBracketedGenericArguments) -> syn::Result<Type> {
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let resume = types.next().cloned().unwrap_or_else(|| syn::parse_quote!(()));
    match types.next() {
        Some(extra) => Err(syn::Error::new_spanned(extra, "a coroutine has one resume type")),
        None => Ok(resume),
    }
}

fn lifetime_bound(bounds: &TypeImplTrait) -> Lifetime {
    bounds
        .bounds
        .iter()
        .find_map(|bound| match bound {
            TypeParamBound::Lifetime(lifetime) => Some(lifetime.clone()),
            _ => None,
        })
        .unwrap_or_else(|| syn::parse_quote!('static))
}

/// Whether the item type is spelled `Result<…>` (any path ending in `Result`).
fn is_result(item: &Type) -> bool {
    matches!(item, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

fn same_tokens(a: &Type, b: &Type) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

/// A type as a user would write it in a message: `Vec<u8>`, not `Vec < u8 >`.
fn spelled(ty: &Type) -> String {
    let spaced = ty.to_token_stream().to_string();
    [(" < ", "<"), ("< ", "<"), (" >", ">"), (" ,", ","), (" :: ", "::"), (":: ", "::"), ("& ", "&")]
        .iter()
        .fold(spaced, |text, (from, to)| text.replace(from, to))
}
