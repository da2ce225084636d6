use futures::StreamExt;
use gonext::generator;

#[generator]
async fn asynchronous(n: u32) -> impl futures::Stream<Item = u32> {
    for i in 0..n {
        let doubled = async { i * 2 }.await;
        yield_!(doubled);
    }
}

#[generator]
async fn forwarding(inner: Vec<u32>) -> impl futures::Stream<Item = u32> {
    #[for_await]
    for v in futures::stream::iter(inner) {
        yield_!(v + 1);
    }
    yield_from!(futures::stream::iter([100]));
}

fn main() {
    assert_eq!(futures::executor::block_on(asynchronous(3).collect::<Vec<_>>()), [0, 2, 4]);
    let forwarded = forwarding(vec![1, 2]);
    assert_eq!(futures::executor::block_on(forwarded.collect::<Vec<_>>()), [2, 3, 100]);
}
