use gonext::virtual_time_test;

#[virtual_time_test(timeout = "10 minutes")]
fn bad_duration() {}

fn main() {}
