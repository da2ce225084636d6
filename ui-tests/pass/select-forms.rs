use gonext::{select, sync, time};
use std::time::Duration;

fn main() {
    time::bubble(|| {
        let (tx, rx) = sync::chan::<u32>(1);
        tx.send(1).unwrap();
        let got = select! {
            Some(v) = rx.recv_async() => v,
            _ = time::sleep(Duration::from_secs(1)) => { 0 }
        };
        assert_eq!(got, 1);
        drop(tx);
        // The channel is closed: `Some(v)` no longer matches, so the branch is disabled.
        let fell_through = select! {
            Some(v) = rx.recv_async() => v,
            _ = time::sleep(Duration::from_secs(1)) => 7,
        };
        assert_eq!(fell_through, 7);
        let (_keep, open_rx) = sync::chan::<u32>(1);
        let nothing = select! {
            v = open_rx.recv_async() => v,
            default => None,
        };
        assert_eq!(nothing, None);
        let first = select! {
            biased;
            a = std::future::ready("first") => a,
            b = std::future::ready("second") => b,
        };
        assert_eq!(first, "first");
    });
}
