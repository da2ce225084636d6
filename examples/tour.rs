//! A walk through gonext: one short section per feature, each added with the feature.
//!
//! Run it with `cargo run --example tour`.

use gonext_examples::section;

fn main() {
    section("gonext tour");
    println!("gonext {}", env!("CARGO_PKG_VERSION"));
}
