use futures::StreamExt;
use gonext::generator;
use gonext::iter::{
    AsyncCoroutine, BoxAsyncGenerator, BoxGenerator, Coroutine, CoroutineState, LocalBoxGenerator,
};

#[generator]
fn unit_resume() -> impl Coroutine<Yield = u8, Return = &'static str> {
    yield_!(1);
    let () = yield_!(2);
    "done"
}

#[generator]
fn with_resume(#[resume] mut total: i64) -> impl Coroutine<i64, Yield = i64, Return = i64> {
    while total < 100 {
        total += yield_!(total);
    }
    total
}

#[generator]
fn generic_resume<T: Clone + 'static>(
    #[resume] first: T,
    times: usize,
) -> impl Coroutine<T, Yield = T, Return = Vec<T>> {
    let mut seen = vec![first];
    for _ in 0..times {
        let last = seen[seen.len() - 1].clone();
        seen.push(yield_!(last));
    }
    seen
}

#[generator]
fn borrowing_coroutine<'a>(
    words: &'a [String],
    #[resume] _first: bool,
) -> impl Coroutine<bool, Yield = &'a str, Return = usize> + 'a {
    let mut kept = 0;
    for word in words {
        if yield_!(word.as_str()) {
            kept += 1;
        }
    }
    kept
}

#[generator]
async fn async_resume(#[resume] first: u32) -> impl AsyncCoroutine<u32, Yield = u32, Return = ()> {
    let doubled = async { first * 2 }.await;
    let _next: u32 = yield_!(doubled);
}

#[generator(boxed)]
fn boxed_iter(n: u32) -> impl Iterator<Item = u32> {
    yield_from!(0..n);
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

fn try_blocks() -> impl Iterator<Item = Result<u32, std::num::ParseIntError>> {
    gonext::try_seq! {
        yield "1".parse::<u32>()?;
        yield from [2, 3];
    }
}

fn try_async() -> impl futures::Stream<Item = Result<u32, String>> {
    gonext::try_stream! {
        for await v in futures::stream::iter([1u32]) {
            yield v;
        }
    }
}

fn main() {
    let mut c = unit_resume();
    assert_eq!(c.resume(()), CoroutineState::Yielded(1));
    assert_eq!(c.resume(()), CoroutineState::Yielded(2));
    assert_eq!(c.resume(()), CoroutineState::Complete("done"));
    let mut t = with_resume();
    assert_eq!(t.resume(50), CoroutineState::Yielded(50));
    assert_eq!(t.resume(60), CoroutineState::Complete(110));
    let mut g = generic_resume::<char>(1);
    assert_eq!(g.resume('a'), CoroutineState::Yielded('a'));
    assert_eq!(g.resume('b'), CoroutineState::Complete(vec!['a', 'b']));
    let words = vec!["x".to_owned(), "y".to_owned()];
    let mut b = borrowing_coroutine(&words);
    assert_eq!(b.resume(false), CoroutineState::Yielded("x"));
    assert_eq!(b.resume(true), CoroutineState::Yielded("y"));
    assert_eq!(b.resume(false), CoroutineState::Complete(1));
    futures::executor::block_on(async {
        let mut a = std::pin::pin!(async_resume());
        assert_eq!(a.as_mut().resume(4).await, CoroutineState::Yielded(8));
        assert_eq!(a.as_mut().resume(0).await, CoroutineState::Complete(()));
    });
    let named: BoxGenerator<'static, u32> = boxed_iter(2);
    assert_eq!(named.collect::<Vec<_>>(), [0, 1]);
    let local: LocalBoxGenerator<'_, char> = boxed_local_iter("hi");
    assert_eq!(local.collect::<String>(), "hi");
    let stream: BoxAsyncGenerator<'static, u32> = boxed_stream(2);
    assert_eq!(futures::executor::block_on(stream.collect::<Vec<_>>()), [0, 1]);
    assert_eq!(try_blocks().collect::<Vec<_>>(), [Ok(1), Ok(2), Ok(3)]);
    assert_eq!(futures::executor::block_on(try_async().collect::<Vec<_>>()), [Ok(1)]);
    let no_items = gonext::seq! {};
    let _: Vec<()> = no_items.collect();
    let in_macros = gonext::seq! { let _ = vec![yield 1u8]; };
    assert_eq!(in_macros.collect::<Vec<_>>(), [1]);
}
