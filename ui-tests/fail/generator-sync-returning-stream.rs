use gonext::generator;

#[generator]
fn numbers() -> impl futures::Stream<Item = u32> {
    yield_!(1);
}

fn main() {}
