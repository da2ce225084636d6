fn main() {
    let _ = gonext::async_scope!(policy = supervisor; {
        go async {};
    });
}
