//! Procedural macros of [`gonext`](https://docs.rs/gonext).
//!
//! Use them through `gonext` (`use gonext::generator;`), never from this crate directly:
//! expansions refer to `::gonext::__private`, so this crate only works together with the
//! `gonext` version it was released with. The documentation and examples of each macro are
//! on its re-export in `gonext`.
//!
//! Each macro has one module, split into parse → validate → expand; helpers shared by
//! several macros live in `common`.
//!
//! The macro fns below carry `//` comments, not docs: rustdoc appends an inlined item's own
//! docs to those of its re-export, so docs here would end every macro page of `gonext` with
//! a line that points to that same page.
#![allow(missing_docs, reason = "each macro is documented on its re-export in `gonext`")]

mod common;
mod generator;
mod scope;
mod select;
mod seq;
mod virtual_time_test;
mod weak_cache;

use proc_macro::TokenStream;

use generator::body::Flavor;

// Turns a fn with `yield_!` into a generator; see `gonext::generator`.
#[proc_macro_attribute]
pub fn generator(args: TokenStream, item: TokenStream) -> TokenStream {
    generator::generator(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

// A generator block with `yield`, as an `Iterator`; see `gonext::seq!`.
#[proc_macro]
pub fn seq(input: TokenStream) -> TokenStream {
    block(input, Flavor::Iterator, false)
}

// A generator block with `yield` and `.await`, as a `Stream`; see `gonext::stream!`.
#[proc_macro]
pub fn stream(input: TokenStream) -> TokenStream {
    block(input, Flavor::Stream, false)
}

// `seq!` whose items are `Result`s and whose `?` ends it with the error; see
// `gonext::try_seq!`.
#[proc_macro]
pub fn try_seq(input: TokenStream) -> TokenStream {
    block(input, Flavor::Iterator, true)
}

// `stream!` whose items are `Result`s and whose `?` ends it with the error; see
// `gonext::try_stream!`.
#[proc_macro]
pub fn try_stream(input: TokenStream) -> TokenStream {
    block(input, Flavor::Stream, true)
}

fn block(input: TokenStream, flavor: Flavor, is_try: bool) -> TokenStream {
    seq::generator_block(input.into(), seq::Block { flavor, is_try })
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

// Outside a generator body, `yield_!` is an error that says where it belongs.
#[proc_macro]
pub fn yield_(input: TokenStream) -> TokenStream {
    misplaced_yield(input, "yield_!")
}

// Outside a generator body, `yield_from!` is an error that says where it belongs.
#[proc_macro]
pub fn yield_from(input: TokenStream) -> TokenStream {
    misplaced_yield(input, "yield_from!")
}

fn misplaced_yield(input: TokenStream, name: &str) -> TokenStream {
    drop(input);
    syn::Error::new(
        proc_macro2::Span::call_site(),
        format!("{name} can only be used directly in the body of a #[generator] fn or a seq!/stream!/try_seq!/try_stream! block (not in a closure, async block or nested fn inside it)"),
    )
    .into_compile_error()
    .into()
}

// Memoizes a fn returning `Ptr<V>` by its arguments while the value lives; see
// `gonext::weak_cache`.
#[proc_macro_attribute]
pub fn weak_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    weak_cache::weak_cache(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

// A block whose `go` statements start tasks joined before it returns; see `gonext::scope!`.
#[proc_macro]
pub fn scope(input: TokenStream) -> TokenStream {
    scope::scope(input.into(), scope::Flavor::Infallible)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

// `scope!` for tasks returning `Result<(), E>`; see `gonext::try_scope!`.
#[proc_macro]
pub fn try_scope(input: TokenStream) -> TokenStream {
    scope::scope(input.into(), scope::Flavor::Fallible).unwrap_or_else(syn::Error::into_compile_error).into()
}

// A future whose `go` statements add futures it polls itself; see `gonext::async_scope!`.
#[proc_macro]
pub fn async_scope(input: TokenStream) -> TokenStream {
    scope::scope(input.into(), scope::Flavor::Async).unwrap_or_else(syn::Error::into_compile_error).into()
}

// `async_scope!` whose children and body return `Result`s: the first `Err` drops the rest;
// see `gonext::try_async_scope!`.
#[proc_macro]
pub fn try_async_scope(input: TokenStream) -> TokenStream {
    scope::scope(input.into(), scope::Flavor::TryAsync).unwrap_or_else(syn::Error::into_compile_error).into()
}

// Waits for the first ready of several futures from blocking code; see `gonext::select!`.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    select::select(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

// Runs a test function in a virtual-time bubble; see `gonext::virtual_time_test`.
#[proc_macro_attribute]
pub fn virtual_time_test(args: TokenStream, item: TokenStream) -> TokenStream {
    virtual_time_test::virtual_time_test(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
