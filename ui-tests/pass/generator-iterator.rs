use gonext::generator;

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
fn yields_inside_macros(n: u8) -> impl Iterator<Item = u8> {
    let _ = vec![yield_!(n)];
    assert!(matches!(yield_!(n + 1), ()));
}

fn main() {
    assert_eq!(plain().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(generic('x', 2).collect::<String>(), "xx");
    let items = vec!["a".to_owned()];
    assert_eq!(borrowing(&items).collect::<Vec<_>>(), ["a"]);
    assert_eq!(yields_inside_macros(4).collect::<Vec<_>>(), [4, 5]);
}
