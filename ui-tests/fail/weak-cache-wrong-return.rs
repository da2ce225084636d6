use gonext::weak_cache;

#[weak_cache]
fn load(key: u32) -> std::sync::Arc<u32> {
    std::sync::Arc::new(key)
}

fn main() {}
