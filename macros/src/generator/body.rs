//! Rewriting a generator body: each `yield v` / `yield_!(v)` becomes an await on the hidden
//! yielder, `yield from` / `yield_from!` a loop of such awaits. Yields hidden in nested
//! closures, `async` blocks or items are errors, as is `.await` in a synchronous generator.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMacro, Item, Macro, Stmt, StmtMacro};

use crate::common::private;

/// Whether the body may `.await` (streams) or not (iterators).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Iterator,
    Stream,
}

/// The hidden identifier of the yielder, unnameable from user code.
pub(crate) fn yielder() -> Ident {
    Ident::new("__gonext_yielder", Span::mixed_site())
}

pub(crate) struct Rewriter {
    flavor: Flavor,
    /// `return;` becomes `return Ok(())` in a try-generator's body.
    try_body: bool,
    errors: Vec<syn::Error>,
}

impl Rewriter {
    pub(crate) fn new(flavor: Flavor, try_body: bool) -> Self {
        Rewriter { flavor, try_body, errors: Vec::new() }
    }

    /// Rewrites `stmts` in place; all misuse found is returned as one combined error.
    pub(crate) fn rewrite(mut self, stmts: &mut [Stmt]) -> syn::Result<()> {
        for stmt in stmts {
            self.visit_stmt_mut(stmt);
        }
        let mut errors = self.errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(first) => Err(errors.fold(first, |mut all, next| {
                all.combine(next);
                all
            })),
        }
    }

    fn yield_value(&self, value: TokenStream, span: Span) -> Expr {
        let yielder = yielder();
        syn::parse_quote_spanned!(span=> #yielder.yield_(#value).await)
    }

    fn yield_from(&self, source: TokenStream, span: Span) -> Expr {
        let yielder = yielder();
        let private = private();
        let item = Ident::new("__gonext_item", Span::mixed_site());
        let stream = Ident::new("__gonext_stream", Span::mixed_site());
        match self.flavor {
            Flavor::Iterator => syn::parse_quote_spanned!(span=> {
                for #item in #source {
                    #yielder.yield_(#item).await;
                }
            }),
            Flavor::Stream => syn::parse_quote_spanned!(span=> {
                let mut #stream = ::core::pin::pin!(#source);
                while let ::core::option::Option::Some(#item) = #private::next_of(#stream.as_mut()).await {
                    #yielder.yield_(#item).await;
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
            "yield_" => Some(self.yield_value(mac.tokens.clone(), span)),
            "yield_from" => Some(self.yield_from(mac.tokens.clone(), span)),
            _ => None,
        }
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
            Expr::Macro(ExprMacro { mac, .. }) => {
                if let Some(replacement) = self.expand_macro(mac) {
                    *expr = replacement;
                }
            }
            Expr::Closure(closure) => self.report_nested(&|f| f.visit_expr_closure(closure)),
            Expr::Async(block) => self.report_nested(&|f| f.visit_expr_async(block)),
            Expr::Await(awaited) if self.flavor == Flavor::Iterator => {
                self.errors.push(syn::Error::new(
                    awaited.await_token.span,
                    "`.await` is not allowed in a synchronous generator; make it an `async fn` returning \
                     `impl Stream<Item = T>` (or use `stream!`)",
                ));
            }
            Expr::Return(ret) if self.try_body && ret.expr.is_none() => {
                ret.expr =
                    Some(Box::new(syn::parse_quote_spanned!(ret.span()=> ::core::result::Result::Ok(()))));
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(StmtMacro { mac, .. }) = stmt
            && let Some(replacement) = self.expand_macro(mac)
        {
            *stmt = Stmt::Expr(replacement, Some(Default::default()));
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        self.report_nested(&|f| f.visit_item(item));
    }
}

/// Finds yields where they are not allowed.
pub(crate) struct NestedYields {
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

/// Turns `yield from <tokens>;` into `yield_from!(<tokens>);` throughout `tokens`, so that
/// the block parses; `yield from` is not Rust syntax.
pub(crate) fn desugar_yield_from(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let is_yield_from = matches!(&trees[i], TokenTree::Ident(id) if id == "yield")
            && matches!(trees.get(i + 1), Some(TokenTree::Ident(id)) if id == "from");
        if !is_yield_from {
            out.push(match &trees[i] {
                TokenTree::Group(group) => {
                    let mut rebuilt = Group::new(group.delimiter(), desugar_yield_from(group.stream()));
                    rebuilt.set_span(group.span());
                    TokenTree::Group(rebuilt)
                }
                other => other.clone(),
            });
            i += 1;
            continue;
        }
        let span = trees[i].span();
        let end = trees[i + 2..]
            .iter()
            .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';'))
            .map_or(trees.len(), |p| i + 2 + p);
        let source: TokenStream = desugar_yield_from(trees[i + 2..end].iter().cloned().collect());
        let call = quote_spanned!(span=> yield_from!(#source));
        out.extend(call);
        i = end;
    }
    out.into_iter().collect()
}

/// The block tokens of a `seq!`/`stream!` invocation as a brace-delimited group.
pub(crate) fn braced(tokens: TokenStream) -> TokenStream {
    TokenTree::Group(Group::new(Delimiter::Brace, tokens)).into()
}
