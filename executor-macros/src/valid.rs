//! Checking: the backend, the options against its row in `backends` (those it takes, those it
//! refuses with a reason), and option values that are wrong on sight.

use std::collections::HashSet;

use syn::{Error, Expr, ExprLit, ExprUnary, Lit, UnOp};

use crate::ast::{PoolInput, PoolOption};
use crate::backends::{self, BackendSpec};

/// The backend the input names, from the table; an error if there is no such backend or this
/// build lacks it. Checked on its own, before the options: which options are right depends on it,
/// and `fallback` needs it to keep the body of a block whose options are wrong.
pub(crate) fn backend(input: &PoolInput) -> Result<&'static BackendSpec, Error> {
    let name = input.backend.to_string();
    match backends::lookup(&name) {
        Some(spec) => match spec.feature {
            Some(feature) if !feature.enabled => {
                Err(Error::new(input.backend.span(), feature.missing))
            }
            _ => Ok(spec),
        },
        None => Err(Error::new(
            input.backend.span(),
            format!(
                "unknown backend `{name}`; expected {}",
                backends::available_names()
            ),
        )),
    }
}

/// Checks the options against the backend's row; every problem found is reported, each at its
/// own token.
pub(crate) fn options(input: &PoolInput, backend: &BackendSpec) -> Result<(), Error> {
    let mut errors: Option<Error> = None;
    let mut push = |error: Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let mut seen = HashSet::new();
    for option in &input.options {
        let name = option.name.to_string();
        if let Some(refusal) = backend.refuse(&name) {
            push(Error::new(option.name.span(), refusal));
        } else if !seen.insert(name.clone()) {
            push(Error::new(
                option.name.span(),
                format!("duplicate option `{name}`: give each option once"),
            ));
        } else if let Err(error) = check_value(option) {
            push(error);
        }
    }
    let literal = |name: &str| {
        let option = input.options.iter().find(|o| o.name == name)?;
        Some((option, integer_literal(&option.value)?))
    };
    if let (Some((min, low)), Some((_, high))) = (literal("min_workers"), literal("max_workers")) {
        if low > high && high >= 1 {
            push(Error::new_spanned(
                &min.value,
                format!("`min_workers` ({low}) must not be above `max_workers` ({high})"),
            ));
        }
    }
    let has = |name: &str| input.options.iter().any(|o| o.name == name);
    if let Some(initargs) = input.options.iter().find(|o| o.name == "initargs") {
        if !has("initializer") {
            push(Error::new(
                initargs.name.span(),
                "`initargs` needs an `initializer`: the function each worker calls with them",
            ));
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(()),
    }
}

/// Both checks, in order: the backend, then its options.
#[cfg(test)]
fn validate(input: &PoolInput) -> Result<&'static BackendSpec, Error> {
    let backend = backend(input)?;
    options(input, backend)?;
    Ok(backend)
}

/// Literal values that can never be right are refused here; other values are checked at block entry.
fn check_value(option: &PoolOption) -> Result<(), Error> {
    if ["max_workers", "min_workers", "max_tasks_per_child"]
        .contains(&option.name.to_string().as_str())
    {
        match integer_literal(&option.value) {
            Some(n) if n < 1 => Err(Error::new_spanned(
                &option.value,
                format!("`{}` must be at least 1, got {n}", option.name),
            )),
            _ => Ok(()),
        }
    } else if option.name == "memory_limit" {
        match integer_literal(&option.value) {
            Some(n) if n < MIN_MEMORY_LIMIT => Err(Error::new_spanned(
                &option.value,
                format!("`memory_limit` must be at least 16 MiB (16777216 bytes), got {n}"),
            )),
            _ => Ok(()),
        }
    } else {
        Ok(())
    }
}

/// The runtime's smallest `memory_limit` (`MIN_MEMORY_LIMIT` in `executor-runtime/src/block/options.rs`).
const MIN_MEMORY_LIMIT: i128 = 16 << 20;

/// The value of an integer literal, possibly negated (`4`, `-1`); `None` for anything else.
fn integer_literal(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => integer_literal(expr).map(|n| -n),
        Expr::Paren(inner) => integer_literal(&inner.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn check(tokens: proc_macro2::TokenStream) -> Result<&'static str, String> {
        validate(&syn::parse2(tokens).unwrap())
            .map(|backend| backend.name)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn thread_with_known_options_is_valid() {
        assert_eq!(
            check(quote!(Thread(max_workers = n, thread_name_prefix = "w") => {})),
            Ok("Thread")
        );
    }

    #[test]
    fn each_problem_has_its_message() {
        assert!(check(quote!(Fibers => {}))
            .unwrap_err()
            .starts_with("unknown backend `Fibers`"));
        assert_eq!(
            check(quote!(Auto(max_workers = 64, min_workers = 4) => {})),
            Ok("Auto")
        );
        assert!(check(quote!(Thread(min_workers = 2) => {}))
            .unwrap_err()
            .starts_with("the Thread backend has no `min_workers`"));
        assert!(check(quote!(Auto(timeout = d) => {}))
            .unwrap_err()
            .starts_with("the Auto backend has no `timeout`"));
        assert!(check(quote!(Auto(min_workers = 8, max_workers = 4) => {}))
            .unwrap_err()
            .contains("`min_workers` (8) must not be above `max_workers` (4)"));
        assert!(check(quote!(Auto(min_workers = 0) => {}))
            .unwrap_err()
            .contains("`min_workers` must be at least 1, got 0"));
        assert!(check(quote!(Process(thread_name_prefix = "w") => {}))
            .unwrap_err()
            .starts_with("unknown option `thread_name_prefix` for the Process backend"));
        assert!(check(quote!(Thread(workers = 2) => {}))
            .unwrap_err()
            .starts_with("unknown option `workers`"));
        assert!(
            check(quote!(Thread(max_workers = 2, max_workers = 3) => {}))
                .unwrap_err()
                .starts_with("duplicate option")
        );
        assert!(check(quote!(Thread(max_workers = 0) => {}))
            .unwrap_err()
            .contains("at least 1, got 0"));
        assert!(check(quote!(Thread(max_workers = -2) => {}))
            .unwrap_err()
            .contains("got -2"));
        assert!(check(quote!(Thread(memory_limit = 1 << 30) => {}))
            .unwrap_err()
            .starts_with("the Thread backend has no `memory_limit`"));
        assert!(check(quote!(Process(memory_limit = 1000) => {}))
            .unwrap_err()
            .contains("at least 16 MiB (16777216 bytes), got 1000"));
        assert_eq!(
            check(quote!(Process(memory_limit = 16777216) => {})),
            Ok("Process")
        );
    }

    #[test]
    #[cfg(not(feature = "mpi"))]
    fn mpi_without_the_feature_names_the_feature() {
        let error = check(quote!(Mpi => {})).unwrap_err();
        assert!(error.contains("cargo feature `mpi`"), "{error}");
    }

    #[test]
    #[cfg(feature = "mpi")]
    fn mpi_takes_max_workers_and_refuses_process_only_options() {
        assert_eq!(
            check(quote!(Mpi(max_workers = 2, cancel_futures = false) => {})),
            Ok("Mpi")
        );
        assert!(check(quote!(Mpi(timeout = d) => {}))
            .unwrap_err()
            .starts_with("the Mpi backend has no `timeout`"));
    }
}
