use gonext::virtual_time_test;

#[virtual_time_test(tokio = "multi_thread", worker_threads = 0)]
async fn no_workers() {}

fn main() {}
