//! The input of `select!`: `pat = future => body` branches and an optional `default => body`.

use syn::parse::{Parse, ParseStream};
use syn::{Expr, Pat, Token};

pub(super) struct Select {
    /// `biased;` came first: poll the branches in written order.
    pub(super) biased: Option<syn::Ident>,
    pub(super) branches: Vec<Branch>,
    pub(super) defaults: Vec<Default>,
}

pub(super) struct Branch {
    pub(super) pat: Pat,
    pub(super) future: Expr,
    pub(super) body: Expr,
}

pub(super) struct Default {
    pub(super) keyword: syn::Ident,
    pub(super) body: Expr,
}

impl Parse for Select {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut select = Select { biased: None, branches: Vec::new(), defaults: Vec::new() };
        if input.peek(syn::Ident) && input.peek2(Token![;]) {
            let keyword: syn::Ident = input.parse()?;
            if keyword != "biased" {
                return Err(syn::Error::new(
                    keyword.span(),
                    "expected `biased;` (poll the branches in written order) or a branch `pattern = future => …`",
                ));
            }
            input.parse::<Token![;]>()?;
            select.biased = Some(keyword);
        }
        while !input.is_empty() {
            if input.peek(syn::Ident) && input.peek2(Token![=>]) {
                let keyword: syn::Ident = input.parse()?;
                if keyword != "default" {
                    return Err(syn::Error::new(
                        keyword.span(),
                        "expected `default => …` or a branch `pattern = future => …`",
                    ));
                }
                input.parse::<Token![=>]>()?;
                select.defaults.push(Default { keyword, body: parse_body(input)? });
                continue;
            }
            let pat = Pat::parse_single(input)?;
            input.parse::<Token![=]>()?;
            let future = input.call(Expr::parse_without_eager_brace)?;
            input.parse::<Token![=>]>()?;
            select.branches.push(Branch { pat, future, body: parse_body(input)? });
        }
        Ok(select)
    }
}

/// A branch body: an expression followed by a comma, or a block with an optional comma.
fn parse_body(input: ParseStream<'_>) -> syn::Result<Expr> {
    let body: Expr = input.parse()?;
    let is_block = matches!(body, Expr::Block(_));
    if input.is_empty() {
        return Ok(body);
    }
    if is_block {
        let _ = input.parse::<Option<Token![,]>>()?;
    } else {
        input.parse::<Token![,]>()?;
    }
    Ok(body)
}
