//! The rules of `select!` that parsing alone does not enforce.

use super::parse::Select;

pub(super) fn validate(select: &Select) -> syn::Result<()> {
    if select.branches.is_empty() {
        let span = select.defaults.first().map_or_else(proc_macro2::Span::call_site, |d| d.keyword.span());
        return Err(syn::Error::new(span, "select! needs at least one `pattern = future => …` branch"));
    }
    let mut extra = select
        .defaults
        .iter()
        .skip(1)
        .map(|d| syn::Error::new(d.keyword.span(), "select! takes at most one `default` branch"));
    match extra.next() {
        None => Ok(()),
        Some(first) => Err(extra.fold(first, |mut all, next| {
            all.combine(next);
            all
        })),
    }
}
