fn main() {
    let _: Result<u32, Vec<()>> = gonext::try_scope!(policy = first_success; {
        let fast = go |_ctx| Ok::<u32, ()>(1);
        drop(fast);
    });
}
