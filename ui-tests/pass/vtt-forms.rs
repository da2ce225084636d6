use gonext::virtual_time_test;

#[virtual_time_test]
fn plain() {
    gonext::thread::sleep(std::time::Duration::from_secs(1));
}

#[virtual_time_test(start = "2024-02-29T12:00:00.5+01:00", timeout = "1h30m", stall = "1.5s")]
async fn with_every_option() {
    gonext::time::sleep(std::time::Duration::from_secs(1)).await;
}

#[virtual_time_test]
fn returning_a_result() -> Result<(), String> {
    Ok(())
}

// `#[test]` items only exist under `cargo test`; here the attribute's input and expansion
// are checked for syntax and the options for validity.
fn main() {}
