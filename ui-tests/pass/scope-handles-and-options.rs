use gonext::context::Context;
use gonext::{async_scope, scope, try_async_scope, try_scope};
use std::time::Duration;

fn double(x: u32) -> u32 {
    x * 2
}

fn parse(text: &str) -> Result<u32, String> {
    text.parse().map_err(|_| text.to_owned())
}

fn main() {
    let (parent, _cancel) = Context::background().with_cancel();
    let at = gonext::time::Instant::now() + Duration::from_secs(60);
    let values = scope!(ctx = parent, timeout = "1m", deadline = at, limit = 4, policy = supervisor; |s| {
        let a = go double(1);
        let b = go move { 2 };
        let c = go |ctx| ctx.is_done();
        let tuple = (go double(3), [go double(4)]);
        for n in 0..3 {
            go double(n) // a `go` ending a loop body is a statement
        }
        assert!(!s.context().is_done());
        (a.join(), b.join(), c.join(), tuple.0.join())
    });
    assert_eq!(values, (2, 2, false, 6));
    let timeout = Duration::from_secs(1);
    let checked: Result<u32, String> = try_scope!(timeout = timeout, errors = first; {
        let n = go parse("4");
        go { go parse("2"); };
        n.join()? + parse("1")?
    });
    assert_eq!(checked, Ok(5));
    let all: Result<(), Vec<String>> = try_scope!(errors = all, policy = fail_fast; {
        go |_ctx| parse("x").map(drop);
    });
    assert!(all.is_err());
    let raced: Result<u32, Vec<String>> = try_scope!(policy = first_success; {
        go parse("1");
        go parse("y");
    });
    assert_eq!(raced, Ok(1));
    let handle = scope! { go double(5) };
    assert_eq!(handle.join(), 10);
    let sum = futures::executor::block_on(async_scope!(limit = 2, ctx = parent; |s| {
        let a = go async { 1 };
        go async {};
        assert!(!s.context().is_done());
        a.await + 1
    }));
    assert_eq!(sum, 2);
    let tried: Result<u32, String> = futures::executor::block_on(try_async_scope!(timeout = "1s"; {
        let a = go async { parse("3") };
        a.await? + parse("1")?
    }));
    assert_eq!(tried, Ok(4));
}
