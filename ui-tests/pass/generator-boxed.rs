use futures::StreamExt;
use gonext::generator;
use gonext::iter::{BoxAsyncGenerator, BoxGenerator, LocalBoxGenerator};

#[generator(boxed)]
fn boxed_iter(n: u32) -> impl Iterator<Item = u32> {
    yield_from!(0..n);
}

#[generator(boxed)]
fn countdown(n: u32) -> impl Iterator<Item = u32> {
    if n > 0 {
        yield_!(n);
        yield_from!(countdown(n - 1));
    }
}

#[generator(boxed_local)]
fn boxed_local_iter<'a>(text: &'a str) -> impl Iterator<Item = char> + 'a {
    yield_from!(text.chars());
}

#[generator(boxed)]
async fn boxed_stream(n: u32) -> impl futures::Stream<Item = u32> {
    for i in 0..n {
        yield_!(i);
    }
}

struct Holder {
    numbers: BoxGenerator<'static, u32>,
}

fn main() {
    let named: BoxGenerator<'static, u32> = boxed_iter(2);
    assert_eq!(named.collect::<Vec<_>>(), [0, 1]);
    let held = Holder { numbers: countdown(3) };
    assert_eq!(held.numbers.collect::<Vec<_>>(), [3, 2, 1]);
    let local: LocalBoxGenerator<'_, char> = boxed_local_iter("hi");
    assert_eq!(local.collect::<String>(), "hi");
    let stream: BoxAsyncGenerator<'static, u32> = boxed_stream(2);
    assert_eq!(futures::executor::block_on(stream.collect::<Vec<_>>()), [0, 1]);
}
