use gonext::virtual_time_test;

#[virtual_time_test(tokio = "multi_threaded")]
async fn misspelled() {}

fn main() {}
