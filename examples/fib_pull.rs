//! Go's Task 2: a Fibonacci sequence as a generator, taken with `Take`, and the same sequence
//! as a push iterator consumed with `iter.Pull`.
//!
//! Run it with `cargo run --example fib_pull`.

use gonext::generator;
use gonext::iter::{Seq, pull};

/// Go's `Fibonacci() iter.Seq[int]`, as a generator function.
#[generator]
fn fibonacci() -> impl Iterator<Item = u64> {
    let (mut a, mut b) = (0u64, 1u64);
    loop {
        yield_!(a);
        (a, b) = (b, a + b);
    }
}

/// Go's `Take(seq, n)`: a generator over another iterator.
#[generator]
fn take<I: Iterator>(seq: I, n: usize) -> impl Iterator<Item = I::Item> {
    for (i, v) in seq.enumerate() {
        if i == n {
            return;
        }
        yield_!(v);
    }
}

fn main() {
    let first: Vec<u64> = take(fibonacci(), 10).collect();
    println!("range over Take(Fibonacci(), 10): {first:?}");

    let push = Seq::new(|y| {
        let (mut a, mut b) = (0u64, 1u64);
        while y.yield_(a) {
            (a, b) = (b, a + b);
        }
    });
    let mut next = pull(push);
    let pulled: Vec<u64> = (0..5).filter_map(|_| next.next()).collect();
    next.stop();
    println!("iter.Pull: next() x5 = {pulled:?}, then stop(): next() = {:?}", next.next());
}
