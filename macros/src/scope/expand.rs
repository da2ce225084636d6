//! The expansion: the statements inside `run_scope`, each `go` marker replaced by a task
//! started on the scope (its callee and arguments evaluated first, in the parent).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMacro, Item, Macro, Stmt, StmtMacro};

use super::Flavor;
use super::validate::Scope;
use crate::common::private;

fn scope_ident() -> Ident {
    Ident::new("__gonext_scope", Span::mixed_site())
}

fn is_go(mac: &Macro) -> bool {
    mac.path.is_ident("__gonext_go")
}

struct GoRewriter {
    flavor: Flavor,
    errors: Vec<syn::Error>,
}

impl GoRewriter {
    fn task(&mut self, mac: &Macro) -> Expr {
        let span = mac.path.span();
        let started = match self.flavor {
            Flavor::Async => spawn_future(&mac.tokens, span),
            flavor => spawn(&mac.tokens, span, flavor == Flavor::Infallible),
        };
        match started {
            Ok(expr) => expr,
            Err(error) => {
                self.errors.push(error);
                syn::parse_quote!(())
            }
        }
    }

    fn report_nested(&mut self, visit: &dyn Fn(&mut NestedGo)) {
        let mut finder = NestedGo { found: Vec::new() };
        visit(&mut finder);
        self.errors.extend(finder.found.into_iter().map(|span| {
            syn::Error::new(
                span,
                "`go` inside a closure, `async` block or nested fn cannot be joined by the scope around it; \
                 put it directly in the scope's block",
            )
        }));
    }
}

impl VisitMut for GoRewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Macro(ExprMacro { mac, .. }) if is_go(mac) => *expr = self.task(mac),
            Expr::Closure(closure) => self.report_nested(&|f| f.visit_expr_closure(closure)),
            Expr::Async(block) => self.report_nested(&|f| f.visit_expr_async(block)),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(StmtMacro { mac, .. }) = stmt
            && is_go(mac)
        {
            *stmt = Stmt::Expr(self.task(mac), Some(Default::default()));
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        self.report_nested(&|f| f.visit_item(item));
    }
}

/// Finds `go` where no scope can join it.
struct NestedGo {
    found: Vec<Span>,
}

impl<'ast> Visit<'ast> for NestedGo {
    fn visit_macro(&mut self, mac: &'ast Macro) {
        if is_go(mac) {
            self.found.push(mac.path.span());
        }
    }
}

/// Spells out the type of a task closure's context parameter: bound to a local before it is
/// called, the closure cannot infer it.
fn annotate_context(closure: &mut syn::ExprClosure, ty: syn::Type) {
    if let Some(param) = closure.inputs.first_mut()
        && !matches!(param, syn::Pat::Type(_))
    {
        *param = syn::Pat::Type(syn::PatType {
            attrs: Vec::new(),
            pat: Box::new(param.clone()),
            colon_token: Default::default(),
            ty: Box::new(ty),
        });
    }
}

