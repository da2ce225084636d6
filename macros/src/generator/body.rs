//! Rewriting a generator body: each `yield v` / `yield_!(v)` becomes an await on the hidden
//! yielder, `yield from` / `yield_from!` a loop of such awaits, `for await` a loop over a
//! stream, also inside other macros' tokens. Yields hidden in nested closures, `async`
//! blocks or items are errors, as are `.await` and `for await` in a synchronous generator and
//! `?` where the body's items cannot carry an error.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, ExprForLoop, ExprMacro, ExprYield, Item, Macro, Stmt, StmtMacro, Token};

use super::tokens::{
    FOR_AWAIT, GENERATOR_MACROS, contains_yield, is_nested_generator, is_yield_macro, regroup,
};
use crate::common::private;

/// Whether the body may `.await` (streams) or not (iterators).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Iterator,
    Stream,
}

/// What a body may contain beyond plain yields, and what its yields mean.
#[derive(Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) flavor: Flavor,
    /// `None` if `?` is allowed; otherwise the rule that rejects it.
    pub(crate) question: Option<&'static str>,
    /// `return;` becomes `return Ok(())`: the body runs inside a `Result`-returning block.
    pub(crate) try_return: bool,
    /// `yield v` yields `Ok(v)` (try blocks).
    pub(crate) wrap_ok: bool,
    /// `None` if `yield_from!` is allowed; otherwise the rule that rejects it.
    pub(crate) yield_from: Option<&'static str>,
}

/// The hidden identifier of the yielder, unnameable from user code.
pub(crate) fn yielder() -> Ident {
    Ident::new("__gonext_yielder", Span::mixed_site())
}

/// Rewrites `stmts` in place and returns how many yields it found; all misuse found is
/// returned as one combined error.
pub(crate) fn rewrite(rules: Rules, stmts: &mut [Stmt]) -> syn::Result<usize> {
    let mut rewriter = Rewriter { rules, yields: 0, errors: Vec::new() };
    for stmt in stmts {
        rewriter.visit_stmt_mut(stmt);
    }
    let mut errors = rewriter.errors.into_iter();
    match errors.next() {
        None => Ok(rewriter.yields),
        Some(first) => Err(errors.fold(first, |mut all, next| {
            all.combine(next);
            all
        })),
    }
}

struct Rewriter {
    rules: Rules,
    yields: usize,
    errors: Vec<syn::Error>,
}

