//! Loom models of the cleanup kernels: a list's push racing the object's death, `stop`
//! racing the worker's run, the hand-off through the workers' queue, and the block pool.
//!
//! The models drive the shipping code (`Cleanups::register`/`take`, `Cleanup::stop`, the
//! workers' `Queue`, `run`, `Pool`) on loom's atomics. Every node and block is allocated
//! through loom, which fails a model that leaks one or frees one twice; a job's argument is a
//! loom `Arc`, so a job dropped twice or never fails it too; the job slot and each free
//! block's link are loom `UnsafeCell`s, so an access not ordered after the hand-off that
//! should own it is reported as a data race.
//!
//! Caught when broken: with `Cleanup::stop`'s CAS replaced by a `load` then a `store` of
//! `STOPPED` (check-then-act), `stop_races_the_worker` fails its assertion ("a cleanup runs
//! exactly when `stop` did not win": left 1, right 0 — stopped and run); with the pool's push
//! CAS `Relaxed` instead of `Release`, `pool_hands_each_block_to_one_owner` fails with
//! "Causality violation: Concurrent read and write accesses" (the taker reads a link that
//! the giver's write is not ordered before).

use std::panic::Location;
use std::ptr::{self, NonNull};

use ::loom::cell::Cell;
use ::loom::sync::Arc;
use ::loom::sync::atomic::AtomicUsize;
use ::loom::sync::atomic::Ordering::{Relaxed, SeqCst};
use ::loom::thread;

use super::pool::{Local, Pool, new_block};
use super::workers::{Queue, tail_of};
use super::{BLOCK, Cleanups, FreeBlock, run};

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// What a `Ptr`'s allocation is to its cleanups: the list, queued when the last reference
/// to it drops.
struct Object {
    cleanups: Cleanups,
    queue: Arc<Queue>,
}

impl Drop for Object {
    fn drop(&mut self) {
        if let Some(list) = self.cleanups.take() {
            let (tail, _) = tail_of(list);
            self.queue.push(list, tail);
        }
    }
}

/// A cleanup worker: runs queued nodes until `expected` ran.
fn work(queue: &Queue, expected: usize) {
    let mut done = 0;
    while done < expected {
        let Some(batch) = queue.take() else {
            thread::yield_now();
            continue;
        };
        let mut next = Some(batch);
        while let Some(node) = next {
            // SAFETY: the worker owns the queue's reference to the node until `run`.
            next = NonNull::new(unsafe { node.as_ref() }.next.load(Relaxed));
            assert!(run(node).is_none(), "under loom nodes are not pooled");
            done += 1;
        }
    }
}

/// Registers a cleanup that counts its runs; its argument is a loom `Arc`.
fn register(object: &Object, runs: &Arc<AtomicUsize>) -> super::Cleanup {
    let (argument, runs) = (Arc::new(()), Arc::clone(runs));
    let job = move || {
        drop(argument);
        runs.fetch_add(1, SeqCst);
    };
    object.cleanups.register(job, Location::caller())
}

#[test]
fn stop_races_the_worker() {
    model(3, || {
        let queue = Arc::new(Queue::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let object = Arc::new(Object { cleanups: Cleanups::new(), queue: Arc::clone(&queue) });
        let registrar = {
            let (object, runs) = (Arc::clone(&object), Arc::clone(&runs));
            thread::spawn(move || {
                let handle = register(&object, &runs);
                drop(object);
                handle.stop()
            })
        };
        drop(object);
        let worker = thread::spawn(move || work(&queue, 1));
        let stopped = registrar.join().unwrap();
        worker.join().unwrap();
        assert_eq!(
            runs.load(SeqCst),
            usize::from(!stopped),
            "a cleanup runs exactly when `stop` did not win"
        );
    });
}

#[test]
fn pushes_racing_the_death_of_the_object_all_run() {
    model(2, || {
        let queue = Arc::new(Queue::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let object = Arc::new(Object { cleanups: Cleanups::new(), queue: Arc::clone(&queue) });
        let registrars: Vec<_> = (0..2)
            .map(|_| {
                let (object, runs) = (Arc::clone(&object), Arc::clone(&runs));
                thread::spawn(move || drop(register(&object, &runs)))
            })
            .collect();
        drop(object);
        registrars.into_iter().for_each(|registrar| registrar.join().unwrap());
        work(&queue, 2);
        assert_eq!(runs.load(SeqCst), 2, "each registered cleanup runs once");
    });
}

/// A new block, linked to nothing.
fn fresh_block() -> NonNull<FreeBlock> {
    let block = new_block().cast::<FreeBlock>();
    // SAFETY: a new block of `BLOCK`'s layout, owned here.
    unsafe { FreeBlock::link(block, ptr::null_mut()) };
    block
}

/// Takes a block (pooled or new), writes it as its owner, and gives it back.
fn use_one_block(pool: &Pool) {
    let local = Local(Cell::new(ptr::null_mut()));
    let block = pool.take_pooled(&local).unwrap_or_else(fresh_block);
    // SAFETY: the block is this thread's until it is given back.
    unsafe { FreeBlock::link(block, ptr::null_mut()) };
    pool.give(block, block, 1);
    pool.give_back(&local);
}

#[test]
fn pool_hands_each_block_to_one_owner() {
    model(3, || {
        let pool = Arc::new(Pool::new());
        let first = fresh_block();
        pool.give(first, first, 1);
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || use_one_block(&pool))
        };
        use_one_block(&pool);
        other.join().unwrap();
        let local = Local(Cell::new(ptr::null_mut()));
        while let Some(block) = pool.take_pooled(&local) {
            // SAFETY: the pool is drained by this thread alone; blocks come from `new_block`.
            unsafe { crate::sync_shim::dealloc(block.as_ptr().cast(), BLOCK) };
        }
    });
}
