use gonext::generator;

#[generator]
fn numbers() -> impl Iterator<Item = u32> {
    yield_!("one");
}

fn main() {
    let _ = numbers();
}
