//! Compile-pass (`pass/`) and compile-fail (`fail/`) cases for gonext's macros.
//!
//! Regenerate the committed `.stderr` files with `TRYBUILD=overwrite cargo test -p gonext-ui-tests`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
