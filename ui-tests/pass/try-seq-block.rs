fn numbers() -> impl Iterator<Item = Result<u32, std::num::ParseIntError>> {
    gonext::try_seq! {
        yield "1".parse::<u32>()?;
        yield from [2, 3];
    }
}

fn stops_at_the_error() -> impl Iterator<Item = Result<u32, String>> {
    gonext::try_seq! {
        yield 1;
        Err("broken".to_owned())?;
        yield 2;
    }
}

fn main() {
    assert_eq!(numbers().collect::<Vec<_>>(), [Ok(1), Ok(2), Ok(3)]);
    assert_eq!(stops_at_the_error().collect::<Vec<_>>(), [Ok(1), Err("broken".to_owned())]);
}
