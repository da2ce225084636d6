fn main() {
    let _ = gonext::seq! {
        let n: u32 = "1".parse()?;
        yield n;
    };
    let _ = gonext::stream! {
        let n: u32 = "2".parse()?;
        yield n;
    };
}
