use gonext::generator;

#[generator]
fn doubled() -> impl Iterator<Item = u32> {
    #[for_await]
    for v in futures::stream::iter([1u32, 2]) {
        yield_!(v * 2);
    }
}

fn main() {
    let _ = doubled();
    let _ = gonext::seq! {
        for await v in futures::stream::iter([1u32]) {
            yield v;
        }
    };
}
