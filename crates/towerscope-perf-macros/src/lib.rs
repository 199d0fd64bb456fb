//! # towerscope-perf-macros
//!
//! `#[timed]` and `#[timed("name")]`: time a function (sync or `async`) into
//! towerscope-perf's process-wide monitor. Use it through `towerscope_perf::timed`.
//!
//! ```ignore
//! #[towerscope_perf::timed("orders.place")]
//! async fn place_order() { /* ... */ }
//! ```

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr, parse_macro_input};

/// Records the function's run time (seconds) under the given name, or `module::function`
/// when none is given, into `towerscope_perf::global()`. For an `async fn` the time runs
/// from the first poll to completion.
///
/// The example is compiled and run in `towerscope_perf`'s crate docs (a proc-macro crate
/// cannot run its own macro in a doctest):
///
/// ```ignore
/// #[towerscope_perf::timed] // recorded as `my_app::orders::total`
/// fn total(prices: &[u64]) -> u64 {
///     prices.iter().sum()
/// }
/// ```
#[proc_macro_attribute]
pub fn timed(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    let name = if attr.is_empty() {
        let ident = func.sig.ident.to_string();
        quote! { concat!(module_path!(), "::", #ident) }
    } else {
        let lit = parse_macro_input!(attr as LitStr);
        quote! { #lit }
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let body = if sig.asyncness.is_some() {
        quote! {
            let __towerscope_timer = ::towerscope_perf::global().map(|p| p.timer(#name));
            let __towerscope_out = async move #block .await;
            drop(__towerscope_timer);
            __towerscope_out
        }
    } else {
        quote! {
            let __towerscope_timer = ::towerscope_perf::global().map(|p| p.timer(#name));
            #block
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
    .into()
}
