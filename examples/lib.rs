//! Shared helpers of gonext's runnable examples.

/// Prints the heading of one section of an example's walk-through.
pub fn section(title: &str) {
    println!("\n== {title} ==");
}
