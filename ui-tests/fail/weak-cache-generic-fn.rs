use gonext::{Ptr, weak_cache};

#[weak_cache]
fn load<T: Default + Send + Sync + 'static>(key: u32) -> Ptr<T> {
    let _ = key;
    Ptr::new(T::default())
}

fn main() {}
