use gonext::generator;

#[generator]
async fn values() -> impl futures::Stream<Item = u32> {
    let later = async {
        yield_!(1);
    };
    later.await;
}

fn main() {
    let _ = values();
}
