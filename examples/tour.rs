//! A walk through gonext: one short section per feature, each added with the feature.
//!
//! Run it with `cargo run --example tour`.

use gonext_examples::section;

fn main() {
    section("gonext tour");
    println!("gonext {}", env!("CARGO_PKG_VERSION"));
    max_procs();
    tagged_cas();
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