/// The statement that adds the future written after `go` to an `async_scope!`: the future
/// (or the closure that makes it from the scope's context) is evaluated at the `go`.
fn spawn_future(tokens: &TokenStream, span: Span) -> syn::Result<Expr> {
    let scope = scope_ident();
    let private = private();
    if tokens.is_empty() {
        return Err(syn::Error::new(
            span,
            "`go` needs a future: `go fetch(url);`, `go async { … }` or `go |ctx| …`",
        ));
    }
    let trees: Vec<proc_macro2::TokenTree> = tokens.clone().into_iter().collect();
    let is_move_block = matches!(trees.as_slice(), [proc_macro2::TokenTree::Ident(m), proc_macro2::TokenTree::Group(g)]
        if m == "move" && g.delimiter() == proc_macro2::Delimiter::Brace);
    let future: TokenStream = if is_move_block {
        let block = &trees[1];
        quote!(async move #block)
    } else {
        match syn::parse2::<Expr>(tokens.clone())? {
            Expr::Block(block) => quote!(async #block),
            Expr::Closure(mut closure) => {
                annotate_context(&mut closure, syn::parse_quote!(#private::Context));
                let make = Ident::new("__gonext_make", Span::mixed_site());
                return Ok(syn::parse_quote_spanned!(span=> {
                    let #make = #closure;
                    #scope.go_with(move |ctx: #private::Context| {
                        let future = #make(ctx);
                        async move { let _ = future.await; }
                    })
                }));
            }
            other => quote!(#other),
        }
    };
    let name = Ident::new("__gonext_future", Span::mixed_site());
    Ok(syn::parse_quote_spanned!(span=> {
        let #name = #future;
        #scope.go(async move { let _ = #name.await; })
    }))
}

/// The statement that starts the task written after `go`.
fn spawn(tokens: &TokenStream, span: Span, discard: bool) -> syn::Result<Expr> {
    let scope = scope_ident();
    let private = private();
    let ctx = Ident::new("__gonext_ctx", Span::mixed_site());
    if tokens.is_empty() {
        return Err(syn::Error::new(
            span,
            "`go` needs a task: a call `go f(x);`, a block `go { … }`, `go move { … }` or a closure `go |ctx| …`",
        ));
    }
    // The task's body; `scope!` discards its value, and the `-> ()` keeps a diverging task
    // (a `panic!`) from making the closure return `!`.
    let finish = |body: TokenStream| if discard { quote!(-> () { #body; }) } else { body };
    let trees: Vec<proc_macro2::TokenTree> = tokens.clone().into_iter().collect();
    if let [proc_macro2::TokenTree::Ident(m), proc_macro2::TokenTree::Group(g)] = trees.as_slice()
        && m == "move"
        && g.delimiter() == proc_macro2::Delimiter::Brace
    {
        let body = finish(quote!(#g));
        return Ok(syn::parse_quote_spanned!(span=> #scope.go(move |_: &#private::Context| #body)));
    }
    let expr: Expr = syn::parse2(tokens.clone())?;
    Ok(match expr {
        Expr::Block(block) => {
            let body = finish(quote!(#block));
            syn::parse_quote_spanned!(span=> #scope.go(|_: &#private::Context| #body))
        }
        Expr::Closure(mut closure) => {
            annotate_context(&mut closure, syn::parse_quote!(&#private::Context));
            let task = Ident::new("__gonext_task", Span::mixed_site());
            let body = finish(quote!(#task(#ctx)));
            syn::parse_quote_spanned!(span=> {
                let #task = #closure;
                #scope.go(move |#ctx: &#private::Context| #body)
            })
        }
        Expr::Call(call) => {
            let names: Vec<Ident> = (0..call.args.len())
                .map(|i| format_ident!("__gonext_arg{}", i, span = Span::mixed_site()))
                .collect();
            let func_name = Ident::new("__gonext_fn", Span::mixed_site());
            let (func, args) = (&call.func, call.args.iter());
            let body = finish(quote!(#func_name(#(#names),*)));
            syn::parse_quote_spanned!(span=> {
                let #func_name = #func;
                #(let #names = #args;)*
                #scope.go(move |_: &#private::Context| #body)
            })
        }
        Expr::MethodCall(call) => {
            let names: Vec<Ident> = (0..call.args.len())
                .map(|i| format_ident!("__gonext_arg{}", i, span = Span::mixed_site()))
                .collect();
            let receiver_name = Ident::new("__gonext_receiver", Span::mixed_site());
            let (receiver, method, turbofish, args) =
                (&call.receiver, &call.method, &call.turbofish, call.args.iter());
            let body = finish(quote!(#receiver_name.#method #turbofish(#(#names),*)));
            syn::parse_quote_spanned!(span=> {
                let #receiver_name = &#receiver;
                #(let #names = #args;)*
                #scope.go(move |_: &#private::Context| #body)
            })
        }
        other => {
            return Err(syn::Error::new(
                other.span(),
                "`go` runs a call `f(x)`, a method call `recv.m(x)`, a block, `move { … }` or a closure `|ctx| …`",
            ));
        }
    })
}

pub(super) fn expand(scope: Scope, flavor: Flavor) -> syn::Result<TokenStream> {
    let Scope { limit, all_errors, mut stmts } = scope;
    let mut rewriter = GoRewriter { flavor, errors: Vec::new() };
    for stmt in &mut stmts {
        rewriter.visit_stmt_mut(stmt);
    }
    let mut errors = rewriter.errors.into_iter();
    if let Some(first) = errors.next() {
        return Err(errors.fold(first, |mut all, next| {
            all.combine(next);
            all
        }));
    }
    let private = private();
    let scope_ident = scope_ident();
    let limit = match limit {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let run = quote_spanned! {Span::call_site()=>
        #private::run_scope(
            #private::ScopeOptions { limit: #limit, all_errors: #all_errors },
            |#scope_ident| { #(#stmts)* },
        )
    };
    if flavor == Flavor::Async {
        return Ok(quote! {
            async {
                let #scope_ident = #private::AsyncScope::new();
                #scope_ident.run(async { #(#stmts)* }).await
            }
        });
    }
    Ok(match (flavor, all_errors) {
        (Flavor::Infallible, _) => {
            let run = quote_spanned! {Span::call_site()=>
                #private::run_scope::<_, ::core::convert::Infallible>(
                    #private::ScopeOptions { limit: #limit, all_errors: false },
                    |#scope_ident| { #(#stmts)* },
                )
            };
            quote!(#private::scope_value(#run))
        }
        (Flavor::Fallible, false) => quote!(#private::first_error(#run)),
        (Flavor::Fallible, true) | (Flavor::Async, _) => run,
    })
}
