use gonext::generator;

#[generator(boxed)]
fn relay() -> impl gonext::iter::Coroutine<Yield = u32, Return = ()> {
    yield_!(1);
}

fn main() {
    let _ = relay();
}
