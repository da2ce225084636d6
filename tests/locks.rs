//! `sync::{Mutex, RwLock, Condvar, WaitGroup}`: std semantics, poisoning, and a stress test
//! of the lock implementations across threads.

use gonext::sync::{Condvar, Mutex, RwLock, WaitGroup};
use gonext::{thread, time, virtual_time_test};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn mutex_excludes_under_contention() {
    let counter = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..20_000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(*counter.lock().unwrap(), 80_000);
}

#[test]
fn rwlock_readers_share_and_writers_exclude() {
    let lock = Arc::new(RwLock::new(Vec::<usize>::new()));
    let readers_inside = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (lock, inside) = (Arc::clone(&lock), Arc::clone(&readers_inside));
            thread::spawn(move || {
                for i in 0..2_000 {
                    if i % 4 == 0 {
                        let mut data = lock.write().unwrap();
                        assert_eq!(inside.load(Ordering::SeqCst), 0, "a reader is inside with a writer");
                        data.push(t);
                    } else {
                        let data = lock.read().unwrap();
                        inside.fetch_add(1, Ordering::SeqCst);
                        let _ = data.len();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(lock.read().unwrap().len(), 2_000);
}

#[test]
fn a_panic_while_holding_poisons_like_std() {
    let mutex = Arc::new(Mutex::new(1));
    let held = Arc::clone(&mutex);
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let _guard = held.lock().unwrap();
        panic!("holder failed");
    }));
    assert!(mutex.is_poisoned());
    let recovered = mutex.lock().unwrap_err().into_inner();
    assert_eq!(*recovered, 1);
    drop(recovered);
    mutex.clear_poison();
    assert_eq!(*mutex.lock().unwrap(), 1);

    let lock = RwLock::new(0);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _writer = lock.write().unwrap();
        panic!("writer failed");
    }));
    assert!(lock.read().is_err());
}

#[test]
fn values_in_locks_are_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mutex = Mutex::new(Counted(Arc::clone(&drops)));
    *mutex.lock().unwrap() = Counted(Arc::clone(&drops));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(mutex);
    let lock = RwLock::new(Counted(Arc::clone(&drops)));
    drop(lock.into_inner());
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn try_lock_reports_would_block() {
    let mutex = Mutex::new(());
    let guard = mutex.lock().unwrap();
    assert!(matches!(mutex.try_lock(), Err(std::sync::TryLockError::WouldBlock)));
    drop(guard);
    assert!(mutex.try_lock().is_ok());
    let lock = RwLock::new(());
    let reader = lock.read().unwrap();
    assert!(lock.try_read().is_ok());
    assert!(matches!(lock.try_write(), Err(std::sync::TryLockError::WouldBlock)));
    drop(reader);
}

#[virtual_time_test]
fn condvar_wait_timeout_uses_virtual_time() {
    let pair = (Mutex::new(false), Condvar::new());
    let start = time::Instant::now();
    let (guard, result) = pair.1.wait_timeout(pair.0.lock().unwrap(), Duration::from_secs(10)).unwrap();
    assert!(result.timed_out());
    assert!(!*guard);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[test]
fn condvar_notify_one_wakes_a_waiter_across_threads() {
    let pair = Arc::new((Mutex::new(0), Condvar::new()));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pair = Arc::clone(&pair);
            thread::spawn(move || {
                let (lock, cv) = &*pair;
                let mut turn = cv.wait_while(lock.lock().unwrap(), |n| *n == 0).unwrap();
                *turn -= 1;
            })
        })
        .collect();
    for _ in 0..3 {
        *pair.0.lock().unwrap() += 1;
        pair.1.notify_one();
    }
    waiters.into_iter().for_each(|w| w.join().unwrap());
    assert_eq!(*pair.0.lock().unwrap(), 0);
}

#[virtual_time_test]
fn waitgroup_waits_for_every_member() {
    let wg = WaitGroup::new();
    let start = time::Instant::now();
    for secs in 1..=3 {
        wg.go(move || thread::sleep(Duration::from_secs(secs)));
    }
    wg.wait();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(wg.outstanding(), 0);
}

#[test]
#[should_panic(expected = "WaitGroup::done at tests/locks.rs")]
fn waitgroup_done_without_add_panics_at_the_caller() {
    WaitGroup::new().done();
}

#[test]
fn condvar_notify_all_releases_every_waiter() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let start = Arc::new(std::sync::Barrier::new(8));
    let waiters: Vec<_> = (0..7)
        .map(|_| {
            let (pair, start) = (Arc::clone(&pair), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let (lock, cv) = &*pair;
                drop(cv.wait_while(lock.lock().unwrap(), |done| !*done).unwrap());
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(20));
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
    waiters.into_iter().for_each(|w| w.join().unwrap());
}

/// `WaitGroup` against a counter: random adds and dones from several threads.
mod wait_group_against_a_model {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn outstanding_follows_adds_and_dones_and_overdone_panics(ops in prop::collection::vec(prop::option::of(1usize..4), 0..40)) {
            let group = WaitGroup::new();
            let mut model = 0usize;
            for op in ops {
                match op {
                    Some(n) => {
                        group.add(n);
                        model += n;
                    }
                    None => {
                        let done = catch_unwind(AssertUnwindSafe(|| group.done()));
                        prop_assert_eq!(done.is_ok(), model > 0, "done panics exactly when nothing is outstanding");
                        model = model.saturating_sub(1);
                    }
                }
                prop_assert_eq!(group.outstanding(), model);
            }
        }

        /// Workers split the units between them and mark them done in random bursts; a waiter
        /// wakes only after the last one.
        #[test]
        fn wait_returns_only_after_every_unit_is_done(shares in prop::collection::vec(0usize..20, 1..5)) {
            let group = WaitGroup::new();
            let total: usize = shares.iter().sum();
            group.add(total);
            let done = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (group, done) = (group.clone(), Arc::clone(&done));
                    std::thread::spawn(move || {
                        group.wait();
                        done.load(Ordering::SeqCst)
                    })
                })
                .collect();
            let workers: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    let (group, done) = (group.clone(), Arc::clone(&done));
                    std::thread::spawn(move || {
                        for _ in 0..share {
                            done.fetch_add(1, Ordering::SeqCst);
                            group.done();
                        }
                    })
                })
                .collect();
            workers.into_iter().for_each(|w| w.join().unwrap());
            for waiter in waiters {
                prop_assert_eq!(waiter.join().unwrap(), total, "a waiter woke before every unit was done");
            }
            prop_assert_eq!(group.outstanding(), 0);
        }
    }
}
