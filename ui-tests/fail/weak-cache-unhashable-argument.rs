use gonext::{Ptr, weak_cache};

#[weak_cache]
fn load(ratio: f64) -> Ptr<String> {
    Ptr::new(ratio.to_string())
}

fn main() {
    let _ = load(0.5);
}
