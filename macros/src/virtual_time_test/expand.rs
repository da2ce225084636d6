//! The expansion: a `#[test]` fn that runs the original body, moved into an inner fn, as the
//! root of a bubble built with the options.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::validate::Test;
use crate::common::private;

pub(super) fn expand(test: &Test) -> TokenStream {
    let private = private();
    let function = &test.function;
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    let name = &sig.ident;
    let output = &sig.output;
    let body = &function.block;
    let inner_name = format_ident!("__gonext_virtual_time_{}", name);
    let mut inner_sig = sig.clone();
    inner_sig.ident = inner_name.clone();
    let mut builder = quote!(#private::time::Bubble::new());
    if let Some((secs, nanos)) = test.options.start {
        builder = quote!(#builder.start(#private::unix_time(#secs, #nanos)));
    }
    if let Some(timeout) = test.options.timeout {
        let (secs, nanos) = (timeout.as_secs(), timeout.subsec_nanos());
        builder = quote!(#builder.timeout(::core::time::Duration::new(#secs, #nanos)));
    }
    if let Some(stall) = test.options.stall {
        let (secs, nanos) = (stall.as_secs(), stall.subsec_nanos());
        builder = quote!(#builder.stall(::core::time::Duration::new(#secs, #nanos)));
    }
    let run = if sig.asyncness.is_some() {
        quote!(#builder.run_async(#inner_name()))
    } else {
        quote!(#builder.run(#inner_name))
    };
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            #inner_sig #body
            #run
        }
    }
}
