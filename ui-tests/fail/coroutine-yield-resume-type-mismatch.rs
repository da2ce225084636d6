use gonext::generator;

#[generator]
fn parser(#[resume] first: String) -> impl gonext::iter::Coroutine<String, Yield = usize, Return = ()> {
    let reply: u32 = yield_!(first.len());
    let _ = reply;
}

fn main() {
    let _ = parser();
}
