//! Every rule a scope's options and body can break: unknown, repeated or ill-typed options,
//! options the macro does not take, `?` where no error can go, and handles where the policy
//! keeps none.

use proc_macro2::Ident;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, LitInt, LitStr, Macro, Stmt};

use super::Flavor;
use super::parse::{GO_VALUE, RawOption, RawScope};
use crate::virtual_time_test::validate::parse_duration;

/// What happens when a task fails.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// The first failure cancels the scope's context (the default).
    FailFast,
    /// Failures do not cancel the siblings.
    Supervisor,
    /// The first success cancels the others and is the scope's value.
    FirstSuccess,
}

/// `timeout =`: a duration literal checked here, or an expression of type `Duration`.
pub(super) enum Timeout {
    Literal { secs: u64, nanos: u32 },
    Expr(Expr),
}

pub(super) struct Scope {
    pub(super) limit: Option<usize>,
    pub(super) all_errors: bool,
    pub(super) policy: Policy,
    pub(super) context: Option<Expr>,
    pub(super) timeout: Option<Timeout>,
    pub(super) deadline: Option<Expr>,
    pub(super) binding: Option<Ident>,
    pub(super) stmts: Vec<Stmt>,
}

pub(super) fn validate(raw: RawScope, flavor: Flavor) -> syn::Result<Scope> {
    let mut scope = Scope {
        limit: None,
        all_errors: false,
        policy: Policy::FailFast,
        context: None,
        timeout: None,
        deadline: None,
        binding: raw.binding,
        stmts: raw.stmts,
    };
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut errors_option = None;
    for option in &raw.options {
        let key = option.key.to_string();
        if seen.contains(&key) {
            errors.push(syn::Error::new(option.key.span(), format!("`{key}` is given twice")));
            continue;
        }
        seen.push(key.clone());
        if key == "errors" {
            errors_option = Some(option.key.span());
        }
        if let Err(error) = apply(&mut scope, option, flavor) {
            errors.push(error);
        }
    }
    if scope.policy == Policy::FirstSuccess
        && let Some(span) = errors_option
    {
        errors.push(syn::Error::new(
            span,
            "`policy = first_success` returns every error when no task succeeds; drop `errors`",
        ));
    }
    let mut body = BodyRules { flavor, race: scope.policy == Policy::FirstSuccess, errors: Vec::new() };
    for stmt in &scope.stmts {
        body.visit_stmt(stmt);
    }
    errors.extend(body.errors);
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(first) => Err(errors.fold(first, |mut all, next| {
            all.combine(next);
            all
        })),
        None => Ok(scope),
    }
}

/// The options each macro takes, for the message about the others.
fn accepted(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Infallible => "`limit`, `policy`, `ctx`, `timeout` and `deadline`",
        Flavor::Fallible => "`limit`, `errors`, `policy`, `ctx`, `timeout` and `deadline`",
        Flavor::Async | Flavor::TryAsync => "`limit`, `ctx`, `timeout` and `deadline`",
    }
}

fn apply(scope: &mut Scope, option: &RawOption, flavor: Flavor) -> syn::Result<()> {
    let key = option.key.to_string();
    let value = &option.value;
    let not_here = |why: &str| {
        Err(syn::Error::new(option.key.span(), format!("{} does not take `{key}`: {why}", flavor.name())))
    };
    match key.as_str() {
        "limit" => {
            let limit: LitInt = syn::parse2(value.clone()).map_err(|_| {
                syn::Error::new_spanned(value, "`limit` takes a positive integer, e.g. limit = 4")
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
            if flavor != Flavor::Fallible {
                return not_here("its tasks cannot fail with an error (use try_scope!)");
            }
            scope.all_errors = match value.to_string().as_str() {
                "all" => true,
                "first" => false,
                _ => return Err(syn::Error::new_spanned(value, "`errors` is `all` or `first`")),
            };
        }
        "policy" => {
            if matches!(flavor, Flavor::Async | Flavor::TryAsync) {
                return not_here("a failing child always drops the others");
            }
            scope.policy = match value.to_string().as_str() {
                "fail_fast" => Policy::FailFast,
                "supervisor" => Policy::Supervisor,
                "first_success" if flavor == Flavor::Fallible => Policy::FirstSuccess,
                "first_success" => {
                    return Err(syn::Error::new_spanned(
                        value,
                        "`policy = first_success` needs tasks that can fail: use try_scope!",
                    ));
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        value,
                        "`policy` is `fail_fast` (the default), `supervisor` or `first_success`",
                    ));
                }
            };
        }
        "ctx" => scope.context = Some(expr(value, "`ctx` takes a context, e.g. ctx = &parent")?),
        "deadline" => {
            scope.deadline =
                Some(expr(value, "`deadline` takes a gonext::time::Instant, e.g. deadline = at")?);
        }
        "timeout" => {
            scope.timeout = Some(match syn::parse2::<LitStr>(value.clone()) {
                Ok(text) => {
                    let duration = parse_duration(&text.value()).map_err(|why| {
                        syn::Error::new(text.span(), format!("{why}; write e.g. timeout = \"5s\""))
                    })?;
                    Timeout::Literal { secs: duration.as_secs(), nanos: duration.subsec_nanos() }
                }
                Err(_) => Timeout::Expr(expr(value, "`timeout` takes \"5s\" or a std::time::Duration")?),
            });
        }
        other => {
            return Err(syn::Error::new(
                option.key.span(),
                format!("unknown scope option `{other}`; {} takes {}", flavor.name(), accepted(flavor)),
            ));
        }
    }
    Ok(())
}

fn expr(value: &proc_macro2::TokenStream, message: &str) -> syn::Result<Expr> {
    syn::parse2(value.clone()).map_err(|_| syn::Error::new_spanned(value, message))
}

/// Finds `?` in a body whose errors have nowhere to go, and handles in a race.
struct BodyRules {
    flavor: Flavor,
    race: bool,
    errors: Vec<syn::Error>,
}

impl<'ast> Visit<'ast> for BodyRules {
    fn visit_expr_try(&mut self, try_expr: &'ast syn::ExprTry) {
        if matches!(self.flavor, Flavor::Infallible | Flavor::Async) {
            let (name, fallible) = if self.flavor == Flavor::Async {
                ("async_scope!", "try_async_scope!")
            } else {
                ("scope!", "try_scope!")
            };
            self.errors.push(syn::Error::new(
                try_expr.question_token.span(),
                format!(
                    "`?` in the body of {name} has no error to return; use {fallible}, whose body may fail"
                ),
            ));
        }
        syn::visit::visit_expr_try(self, try_expr);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        if self.race && mac.path.is_ident(GO_VALUE) {
            self.errors.push(syn::Error::new(
                mac.path.span(),
                "a `policy = first_success` scope returns the winner's value; its `go` has no handle",
            ));
        }
    }

    // Closures, async blocks and nested items have their own `?`.
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

impl Flavor {
    pub(super) fn name(self) -> &'static str {
        match self {
            Flavor::Infallible => "scope!",
            Flavor::Fallible => "try_scope!",
            Flavor::Async => "async_scope!",
            Flavor::TryAsync => "try_async_scope!",
        }
    }
}
