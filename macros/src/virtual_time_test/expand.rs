//! The expansion: a `#[test]` fn that runs the original body, moved into an inner fn, as the
//! root of a bubble built with the options.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use super::validate::{Test, TokioFlavor};
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
    let test_name = name.to_string();
    let mut builder = quote!(#private::time::Bubble::new().name(#test_name));
    if let Some(path) = &test.options.trace {
        builder = quote!(#builder.trace(#path));
    }
    if let Some(events) = test.options.timeline {
        builder = quote!(#builder.timeline(#events));
    }
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
    let run = match (test.options.tokio, sig.asyncness.is_some()) {
        (Some((flavor, _)), _) => {
            let runtime = tokio_runtime(test, flavor);
            quote! {
                #builder.run(|| {
                    let runtime = #runtime;
                    let body = #private::OneClock::new(|| ::tokio::time::Instant::now().into_std(), #inner_name());
                    let output = runtime.block_on(#private::time::root_future(body));
                    ::core::mem::drop(runtime);
                    output
                })
            }
        }
        (None, true) => quote!(#builder.run_async(#inner_name())),
        (None, false) => quote!(#builder.run(#inner_name)),
    };
    // Outside the test fn, which exists only in test builds: the check runs in every build.
    let std_time_check = test
        .options
        .tokio
        .map(|(_, span)| quote_spanned!(span=> const _: () = #private::assert_std_time_for_tokio();));
    quote! {
        #std_time_check
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            #inner_sig #body
            #run
        }
    }
}

/// A tokio runtime of `flavor`, I/O and time on, whose idle threads count as durably blocked:
/// tokio's own builder, named through the user's `::tokio` as `#[tokio::test]` does.
fn tokio_runtime(test: &Test, flavor: TokioFlavor) -> TokenStream {
    let private = private();
    let builder = match (flavor, test.options.worker_threads) {
        (TokioFlavor::CurrentThread, _) => quote!(::tokio::runtime::Builder::new_current_thread()),
        (TokioFlavor::MultiThread, None) => quote!(::tokio::runtime::Builder::new_multi_thread()),
        (TokioFlavor::MultiThread, Some((workers, _))) => {
            quote!(::tokio::runtime::Builder::new_multi_thread().worker_threads(#workers))
        }
    };
    quote! {
        #builder
            .enable_all()
            .on_thread_park(#private::time::runtime_parked)
            .on_thread_unpark(#private::time::runtime_unparked)
            .build()
            .expect("#[virtual_time_test(tokio)]: building the tokio runtime")
    }
}
