use gonext::virtual_time_test;

#[virtual_time_test(trace = "")]
fn nowhere() {}

fn main() {}
