use gonext::virtual_time_test;

#[virtual_time_test(start = "2023-02-29T00:00:00Z")]
fn no_such_day() {}

fn main() {}
