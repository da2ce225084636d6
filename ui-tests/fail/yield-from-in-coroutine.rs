use gonext::generator;

#[generator]
fn relay() -> impl gonext::iter::Coroutine<Yield = u32, Return = ()> {
    yield_from!([1, 2, 3]);
}

fn main() {
    let _ = relay();
}
