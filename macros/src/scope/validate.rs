//! Scope options: `limit = N` (N ≥ 1) and `errors = all | first`.

use syn::{LitInt, Stmt};

use super::parse::RawScope;

pub(super) struct Scope {
    pub(super) limit: Option<usize>,
    pub(super) all_errors: bool,
    pub(super) stmts: Vec<Stmt>,
}

pub(super) fn validate(raw: RawScope) -> syn::Result<Scope> {
    let mut scope = Scope { limit: None, all_errors: false, stmts: raw.stmts };
    for option in raw.options {
        match option.key.to_string().as_str() {
            "limit" => {
                let limit: LitInt = syn::parse2(option.value.clone()).map_err(|_| {
                    syn::Error::new_spanned(&option.value, "`limit` takes a positive integer, e.g. limit = 4")
                })?;
                let n: usize = limit.base10_parse()?;
                if n == 0 {
                    return Err(syn::Error::new(
                        limit.span(),
                        "`limit = 0` would never run a task; use at least 1",
                    ));
                }
                scope.limit = Some(n);
            }
            "errors" => {
                let value = option.value.to_string();
                scope.all_errors = match value.as_str() {
                    "all" => true,
                    "first" => false,
                    _ => {
                        return Err(syn::Error::new_spanned(&option.value, "`errors` is `all` or `first`"));
                    }
                };
            }
            other => {
                return Err(syn::Error::new(
                    option.key.span(),
                    format!("unknown scope option `{other}`; the options are `limit = N` and `errors = all`"),
                ));
            }
        }
    }
    Ok(scope)
}
