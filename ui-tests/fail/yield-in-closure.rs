use gonext::generator;

#[generator]
fn evens() -> impl Iterator<Item = u32> {
    (0..10).for_each(|x| {
        if x % 2 == 0 {
            yield_!(x);
        }
    });
}

fn main() {
    let _ = evens();
}
