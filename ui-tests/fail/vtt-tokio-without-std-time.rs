use gonext::virtual_time_test;

// gonext is built here without its `std-time` feature, which tokio in a bubble needs.
#[virtual_time_test(tokio)]
async fn on_tokio() {}

fn main() {}
