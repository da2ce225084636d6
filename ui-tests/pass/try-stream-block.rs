use futures::StreamExt;

fn checked() -> impl futures::Stream<Item = Result<u32, String>> {
    gonext::try_stream! {
        for await v in futures::stream::iter([1u32, 2]) {
            if v > 1 {
                Err(format!("too big: {v}"))?;
            }
            yield v;
        }
    }
}

fn main() {
    let got = futures::executor::block_on(checked().collect::<Vec<_>>());
    assert_eq!(got, [Ok(1), Err("too big: 2".to_owned())]);
}
