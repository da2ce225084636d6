//! Go's synctest Task 1: a retry loop with exponential backoff, tested in virtual time.
//!
//! Run it with `cargo run --example retry`: the schedule below spans 1.5 seconds of virtual
//! time and finishes instantly.

use gonext::context::Context;
use gonext::retry::{Backoff, RetryError};
use gonext::time::{self, Instant};
use std::time::Duration;

/// The function under test: Go's `RetryWithBackoff(ctx, op, maxAttempts)`.
fn retry_with_backoff<T>(
    ctx: &Context,
    max_attempts: u32,
    op: impl FnMut() -> Result<T, String>,
) -> Result<T, RetryError<String>> {
    Backoff::new(Duration::from_millis(100)).max_attempts(max_attempts).context(ctx).retry(op)
}

fn main() {
    time::bubble(|| {
        let start = Instant::now();
        let mut attempts = 0;
        let result = retry_with_backoff(&Context::background(), 5, || {
            attempts += 1;
            println!("  attempt {attempts} at +{:?}", start.elapsed());
            if attempts == 3 { Ok("connected") } else { Err("connection refused".to_owned()) }
        });
        println!("{result:?} after {:?} of virtual time", start.elapsed());

        let start = Instant::now();
        let failed: Result<(), _> = retry_with_backoff(&Context::background(), 5, || Err("down".to_owned()));
        println!("{} after {:?} (100+200+400+800 ms)", failed.unwrap_err(), start.elapsed());
    });
}
