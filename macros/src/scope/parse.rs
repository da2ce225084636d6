//! The input of `scope!`: optional `key = value, …;` options, then the statements, with
//! every `go …` turned into a `__gonext_go! { … }` marker that syn can parse.

use proc_macro2::{Delimiter, Group, Ident, Spacing, Span, TokenStream, TokenTree};
use quote::quote_spanned;
use syn::parse::Parser;
use syn::{Block, Stmt};

pub(super) struct RawOption {
    pub(super) key: Ident,
    pub(super) value: TokenStream,
}

pub(super) struct RawScope {
    pub(super) options: Vec<RawOption>,
    pub(super) stmts: Vec<Stmt>,
}

pub(super) fn parse(input: TokenStream) -> syn::Result<RawScope> {
    let trees: Vec<TokenTree> = input.into_iter().collect();
    let (options, body) = split_options(&trees)?;
    let body = desugar_go(body.iter().cloned().collect());
    let stmts = (|input: syn::parse::ParseStream<'_>| Block::parse_within(input)).parse2(body)?;
    Ok(RawScope { options, stmts })
}

/// Options come first, as `ident = value` pairs up to a `;`.
fn split_options(trees: &[TokenTree]) -> syn::Result<(Vec<RawOption>, &[TokenTree])> {
    let starts_with_option = matches!(
        (trees.first(), trees.get(1), trees.get(2)),
        (Some(TokenTree::Ident(_)), Some(TokenTree::Punct(eq)), next)
            if eq.as_char() == '=' && !matches!(next, Some(TokenTree::Punct(p)) if p.as_char() == '=')
    );
    if !starts_with_option {
        return Ok((Vec::new(), trees));
    }
    let end = trees.iter().position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';')).ok_or_else(
        || syn::Error::new(trees[0].span(), "scope options end with `;` before the block's statements"),
    )?;
    let mut options = Vec::new();
    for option in trees[..end].split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
        match option {
            [] => {}
            [TokenTree::Ident(key), TokenTree::Punct(eq), value @ ..]
                if eq.as_char() == '=' && !value.is_empty() =>
            {
                options.push(RawOption { key: key.clone(), value: value.iter().cloned().collect() });
            }
            other => {
                return Err(syn::Error::new(other[0].span(), "expected an option `name = value`"));
            }
        }
    }
    Ok((options, &trees[end + 1..]))
}

/// Whether the tokens before a `go` end a statement (or a match arm's `=>`), so that `go`
/// starts one.
fn at_statement_start(out: &[TokenTree]) -> bool {
    match out.last() {
        None => true,
        Some(TokenTree::Punct(p)) if p.as_char() == ';' => true,
        Some(TokenTree::Punct(p)) if p.as_char() == '>' => {
            matches!(out.get(out.len().wrapping_sub(2)), Some(TokenTree::Punct(eq)) if eq.as_char() == '=' && eq.spacing() == Spacing::Joint)
        }
        Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::Brace,
        _ => false,
    }
}

/// Whether the token after `go` can start what `go` runs (not `go = …`, `go.x`, `go(…)`…).
fn starts_task(next: Option<&TokenTree>) -> bool {
    match next {
        None => true,
        Some(TokenTree::Punct(p)) => matches!(p.as_char(), '|' | ';' | '&' | '*' | ','),
        Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::Brace,
        Some(TokenTree::Ident(_)) => true,
        Some(TokenTree::Literal(_)) => true,
    }
}

/// Turns each `go <task>` into `__gonext_go! { <task> }` (recursively, in nested groups).
pub(crate) fn desugar_go(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let is_go = matches!(&trees[i], TokenTree::Ident(id) if id == "go")
            && at_statement_start(&out)
            && starts_task(trees.get(i + 1));
        if !is_go {
            out.push(recurse(&trees[i]));
            i += 1;
            continue;
        }
        let span = trees[i].span();
        let in_arm = matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '>');
        let rest = &trees[i + 1..];
        let len = task_len(rest, in_arm);
        let task: TokenStream = desugar_go(rest[..len].iter().cloned().collect());
        out.extend(marker(task, span));
        i += 1 + len;
        if matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ';') {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The tokens of a `go` task: a block, `move` and a block, or everything up to `;` (or, in
/// a match arm, up to the arm's `,`).
fn task_len(rest: &[TokenTree], in_arm: bool) -> usize {
    match rest {
        [TokenTree::Group(g), ..] if g.delimiter() == Delimiter::Brace => 1,
        [TokenTree::Ident(m), TokenTree::Group(g), ..]
            if m == "move" && g.delimiter() == Delimiter::Brace =>
        {
            2
        }
        _ => rest
            .iter()
            .position(
                |t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';' || (in_arm && p.as_char() == ',')),
            )
            .unwrap_or(rest.len()),
    }
}

fn marker(task: TokenStream, span: Span) -> TokenStream {
    let name = Ident::new("__gonext_go", span);
    let mut group = Group::new(Delimiter::Brace, task);
    group.set_span(span);
    quote_spanned!(span=> #name ! #group)
}

fn recurse(tree: &TokenTree) -> TokenTree {
    match tree {
        TokenTree::Group(group) => {
            let mut rebuilt = Group::new(group.delimiter(), desugar_go(group.stream()));
            rebuilt.set_span(group.span());
            TokenTree::Group(rebuilt)
        }
        other => other.clone(),
    }
}
