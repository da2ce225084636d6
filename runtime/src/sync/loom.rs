//! Loom models of channels and `WaitGroup` outside a bubble: every interleaving of their
//! state changes (under their mutex, which loom sees) with the registering and waking of
//! waiters, checked for lost wake-ups (a model that never finishes an execution fails as a
//! deadlock) and lost or duplicated values. The async forms are driven by loom's `block_on`;
//! the blocking forms run the same futures.
//!
//! Caught when broken: with `Sender`'s `Drop` waking the waiting receivers only when the
//! count was already 0 before the decrement (`if state.senders == 0` tested first), the last
//! sender's drop wakes nobody and `a_close_wakes_a_waiting_receiver` fails with loom's
//! "deadlock; threads = [..]" report.

use ::loom::future::block_on;
use ::loom::sync::Arc;
use ::loom::sync::atomic::AtomicUsize;
use ::loom::sync::atomic::Ordering::SeqCst;
use ::loom::thread;

use crate::sync::{WaitGroup, chan};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn an_unbuffered_send_meets_its_receive() {
    model(|| {
        let (tx, rx) = chan(0);
        let sender = thread::spawn(move || block_on(tx.send_async(7)).unwrap());
        assert_eq!(block_on(rx.recv_async()), Some(7));
        sender.join().unwrap();
        assert_eq!(block_on(rx.recv_async()), None, "the last sender dropped: closed");
    });
}

#[test]
fn a_close_wakes_a_waiting_receiver() {
    model(|| {
        let (tx, rx) = chan::<u32>(1);
        let more = tx.clone();
        let closers: Vec<_> = [tx, more].into_iter().map(|tx| thread::spawn(move || drop(tx))).collect();
        assert_eq!(block_on(rx.recv_async()), None);
        closers.into_iter().for_each(|closer| closer.join().unwrap());
    });
}

#[test]
fn two_senders_on_a_full_buffer_each_deliver_once() {
    model(|| {
        let (tx, rx) = chan(1);
        let senders: Vec<_> = (0..2)
            .map(|value| {
                let tx = tx.clone();
                thread::spawn(move || block_on(tx.send_async(value)).unwrap())
            })
            .collect();
        drop(tx);
        let mut received = vec![block_on(rx.recv_async()).unwrap(), block_on(rx.recv_async()).unwrap()];
        received.sort_unstable();
        assert_eq!(received, [0, 1]);
        senders.into_iter().for_each(|sender| sender.join().unwrap());
        assert_eq!(block_on(rx.recv_async()), None);
    });
}

#[test]
fn a_blocked_send_gets_its_value_back_when_the_receiver_leaves() {
    model(|| {
        let (tx, rx) = chan(0);
        let sender = thread::spawn(move || block_on(tx.send_async(Arc::new(5))).map_err(|error| *error.0));
        drop(rx);
        assert_eq!(sender.join().unwrap(), Err(5), "the value comes back, not lost");
    });
}

#[test]
fn wait_returns_after_every_done() {
    model(|| {
        let group = WaitGroup::new();
        let finished = Arc::new(AtomicUsize::new(0));
        group.add(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (group, finished) = (group.clone(), Arc::clone(&finished));
                thread::spawn(move || {
                    finished.fetch_add(1, SeqCst);
                    group.done();
                })
            })
            .collect();
        block_on(group.wait_async());
        assert_eq!(finished.load(SeqCst), 2, "wait returned before a worker was done");
        workers.into_iter().for_each(|worker| worker.join().unwrap());
    });
}
