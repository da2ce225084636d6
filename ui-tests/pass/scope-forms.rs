use gonext::{scope, try_scope};

fn double(x: u32) -> u32 {
    x * 2
}

struct Worker;

impl Worker {
    fn run(&self, _job: u32) {}
}

fn main() {
    let worker = Worker;
    let data = vec![1u32, 2, 3];
    let sum = scope!(limit = 2; {
        go worker.run(1);
        go { let _ = double(data[0]); }
        go move { let _ = double(2); }
        for (i, x) in data.iter().enumerate() {
            match i {
                0 => go worker.run(*x),
                _ => go |_ctx| { let _ = double(*x); },
            }
        }
        data.iter().sum::<u32>()
    });
    assert_eq!(sum, 6);
    let checked: Result<&str, std::io::Error> = try_scope! {
        go |ctx| if ctx.is_done() { Ok(()) } else { Ok(()) };
        "ok"
    };
    assert_eq!(checked.unwrap(), "ok");
}
