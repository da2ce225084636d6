fn main() {
    let _: Result<u32, String> = gonext::try_scope! {
        let n = go "4".len();
        Ok::<_, String>(0)?;
        n.join()?
    };
}
