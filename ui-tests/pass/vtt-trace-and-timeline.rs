use gonext::virtual_time_test;

#[virtual_time_test(trace = "target/vtt-trace.json", timeline = 50)]
fn traced() {
    gonext::thread::sleep(std::time::Duration::from_secs(1));
}

#[virtual_time_test(timeline = 0, timeout = "1m")]
async fn quiet() {
    gonext::time::sleep(std::time::Duration::from_secs(1)).await;
}

fn main() {}
