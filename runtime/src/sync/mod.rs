//! Go's `sync` package and channels, bubble-aware: blocking on any of these inside a
//! virtual-time bubble is a durable block, so the clock can advance.
//!
//! ```
//! use gonext::sync::{self, Mutex, WaitGroup};
//! use std::sync::Arc;
//!
//! let (tx, rx) = sync::chan(1); // Go's make(chan u32, 1)
//! let total = Arc::new(Mutex::new(0));
//! let wg = WaitGroup::new();
//! for n in 1..=3 {
//!     let (tx, total) = (tx.clone(), Arc::clone(&total));
//!     wg.go(move || {
//!         *total.lock().unwrap() += n; // std's API; inside a bubble, a durable block
//!         tx.send(n).unwrap();
//!     });
//! }
//! drop(tx); // the channel closes once the last sender (in the last task) is gone
//! let mut received: Vec<u32> = rx.iter().collect();
//! wg.wait(); // Go's wg.Wait: every task has returned
//! received.sort();
//! assert_eq!((received, *total.lock().unwrap()), (vec![1, 2, 3], 6));
//! ```
//!
//! - [`chan`]: Go channels (buffered and unbuffered, many senders and receivers, closed when
//!   the last sender drops), with blocking and async operations, usable in
//!   [`select!`](crate::select).
//! - [`WaitGroup`]: wait for a set of threads or tasks (with Go 1.25's [`WaitGroup::go`]).
//! - [`scope()`] and [`try_scope()`] (also at the crate root), the library forms of
//!   [`scope!`](crate::scope!): a [`Scope`] whose `go` returns a [`TaskHandle`];
//!   [`as_completed`] joins handles in the order their tasks finish.
//! - [`Group`] (Go's errgroup) and [`Manager`] (long-lived background tasks), for tasks that
//!   outlive one block.
//! - [`Mutex`], [`RwLock`], [`Condvar`]: std's APIs, durable inside a bubble, one atomic
//!   operation when uncontended outside one.
//!
//! Every blocking operation goes through one mechanism: it is written as a future that
//! registers its waker in the object's wait list, and the blocking form runs that future on
//! the bubble-aware `block_on` of [`crate::time`]. Outside a bubble that is a plain thread
//! park; inside, the thread is recorded as durably blocked at the caller's location, which
//! is what the deadlock report shows.
//!
//! Channels and [`WaitGroup`] outside a bubble are checked by the loom models in
//! `sync::loom` (lost wake-ups, lost or duplicated values), and against sequential models
//! by the property tests in `tests/channels.rs` and `tests/locks.rs`.

mod chan;
mod group;
mod mutex;
mod queue;
mod rwlock;
mod wait_group;
pub(crate) mod waiters;

pub use chan::{Iter, Receiver, Recv, Send, SendError, Sender, TryRecvError, TrySendError, chan};
pub use group::{Failed, Group, Manager, TaskFailure};
pub use mutex::{Condvar, Mutex, MutexGuard, WaitTimeoutResult};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use wait_group::{Wait, WaitGroup};

pub use crate::scope::{
    AsCompleted, AsyncTaskHandle, Canceled, Fallible, GroupResult, Mode, Scope, TaskHandle, TaskResult,
    TryScope, as_completed, scope, try_scope,
};

#[cfg(all(test, loom))]
mod loom;
