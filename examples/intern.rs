//! Interning with `unique::make_ref` (Go's `unique` package) and a weak canonicalization map
//! (the pattern of Go's weak-pointer proposal).
//!
//! Run it with `cargo run --example intern`.

use gonext::{Ptr, unique, weak};
use std::collections::HashMap;

fn main() {
    // `make_ref` copies a string only the first time it sees it.
    let zones: Vec<unique::Handle<str>> =
        ["us-east-1", "eu-west-1", "us-east-1"].into_iter().map(unique::make_ref).collect();
    println!("zones[0] == zones[2]: {} (a pointer comparison)", zones[0] == zones[2]);
    // `Handle<str>` values are stored as `Box<str>`.
    println!("live interned strings: {}", unique::live::<Box<str>>());
    println!("untrusted lookup of \"mars-1\": {:?}", unique::get::<str>("mars-1"));
    drop(zones);
    // This thread's cache still remembers the two values; `live` lets it forget idle ones
    // first (other threads' caches let go on their own, at the latest when they exit).
    println!("after dropping every handle: {}", unique::live::<Box<str>>());

    let mut canonical: HashMap<String, weak::Pointer<String>> = HashMap::new();
    let config = Ptr::new(String::from("max_conns=10"));
    canonical.insert(config.to_string(), weak::make(&config));
    println!("cached while used: {:?}", canonical["max_conns=10"].value());
    drop(config);
    println!("cached after the last user left: {:?}", canonical["max_conns=10"].value());
}
