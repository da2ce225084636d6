use gonext::virtual_time_test;

#[virtual_time_test(stall = 30)]
fn not_a_string() {}

fn main() {}
