use gonext::{Ptr, weak_cache};

#[weak_cache]
async fn load(key: u32) -> Ptr<u32> {
    Ptr::new(key)
}

fn main() {}
