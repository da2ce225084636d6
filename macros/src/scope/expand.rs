//! The expansion: the statements inside `run_scope` (or an `AsyncScope`'s `run`), each `go`
//! marker replaced by a task started on the scope — its callee and arguments evaluated first,
//! in the parent — and, inside a task's body, by a sibling started on the same scope.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMacro, Item, Macro, Stmt, StmtMacro};

use super::Flavor;
use super::parse::{GO, GO_VALUE};
use super::validate::{Policy, Scope, Timeout};
use crate::common::private;

fn scope_ident() -> Ident {
    Ident::new("__gonext_scope", Span::mixed_site())
}

fn winner_ident() -> Ident {
    Ident::new("__gonext_winner", Span::mixed_site())
}

fn is_go(mac: &Macro) -> bool {
    mac.path.is_ident(GO) || mac.path.is_ident(GO_VALUE)
}

#[derive(Clone, Copy)]
struct GoRewriter {
    flavor: Flavor,
    race: bool,
}

/// Rewrites the markers of one block (the scope's body or a task's), collecting errors.
struct Rewrite {
    go: GoRewriter,
    errors: Vec<syn::Error>,
}

impl Rewrite {
    fn task(&mut self, mac: &Macro) -> Expr {
        let span = mac.path.span();
        let keep_handle = mac.path.is_ident(GO_VALUE);
        let started = match self.go.flavor {
            Flavor::Async | Flavor::TryAsync => spawn_future(&mac.tokens, span, keep_handle),
            _ => self.go.spawn(&mac.tokens, span, keep_handle),
        };
        match started {
            Ok((expr, errors)) => {
                self.errors.extend(errors);
                expr
            }
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
                 put it directly in the scope's block or in a task's body",
            )
        }));
    }
}

