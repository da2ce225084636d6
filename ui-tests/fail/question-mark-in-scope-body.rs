fn main() -> Result<(), std::num::ParseIntError> {
    let n = gonext::scope! {
        let n: u32 = "7".parse()?;
        go std::thread::yield_now();
        n
    };
    assert_eq!(n, 7);
    Ok(())
}
