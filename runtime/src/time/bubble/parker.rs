//! How a member thread sleeps until it is woken: one parker per OS thread.
//!
//! Without the `std-time` layer this is std's own thread parker. With it, a member may block
//! in gonext's code *while* std's parker is in use further up the same stack (an interposed
//! `thread::park_timeout` becomes a virtual wait that parks the thread again), and std's
//! parker does not nest. So the layer gives each thread a futex word of its own, waited on and
//! woken with raw system calls that never pass through the interposers.

use std::sync::Arc;
#[cfg(gonext_std_time)]
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
#[cfg(gonext_std_time)]
use std::time::Duration;

#[cfg(not(loom))]
thread_local! {
    static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
}

// The thread API of the parker without the `std-time` layer: loom's under `--cfg loom` (see
// `bubble::loom`).
#[cfg(all(loom, not(gonext_std_time)))]
use ::loom::thread as threads;
#[cfg(all(not(loom), not(gonext_std_time)))]
use std::thread as threads;

/// Parks and unparks one OS thread.
pub(crate) struct ThreadParker {
    #[cfg(not(gonext_std_time))]
    thread: threads::Thread,
    /// 1 when an unpark is pending.
    #[cfg(gonext_std_time)]
    word: AtomicU32,
    /// The thread sits in an untimed std wait (a futex without a timeout), which counts as
    /// running; set lock-free by the interposer so that reports can say so.
    #[cfg(gonext_std_time)]
    pub(crate) in_std_wait: AtomicBool,
}

impl ThreadParker {
    fn new() -> ThreadParker {
        ThreadParker {
            #[cfg(not(gonext_std_time))]
            thread: threads::current(),
            #[cfg(gonext_std_time)]
            word: AtomicU32::new(0),
            #[cfg(gonext_std_time)]
            in_std_wait: AtomicBool::new(false),
        }
    }

    /// The parker of the calling thread.
    #[cfg(not(loom))]
    pub(crate) fn current() -> Arc<ThreadParker> {
        PARKER.with(Arc::clone)
    }

    /// The parker of the calling loom thread: its handle, which is all a parker holds.
    #[cfg(loom)]
    pub(crate) fn current() -> Arc<ThreadParker> {
        Arc::new(ThreadParker::new())
    }

    /// Parks the calling thread on its parker.
    pub(crate) fn park_current() {
        #[cfg(not(loom))]
        PARKER.with(|parker| parker.park());
        #[cfg(loom)]
        ThreadParker::current().park();
    }

    /// Blocks until [`unpark`](Self::unpark) is called (or spuriously); an unpark that came
    /// first makes it return at once.
    pub(crate) fn park(&self) {
        #[cfg(not(gonext_std_time))]
        threads::park();
        #[cfg(gonext_std_time)]
        self.park_for(None);
    }

    /// As [`park`](Self::park), giving up after `timeout`; whether an unpark arrived.
    #[cfg(gonext_std_time)]
    pub(crate) fn park_timeout(&self, timeout: Duration) -> bool {
        self.park_for(Some(timeout))
    }

    #[cfg(gonext_std_time)]
    fn park_for(&self, timeout: Option<Duration>) -> bool {
        if self.word.swap(0, Ordering::Acquire) == 1 {
            return true;
        }
        crate::time::interpose::raw::futex_wait(&self.word, 0, timeout);
        self.word.swap(0, Ordering::Acquire) == 1
    }

    /// Wakes the thread, now or at its next park.
    pub(crate) fn unpark(&self) {
        #[cfg(not(gonext_std_time))]
        self.thread.unpark();
        #[cfg(gonext_std_time)]
        if self.word.swap(1, Ordering::Release) == 0 {
            crate::time::interpose::raw::futex_wake(&self.word);
        }
    }
}
