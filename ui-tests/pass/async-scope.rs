use gonext::async_scope;
use std::sync::atomic::{AtomicU32, Ordering};

async fn add(total: &AtomicU32, n: u32) {
    total.fetch_add(n, Ordering::SeqCst);
}

fn main() {
    let total = AtomicU32::new(0);
    let value = futures::executor::block_on(async_scope! {
        go add(&total, 1);
        go { add(&total, 2).await }
        go move { let _ = 3; }
        go |ctx| async move { assert!(!ctx.is_done()); };
        for n in [4, 5] {
            go add(&total, n);
        }
        "joined"
    });
    assert_eq!((value, total.load(Ordering::SeqCst)), ("joined", 12));
}
