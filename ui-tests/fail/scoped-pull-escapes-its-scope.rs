fn main() {
    let numbers = vec![1, 2, 3];
    let escaped = gonext::iter::pull_scoped(
        |y| {
            for n in &numbers {
                y.yield_(*n);
            }
        },
        |values| values,
    );
    drop(escaped);
}
