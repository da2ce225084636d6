fn main() {
    let _ = gonext::async_scope! {
        let n: u32 = "7".parse()?;
        go async move { drop(n) };
    };
}
