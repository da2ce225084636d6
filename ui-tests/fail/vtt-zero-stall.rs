use gonext::virtual_time_test;

#[virtual_time_test(stall = "0s")]
fn never_stalls() {}

fn main() {}
