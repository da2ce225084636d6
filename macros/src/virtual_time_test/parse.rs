//! The attribute's options (`key`, `key = "value"`, `key = 4`) and the test function, untyped.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, LitInt, LitStr, Token};

pub(super) struct RawOption {
    pub(super) key: Ident,
    pub(super) value: Option<RawValue>,
}

pub(super) enum RawValue {
    Str(LitStr),
    Int(LitInt),
}

pub(super) struct Input {
    pub(super) options: Vec<RawOption>,
    pub(super) function: ItemFn,
}

fn option(input: syn::parse::ParseStream<'_>) -> syn::Result<RawOption> {
    let key: Ident = input.parse()?;
    if !input.peek(Token![=]) {
        return Ok(RawOption { key, value: None });
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitInt) {
        return Ok(RawOption { key, value: Some(RawValue::Int(input.parse()?)) });
    }
    let value = input.parse::<LitStr>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{key}` takes a string literal, e.g. {key} = \"{}\"", example(&key)),
        )
    })?;
    Ok(RawOption { key, value: Some(RawValue::Str(value)) })
}

/// An example value for the option named `key`, for error messages.
pub(super) fn example(key: &Ident) -> &'static str {
    match key.to_string().as_str() {
        "start" => "2024-02-29T12:00:00Z",
        "stall" => "30s",
        "tokio" => "multi_thread",
        _ => "10m",
    }
}

pub(super) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Input> {
    let parser = |input: syn::parse::ParseStream<'_>| {
        Punctuated::<RawOption, Token![,]>::parse_terminated_with(input, option)
    };
    let options = parser.parse2(args)?;
    let function = syn::parse2::<ItemFn>(item)?;
    Ok(Input { options: options.into_iter().collect(), function })
}
