//! Loom models of the scope pool's hand-off: `submit` waking or starting workers, workers
//! taking batches, searching and sleeping, a joining thread's `help`, and a job that parks in
//! a gonext primitive handing its place to a replacement (`blocking`).
//!
//! The models drive the shipping code (`submit`, `help`, `blocking`, the workers' `work`
//! loop) on loom's mutex, condition variable and atomics, with workers started as loom
//! threads. A job lost to a missed wake-up leaves the model's thread waiting for it forever,
//! which loom reports as a deadlock; each job owns a loom `Arc`, so a job run twice or never
//! dropped fails the model too. At the end the model closes the pool (loom's timed waits never
//! time out, so closing stands in for the idle timeout), waits for every worker to retire,
//! and checks that the pool's counts came back to zero. Bounded to 2 preemptions (about 3 s
//! in release; 3 preemptions take about 90 s on 2 cores, too long for CI).
//!
//! Caught when broken: with `blocking` no longer taking the parked worker out of `busy` (so
//! the pool still counts it as active and starts no replacement under `max_procs = 1`),
//! `a_parked_job_gets_a_replacement_worker` fails with loom's "deadlock; threads = [..]"
//! report: the job waiting for its sibling parks, and the sibling stays queued. With
//! `take_batch` taking `len / 2` jobs instead of `len.div_ceil(2)`, a single queued job is
//! never taken and `a_burst_runs_each_job_once` deadlocks the same way.

use ::loom::sync::atomic::AtomicUsize;
use ::loom::sync::atomic::Ordering::SeqCst;
use ::loom::sync::{Arc, Condvar, Mutex};
use ::loom::thread;

use super::{AVAILABLE, Job, blocking, help, lock, submit};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}

/// A count the model's thread waits on, and jobs that add to it.
#[derive(Clone)]
struct Done(Arc<(Mutex<usize>, Condvar)>);

impl Done {
    fn new() -> Done {
        Done(Arc::new((Mutex::new(0), Condvar::new())))
    }

    /// A job that counts its run once; its loom `Arc` fails the model if the job is dropped
    /// twice or never.
    fn job(&self, owner: usize) -> Job {
        let (done, token) = (self.clone(), Arc::new(()));
        Job::new(move || {
            drop(token);
            *done.0.0.lock().unwrap() += 1;
            done.0.1.notify_all();
        })
        .owned_by(owner)
    }

    fn wait_for(&self, count: usize) {
        let mut done = self.0.0.lock().unwrap();
        while *done < count {
            done = self.0.1.wait(done).unwrap();
        }
        assert_eq!(*done, count, "each job ran once");
    }
}

/// Closes the pool, waits until every worker retired, and checks the counts.
fn close() {
    lock().model.1 = true;
    AVAILABLE.notify_all();
    // A retiring worker leaves the count first, then the list.
    while lock().threads > 0 || !lock().workers.is_empty() {
        thread::yield_now();
    }
    let pool = lock();
    assert!(pool.jobs.is_empty(), "no job is left");
    assert_eq!(
        (pool.busy, pool.searching, pool.sleeping, pool.wakeups),
        (0, 0, 0, 0),
        "the counts came back"
    );
}

#[test]
fn a_burst_runs_each_job_once() {
    model(|| {
        let done = Done::new();
        submit(done.job(0));
        submit(done.job(0));
        done.wait_for(2);
        close();
    });
}

#[test]
fn a_joining_thread_helps_while_workers_take_the_same_jobs() {
    model(|| {
        let done = Done::new();
        submit(done.job(1));
        submit(done.job(1));
        while help(1) {}
        done.wait_for(2);
        close();
    });
}

#[test]
fn a_parked_job_gets_a_replacement_worker() {
    model(|| {
        lock().model.0 = 1;
        let flag = Arc::new((Mutex::new(false), Condvar::new()));
        let parked = Arc::new(AtomicUsize::new(0));
        let done = Done::new();
        let waiter = {
            let (flag, parked, done) = (Arc::clone(&flag), Arc::clone(&parked), done.clone());
            Job::new(move || {
                blocking(|| {
                    let mut set = flag.0.lock().unwrap();
                    while !*set {
                        set = flag.1.wait(set).unwrap();
                    }
                });
                parked.fetch_add(1, SeqCst);
                *done.0.0.lock().unwrap() += 1;
                done.0.1.notify_all();
            })
        };
        let setter = {
            let (flag, done) = (Arc::clone(&flag), done.clone());
            Job::new(move || {
                *flag.0.lock().unwrap() = true;
                flag.1.notify_all();
                *done.0.0.lock().unwrap() += 1;
                done.0.1.notify_all();
            })
        };
        submit(waiter);
        submit(setter);
        done.wait_for(2);
        assert_eq!(parked.load(SeqCst), 1);
        close();
    });
}
