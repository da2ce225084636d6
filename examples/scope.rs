//! Go's Task 6: a `Run` that starts workers with `Go` and waits for all of them — here
//! `scope!` — plus a fan-out/fan-in over channels and a bgtask `Manager`.
//!
//! Run it with `cargo run --example scope`.

use gonext::sync::{self, Manager};
use gonext::{scope, thread, time, try_scope};
use std::time::Duration;

fn square(n: u64, out: &sync::Sender<u64>) {
    out.send(n * n).expect("the collector is alive");
}

fn main() {
    // Fan-out: one task per input; fan-in: one channel, drained after the scope joined.
    let (tx, rx) = sync::chan(16);
    let out = &tx;
    scope!(limit = 4; {
        for n in 1..=10 {
            go square(n, out);
        }
    });
    drop(tx);
    println!("fan-in sum of squares: {}", rx.iter().sum::<u64>());

    // Errors: the first one cancels the siblings, which can watch the context.
    let checked: Result<(), String> = try_scope! {
        go |_ctx| Err::<(), _>("fetch failed".to_owned());
        go |ctx| {
            gonext::select! {
                _ = ctx.done() => Ok(()),
                _ = time::sleep(Duration::from_secs(30)) => Err("never cancelled".to_owned()),
            }
        };
    };
    println!("try_scope!: {checked:?}");

    // Long-lived background tasks, stopped together (in virtual time, so this is instant).
    time::bubble(|| {
        let manager = Manager::<String>::new();
        manager.go(|ctx| {
            let mut beats = 0;
            while !ctx.is_done() {
                thread::sleep(Duration::from_secs(1));
                beats += 1;
            }
            println!("heartbeat task stopped after {beats} beats");
            Ok(())
        });
        thread::sleep(Duration::from_millis(3500));
        println!("manager.stop(): {:?}", manager.stop());
    });
}
