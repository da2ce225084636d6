//! Procedural macros of [`gonext`](https://docs.rs/gonext).
//!
//! Use them through `gonext` (`use gonext::generator;`), never from this crate directly:
//! expansions refer to `::gonext::__private`, so this crate only works together with the
//! `gonext` version it was released with. The documentation and examples of each macro are
//! on its re-export in `gonext`.
//!
//! Each macro has one module, split into parse → validate → expand; helpers shared by
//! several macros live in `common`.

mod common;
mod select;
mod virtual_time_test;

use proc_macro::TokenStream;

/// Waits for the first ready of several futures from blocking code; see `gonext::select!`.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    select::select(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Runs a test function in a virtual-time bubble; see `gonext::virtual_time_test`.
#[proc_macro_attribute]
pub fn virtual_time_test(args: TokenStream, item: TokenStream) -> TokenStream {
    virtual_time_test::virtual_time_test(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
