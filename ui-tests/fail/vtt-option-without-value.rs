use gonext::virtual_time_test;

#[virtual_time_test(timeout)]
fn forgot_the_duration() {}

fn main() {}
