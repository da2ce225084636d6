//! `sync::chan`: Go channel semantics from blocking and async code.

use gonext::sync::{self, TryRecvError, TrySendError};
use gonext::{select, thread, time, virtual_time_test};
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn buffered_channel_holds_up_to_its_capacity() {
    let (tx, rx) = sync::chan(2);
    assert_eq!(tx.capacity(), 2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).unwrap();
    assert_eq!((rx.recv(), rx.recv()), (Some(2), Some(3)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn unbuffered_try_send_needs_a_waiting_receiver() {
    let (tx, rx) = sync::chan::<u8>(0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    drop(rx);
    assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)));
}

#[virtual_time_test]
fn unbuffered_send_waits_for_the_receiver() {
    let (tx, rx) = sync::chan::<&str>(0);
    let start = time::Instant::now();
    let receiver = thread::spawn(move || {
        thread::sleep(Duration::from_secs(3));
        rx.recv()
    });
    tx.send("hi").unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3), "the send completed when the receiver came");
    assert_eq!(receiver.join().unwrap(), Some("hi"));
}

#[test]
fn closing_by_dropping_senders_drains_then_ends() {
    let (tx, rx) = sync::chan(4);
    let second = tx.clone();
    tx.send(1).unwrap();
    second.send(2).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    drop(second);
    assert_eq!(rx.recv(), Some(2));
    assert_eq!(rx.recv(), None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[virtual_time_test]
fn a_blocked_sender_gets_its_value_back_when_receivers_leave() {
    let (tx, rx) = sync::chan::<String>(0);
    let sender = thread::spawn(move || tx.send("kept".to_owned()));
    thread::sleep(Duration::from_secs(1));
    drop(rx);
    assert_eq!(sender.join().unwrap().unwrap_err().0, "kept");
}

#[test]
fn many_senders_and_receivers_deliver_each_value_once() {
    let (tx, rx) = sync::chan::<u32>(8);
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || (0..500).for_each(|i| tx.send(p * 1000 + i).unwrap()))
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || rx.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|p| p.join().unwrap());
    let all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(all.len(), 2000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 2000);
}

#[test]
fn async_send_and_receive_work_under_other_executors() {
    let (tx, rx) = sync::chan::<u32>(0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    runtime.block_on(async move {
        let producer = tokio::spawn(async move {
            for i in 0..100 {
                tx.send_async(i).await.unwrap();
            }
        });
        let mut sum = 0;
        while let Some(v) = rx.recv_async().await {
            sum += v;
        }
        producer.await.unwrap();
        assert_eq!(sum, 4950);
    });
}

#[virtual_time_test]
fn select_receives_from_whichever_channel_is_ready_first() {
    let (fast_tx, fast_rx) = sync::chan::<&str>(0);
    let (slow_tx, slow_rx) = sync::chan::<&str>(0);
    // Keep both open: a closed channel is always ready (with `None`), as in Go.
    let _open = (fast_tx.clone(), slow_tx.clone());
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(2));
        slow_tx.send("slow").unwrap();
    });
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        fast_tx.send("fast").unwrap();
    });
    let mut order = Vec::new();
    for _ in 0..2 {
        select! {
            v = fast_rx.recv_async() => order.extend(v),
            v = slow_rx.recv_async() => order.extend(v),
        }
    }
    assert_eq!(order, ["fast", "slow"]);
}

#[virtual_time_test]
fn select_with_a_timer_times_out_and_loses_no_value() {
    let (tx, rx) = sync::chan::<u32>(1);
    let timed_out = select! {
        _ = rx.recv_async() => false,
        _ = time::sleep(Duration::from_millis(50)) => true,
    };
    assert!(timed_out);
    tx.send(9).unwrap();
    assert_eq!(rx.recv(), Some(9), "the losing receive took nothing");
}

