use gonext::generator;

#[generator]
fn outer() -> impl Iterator<Item = u32> {
    fn helper() {
        yield_!(1);
    }
    helper();
    yield_!(2);
}

fn main() {
    let _ = outer();
}
