//! Token-level work on generator bodies: the syntax `syn` cannot parse (`yield from`,
//! `for await`) is turned into syntax it can, and yields inside other macros' tokens are
//! found.

use proc_macro2::{Delimiter, Group, Ident, Spacing, TokenStream, TokenTree};
use quote::quote_spanned;

/// The attribute a `for await` loop is marked with; users of `#[generator]` write it
/// themselves (`#[for_await] for x in s { … }`), since rustc rejects `for await` there.
pub(crate) const FOR_AWAIT: &str = "for_await";

/// The macros whose yields belong to a generator of their own.
pub(crate) const GENERATOR_MACROS: [&str; 4] = ["seq", "stream", "try_seq", "try_stream"];

/// Rewrites `yield from <tokens>;` into `yield_from!(<tokens>);` and `for await` into
/// `#[for_await] for` throughout `tokens`, so that a block parses.
pub(crate) fn desugar(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let next_is = |word: &str| matches!(trees.get(i + 1), Some(TokenTree::Ident(id)) if id == word);
        match &trees[i] {
            TokenTree::Ident(id) if id == "yield" && next_is("from") => {
                let end = trees[i + 2..]
                    .iter()
                    .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';'))
                    .map_or(trees.len(), |p| i + 2 + p);
                let source = desugar(trees[i + 2..end].iter().cloned().collect());
                out.extend(quote_spanned!(id.span()=> yield_from!(#source)));
                i = end;
            }
            TokenTree::Ident(id) if id == "for" && next_is("await") => {
                let attr = Ident::new(FOR_AWAIT, trees[i + 1].span());
                // A loop label stays between the attribute and `for`.
                let at = out.len() - if ends_with_label(&out) { 3 } else { 0 };
                out.splice(at..at, quote_spanned!(attr.span()=> #[#attr]));
                out.push(trees[i].clone());
                i += 2;
            }
            TokenTree::Group(group) => {
                out.push(regroup(group, desugar(group.stream())));
                i += 1;
            }
            other => {
                out.push(other.clone());
                i += 1;
            }
        }
    }
    out.into_iter().collect()
}

/// Whether `trees` end with a loop label, `'name:`.
fn ends_with_label(trees: &[TokenTree]) -> bool {
    matches!(
        trees,
        [.., TokenTree::Punct(quote), TokenTree::Ident(_), TokenTree::Punct(colon)]
            if quote.as_char() == '\'' && colon.as_char() == ':'
    )
}

/// `group` with its contents replaced, keeping its delimiter and span.
pub(crate) fn regroup(group: &Group, stream: TokenStream) -> TokenTree {
    let mut rebuilt = Group::new(group.delimiter(), stream);
    rebuilt.set_span(group.span());
    TokenTree::Group(rebuilt)
}

/// The block tokens of a `seq!`/`stream!` invocation as a brace-delimited group.
pub(crate) fn braced(tokens: TokenStream) -> TokenStream {
    TokenTree::Group(Group::new(Delimiter::Brace, tokens)).into()
}

/// Whether `tokens` hold a yield of this generator: `yield`, `yield_!` or `yield_from!`,
/// outside nested generator macros.
pub(crate) fn contains_yield(tokens: &TokenStream) -> bool {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        if is_nested_generator(&trees, i) {
            i += 3;
            continue;
        }
        match &trees[i] {
            TokenTree::Ident(id) if id == "yield" || id == "yield_" || id == "yield_from" => return true,
            TokenTree::Group(group) if contains_yield(&group.stream()) => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Whether `trees[i]` starts `seq! { … }` or another generator macro invocation.
pub(crate) fn is_nested_generator(trees: &[TokenTree], i: usize) -> bool {
    matches!(&trees[i], TokenTree::Ident(id) if GENERATOR_MACROS.iter().any(|name| id == name))
        && is_bang(trees.get(i + 1))
        && matches!(trees.get(i + 2), Some(TokenTree::Group(_)))
}

/// Whether `trees[i]` starts a `yield_!(…)` or `yield_from!(…)` invocation.
pub(crate) fn is_yield_macro(trees: &[TokenTree], i: usize) -> bool {
    matches!(&trees[i], TokenTree::Ident(id) if id == "yield_" || id == "yield_from")
        && is_bang(trees.get(i + 1))
        && matches!(trees.get(i + 2), Some(TokenTree::Group(_)))
}

fn is_bang(tree: Option<&TokenTree>) -> bool {
    matches!(tree, Some(TokenTree::Punct(p)) if p.as_char() == '!' && p.spacing() == Spacing::Alone)
}
