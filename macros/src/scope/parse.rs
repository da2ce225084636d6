//! The input of `scope!`: optional `key = value, …;` options, an optional `|s|` naming the
//! scope, then the statements, with every `go …` turned into a marker macro that syn can
//! parse: `__gonext_go! { … }` where `go` starts a statement (its handle is dropped), and
//! `__gonext_go_value! { … }` where it is an expression (`let h = go f(x);`).

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
    /// The name given to the scope by a leading `|s|`.
    pub(super) binding: Option<Ident>,
    pub(super) stmts: Vec<Stmt>,
}

/// The marker of a `go` statement, whose handle is dropped.
pub(crate) const GO: &str = "__gonext_go";
/// The marker of a `go` expression, whose value is the task's handle.
pub(crate) const GO_VALUE: &str = "__gonext_go_value";

pub(super) fn parse(input: TokenStream) -> syn::Result<RawScope> {
    let trees: Vec<TokenTree> = input.into_iter().collect();
    let (options, body) = split_options(&trees)?;
    let (binding, body) = split_binding(body);
    let body = match body {
        // `scope!(options; { … })`: the block's own statements are the body's.
        [TokenTree::Group(block)] if block.delimiter() == Delimiter::Brace => {
            let mut rebuilt =
                Group::new(Delimiter::Brace, desugar_go(block.stream(), Delimiter::Brace, true));
            rebuilt.set_span(block.span());
            TokenTree::Group(rebuilt).into()
        }
        _ => desugar_go(body.iter().cloned().collect(), Delimiter::Brace, true),
    };
    let stmts = (|input: syn::parse::ParseStream<'_>| Block::parse_within(input)).parse2(body)?;
    Ok(RawScope { options, binding, stmts })
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

/// A leading `|s|` names the scope for the body (`s.cancel()`, `s.context()`).
fn split_binding(trees: &[TokenTree]) -> (Option<Ident>, &[TokenTree]) {
    match trees {
        [TokenTree::Punct(open), TokenTree::Ident(name), TokenTree::Punct(close), rest @ ..]
            if open.as_char() == '|' && close.as_char() == '|' =>
        {
            (Some(name.clone()), rest)
        }
        _ => (None, trees),
    }
}

/// Where a `go` stands, judged from the tokens before it in its group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// It starts a statement or a `match` arm: its handle is dropped.
    Statement,
    /// It is a value: after `=`, or an argument or element inside `(…)` or `[…]`.
    Value,
    /// Not a `go` keyword here (`go.x`, `a == go`, an identifier).
    Neither,
}

fn position(out: &[TokenTree], delimiter: Delimiter) -> Position {
    let before_last = out.len().checked_sub(2).and_then(|i| out.get(i));
    let joint_before = matches!(before_last, Some(TokenTree::Punct(p)) if p.spacing() == Spacing::Joint);
    match out.last() {
        None if delimiter == Delimiter::Brace => Position::Statement,
        None => Position::Value,
        Some(TokenTree::Punct(p)) if p.as_char() == ';' => Position::Statement,
        Some(TokenTree::Punct(p)) if p.as_char() == '>' && joint_before => {
            if matches!(before_last, Some(TokenTree::Punct(eq)) if eq.as_char() == '=') {
                Position::Statement
            } else {
                Position::Neither
            }
        }
        Some(TokenTree::Punct(p)) if p.as_char() == '=' && !joint_before => Position::Value,
        Some(TokenTree::Punct(p)) if p.as_char() == ',' && delimiter != Delimiter::Brace => Position::Value,
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => Position::Statement,
        _ => Position::Neither,
    }
}

/// Whether the token after `go` can start what `go` runs (not `go = …`, `go.x`, `go(…)`…).
fn starts_task(next: Option<&TokenTree>) -> bool {
    match next {
        None => true,
        Some(TokenTree::Punct(p)) => matches!(p.as_char(), '|' | ';' | '&' | '*' | ','),
        Some(TokenTree::Group(g)) => matches!(g.delimiter(), Delimiter::Brace | Delimiter::Parenthesis),
        Some(TokenTree::Ident(_)) => true,
        Some(TokenTree::Literal(_)) => true,
    }
}

/// Turns each `go <task>` into a marker (recursively, in nested groups); `delimiter` is the
/// group the tokens come from, and `tail_value` says whether a `go` ending them without `;` is
/// their value (in the scope's block itself; elsewhere, as in a loop body, it is a statement).
pub(crate) fn desugar_go(tokens: TokenStream, delimiter: Delimiter, tail_value: bool) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let at = if matches!(&trees[i], TokenTree::Ident(id) if id == "go") && starts_task(trees.get(i + 1)) {
            position(&out, delimiter)
        } else {
            Position::Neither
        };
        // `go(x)` at a statement start is a call of a function named `go`.
        let call_of_go = matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis)
            && at == Position::Statement;
        if at == Position::Neither || call_of_go {
            out.push(recurse(&trees[i]));
            i += 1;
            continue;
        }
        let span = trees[i].span();
        let in_arm = matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '>');
        let ends_at_comma = in_arm || (at == Position::Value && delimiter != Delimiter::Brace);
        let rest = &trees[i + 1..];
        let len = task_len(rest, ends_at_comma);
        let task: TokenStream = desugar_go(rest[..len].iter().cloned().collect(), Delimiter::Brace, false);
        let tail = tail_value && at == Position::Statement && !in_arm && i + 1 + len == trees.len();
        let name = if at == Position::Value || tail { GO_VALUE } else { GO };
        out.extend(marker(task, span, name));
        i += 1 + len;
        if at == Position::Statement
            && matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ';')
        {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The tokens of a `go` task: a block, `move` and a block, or everything up to `;` (or, in
/// a match arm or an argument list, up to the next `,`).
fn task_len(rest: &[TokenTree], ends_at_comma: bool) -> usize {
    match rest {
        [TokenTree::Group(g), ..] if g.delimiter() == Delimiter::Brace => 1,
        [TokenTree::Ident(m), TokenTree::Group(g), ..]
            if m == "move" && g.delimiter() == Delimiter::Brace =>
        {
            2
        }
        _ => {
            // Commas inside a turbofish (`f::<A, B>(x)`) do not end the task.
            let mut generics = 0usize;
            for (i, tree) in rest.iter().enumerate() {
                let TokenTree::Punct(p) = tree else { continue };
                let after_path = i >= 2
                    && matches!((&rest[i - 2], &rest[i - 1]), (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == ':' && b.as_char() == ':');
                match p.as_char() {
                    '<' if generics > 0 || after_path => generics += 1,
                    '>' if generics > 0 => generics -= 1,
                    ';' => return i,
                    ',' if ends_at_comma && generics == 0 => return i,
                    _ => {}
                }
            }
            rest.len()
        }
    }
}

fn marker(task: TokenStream, span: Span, name: &str) -> TokenStream {
    let name = Ident::new(name, span);
    let mut group = Group::new(Delimiter::Brace, task);
    group.set_span(span);
    quote_spanned!(span=> #name ! #group)
}

fn recurse(tree: &TokenTree) -> TokenTree {
    match tree {
        TokenTree::Group(group) => {
            let mut rebuilt =
                Group::new(group.delimiter(), desugar_go(group.stream(), group.delimiter(), false));
            rebuilt.set_span(group.span());
            TokenTree::Group(rebuilt)
        }
        other => other.clone(),
    }
}
