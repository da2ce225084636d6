//! Hooks for async runtimes built inside a bubble (tokio's), so that their idle threads count
//! as durably blocked and a failed bubble ends their `block_on`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use std::sync::Arc;

use super::bubble::{self, BubbleAborted, BubbleState};

/// Marks the calling thread as parked by an idle runtime of its bubble, until
/// [`runtime_unparked`]. Pass both to the park hooks of a runtime you build inside a bubble —
/// tokio's `Builder::on_thread_park` and `on_thread_unpark` — with the `std-time` feature.
///
/// While marked, the thread's untimed std waits (a futex wait or `epoll_wait` without a
/// timeout, where tokio parks an idle worker) are durable blocks, like a wait on a gonext
/// primitive: the runtime was built in the bubble, so whatever wakes its idle threads belongs
/// to the bubble too. Unmarked, an untimed std wait counts as running (a thread outside the
/// bubble might end it), so a multi-thread runtime's idle workers would keep the clock from
/// ever moving. `#[virtual_time_test(tokio)]` installs these hooks itself. Without the
/// `std-time` feature (or where it compiles to nothing) they do nothing.
///
/// ```
/// use gonext::time;
///
/// time::bubble(|| {
///     time::runtime_parked(); // what tokio calls before parking an idle worker
///     time::runtime_unparked(); // and after it wakes
/// });
/// ```
///
/// With tokio, inside a bubble (this is what `#[virtual_time_test(tokio = "multi_thread")]`
/// builds):
///
/// ```ignore
/// let runtime = tokio::runtime::Builder::new_multi_thread()
///     .enable_all()
///     .on_thread_park(gonext::time::runtime_parked)
///     .on_thread_unpark(gonext::time::runtime_unparked)
///     .build()?;
/// runtime.block_on(gonext::time::root_future(async { /* … */ }));
/// ```
///
/// # Differences from Go
///
/// Go's runtime is the only scheduler and knows when its goroutines are idle; a Rust runtime
/// parks its threads in std calls, so it has to say so.
pub fn runtime_parked() {
    #[cfg(gonext_std_time)]
    crate::time::interpose::set_runtime_parked(true);
}

/// Ends [`runtime_parked`]: the thread runs the runtime's tasks again.
///
/// ```
/// gonext::time::runtime_unparked(); // a no-op on a thread that was not marked
/// ```
pub fn runtime_unparked() {
    #[cfg(gonext_std_time)]
    crate::time::interpose::set_runtime_parked(false);
}

/// Wraps the future a runtime's `block_on` runs inside a bubble. While it is pending, the
/// calling thread counts as parked by an idle runtime of its bubble (see [`runtime_parked`]):
/// tokio's multi-thread `block_on` parks its caller where no hook sees it. And when the bubble
/// fails (a deadlock, a stall, another member's panic), it unwinds out of `block_on`, so that
/// the bubble can report the failure instead of waiting forever for a root stuck in the
/// runtime. Its output is the future's.
///
/// ```
/// use gonext::time;
///
/// let value = futures::executor::block_on(time::root_future(async { 6 * 7 }));
/// assert_eq!(value, 42);
/// ```
///
/// # Panics
///
/// When polled after its bubble failed, with the bubble's private abort payload, which the
/// bubble replaces by its report.
pub fn root_future<F: Future>(future: F) -> RootFuture<F> {
    RootFuture { future, bubble: bubble::current(), failure_slot: None, registered: None }
}

pin_project_lite::pin_project! {
    /// The future of [`root_future`].
    #[must_use = "futures do nothing unless polled"]
    pub struct RootFuture<F> {
        #[pin]
        future: F,
        bubble: Option<Arc<BubbleState>>,
        // Its waker's registration with the bubble, woken if the bubble fails.
        failure_slot: Option<u64>,
        // The waker registered last: a poll with the same one need not take the bubble's lock.
        registered: Option<Waker>,
    }

    impl<F> PinnedDrop for RootFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            runtime_unparked();
            let this = this.project();
            if let Some(bubble) = this.bubble {
                bubble.forget_failure_waker(this.failure_slot);
            }
        }
    }
}

impl<F: Future> Future for RootFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        runtime_unparked();
        let this = self.project();
        if let Some(bubble) = this.bubble {
            let known = this.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker()));
            if bubble.has_failed() || (!known && !bubble.wake_on_failure(this.failure_slot, cx.waker())) {
                std::panic::resume_unwind(Box::new(BubbleAborted));
            }
            if !known {
                *this.registered = Some(cx.waker().clone());
            }
        }
        let poll = this.future.poll(cx);
        if poll.is_pending() {
            runtime_parked();
        }
        poll
    }
}

impl<F> std::fmt::Debug for RootFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootFuture").finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The body of a `#[virtual_time_test(tokio)]`, checking before every poll that tokio's clock
    /// (read by `runtime_clock`) is the bubble's: a `tokio::time::pause()` in the test gives
    /// tokio a clock of its own, frozen and advanced behind the bubble's back.
    #[doc(hidden)]
    pub struct OneClock<F, C> {
        #[pin]
        future: F,
        runtime_clock: C,
    }
}

impl<F, C> OneClock<F, C> {
    #[doc(hidden)]
    pub fn new(runtime_clock: C, future: F) -> Self {
        OneClock { future, runtime_clock }
    }
}

impl<F: Future, C: Fn() -> std::time::Instant> Future for OneClock<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        check_one_clock((this.runtime_clock)());
        this.future.poll(cx)
    }
}

/// Panics when the runtime's clock reads differently from std's: the clock cannot move
/// between the two readings while this member runs, so they differ only if the runtime's is
/// paused.
fn check_one_clock(runtime_now: std::time::Instant) {
    let std_now = std::time::Instant::now();
    assert!(
        runtime_now == std_now,
        "tokio's clock is paused inside a virtual-time bubble (tokio::time::pause or start_paused): \
         tokio now keeps a second clock of its own, frozen and auto-advanced behind the bubble's back \
         ({:?} apart), so tokio's timers and std's, gonext's and the bubble's deadlines disagree. \
         The bubble already makes tokio's time virtual: remove the pause",
        runtime_now.saturating_duration_since(std_now).max(std_now.saturating_duration_since(runtime_now)),
    );
}
