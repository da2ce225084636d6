use gonext::virtual_time_test;

#[virtual_time_test(tokio, worker_threads = 4)]
async fn current_thread_has_no_workers() {}

fn main() {}
