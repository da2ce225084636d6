//! A walk through gonext: one short section per feature, each added with the feature.
//!
//! Run it with `cargo run --example tour`.

use gonext_examples::section;

fn main() {
    section("gonext tour");
    println!("gonext {}", env!("CARGO_PKG_VERSION"));
    max_procs();
}

/// Go 1.25's automatic GOMAXPROCS: a thread count that respects the container's CPU quota.
fn max_procs() {
    section("runtime::max_procs — CPU quota detection");
    println!("{}", gonext::runtime::max_procs_report());
    println!("a CPU-bound pool here should run {} threads", gonext::runtime::max_procs());
}
