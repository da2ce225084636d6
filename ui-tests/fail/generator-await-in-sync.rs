use gonext::generator;

#[generator]
fn numbers() -> impl Iterator<Item = u32> {
    let n = async { 1 }.await;
    yield_!(n);
}

fn main() {
    let _ = numbers();
}
