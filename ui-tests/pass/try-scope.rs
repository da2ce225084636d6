use gonext::context::Context;
use gonext::try_scope;

fn check(ctx: &Context, n: u32) -> Result<(), String> {
    if ctx.is_done() || n != 3 { Ok(()) } else { Err(format!("{n} failed")) }
}

fn main() {
    let first: Result<&str, String> = try_scope! {
        for n in 0..5 {
            go move |ctx| check(ctx, n);
        }
        "checked"
    };
    assert_eq!(first, Err("3 failed".to_owned()));
    let all: Result<(), Vec<String>> = try_scope!(errors = all; {
        go |_ctx| Err::<(), _>("a".to_owned());
        go |_ctx| Err::<(), _>("b".to_owned());
    });
    assert_eq!(all.map_err(|errors| errors.len()), Err(2));
    let limited: Result<u32, std::io::Error> = try_scope!(limit = 1, errors = all; {
        go |_ctx| Ok::<(), std::io::Error>(());
        7
    })
    .map_err(|mut errors| errors.remove(0));
    assert_eq!(limited.unwrap(), 7);
}
