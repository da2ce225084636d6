use gonext::virtual_time_test;

#[virtual_time_test(deadline = "10m")]
fn unknown() {}

fn main() {}
