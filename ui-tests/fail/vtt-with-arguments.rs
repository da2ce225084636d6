use gonext::virtual_time_test;

#[virtual_time_test]
fn takes_input(n: u32) {
    let _ = n;
}

fn main() {}
