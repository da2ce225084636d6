//! The worker pool behind `go`: reusable OS threads that grow on demand and retire when idle.
//!
//! A `go` pushes a job on a shared queue and wakes an idle worker, or starts a new one when
//! none is idle — so a worker blocked in a nested scope's join never starves the jobs behind
//! it. Idle workers beyond `runtime::max_procs()` retire after a short wait, the others after
//! a longer one.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// A job: one task, already wrapped with its bookkeeping.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    jobs: VecDeque<Job>,
    /// Workers asleep on `AVAILABLE`.
    idle: usize,
    /// Workers out of jobs but still polling the queue for a moment before sleeping.
    spinning: usize,
    threads: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { jobs: VecDeque::new(), idle: 0, spinning: 0, threads: 0 });

/// How many times an out-of-work worker polls the queue (yielding in between) before it
/// sleeps: bursts of `go` then cost no wake-up system call.
const POLLS_BEFORE_SLEEP: u32 = 32;
static AVAILABLE: Condvar = Condvar::new();

/// How long a surplus idle worker (beyond `max_procs`) waits before retiring.
const SURPLUS_IDLE: Duration = Duration::from_millis(100);
/// How long any idle worker waits before retiring.
const CORE_IDLE: Duration = Duration::from_secs(10);

fn lock() -> MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `job` on a pool thread.
pub(crate) fn submit(job: Job) {
    let mut pool = lock();
    pool.jobs.push_back(job);
    let waiting = pool.jobs.len() - 1;
    if pool.spinning > waiting {
        return;
    }
    if pool.spinning + pool.idle > waiting {
        drop(pool);
        AVAILABLE.notify_one();
        return;
    }
    pool.threads += 1;
    drop(pool);
    let started = thread::Builder::new().name("gonext-go".into()).spawn(work);
    if started.is_err() {
        lock().threads -= 1;
        // Without a new thread the job still runs once a worker frees up; with no worker at
        // all, it runs here rather than never.
        if let Some(job) = take_if_unserved() {
            job();
        }
    }
}

fn take_if_unserved() -> Option<Job> {
    let mut pool = lock();
    if pool.threads == 0 { pool.jobs.pop_front() } else { None }
}

fn work() {
    let mut pool = lock();
    loop {
        if let Some(job) = pool.jobs.pop_front() {
            drop(pool);
            job();
            pool = lock();
            continue;
        }
        pool.spinning += 1;
        let mut found = false;
        for _ in 0..POLLS_BEFORE_SLEEP {
            drop(pool);
            thread::yield_now();
            pool = lock();
            if !pool.jobs.is_empty() {
                found = true;
                break;
            }
        }
        pool.spinning -= 1;
        if found {
            continue;
        }
        let surplus = pool.threads > crate::runtime::max_procs();
        pool.idle += 1;
        let (next, timeout) = AVAILABLE
            .wait_timeout(pool, if surplus { SURPLUS_IDLE } else { CORE_IDLE })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pool = next;
        pool.idle -= 1;
        if timeout.timed_out() && pool.jobs.is_empty() {
            pool.threads -= 1;
            return;
        }
    }
}
