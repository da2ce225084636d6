//! A tokio service's retry loop tested in virtual time: the code under test is plain tokio
//! (`tokio::time::sleep`, `tokio::time::Instant`, `tokio::spawn`), and the test runs it on a
//! multi-thread runtime inside a bubble, where tokio's paused clock cannot go.
//!
//! Run it with `cargo run -p gonext-examples --features std-time --example tokio_retry`: the
//! schedule spans a minute and a half of virtual time and finishes at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The code under test: calls `connect` until it succeeds, doubling the pause from 1 s, and
/// gives up after `max_attempts`. It knows nothing of gonext.
async fn connect_with_backoff<F, Fut>(mut connect: F, max_attempts: u32) -> Result<&'static str, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<&'static str, String>>,
{
    let mut pause = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match connect().await {
            Ok(connection) => return Ok(connection),
            Err(error) if attempt == max_attempts => return Err(error),
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
        }
    }
}

fn main() {
    gonext::time::bubble(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_park(gonext::time::runtime_parked)
            .on_thread_unpark(gonext::time::runtime_unparked)
            .build()
            .expect("tokio runtime");
        runtime.block_on(gonext::time::root_future(async {
            let start = tokio::time::Instant::now();
            let attempts = Arc::new(AtomicU32::new(0));
            let counted = Arc::clone(&attempts);
            // The flaky server: a task that comes up after 60 s.
            let server = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
            let server = Arc::new(server);
            let result = connect_with_backoff(
                move || {
                    let attempt = counted.fetch_add(1, Ordering::SeqCst) + 1;
                    println!("  attempt {attempt} at +{:?}", start.elapsed());
                    let up = server.is_finished();
                    async move { if up { Ok("connected") } else { Err("connection refused".to_owned()) } }
                },
                8,
            )
            .await;
            println!("{result:?} after {:?} of virtual time", start.elapsed());
            assert_eq!(result, Ok("connected"));
            assert_eq!(attempts.load(Ordering::SeqCst), 7); // at +0, 1, 3, 7, 15, 31 and 63 s
            assert_eq!(start.elapsed(), Duration::from_secs(63));
        }));
    });
}
