use gonext::generator;

#[generator(boxd)]
fn numbers() -> impl Iterator<Item = u32> {
    yield_!(1);
}

fn main() {
    let _ = numbers();
}
