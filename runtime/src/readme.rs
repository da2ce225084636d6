// README.md's Rust blocks, run as doctests (reported as `README.md - readme (line N)`), so that
// a snippet that stops compiling or stops doing what its comments say fails CI. The blocks
// marked `ignore` need what gonext's doctests lack (the `std-time` feature, tokio, rayon):
// `tests/build.rs` extracts them, and the test file named in the comment above each runs it.
#![doc = include_str!("../../README.md")]
