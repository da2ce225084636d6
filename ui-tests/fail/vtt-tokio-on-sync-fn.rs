use gonext::virtual_time_test;

#[virtual_time_test(tokio)]
fn not_async() {}

fn main() {}
