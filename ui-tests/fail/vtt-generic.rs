use gonext::virtual_time_test;

#[virtual_time_test]
fn generic<T: Default>() {
    let _ = T::default();
}

fn main() {}