#[test]
fn select_send_branch_that_loses_sends_nothing() {
    let (tx, rx) = sync::chan::<u32>(0);
    let (_keep, ready_rx) = sync::chan::<u32>(1);
    _keep.send(1).unwrap();
    let which = select! {
        v = ready_rx.recv_async() => v,
        _ = tx.send_async(5) => None,
    };
    assert_eq!(which, Some(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

/// Random operation sequences against a sequential model: a bounded queue and counts of
/// senders and receivers.
mod against_a_model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        TrySend(u8),
        TryRecv,
        CloneSender,
        DropSender,
        CloneReceiver,
        DropReceiver,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::TrySend),
            4 => Just(Op::TryRecv),
            1 => Just(Op::CloneSender),
            1 => Just(Op::DropSender),
            1 => Just(Op::CloneReceiver),
            1 => Just(Op::DropReceiver),
        ]
    }

    proptest! {
        #[test]
        fn try_operations_follow_a_bounded_queue(cap in 0usize..4, ops in prop::collection::vec(op(), 0..60)) {
            let (tx, rx) = sync::chan(cap);
            let (mut senders, mut receivers) = (vec![tx], vec![rx]);
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::TrySend(value) => {
                        let Some(tx) = senders.last() else { continue };
                        let expected = if receivers.is_empty() {
                            Err(TrySendError::Disconnected(value))
                        } else if model.len() >= cap {
                            Err(TrySendError::Full(value))
                        } else {
                            model.push_back(value);
                            Ok(())
                        };
                        prop_assert_eq!(tx.try_send(value), expected);
                    }
                    Op::TryRecv => {
                        let Some(rx) = receivers.last() else { continue };
                        let expected = match model.pop_front() {
                            Some(value) => Ok(value),
                            None if senders.is_empty() => Err(TryRecvError::Disconnected),
                            None => Err(TryRecvError::Empty),
                        };
                        prop_assert_eq!(rx.try_recv(), expected);
                        prop_assert_eq!(rx.len(), model.len());
                    }
                    Op::CloneSender => senders.extend(senders.last().cloned()),
                    Op::DropSender => drop(senders.pop()),
                    Op::CloneReceiver => receivers.extend(receivers.last().cloned()),
                    Op::DropReceiver => drop(receivers.pop()),
                }
            }
        }

        /// Producers and consumers on threads: each value arrives once, and each consumer
        /// sees each producer's values in the order they were sent (Go's FIFO guarantee).
        #[test]
        fn threads_receive_every_value_once_in_each_senders_order(
            cap in 0usize..4,
            sends in prop::collection::vec(0usize..40, 1..4),
            consumers in 1usize..4,
        ) {
            let (tx, rx) = sync::chan::<(usize, usize)>(cap);
            let producers: Vec<_> = sends
                .iter()
                .enumerate()
                .map(|(producer, &count)| {
                    let tx = tx.clone();
                    std::thread::spawn(move || (0..count).for_each(|i| tx.send((producer, i)).unwrap()))
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..consumers)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || rx.iter().collect::<Vec<_>>())
                })
                .collect();
            drop(rx);
            producers.into_iter().for_each(|p| p.join().unwrap());
            let mut all = Vec::new();
            for received in consumers.into_iter().map(|c| c.join().unwrap()) {
                for producer in 0..sends.len() {
                    let order: Vec<usize> = received.iter().filter(|(p, _)| *p == producer).map(|(_, i)| *i).collect();
                    prop_assert!(order.is_sorted(), "producer {}'s values out of order: {:?}", producer, order);
                }
                all.extend(received);
            }
            all.sort_unstable();
            let expected: Vec<(usize, usize)> =
                sends.iter().enumerate().flat_map(|(p, &count)| (0..count).map(move |i| (p, i))).collect();
            prop_assert_eq!(all, expected);
        }
    }
}

/// Counts how often each of two always-ready branches wins, over `rounds` selects.
fn picks_of_two_ready_branches(rounds: usize) -> [usize; 2] {
    let mut picks = [0; 2];
    for _ in 0..rounds {
        let winner = select! {
            a = std::future::ready(0) => a,
            b = std::future::ready(1) => b,
        };
        picks[winner] += 1;
    }
    picks
}

#[test]
fn select_picks_uniformly_among_ready_branches() {
    const ROUNDS: usize = 10_000;
    let picks = picks_of_two_ready_branches(ROUNDS);
    for (branch, &count) in picks.iter().enumerate() {
        let share = count as f64 / ROUNDS as f64;
        assert!((0.4..=0.6).contains(&share), "branch {branch} won {share:.3} of the rounds: {picks:?}");
    }
}

#[test]
fn a_busy_first_branch_does_not_starve_the_others() {
    // Three branches; the first and third always ready, the second never: Go picks uniformly
    // among the ready ones, which polling from a random start index would not.
    const ROUNDS: usize = 10_000;
    let (_keep, never) = sync::chan::<u32>(0);
    let mut picks = [0usize; 3];
    for _ in 0..ROUNDS {
        let winner = select! {
            a = std::future::ready(0usize) => a,
            _ = never.recv_async() => 1,
            c = std::future::ready(2usize) => c,
        };
        picks[winner] += 1;
    }
    assert_eq!(picks[1], 0);
    for branch in [0, 2] {
        let share = picks[branch] as f64 / ROUNDS as f64;
        assert!((0.4..=0.6).contains(&share), "branch {branch} won {share:.3} of the rounds: {picks:?}");
    }
}

#[test]
fn biased_select_polls_in_written_order() {
    for _ in 0..1_000 {
        let winner = select! {
            biased;
            a = std::future::ready("first") => a,
            b = std::future::ready("second") => b,
        };
        assert_eq!(winner, "first");
    }
}

#[test]
fn select_choices_repeat_from_one_bubble_run_to_the_next() {
    let run = || time::bubble(|| picks_sequence(200));
    let first = run();
    assert_eq!(first, run(), "a bubble's random choices are seeded: the run repeats exactly");
    assert!(first.contains(&0) && first.contains(&1), "and still random: {first:?}");
}

fn picks_sequence(rounds: usize) -> Vec<u8> {
    (0..rounds)
        .map(|_| {
            select! {
                a = std::future::ready(0u8) => a,
                b = std::future::ready(1u8) => b,
            }
        })
        .collect()
}

#[virtual_time_test]
fn select_in_a_bubble_still_picks_uniformly() {
    let picks = picks_of_two_ready_branches(10_000);
    assert!(picks.iter().all(|&count| (4_000..=6_000).contains(&count)), "{picks:?}");
}
