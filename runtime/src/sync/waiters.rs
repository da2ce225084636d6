//! The wait list behind every gonext primitive: wakers registered by pending futures, woken
//! one or all at a time, with the wake-up handed on when a woken future is dropped unused.

use std::task::Waker;

/// Registered waiters in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    list: Vec<(u64, Waker)>,
    next: u64,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters { list: Vec::new(), next: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Registers `waker` under `slot`, or refreshes it if `slot` is still registered.
    pub(crate) fn register(&mut self, slot: &mut Option<u64>, waker: &Waker) {
        if let Some(entry) = slot.and_then(|id| self.list.iter_mut().find(|(other, _)| *other == id)) {
            entry.1.clone_from(waker);
            return;
        }
        let id = self.next;
        self.next += 1;
        self.list.push((id, waker.clone()));
        *slot = Some(id);
    }

    /// Whether `slot` was woken (it is registered no more).
    pub(crate) fn was_woken(&self, slot: Option<u64>) -> bool {
        slot.is_some_and(|id| !self.list.iter().any(|(other, _)| *other == id))
    }

    /// Forgets `slot`. If it had been woken and the wake-up goes unused, returns the next
    /// waiter's waker so the caller hands the wake-up on.
    #[must_use]
    pub(crate) fn cancel(&mut self, slot: &mut Option<u64>) -> Option<Waker> {
        let id = slot.take()?;
        match self.list.iter().position(|(other, _)| *other == id) {
            Some(position) => {
                self.list.remove(position);
                None
            }
            None => self.take_one(),
        }
    }

    /// Removes `slot` without handing anything on (the caller consumed its wake-up).
    pub(crate) fn forget(&mut self, slot: &mut Option<u64>) {
        if let Some(id) = slot.take() {
            self.list.retain(|(other, _)| *other != id);
        }
    }

    /// The oldest waiter's waker, removed from the list.
    pub(crate) fn take_one(&mut self) -> Option<Waker> {
        (!self.list.is_empty()).then(|| self.list.remove(0).1)
    }

    /// Every waiter's waker, removed from the list.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.list.drain(..).map(|(_, waker)| waker).collect()
    }
}
