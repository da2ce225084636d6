fn main() {
    let _: Result<u32, Vec<()>> = gonext::try_scope!(policy = first_success, errors = all; {
        go |_ctx| Ok::<u32, ()>(1);
    });
}
