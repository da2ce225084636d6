use gonext::virtual_time_test;

#[virtual_time_test(timeout = "1m", timeout = "2m")]
fn twice() {}

fn main() {}
