use gonext::{Ptr, weak_cache};

struct Store;

impl Store {
    #[weak_cache]
    fn load(&self, key: u32) -> Ptr<u32> {
        Ptr::new(key)
    }
}

fn main() {}
