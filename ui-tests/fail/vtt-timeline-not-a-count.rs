use gonext::virtual_time_test;

#[virtual_time_test(timeline = "20")]
fn quoted_count() {}

fn main() {}
