use gonext::generator;

#[generator]
fn numbers(text: &'static str) -> impl Iterator<Item = u32> {
    yield_!(text.parse()?);
}

fn main() {
    let _ = numbers("1");
}
