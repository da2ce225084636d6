//! Helpers shared by several macros.

use proc_macro2::TokenStream;
use quote::quote;

/// The hidden runtime path every expansion goes through, so expansions never depend on what
/// the user imported.
pub(crate) fn private() -> TokenStream {
    quote!(::gonext::__private)
}
