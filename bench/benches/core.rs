//! Criterion benches of the hottest paths, for profiling and regression tracking with
//! `cargo bench -p gonext-bench`; the side-by-side ratios against peers live in `compare`.

use criterion::{Criterion, criterion_group, criterion_main};
use gonext::{generator, thread, time};
use std::hint::black_box;
use std::time::Duration;

#[generator]
fn fib() -> impl Iterator<Item = u64> {
    let (mut a, mut b) = (0u64, 1u64);
    loop {
        yield_!(a);
        (a, b) = (b, a.wrapping_add(b));
    }
}

fn generators(c: &mut Criterion) {
    c.bench_function("generator fib 1000 steps", |b| {
        b.iter(|| fib().take(1000).fold(0u64, u64::wrapping_add));
    });
}

fn virtual_time(c: &mut Criterion) {
    c.bench_function("virtual sleep in a bubble", |b| {
        b.iter_custom(|iters| {
            // Timed from outside: with `std-time`, std's clock inside the bubble is virtual.
            let start = std::time::Instant::now();
            time::bubble(|| {
                for _ in 0..iters {
                    thread::sleep(black_box(Duration::from_millis(1)));
                }
            });
            start.elapsed()
        });
    });
    c.bench_function("Instant::now outside a bubble", |b| b.iter(time::Instant::now));
}

fn procs(c: &mut Criterion) {
    c.bench_function("max_procs cached", |b| b.iter(gonext::runtime::max_procs));
}

criterion_group!(benches, generators, virtual_time, procs);
criterion_main!(benches);
