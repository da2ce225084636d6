use gonext::generator;
use std::num::ParseIntError;

#[generator]
fn fallible(input: &'static str) -> impl Iterator<Item = Result<u32, ParseIntError>> {
    if input.is_empty() {
        return;
    }
    yield_!(Ok(input.parse()?));
}

#[generator]
fn all(lines: Vec<&'static str>) -> impl Iterator<Item = Result<u32, ParseIntError>> {
    for line in lines {
        yield_!(Ok(line.parse::<u32>()?));
    }
}

fn main() {
    assert_eq!(fallible("7").collect::<Vec<_>>(), [Ok(7)]);
    assert_eq!(fallible("").count(), 0);
    let parsed: Vec<_> = all(vec!["1", "x", "3"]).collect();
    assert_eq!(parsed.len(), 2, "the error is yielded, then the generator ends");
    assert!(parsed[1].is_err());
}
