use gonext::generator;
use gonext::iter::{Coroutine, CoroutineState};

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
}
