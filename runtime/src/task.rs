//! Async tasks of a virtual-time bubble: `spawn` inside [`bubble_async`](crate::time::bubble_async).
//!
//! ```
//! use gonext::{task, time};
//! use std::time::Duration;
//!
//! let finished_at = time::bubble_async(async {
//!     let start = time::Instant::now();
//!     let slow = task::spawn(async move {
//!         time::sleep(Duration::from_secs(30)).await; // a member: the virtual clock
//!         start.elapsed()
//!     });
//!     time::sleep(Duration::from_secs(10)).await;
//!     slow.await
//! });
//! assert_eq!(finished_at, Duration::from_secs(30));
//! ```
//!
//! A spawned task is a member of the bubble: the bubble's executor polls it on the same
//! thread as the root future, its timers run on the virtual clock, and the bubble waits for
//! it before returning.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::time::bubble;

/// Spawns `future` as a task of the current `bubble_async`; await the handle for its output.
///
/// ```
/// use gonext::{task, time};
/// use std::time::Duration;
///
/// let total = time::bubble_async(async {
///     let handles: Vec<_> = (1..=3u64)
///         .map(|i| task::spawn(async move {
///             time::sleep(Duration::from_secs(i)).await;
///             i
///         }))
///         .collect();
///     let mut total = 0;
///     for handle in handles {
///         total += handle.await;
///     }
///     total
/// });
/// assert_eq!(total, 6);
/// ```
///
/// # Panics
///
/// Outside `bubble_async` (use your runtime's spawn there). A panic inside the task fails
/// the bubble, which re-raises it with its payload.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let site = Location::caller();
    let Some(bubble) = bubble::current() else {
        panic!("task::spawn at {site}: not inside bubble_async; use your runtime's spawn outside bubbles");
    };
    let slot = Arc::new(Mutex::new(Slot { output: None, waker: None }));
    let their_slot = Arc::clone(&slot);
    let id = bubble.add_member(None, site, true);
    bubble.spawn_task(
        id,
        Box::pin(async move {
            let output = future.await;
            let mut slot = their_slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            slot.output = Some(output);
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
        }),
    );
    JoinHandle { slot, site }
}

struct Slot<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// The handle of a task started with [`spawn`]: a future of its output. Dropping it
/// detaches the task, which still runs to completion.
pub struct JoinHandle<T> {
    slot: Arc<Mutex<Slot<T>>>,
    site: bubble::Site,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.output.take() {
            Some(output) => Poll::Ready(output),
            None => {
                slot.waker = Some(cx.waker().clone());
                bubble::note_blocked_at(self.site, "task::JoinHandle");
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("spawned_at", &self.site).finish()
    }
}
