fn main() {
    let _: Result<(), ()> = gonext::try_scope!(policy = best_effort; {
        go |_ctx| Ok::<(), ()>(());
    });
}
