//! The annotated function and its options, untyped; the `#[resume]` parameter taken out of
//! the signature.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Token, Type};

pub(super) struct Input {
    pub(super) options: Vec<Ident>,
    pub(super) function: ItemFn,
    pub(super) resume: Vec<ResumeParam>,
}

/// A parameter marked `#[resume]`: it receives the first `resume`'s argument.
pub(super) struct ResumeParam {
    pub(super) attr: Attribute,
    pub(super) arg: FnArg,
    pub(super) binding: Option<(Pat, Type)>,
}

pub(super) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Input> {
    let options = Punctuated::<Ident, Token![,]>::parse_terminated.parse2(args)?.into_iter().collect();
    let mut function: ItemFn = syn::parse2(item)?;
    let inputs = std::mem::take(&mut function.sig.inputs);
    let mut resume = Vec::new();
    for mut arg in inputs {
        let attrs = match &mut arg {
            FnArg::Receiver(receiver) => &mut receiver.attrs,
            FnArg::Typed(typed) => &mut typed.attrs,
        };
        match attrs.iter().position(|attr| attr.path().is_ident("resume")) {
            Some(index) => {
                let attr = attrs.remove(index);
                let binding = match &arg {
                    FnArg::Typed(typed) => Some(((*typed.pat).clone(), (*typed.ty).clone())),
                    FnArg::Receiver(_) => None,
                };
                resume.push(ResumeParam { attr, arg, binding });
            }
            None => function.sig.inputs.push(arg),
        }
    }
    Ok(Input { options, function, resume })
}
