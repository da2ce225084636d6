//! The slow path shared by gonext's locks: a wait queue and the future that retries an
//! acquisition until it succeeds, parking (durably, inside a bubble) in between.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::waiters::Waiters;
use crate::time::bubble::{self, Site};

/// Waiters of one lock, with their number readable without the mutex so that an uncontended
/// release costs one atomic load.
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    waiters: Mutex<Waiters>,
    count: AtomicUsize,
}

impl WaitQueue {
    pub(super) const fn new() -> Self {
        WaitQueue { waiters: Mutex::new(Waiters::new()), count: AtomicUsize::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update<R>(&self, change: impl FnOnce(&mut Waiters) -> R) -> R {
        let mut waiters = self.lock();
        let result = change(&mut waiters);
        // SeqCst pairs with the release path's SeqCst store and load: either the releaser
        // sees this waiter, or the waiter's retry sees the release.
        self.count.store(usize::from(!waiters.is_empty()), Ordering::SeqCst);
        result
    }

    /// Wakes every waiter after a release (they retry; all but the winners park again).
    pub(super) fn release_all(&self) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.update(Waiters::take_all).into_iter().for_each(Waker::wake);
    }

    /// Wakes the oldest waiter after a release.
    pub(super) fn release_one(&self) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(waker) = self.update(Waiters::take_one) {
            waker.wake();
        }
    }
}

/// Retries `try_acquire` until it succeeds, registered in `queue` in between.
///
/// `try_acquire` fails with whether every holder is a member of the caller's bubble: only
/// then is the wait durable (a holder outside could release the lock at any moment).
pub(super) struct Acquire<'a, F: Fn() -> Result<(), bool>> {
    pub(super) queue: &'a WaitQueue,
    pub(super) try_acquire: F,
    pub(super) slot: Option<u64>,
    pub(super) site: Site,
    pub(super) op: &'static str,
}

impl<F: Fn() -> Result<(), bool>> Unpin for Acquire<'_, F> {}

impl<F: Fn() -> Result<(), bool>> Future for Acquire<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.try_acquire)().is_ok() {
            this.done();
            return Poll::Ready(());
        }
        let slot = &mut this.slot;
        this.queue.update(|waiters| waiters.register(slot, cx.waker()));
        match (this.try_acquire)() {
            Ok(()) => {
                this.done();
                Poll::Ready(())
            }
            Err(true) => {
                bubble::note_blocked_at(this.site, this.op);
                Poll::Pending
            }
            Err(false) => {
                bubble::note_blocked_outside(this.site, this.op);
                Poll::Pending
            }
        }
    }
}

impl<F: Fn() -> Result<(), bool>> Acquire<'_, F> {
    fn done(&mut self) {
        if self.slot.is_some() {
            let slot = &mut self.slot;
            self.queue.update(|waiters| waiters.forget(slot));
        }
    }
}

impl<F: Fn() -> Result<(), bool>> Drop for Acquire<'_, F> {
    fn drop(&mut self) {
        if self.slot.is_none() {
            return;
        }
        let slot = &mut self.slot;
        if let Some(next) = self.queue.update(|waiters| waiters.cancel(slot)) {
            next.wake();
        }
    }
}
