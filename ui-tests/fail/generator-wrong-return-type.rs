use gonext::generator;

#[generator]
fn numbers() -> Vec<u32> {
    yield_!(1);
}

fn main() {
    let _ = numbers();
}
