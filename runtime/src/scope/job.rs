//! A job of the pool: a task's closure stored inline when it is small, boxed otherwise.
//!
//! A `go` whose closure fits [`INLINE_WORDS`] words allocates nothing: the closure moves
//! into the job, the job into the queue and a worker's batch, and runs from there. Besides
//! saving the allocation, this keeps the submitting thread off the allocator's slow path:
//! jobs allocated on one thread and freed on another defeat its thread caches, which made
//! `malloc` the costliest step of a `go`.
//!
//! A job erases its closure's lifetime; [`Job::new_unchecked`] is `unsafe` because only
//! the caller can promise that the job runs before anything it borrows goes away (a scope
//! joins its jobs before it returns).

use std::mem::{ManuallyDrop, MaybeUninit};

/// The size of the inline storage, in machine words.
const INLINE_WORDS: usize = 8;

type Storage = [MaybeUninit<usize>; INLINE_WORDS];

/// One task's closure, run once by a worker.
pub(crate) struct Job {
    storage: Storage,
    /// Consumes the closure in `storage`: calls it if `run`, drops it otherwise.
    consume: unsafe fn(*mut Storage, bool),
    /// The task set the job belongs to (0: none), whose joining thread may run it.
    owner: usize,
    /// The task's result slot (0: none), through which a join of that task finds it.
    key: usize,
}

// SAFETY: every constructor takes a `Send` closure, the only thing a job owns.
unsafe impl Send for Job {}

impl Job {
    /// A job that runs `f`.
    pub(crate) fn new(f: impl FnOnce() + Send + 'static) -> Job {
        // SAFETY: `f` borrows nothing that could go away.
        unsafe { Job::new_unchecked(f) }
    }

    /// A job that runs `f`, which may borrow.
    ///
    /// # Safety
    ///
    /// The job must be run or dropped before anything `f` borrows goes away.
    pub(crate) unsafe fn new_unchecked<F: FnOnce() + Send>(f: F) -> Job {
        if size_of::<F>() > size_of::<Storage>() || align_of::<F>() > align_of::<Storage>() {
            let boxed: Box<dyn FnOnce() + Send + '_> = Box::new(f);
            // SAFETY: the caller's promise covers the box, as it covered `f`.
            return unsafe { Job::inline(boxed) };
        }
        // SAFETY: `F` fits the storage, checked above; the promise is the caller's.
        unsafe { Job::inline(f) }
    }

    /// # Safety
    ///
    /// `F` fits `Storage` in size and alignment, and `new_unchecked`'s promise holds.
    unsafe fn inline<F: FnOnce() + Send>(f: F) -> Job {
        let mut storage: Storage = [MaybeUninit::uninit(); INLINE_WORDS];
        // SAFETY: the storage is large and aligned enough for `F` (the caller's promise);
        // `consume::<F>` reads it back exactly once.
        unsafe { storage.as_mut_ptr().cast::<F>().write(f) };
        Job { storage, consume: consume::<F>, owner: 0, key: 0 }
    }

    /// The same job, marked as belonging to `owner`.
    pub(crate) fn owned_by(mut self, owner: usize) -> Job {
        self.owner = owner;
        self
    }

    pub(crate) fn owner(&self) -> usize {
        self.owner
    }

    /// The same job, marked as the task whose result slot is at `key`.
    pub(crate) fn keyed(mut self, key: usize) -> Job {
        self.key = key;
        self
    }

    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// Runs the closure, consuming the job.
    pub(crate) fn run(self) {
        let mut job = ManuallyDrop::new(self);
        // SAFETY: the storage holds the closure `consume` was made for, and `ManuallyDrop`
        // keeps `Drop` from consuming it a second time, even if it panics.
        unsafe { (job.consume)(&raw mut job.storage, true) };
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: a job not yet run still holds its closure; this consumes it, once.
        unsafe { (self.consume)(&raw mut self.storage, false) };
    }
}

/// # Safety
///
/// `storage` holds an `F` written by `Job::inline`, which is moved out here and never
/// read again.
unsafe fn consume<F: FnOnce()>(storage: *mut Storage, run: bool) {
    // SAFETY: the caller's contract.
    let f = unsafe { storage.cast::<F>().read() };
    if run {
        f();
    }
}