impl Rewriter {
    fn yield_value(&mut self, value: TokenStream, span: Span) -> Expr {
        self.yields += 1;
        // Located at the yield, so that type errors about its value point there.
        let yielder = Ident::new("__gonext_yielder", Span::mixed_site().located_at(span));
        let value = if self.rules.wrap_ok { quote!(::core::result::Result::Ok(#value)) } else { value };
        syn::parse_quote_spanned!(span=> #yielder.yield_(#value).await)
    }

    fn yield_from(&mut self, source: TokenStream, span: Span) -> Expr {
        if let Some(rule) = self.rules.yield_from {
            self.errors.push(syn::Error::new(span, rule));
        }
        let private = private();
        let item = Ident::new("__gonext_item", Span::mixed_site());
        let stream = Ident::new("__gonext_stream", Span::mixed_site());
        let each = self.yield_value(quote!(#item), span);
        match self.rules.flavor {
            Flavor::Iterator => syn::parse_quote_spanned!(span=> {
                for #item in #source {
                    #each;
                }
            }),
            Flavor::Stream => syn::parse_quote_spanned!(span=> {
                let mut #stream = ::core::pin::pin!(#source);
                while let ::core::option::Option::Some(#item) = #private::next_of(#stream.as_mut()).await {
                    #each;
                }
            }),
        }
    }

    /// The replacement of a `yield_!` / `yield_from!` invocation, if `mac` is one.
    fn expand_macro(&mut self, mac: &Macro) -> Option<Expr> {
        let name = mac.path.segments.last()?.ident.to_string();
        let span = mac.span();
        match name.as_str() {
            "yield_" if mac.tokens.is_empty() => Some(self.yield_value(quote!(()), span)),
            "yield_" => {
                let mut value: Expr = match syn::parse2(mac.tokens.clone()) {
                    Ok(value) => value,
                    Err(error) => {
                        self.errors.push(error);
                        return Some(syn::parse_quote!(()));
                    }
                };
                self.visit_expr_mut(&mut value);
                Some(self.yield_value(value.into_token_stream(), span))
            }
            "yield_from" => Some(self.yield_from(mac.tokens.clone(), span)),
            _ => None,
        }
    }

    /// Rewrites the yields inside another macro's tokens; nested generator macros keep theirs.
    fn rewrite_foreign(&mut self, mac: &mut Macro) {
        let nested =
            mac.path.segments.last().is_some_and(|s| GENERATOR_MACROS.iter().any(|name| s.ident == name));
        if !nested && contains_yield(&mac.tokens) {
            mac.tokens = self.rewrite_tokens(mac.tokens.clone());
        }
    }

    /// Tokens that parse as statements or as comma-separated expressions are rewritten like
    /// the body (so misplaced yields are found there too); others are walked token by token.
    fn rewrite_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        if let Ok(mut stmts) = Block::parse_within.parse2(tokens.clone()) {
            stmts.iter_mut().for_each(|stmt| self.visit_stmt_mut(stmt));
            return quote!(#(#stmts)*);
        }
        if let Ok(mut exprs) = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(tokens.clone()) {
            exprs.iter_mut().for_each(|expr| self.visit_expr_mut(expr));
            return exprs.into_token_stream();
        }
        self.walk_tokens(tokens)
    }

    /// Finds yields in tokens of any shape (`tokio::select!` arms, `matches!` guards): each
    /// `yield` is parsed with the expression that follows it.
    fn walk_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = TokenStream::new();
        let mut i = 0;
        while i < trees.len() {
            if is_nested_generator(&trees, i) {
                out.extend(trees[i..i + 3].iter().cloned());
                i += 3;
                continue;
            }
            if is_yield_macro(&trees, i)
                && let Ok(mac) = syn::parse2::<Macro>(trees[i..i + 3].iter().cloned().collect())
                && let Some(replacement) = self.expand_macro(&mac)
            {
                replacement.to_tokens(&mut out);
                i += 3;
                continue;
            }
            match &trees[i] {
                TokenTree::Ident(id) if id == "yield" => {
                    let rest: TokenStream = trees[i..].iter().cloned().collect();
                    match syn::parse2::<YieldThenRest>(rest.clone()) {
                        Ok(YieldThenRest(yield_expr, rest)) => {
                            let mut expr = Expr::Yield(yield_expr);
                            self.visit_expr_mut(&mut expr);
                            expr.to_tokens(&mut out);
                            out.extend(self.walk_tokens(rest));
                        }
                        Err(_) => {
                            self.errors.push(syn::Error::new(
                                id.span(),
                                "the tokens after this `yield` do not parse as an expression, so it cannot be \
                                 rewritten inside this macro; yield outside the macro invocation",
                            ));
                            out.extend(rest);
                        }
                    }
                    return out;
                }
                TokenTree::Group(group) if contains_yield(&group.stream()) => {
                    out.extend([regroup(group, self.rewrite_tokens(group.stream()))]);
                }
                other => out.extend([other.clone()]),
            }
            i += 1;
        }
        out
    }

    /// `for await pat in stream { body }` as a loop over the stream's items.
    fn for_await(&mut self, mut for_loop: ExprForLoop, attr: &Attribute) -> Expr {
        let attr_span = attr.path().span();
        if self.rules.flavor == Flavor::Iterator {
            self.errors.push(syn::Error::new_spanned(
                attr,
                "`for await` needs an async generator: `stream!`, `try_stream!` or an `async` #[generator] fn",
            ));
        }
        self.visit_expr_mut(&mut for_loop.expr);
        self.visit_block_mut(&mut for_loop.body);
        let ExprForLoop { attrs, label, pat, expr, body, .. } = for_loop;
        let private = private();
        let stream = Ident::new("__gonext_stream", Span::mixed_site());
        syn::parse_quote_spanned!(attr_span=> {
            let mut #stream = ::core::pin::pin!(#expr);
            #(#attrs)*
            #label loop {
                let ::core::option::Option::Some(#pat) = #private::next_of(#stream.as_mut()).await else {
                    break;
                };
                #body
            }
        })
    }

    fn report_nested(&mut self, nested: &dyn Fn(&mut NestedYields)) {
        let mut finder = NestedYields { found: Vec::new() };
        nested(&mut finder);
        self.errors.extend(finder.found.into_iter().map(|span| {
            syn::Error::new(
                span,
                "`yield` inside a closure, `async` block or nested fn cannot suspend the generator \
                 around it; yield from the generator's own body",
            )
        }));
    }
}

/// A `yield` expression and the tokens after it.
struct YieldThenRest(ExprYield, TokenStream);

impl Parse for YieldThenRest {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ok(YieldThenRest(input.parse()?, input.parse()?))
    }
}

/// Takes the `#[for_await]` marker off a loop.
fn take_for_await(for_loop: &mut ExprForLoop) -> Option<Attribute> {
    let index = for_loop.attrs.iter().position(|attr| attr.path().is_ident(FOR_AWAIT))?;
    Some(for_loop.attrs.remove(index))
}

impl VisitMut for Rewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Yield(y) => {
                let span = y.yield_token.span;
                let value = match y.expr.take() {
                    Some(value) => {
                        let mut value = *value;
                        self.visit_expr_mut(&mut value);
                        quote!(#value)
                    }
                    None => quote!(()),
                };
                *expr = self.yield_value(value, span);
            }
            Expr::Macro(ExprMacro { mac, .. }) => match self.expand_macro(mac) {
                Some(replacement) => *expr = replacement,
                None => self.rewrite_foreign(mac),
            },
            Expr::ForLoop(for_loop) => match take_for_await(for_loop) {
                Some(attr) => {
                    let for_loop = std::mem::replace(for_loop, syn::parse_quote!(for _ in [] {}));
                    *expr = self.for_await(for_loop, &attr);
                }
                None => visit_mut::visit_expr_for_loop_mut(self, for_loop),
            },
            Expr::Closure(closure) => self.report_nested(&|f| f.visit_expr_closure(closure)),
            Expr::Async(block) => self.report_nested(&|f| f.visit_expr_async(block)),
            Expr::Await(awaited) if self.rules.flavor == Flavor::Iterator => {
                self.errors.push(syn::Error::new(
                    awaited.await_token.span,
                    "`.await` is not allowed in a synchronous generator; make it an `async fn` returning \
                     `impl Stream<Item = T>` (or use `stream!`)",
                ));
                visit_mut::visit_expr_await_mut(self, awaited);
            }
            Expr::Try(tried) => {
                if let Some(rule) = self.rules.question {
                    self.errors.push(syn::Error::new(tried.question_token.span, rule));
                }
                visit_mut::visit_expr_try_mut(self, tried);
            }
            Expr::Return(ret) if self.rules.try_return && ret.expr.is_none() => {
                ret.expr =
                    Some(Box::new(syn::parse_quote_spanned!(ret.span()=> ::core::result::Result::Ok(()))));
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(StmtMacro { mac, .. }) = stmt {
            match self.expand_macro(mac) {
                Some(replacement) => *stmt = Stmt::Expr(replacement, Some(Default::default())),
                None => self.rewrite_foreign(mac),
            }
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        self.report_nested(&|f| f.visit_item(item));
    }
}

/// Finds yields where they are not allowed.
struct NestedYields {
    found: Vec<Span>,
}

impl<'ast> Visit<'ast> for NestedYields {
    fn visit_expr_yield(&mut self, y: &'ast syn::ExprYield) {
        self.found.push(y.yield_token.span);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        if mac.path.segments.last().is_some_and(|s| s.ident == "yield_" || s.ident == "yield_from") {
            self.found.push(mac.span());
        }
    }
}
