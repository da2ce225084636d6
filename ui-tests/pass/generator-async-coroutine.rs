use gonext::generator;
use gonext::iter::{AsyncCoroutine, CoroutineState};

#[generator]
async fn async_resume(#[resume] first: u32) -> impl AsyncCoroutine<u32, Yield = u32, Return = ()> {
    let doubled = async { first * 2 }.await;
    let _next: u32 = yield_!(doubled);
}

fn main() {
    futures::executor::block_on(async {
        let mut a = std::pin::pin!(async_resume());
        assert_eq!(a.as_mut().resume(4).await, CoroutineState::Yielded(8));
        assert_eq!(a.as_mut().resume(0).await, CoroutineState::Complete(()));
    });
}
