use gonext::generator;

#[generator]
fn parser(#[resume] first: u32) -> impl gonext::iter::Coroutine<String, Yield = usize, Return = ()> {
    let _ = first;
}

fn main() {
    let _ = parser();
}