impl VisitMut for Rewrite {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Macro(ExprMacro { mac, .. }) if is_go(mac) => *expr = self.task(mac),
            Expr::Closure(closure) => self.report_nested(&|f| f.visit_expr_closure(closure)),
            Expr::Async(block) => self.report_nested(&|f| f.visit_expr_async(block)),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(StmtMacro { mac, semi_token, .. }) = stmt
            && is_go(mac)
        {
            // A handle that ends its block is the block's value.
            let semi = if mac.path.is_ident(GO_VALUE) { *semi_token } else { Some(Default::default()) };
            *stmt = Stmt::Expr(self.task(mac), semi);
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

/// Whether the tokens are `move { … }`.
fn move_block(tokens: &TokenStream) -> Option<proc_macro2::Group> {
    let trees: Vec<proc_macro2::TokenTree> = tokens.clone().into_iter().collect();
    match trees.as_slice() {
        [proc_macro2::TokenTree::Ident(m), proc_macro2::TokenTree::Group(g)]
            if m == "move" && g.delimiter() == proc_macro2::Delimiter::Brace =>
        {
            Some(g.clone())
        }
        _ => None,
    }
}

/// The expression that adds the future written after `go` to an `async_scope!`: the future
/// (or the closure that makes it from the scope's context) is evaluated at the `go`.
fn spawn_future(tokens: &TokenStream, span: Span, keep_handle: bool) -> syn::Result<(Expr, Vec<syn::Error>)> {
    let scope = scope_ident();
    let private = private();
    if tokens.is_empty() {
        return Err(syn::Error::new(
            span,
            "`go` needs a future: `go fetch(url);`, `go async { … }` or `go |ctx| …`",
        ));
    }
    let method = if keep_handle { quote_spanned!(span=> go) } else { quote_spanned!(span=> spawn) };
    let mut nested = NestedGo { found: Vec::new() };
    let future: TokenStream = if let Some(block) = move_block(tokens) {
        let parsed: syn::Block = syn::parse2(quote!(#block))?;
        nested.visit_block(&parsed);
        quote!(async move #block)
    } else {
        let expr = syn::parse2::<Expr>(tokens.clone())?;
        nested.visit_expr(&expr);
        match expr {
            Expr::Block(block) => quote!(async #block),
            Expr::Closure(mut closure) => {
                annotate_context(&mut closure, syn::parse_quote!(#private::Context));
                let make = Ident::new("__gonext_make", Span::mixed_site());
                quote!({
                    let #make = #closure;
                    #make(::core::clone::Clone::clone(#scope.context()))
                })
            }
            other => quote!(#other),
        }
    };
    let errors = nested
        .found
        .into_iter()
        .map(|span| {
            syn::Error::new(
                span,
                "`go` inside an async_scope! child cannot start a sibling; start it from the body",
            )
        })
        .collect();
    let name = Ident::new("__gonext_future", Span::mixed_site());
    let expr = syn::parse_quote_spanned!(span=> {
        let #name = #future;
        #scope.#method(#name)
    });
    Ok((expr, errors))
}

impl GoRewriter {
    /// The expression that starts the task written after `go`: its handle, or `()`.
    fn spawn(
        self,
        tokens: &TokenStream,
        span: Span,
        keep_handle: bool,
    ) -> syn::Result<(Expr, Vec<syn::Error>)> {
        let scope = scope_ident();
        let private = private();
        let ctx = Ident::new("__gonext_ctx", Span::mixed_site());
        if tokens.is_empty() {
            return Err(syn::Error::new(
                span,
                "`go` needs a task: a call `go f(x);`, a block `go { … }`, `go move { … }` or a closure `go |ctx| …`",
            ));
        }
        let method = if keep_handle { quote_spanned!(span=> go) } else { quote_spanned!(span=> spawn) };
        let winner = winner_ident();
        // The task's body. A `scope!` statement discards its value, and the `-> ()` keeps a
        // diverging task (a `panic!`) from making the closure return `!`; in a race, a success
        // is offered to the winner's slot.
        let finish = |body: TokenStream| {
            if self.race {
                quote!(#private::race_offer(#winner, #scope, #body))
            } else if self.flavor == Flavor::Infallible && !keep_handle {
                quote!(-> () { #body; })
            } else {
                body
            }
        };
        let mut inner = Rewrite { go: self, errors: Vec::new() };
        if let Some(block) = move_block(tokens) {
            let mut parsed: syn::Block = syn::parse2(quote!(#block))?;
            inner.visit_block_mut(&mut parsed);
            let body = finish(quote!(#parsed));
            return Ok((
                syn::parse_quote_spanned!(span=> #scope.#method(move |_: &#private::Context| #body)),
                inner.errors,
            ));
        }
        let expr: Expr = syn::parse2(tokens.clone())?;
        let started = match expr {
            Expr::Block(mut block) => {
                inner.visit_block_mut(&mut block.block);
                let body = finish(quote!(#block));
                syn::parse_quote_spanned!(span=> #scope.#method(|_: &#private::Context| #body))
            }
            Expr::Closure(mut closure) => {
                inner.visit_expr_mut(&mut closure.body);
                annotate_context(&mut closure, syn::parse_quote!(&#private::Context));
                let task = Ident::new("__gonext_task", Span::mixed_site());
                let body = finish(quote!(#task(#ctx)));
                syn::parse_quote_spanned!(span=> {
                    let #task = #closure;
                    #scope.#method(move |#ctx: &#private::Context| #body)
                })
            }
            Expr::Call(mut call) => {
                let mut outer = Rewrite { go: GoRewriter { race: false, ..self }, errors: Vec::new() };
                outer.visit_expr_mut(&mut call.func);
                call.args.iter_mut().for_each(|arg| outer.visit_expr_mut(arg));
                inner.errors.extend(outer.errors);
                let names: Vec<Ident> = (0..call.args.len())
                    .map(|i| format_ident!("__gonext_arg{}", i, span = Span::mixed_site()))
                    .collect();
                let func_name = Ident::new("__gonext_fn", Span::mixed_site());
                let (func, args) = (&call.func, call.args.iter());
                let body = finish(quote!(#func_name(#(#names),*)));
                syn::parse_quote_spanned!(span=> {
                    let #func_name = #func;
                    #(let #names = #args;)*
                    #scope.#method(move |_: &#private::Context| #body)
                })
            }
            Expr::MethodCall(call) => {
                let names: Vec<Ident> = (0..call.args.len())
                    .map(|i| format_ident!("__gonext_arg{}", i, span = Span::mixed_site()))
                    .collect();
                let receiver_name = Ident::new("__gonext_receiver", Span::mixed_site());
                let (receiver, method_name, turbofish, args) =
                    (&call.receiver, &call.method, &call.turbofish, call.args.iter());
                let body = finish(quote!(#receiver_name.#method_name #turbofish(#(#names),*)));
                // A place (`worker`, `self.pool`, `v[i]`) is borrowed, as Go's method value
                // binds a pointer receiver; any other receiver is a value computed here.
                let is_place = matches!(
                    &*call.receiver,
                    Expr::Path(_)
                        | Expr::Field(_)
                        | Expr::Index(_)
                        | Expr::Unary(syn::ExprUnary { op: syn::UnOp::Deref(_), .. })
                );
                let receiver = match &*call.receiver {
                    _ if is_place => quote!(&#receiver),
                    // `go (a..b).sum()`: the parentheses only served the method call.
                    Expr::Paren(inner) => {
                        let inner = &inner.expr;
                        quote!(#inner)
                    }
                    _ => quote!(#receiver),
                };
                syn::parse_quote_spanned!(span=> {
                    let #receiver_name = #receiver;
                    #(let #names = #args;)*
                    #scope.#method(move |_: &#private::Context| #body)
                })
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "`go` runs a call `f(x)`, a method call `recv.m(x)`, a block, `move { … }` or a closure `|ctx| …`",
                ));
            }
        };
        Ok((started, inner.errors))
    }
}

fn options(scope: &Scope) -> TokenStream {
    let private = private();
    let some = |value: TokenStream| quote!(::core::option::Option::Some(#value));
    let none = quote!(::core::option::Option::None);
    let limit = scope.limit.map_or_else(|| none.clone(), |n| some(quote!(#n)));
    let context = scope
        .context
        .as_ref()
        .map_or_else(|| none.clone(), |ctx| some(quote_spanned!(ctx.span()=> #private::context_of(&(#ctx)))));
    let deadline = scope.deadline.as_ref().map_or_else(|| none.clone(), |at| some(quote!(#at)));
    let timeout = match &scope.timeout {
        None => none,
        Some(Timeout::Literal { secs, nanos }) => some(quote!(::core::time::Duration::new(#secs, #nanos))),
        Some(Timeout::Expr(expr)) => some(quote!(#expr)),
    };
    let all_errors = scope.all_errors || scope.policy == Policy::FirstSuccess;
    let supervise = scope.policy != Policy::FailFast;
    quote! {
        #private::ScopeOptions {
            limit: #limit,
            all_errors: #all_errors,
            supervise: #supervise,
            context: #context,
            deadline: #deadline,
            timeout: #timeout,
        }
    }
}

pub(super) fn expand(scope: Scope, flavor: Flavor) -> syn::Result<TokenStream> {
    let options = options(&scope);
    let Scope { all_errors, policy, binding, mut stmts, .. } = scope;
    let race = policy == Policy::FirstSuccess;
    let mut rewriter = Rewrite { go: GoRewriter { flavor, race }, errors: Vec::new() };
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
    let scope = scope_ident();
    let bind = binding.map(|name| quote!(let #name = #scope;));
    let ok = |body: TokenStream| quote!(::core::result::Result::Ok({ #body }));
    let body = quote!(#(#stmts)*);
    if matches!(flavor, Flavor::Async | Flavor::TryAsync) {
        let (mode, run) = if flavor == Flavor::Async {
            (quote!(#private::Infallible), quote!(run_infallible(async { #body })))
        } else {
            let body = ok(body);
            (quote!(#private::Fallible<_>), quote!(run(async { #body })))
        };
        return Ok(quote! {
            async {
                let #scope = &#private::AsyncScope::<#mode>::new(#options);
                #bind
                #scope.#run.await
            }
        });
    }
    let mode = if flavor == Flavor::Infallible {
        quote!(#private::Infallible)
    } else {
        quote!(#private::Fallible<_>)
    };
    let closure_body = ok(body);
    let run = quote_spanned! {Span::call_site()=>
        #private::run_scope::<#mode, _>(#options, |#scope| { #bind #closure_body })
    };
    let winner = winner_ident();
    Ok(match (flavor, all_errors) {
        (Flavor::Infallible, _) => quote!(#private::scope_value(#run)),
        _ if race => quote!({
            let #winner = &#private::Race::new();
            #private::race_result(#winner, #run)
        }),
        (_, false) => quote!(#private::first_error(#run)),
        (_, true) => run,
    })
}
