//! Sizing thread pools from the container's CPU quota (Go's automatic `GOMAXPROCS`).
//!
//! Run it with `cargo run --example automax`, or inside a container with a quota:
//! `docker run --cpus=1.5 …` reports `max_procs=2: from cgroup v2 cpu.max 150000/100000 at …`.
//! Set `GONEXT_MAX_PROCS=3` to override the detection. The value is re-detected once a second;
//! a semaphore follows it through `on_max_procs_change`.

use gonext::runtime::{self, Detector, Rounding};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn main() {
    let report = runtime::max_procs_report();
    println!("{report}");
    for warning in &report.warnings {
        println!("  warning: {warning}");
    }

    let floor = Detector::new().rounding(Rounding::Floor).detect();
    println!("automaxprocs-compatible (floor) rounding would give {}", floor.value);

    let threads = runtime::max_procs();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()
        .expect("a tokio runtime starts");
    let sum = tokio.block_on(async { (1..=10u64).sum::<u64>() });
    println!("tokio runtime with {threads} workers computed {sum}");

    let rayon = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool starts");
    println!("rayon pool with {} threads", rayon.current_num_threads());

    // tokio and rayon pools keep their size; a limit of your own can follow the quota.
    let permits = Arc::new(AtomicUsize::new(threads));
    let follow = Arc::clone(&permits);
    let _watch = runtime::on_max_procs_change(move |_, new| follow.store(new, Ordering::Relaxed));
    runtime::set_max_procs(threads + 1); // as if the container's quota grew
    println!("permits after a change: {}", permits.load(Ordering::Relaxed));
    if let Some(limit) = runtime::memory_limit() {
        println!("memory limit: {limit} bytes");
    }
}
