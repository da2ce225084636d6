use gonext::generator;

#[generator]
fn parser() -> impl gonext::iter::Coroutine<Vec<u8>, Yield = usize, Return = ()> {
    let chunk = yield_!(0);
    let _ = chunk;
}

fn main() {
    let _ = parser();
}
