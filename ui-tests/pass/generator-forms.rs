use futures::StreamExt;
use gonext::{generator, seq, stream};

#[generator]
fn plain() -> impl Iterator<Item = u8> {
    yield_!(1);
    yield_from!([2, 3]);
}

#[generator]
fn generic<T: Clone + 'static>(value: T, times: usize) -> impl Iterator<Item = T>
where
    T: std::fmt::Debug,
{
    for _ in 0..times {
        yield_!(value.clone());
    }
}

#[generator]
fn borrowing<'a>(items: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
    for item in items {
        yield_!(item.as_str());
    }
}

#[generator]
fn fallible(input: &'static str) -> impl Iterator<Item = Result<u32, std::num::ParseIntError>> {
    if input.is_empty() {
        return;
    }
    yield_!(Ok(input.parse()?));
}

#[generator]
async fn asynchronous(n: u32) -> impl futures::Stream<Item = u32> {
    for i in 0..n {
        let doubled = async { i * 2 }.await;
        yield_!(doubled);
    }
}

struct Counter(u32);

impl Counter {
    #[generator]
    fn up_to(&self) -> impl Iterator<Item = u32> + '_ {
        yield_from!(0..self.0);
    }
}

fn main() {
    assert_eq!(plain().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(generic('x', 2).collect::<String>(), "xx");
    let items = vec!["a".to_owned()];
    assert_eq!(borrowing(&items).collect::<Vec<_>>(), ["a"]);
    assert_eq!(fallible("7").collect::<Vec<_>>(), [Ok(7)]);
    assert_eq!(futures::executor::block_on(asynchronous(3).collect::<Vec<_>>()), [0, 2, 4]);
    assert_eq!(Counter(3).up_to().sum::<u32>(), 3);
    let squares = seq! { for i in 1..4u32 { yield i * i; } yield from [0]; };
    assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9, 0]);
    let s = stream! { yield 1u8; yield from futures::stream::iter([2u8]); };
    assert_eq!(futures::executor::block_on(s.collect::<Vec<_>>()), [1, 2]);
}
