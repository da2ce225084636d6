//! Runs every gonext benchmark case side by side with its peers and prints JSON lines.
//!
//! ```text
//! cargo run --release -p gonext-bench --bin compare -- [--quick] [--list] [FILTER]
//! ```
//!
//! `FILTER` keeps the cases whose name contains it. A case that panics is reported on
//! stderr and makes the run exit with status 1 after the other cases ran. When the reader
//! closes the pipe (`compare | head -1`), the run stops quietly.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use gonext_bench::alloc::CountingAlloc;
use gonext_bench::cases;
use gonext_bench::harness::Config;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const USAGE: &str = "usage: compare [--quick] [--list] [FILTER]";

struct Args {
    quick: bool,
    list: bool,
    filter: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { quick: false, list: false, filter: None };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--list" => args.list = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`\n{USAGE}")),
            _ if args.filter.is_some() => return Err(format!("only one FILTER is accepted\n{USAGE}")),
            _ => args.filter = Some(arg),
        }
    }
    Ok(args)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Writes one report line; a closed pipe ends the run successfully, any other error fails it.
fn emit(out: &mut impl Write, line: &str) -> Result<(), ExitCode> {
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|error| {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("compare: cannot write the report: {error}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let config = if args.quick { Config::QUICK } else { Config::FULL };
    let mut selected: Vec<_> = cases::all()
        .into_iter()
        .filter(|case| args.filter.as_deref().is_none_or(|f| case.name().contains(f)))
        .collect();
    if selected.is_empty() {
        eprintln!("no case matches {:?}; `--list` shows them", args.filter.unwrap_or_default());
        return ExitCode::from(2);
    }
    let mut stdout = std::io::stdout().lock();
    if args.list {
        for case in &selected {
            let line = format!("{}\t{}", case.name(), case.peer_names().join(","));
            if let Err(stop) = emit(&mut stdout, &line) {
                return stop;
            }
        }
        return ExitCode::SUCCESS;
    }
    let mut failed = Vec::new();
    for case in &mut selected {
        match catch_unwind(AssertUnwindSafe(|| case.run(&config))) {
            Ok(lines) => {
                for line in lines {
                    if let Err(stop) = emit(&mut stdout, &line) {
                        return stop;
                    }
                }
            }
            Err(payload) => {
                eprintln!("compare: case {} panicked: {}", case.name(), panic_message(&*payload));
                failed.push(case.name());
            }
        }
    }
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("compare: {} case(s) failed: {}", failed.len(), failed.join(", "));
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose every write fails with `kind`.
    struct Failing(std::io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_run_successfully() {
        assert_eq!(emit(&mut Failing(std::io::ErrorKind::BrokenPipe), "x"), Err(ExitCode::SUCCESS));
    }

    #[test]
    fn other_write_errors_fail_the_run() {
        assert_eq!(emit(&mut Failing(std::io::ErrorKind::StorageFull), "x"), Err(ExitCode::FAILURE));
    }

    #[test]
    fn each_report_line_ends_with_a_newline() {
        let mut out = Vec::new();
        emit(&mut out, "{}").unwrap();
        emit(&mut out, "{}").unwrap();
        assert_eq!(out, b"{}\n{}\n");
    }
}
