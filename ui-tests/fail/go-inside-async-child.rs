fn main() {
    let _ = gonext::async_scope! {
        go async {
            go async {};
        };
    };
}
