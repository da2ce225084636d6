use futures::StreamExt;
use gonext::stream;

fn main() {
    let s = stream! {
        yield 1u8;
        yield from futures::stream::iter([2u8]);
        let three = async { 3u8 }.await;
        yield three;
        for await v in futures::stream::iter([4u8, 5]) {
            yield v;
        }
    };
    assert_eq!(futures::executor::block_on(s.collect::<Vec<_>>()), [1, 2, 3, 4, 5]);
}
