//! A walk through gonext: one short section per feature, each added with the feature.
//!
//! Run it with `cargo run --example tour`.

use gonext_examples::section;

fn main() {
    section("gonext tour");
    println!("gonext {}", env!("CARGO_PKG_VERSION"));
    generators();
    scopes();
    virtual_time();
    weak_and_unique();
    max_procs();
    tagged_cas();
}

/// Go's weak pointers, runtime.AddCleanup and unique.Make.
fn weak_and_unique() {
    use gonext::{Ptr, runtime, unique, weak};

    section("weak, runtime::add_cleanup, unique — weak pointers, cleanups, interning");
    let object = Ptr::new(vec![1, 2, 3]);
    let observer = weak::make(&object);
    runtime::add_cleanup(&object, |name: &str| println!("cleanup ran for {name}"), "the vector");
    println!("alive: {:?}", observer.value().map(|v| v.len()));
    drop(object);
    runtime::flush_cleanups();
    println!("after the last Ptr: {:?}", observer.value().map(|v| v.len()));
    let (a, b) = (unique::make("eu-west-1".to_owned()), unique::make("eu-west-1".to_owned()));
    println!("unique handles equal: {}", a == b);
}

/// Go's range-over-func and iter.Pull: generators with `yield`, and push iterators pulled.
fn generators() {
    use gonext::iter::{Seq, pull};
    use gonext::{generator, seq};

    #[generator]
    fn fib() -> impl Iterator<Item = u64> {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            yield_!(a);
            (a, b) = (b, a + b);
        }
    }

    section("iter — generators, seq!, coroutines, pull (range-over-func, iter.Pull)");
    println!("#[generator] fib: {:?}", fib().take(8).collect::<Vec<_>>());
    let evens = seq! { for x in 0..10 { if x % 2 == 0 { yield x; } } };
    println!("seq! evens: {:?}", evens.collect::<Vec<u32>>());
    let mut walk = pull(Seq::new(|y| {
        for depth in 0..3 {
            if !y.yield_(format!("level {depth}")) {
                return;
            }
        }
    }));
    println!("pull: {:?}, {:?}", walk.next(), walk.next());

    #[generator]
    fn running_total(#[resume] first: u32) -> impl gonext::iter::Coroutine<u32, Yield = u32, Return = u32> {
        let mut total = first;
        while let next @ 1.. = yield_!(total) {
            total += next;
        }
        total
    }
    use gonext::iter::Coroutine as _;
    let mut sum = running_total();
    println!("coroutine: {:?} {:?} {:?}", sum.resume(5), sum.resume(7), sum.resume(0));
    let words = ["go", "next"];
    let lengths: Vec<usize> = gonext::iter::pull_scoped(
        |y| {
            for word in &words {
                y.yield_(word.len());
            }
        },
        |lengths| lengths.collect(),
    );
    println!("pull_scoped over a borrowed array: {lengths:?}");
}

/// Go's `go` statement inside a structured-concurrency block.
fn scopes() {
    use gonext::{scope, try_scope};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn square_into(total: &AtomicU64, n: u64) {
        total.fetch_add(n * n, Ordering::Relaxed);
    }

    section("scope! / try_scope! — go statements that cannot leak");
    let sum = AtomicU64::new(0);
    let total = &sum;
    let tasks = scope!(limit = 4; {
        for n in 1..=10 {
            go square_into(total, n);
        }
        10
    });
    println!("{tasks} tasks joined, sum of squares = {}", sum.load(Ordering::Relaxed));
    let failed: Result<(), String> = try_scope! {
        go |_ctx| Err::<(), _>("the first error cancels the rest".to_owned());
        go |_ctx| Ok::<(), String>(());
    };
    println!("try_scope! returned {failed:?}");
    let (left, right) = scope! {
        let left = go (1..=50u64).sum::<u64>();
        let right = go (51..=100u64).sum::<u64>();
        (left.join(), right.join())
    };
    println!("let h = go …; h.join(): {left} + {right} = {}", left + right);
    let raced: Result<&str, Vec<String>> = try_scope!(policy = first_success, timeout = "1s"; {
        go |_ctx| Err::<&str, _>("the first mirror is down".to_owned());
        go |_ctx| Ok::<_, String>("the second mirror answered");
    });
    println!("policy = first_success: {raced:?}");
}

/// Go's testing/synctest: a bubble whose clock only moves when every member is blocked.
fn virtual_time() {
    use gonext::context::Context;
    use gonext::{select, sync, thread, time};
    use std::time::Duration;

    section("time — virtual time bubbles (synctest)");
    time::bubble(|| {
        let start = time::Instant::now();
        let (tx, rx) = sync::chan(0);
        thread::spawn(move || {
            thread::sleep(Duration::from_secs(3600));
            tx.send("an hour later").unwrap();
        });
        let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(7200));
        let got = select! {
            msg = rx.recv_async() => msg,
            _ = ctx.done() => None,
        };
        println!("{got:?}: {:?} of virtual time passed", start.elapsed());
        let (fired_tx, fired_rx) = sync::chan(1);
        let alarm =
            time::after_func(Duration::from_secs(90), move || fired_tx.send(time::Instant::now()).unwrap());
        alarm.reset(Duration::from_secs(30)); // Go's Timer.Reset: re-armed, no stale value
        let fired = fired_rx.recv().unwrap();
        println!(
            "after_func ran on its own member thread {:?} later",
            fired - start - Duration::from_secs(3600)
        );
    });
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let report = std::panic::catch_unwind(|| {
        time::bubble(|| {
            let (_tx, rx) = sync::chan::<u8>(0);
            rx.recv()
        })
    });
    std::panic::set_hook(quiet);
    let message = report.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    println!("a stuck bubble reports: {}", message.lines().next().unwrap_or_default());
    let std_virtual = time::bubble(time::std_time_is_virtual);
    println!("std::time inside a bubble is virtual: {std_virtual} (true with the std-time feature)");
}

/// Go's atomic vector-ops proposal: a pointer and a generation swapped by one CAS.
fn tagged_cas() {
    use gonext::atomic::{AtomicTagged, TaggedCas, TreiberStack};
    use std::sync::atomic::Ordering::{AcqRel, Acquire};

    section("atomic — ABA-safe double-width CAS");
    let (mut a, mut b) = (1u32, 2u32);
    let cell = AtomicTagged::new(Some((&mut a).into()));
    let seen = cell.load(Acquire);
    cell.compare_exchange(seen, Some((&mut b).into()), AcqRel, Acquire).expect("no one else updates");
    cell.compare_exchange(cell.load(Acquire), seen.ptr, AcqRel, Acquire).expect("no one else updates");
    let stale = cell.compare_exchange(seen, None, AcqRel, Acquire);
    println!(
        "same pointer back, generation {}: stale CAS rejected = {}",
        cell.load(Acquire).tag,
        stale.is_err()
    );
    let stack = TreiberStack::new();
    (1..=3).for_each(|i| stack.push(i));
    println!("TreiberStack pops {:?}", std::iter::from_fn(|| stack.pop()).collect::<Vec<_>>());
}

/// Go 1.25's automatic GOMAXPROCS: a thread count that respects the container's CPU quota.
fn max_procs() {
    section("runtime::max_procs — CPU quota detection");
    println!("{}", gonext::runtime::max_procs_report());
    println!("a CPU-bound pool here should run {} threads", gonext::runtime::max_procs());
}
