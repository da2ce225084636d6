//! Go's `context.Context`: cancellation, deadlines and request-scoped values, passed
//! explicitly down a call tree.
//!
//! A [`Context`] is a cheap handle (`Clone` is one reference-count increment) to a node in a
//! tree. [`Context::with_cancel`], [`Context::with_timeout`] and [`Context::with_deadline`]
//! add a cancellable child and return it with its [`Cancel`] handle; cancelling a node
//! cancels its whole subtree, never its parent. [`Context::done`] is a future that
//! completes on cancellation, so blocking code waits for it in [`select!`](crate::select)
//! and async code `.await`s it.
//!
//! Deadlines use the caller's clock: inside a virtual-time bubble a `with_timeout(10s)`
//! context expires after ten *virtual* seconds, when every member is blocked.
//!
//! ```
//! use gonext::context::{Context, ContextError};
//! use gonext::time;
//! use std::time::Duration;
//!
//! time::bubble_async(async {
//!     let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
//!     ctx.done().await;
//!     assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
//! });
//! ```
//!
//! # Differences from Go
//!
//! - `WithCancel` returns a function; here [`Cancel`] is a handle that also cancels when
//!   dropped, so a forgotten `defer cancel()` cannot leak a timer. Keep it alive as long as
//!   the context should live.
//! - `WithValue` keys are arbitrary values in Go; here a value is found by its type
//!   ([`Context::value`]), which makes collisions between packages impossible.
//! - Goroutine-local storage was declined in Go (#21355) and is not provided here either:
//!   pass a `Context` and use `with_value`.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use crate::sync::waiters::Waiters;
use crate::time::Instant;
use crate::time::bubble::{self, BubbleState, Site};
use crate::time::real_timer::ClockTimer;

/// Why a context is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its [`Cancel`] handle (or an ancestor's) was used or dropped.
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

/// A handle to a node of the context tree: cancellation, an optional deadline and values.
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

struct Node {
    parent: Option<Arc<Node>>,
    /// Present on cancellable nodes (`with_cancel`, `with_deadline`, `with_timeout`).
    cancel: Option<Mutex<CancelState>>,
    deadline: Option<Instant>,
    value: Option<(TypeId, Box<dyn Any + Send + Sync>)>,
    bubble: Option<Arc<BubbleState>>,
    site: Site,
    /// Set once a cancellable node is done, so that `is_done` reads one atomic, not the lock.
    done: AtomicBool,
    /// Made by `without_cancel`: no cancellation or deadline reaches it from its ancestors.
    detached: bool,
}

#[derive(Default)]
struct CancelState {
    err: Option<ContextError>,
    waiters: Waiters,
    children: Vec<Weak<Node>>,
    timer: Option<ClockTimer>,
    after_funcs: Vec<Arc<AfterFuncEntry>>,
    /// Why it was cancelled, when `CancelCause::cancel` said (or an ancestor's did).
    cause: Option<Cause>,
}

/// A function registered by [`Context::after_func`]; taken by whoever runs or stops it first.
struct AfterFuncEntry {
    func: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    site: Site,
}

impl AfterFuncEntry {
    fn take(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.func.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    /// Starts the function on a thread of its own, in the canceller's bubble as Go does (or,
    /// when the canceller is outside any, in the context's bubble while it lasts).
    fn start(&self, bubble: Option<&Arc<BubbleState>>) {
        let Some(func) = self.take() else { return };
        let canceller = bubble::current();
        crate::thread::spawn_detached(canceller.as_ref().or(bubble), self.site, func);
    }
}

impl Node {
    /// The nearest cancellable node at or above this one.
    fn canceller(self: &Arc<Self>) -> Option<&Arc<Node>> {
        let mut node = self;
        loop {
            if node.cancel.is_some() {
                return Some(node);
            }
            if node.detached {
                return None;
            }
            node = node.parent.as_ref()?;
        }
    }

    fn state(&self) -> MutexGuard<'_, CancelState> {
        self.cancel
            .as_ref()
            .expect("only cancellable nodes have state")
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cancel(&self, err: ContextError) {
        self.cancel_because(err, None);
    }

    /// Cancels this node and its subtree with `err`, recording `cause` for `Context::cause`.
    fn cancel_because(&self, err: ContextError, cause: Option<Cause>) {
        let mut state = self.state();
        if state.err.is_some() {
            return;
        }
        state.err = Some(err);
        state.cause.clone_from(&cause);
        self.done.store(true, Ordering::Release);
        let waiters = state.waiters.take_all();
        let children = std::mem::take(&mut state.children);
        let timer = state.timer.take();
        let after_funcs = std::mem::take(&mut state.after_funcs);
        drop(state);
        if let Some(timer) = timer {
            timer.remove(self.bubble.as_ref());
        }
        waiters.into_iter().for_each(Waker::wake);
        for entry in after_funcs {
            entry.start(self.bubble.as_ref());
        }
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel_because(err, cause.clone());
        }
    }
}

/// Cancels its deadline's context when the timer fires.
struct DeadlineWaker(Weak<Node>);

impl Wake for DeadlineWaker {
    fn wake(self: Arc<Self>) {
        if let Some(node) = self.0.upgrade() {
            node.cancel(ContextError::DeadlineExceeded);
        }
    }
}

impl Context {
    /// The root context: never cancelled, no deadline, no values.
    #[track_caller]
    pub fn background() -> Context {
        Context {
            node: Arc::new(Node {
                parent: None,
                cancel: None,
                deadline: None,
                value: None,
                bubble: None,
                site: Location::caller(),
                done: AtomicBool::new(false),
                detached: false,
            }),
        }
    }

    fn child(&self, cancel: bool, deadline: Option<Instant>, site: Site) -> Context {
        Context {
            node: Arc::new(Node {
                parent: Some(Arc::clone(&self.node)),
                cancel: cancel.then(|| Mutex::new(CancelState::default())),
                deadline,
                value: None,
                bubble: bubble::current(),
                site,
                done: AtomicBool::new(false),
                detached: false,
            }),
        }
    }

    /// A child that is cancelled when `Cancel` is used or dropped, or when `self` is.
    ///
    /// ```
    /// use gonext::context::{Context, ContextError};
    ///
    /// let (parent, cancel_parent) = Context::background().with_cancel();
    /// let (child, _cancel_child) = parent.with_cancel();
    /// cancel_parent.cancel();
    /// assert_eq!(child.err(), Some(ContextError::Canceled));
    /// ```
    #[track_caller]
    pub fn with_cancel(&self) -> (Context, Cancel) {
        let child = self.child(true, self.deadline(), Location::caller());
        self.attach(&child);
        let cancel = Cancel { node: Arc::clone(&child.node) };
        (child, cancel)
    }

    /// A child that is also cancelled at `deadline` on the caller's clock (virtual in a
    /// bubble), or at the parent's deadline if that is earlier.
    #[track_caller]
    pub fn with_deadline(&self, deadline: Instant) -> (Context, Cancel) {
        let site = Location::caller();
        let effective = self.deadline().map_or(deadline, |parent| parent.min(deadline));
        let child = self.child(true, Some(effective), site);
        self.attach(&child);
        if child.err().is_none() {
            child.arm_timer(effective);
        }
        let cancel = Cancel { node: Arc::clone(&child.node) };
        (child, cancel)
    }

    /// `with_deadline(Instant::now() + timeout)`.
    ///
    /// ```
    /// use gonext::context::Context;
    /// use gonext::time;
    /// use std::time::Duration;
    ///
    /// time::bubble(|| {
    ///     let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    ///     assert!(!ctx.is_done());
    ///     gonext::thread::sleep(Duration::from_secs(2));
    ///     assert!(ctx.is_done());
    /// });
    /// ```
    #[track_caller]
    pub fn with_timeout(&self, timeout: Duration) -> (Context, Cancel) {
        self.with_deadline(Instant::now() + timeout)
    }

    /// A child carrying `value`, found by [`value`](Self::value) on it and its descendants.
    ///
    /// ```
    /// use gonext::context::Context;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct RequestId(u64);
    /// let ctx = Context::background().with_value(RequestId(7));
    /// let child = ctx.with_cancel().0;
    /// assert_eq!(child.value::<RequestId>(), Some(&RequestId(7)));
    /// assert_eq!(child.value::<String>(), None);
    /// ```
    #[track_caller]
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        Context {
            node: Arc::new(Node {
                parent: Some(Arc::clone(&self.node)),
                cancel: None,
                deadline: self.deadline(),
                value: Some((TypeId::of::<T>(), Box::new(value))),
                bubble: None,
                site: Location::caller(),
                done: AtomicBool::new(false),
                detached: false,
            }),
        }
    }

    /// The nearest value of type `T` on this context or an ancestor.
    pub fn value<T: Any>(&self) -> Option<&T> {
        let mut node = &self.node;
        loop {
            if let Some((id, value)) = &node.value
                && *id == TypeId::of::<T>()
            {
                return value.downcast_ref();
            }
            node = node.parent.as_ref()?;
        }
    }

    /// When this context expires, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Why the context is done, or `None` while it is not.
    pub fn err(&self) -> Option<ContextError> {
        self.node
            .canceller()
            .filter(|node| node.done.load(Ordering::Acquire))
            .and_then(|node| node.state().err)
    }

    /// Whether the context is cancelled or past its deadline.
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// A future that completes when the context is done (never, for `background()`).
    #[track_caller]
    pub fn done(&self) -> Done {
        Done { ctx: self.clone(), slot: None, site: Location::caller() }
    }

    /// Arranges for `f` to run on a thread of its own once the context is done (at once, if it
    /// already is): Go's `context.AfterFunc`. The returned handle's
    /// [`stop`](AfterFunc::stop) cancels that.
    ///
    /// Inside a bubble, the thread is a member of the bubble of whoever cancels the context
    /// (a deadline passing in a bubble counts as the bubble), as Go starts the function's
    /// goroutine from the cancelling one.
    ///
    /// ```
    /// use gonext::context::Context;
    /// use gonext::time;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// time::bubble(|| {
    ///     let closed = Arc::new(AtomicU32::new(0));
    ///     let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    ///     let counter = Arc::clone(&closed);
    ///     let _after = ctx.after_func(move || { counter.fetch_add(1, Ordering::SeqCst); });
    ///     time::sleep_then_wait(Duration::from_secs(10)); // the deadline passed, the function ran
    ///     assert_eq!(closed.load(Ordering::SeqCst), 1);
    /// });
    /// ```
    ///
    /// # Differences from Go
    ///
    /// Go returns a `stop` function; here it is the [`AfterFunc`] handle, and dropping the
    /// handle does not stop the function (as not calling `stop` does not in Go).
    #[track_caller]
    pub fn after_func(&self, f: impl FnOnce() + Send + 'static) -> AfterFunc {
        let entry =
            Arc::new(AfterFuncEntry { func: Mutex::new(Some(Box::new(f))), site: Location::caller() });
        let Some(node) = self.node.canceller() else {
            return AfterFunc { entry, node: Weak::new() };
        };
        let mut state = node.state();
        if state.err.is_some() {
            drop(state);
            entry.start(node.bubble.as_ref());
        } else {
            state.after_funcs.push(Arc::clone(&entry));
        }
        AfterFunc { entry, node: Arc::downgrade(node) }
    }

    /// Registers `child` with the nearest cancellable ancestor, or cancels it at once if that
    /// ancestor is already done.
    fn attach(&self, child: &Context) {
        let Some(ancestor) = self.node.canceller() else { return };
        let mut state = ancestor.state();
        match state.err {
            Some(err) => {
                let cause = state.cause.clone();
                drop(state);
                child.node.cancel_because(err, cause);
            }
            None => {
                state.children.retain(|c| c.strong_count() > 0);
                state.children.push(Arc::downgrade(&child.node));
            }
        }
    }

    fn arm_timer(&self, deadline: Instant) {
        if Instant::now() >= deadline {
            return self.node.cancel(ContextError::DeadlineExceeded);
        }
        let waker = Waker::from(Arc::new(DeadlineWaker(Arc::downgrade(&self.node))));
        let timer = ClockTimer::add(self.node.bubble.as_ref(), deadline, waker);
        let mut state = self.node.state();
        if state.err.is_none() {
            state.timer = Some(timer);
            return;
        }
        drop(state);
        timer.remove(self.node.bubble.as_ref());
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("created_at", &self.node.site)
            .field("deadline", &self.deadline())
            .field("err", &self.err())
            .finish_non_exhaustive()
    }
}

/// Cancels its context (and the context's subtree) when used or dropped.
#[must_use = "dropping the Cancel handle cancels the context at once"]
pub struct Cancel {
    node: Arc<Node>,
}

impl Cancel {
    /// Cancels the context now.
    pub fn cancel(self) {
        drop(self);
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.node.cancel(ContextError::Canceled);
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel").field("created_at", &self.node.site).finish()
    }
}

/// The handle of a function registered with [`Context::after_func`].
pub struct AfterFunc {
    entry: Arc<AfterFuncEntry>,
    /// The node the function waits on, to unregister it.
    node: Weak<Node>,
}

impl AfterFunc {
    /// Stops the function from running: `true` if this call stopped it, `false` if it had
    /// already been started or stopped (Go's `stop()`). It does not wait for a started
    /// function to finish.
    ///
    /// ```
    /// use gonext::context::Context;
    ///
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// let after = ctx.after_func(|| unreachable!("stopped before the cancel"));
    /// assert!(after.stop());
    /// assert!(!after.stop());
    /// cancel.cancel();
    /// ```
    pub fn stop(&self) -> bool {
        if self.entry.take().is_none() {
            return false;
        }
        if let Some(node) = self.node.upgrade() {
            node.state().after_funcs.retain(|entry| !Arc::ptr_eq(entry, &self.entry));
        }
        true
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFunc").field("registered_at", &self.entry.site).finish_non_exhaustive()
    }
}

/// Why a context was cancelled, as [`CancelCause::cancel`] gave it; see [`Context::cause`].
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Go 1.20–1.21: cancellation with a cause, and a context that is never cancelled.
impl Context {
    /// A child like [`with_cancel`](Self::with_cancel)'s, whose [`CancelCause`] records why
    /// it is cancelled: Go's `WithCancelCause`.
    ///
    /// ```
    /// use gonext::context::{Context, ContextError};
    /// use std::io;
    ///
    /// let (ctx, cancel) = Context::background().with_cancel_cause();
    /// let (child, _cancel_child) = ctx.with_cancel();
    /// assert!(child.cause().is_none(), "no cause before the cancellation");
    /// cancel.cancel(io::Error::other("the peer hung up"));
    /// assert_eq!(child.err(), Some(ContextError::Canceled));
    /// assert_eq!(child.cause().unwrap().to_string(), "the peer hung up", "children share the cause");
    /// ```
    #[track_caller]
    pub fn with_cancel_cause(&self) -> (Context, CancelCause) {
        let (ctx, cancel) = self.with_cancel();
        (ctx, CancelCause { cancel: Some(cancel) })
    }

    /// Why the context is done: the cause given to the [`CancelCause`] that cancelled it (or
    /// an ancestor), else its [`err`](Self::err) as an error; `None` while it is not done, and
    /// always for a context made by [`without_cancel`](Self::without_cancel). Go's
    /// `context.Cause`.
    ///
    /// ```
    /// use gonext::context::{Context, ContextError};
    /// use gonext::time;
    /// use std::time::Duration;
    ///
    /// time::bubble(|| {
    ///     let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    ///     gonext::thread::sleep(Duration::from_secs(1));
    ///     let cause = ctx.cause().unwrap();
    ///     assert_eq!(cause.downcast_ref::<ContextError>(), Some(&ContextError::DeadlineExceeded));
    /// });
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        let node = self.node.canceller()?;
        if !node.done.load(Ordering::Acquire) {
            return None;
        }
        let state = node.state();
        let err = state.err?;
        Some(state.cause.clone().unwrap_or_else(|| Arc::new(err)))
    }

    /// A context with this one's values that is never cancelled and has no deadline, whatever
    /// happens to this one: Go's `WithoutCancel`, for work that must finish (a rollback, a
    /// log flush) even after its request was cancelled.
    ///
    /// ```
    /// use gonext::context::Context;
    ///
    /// let (request, cancel) = Context::background().with_value("request-7").with_cancel();
    /// let cleanup = request.without_cancel();
    /// cancel.cancel();
    /// assert!(request.is_done());
    /// assert!(!cleanup.is_done());
    /// assert_eq!(cleanup.value::<&str>(), Some(&"request-7"));
    /// ```
    ///
    /// # Differences from Go
    ///
    /// Go's shield is a context like any other; gonext's also stops a [`scope!`](crate::scope!)
    /// opened under it from inheriting the cancellation (pass it with `ctx = …`).
    #[track_caller]
    pub fn without_cancel(&self) -> Context {
        Context {
            node: Arc::new(Node {
                parent: Some(Arc::clone(&self.node)),
                cancel: None,
                deadline: None,
                value: None,
                bubble: None,
                site: Location::caller(),
                done: AtomicBool::new(false),
                detached: true,
            }),
        }
    }
}

/// Cancels its context with a cause ([`Context::with_cancel_cause`]); dropped unused, it
/// cancels with [`ContextError::Canceled`] as the cause, as Go's `cancel(nil)` does.
///
/// ```
/// use gonext::context::{Context, ContextError};
///
/// let (ctx, cancel) = Context::background().with_cancel_cause();
/// drop(cancel);
/// assert_eq!(ctx.cause().unwrap().downcast_ref::<ContextError>(), Some(&ContextError::Canceled));
/// ```
///
/// # Differences from Go
///
/// Go's `CancelCauseFunc` takes any `error`, `nil` included; `cancel` takes an error value,
/// and dropping the handle is the `nil` case.
#[must_use = "dropping the CancelCause handle cancels the context at once"]
pub struct CancelCause {
    cancel: Option<Cancel>,
}

impl CancelCause {
    /// Cancels the context now, recording `cause` (also for its descendants). A context that is
    /// already done keeps its first cause.
    pub fn cancel(mut self, cause: impl std::error::Error + Send + Sync + 'static) {
        if let Some(cancel) = self.cancel.take() {
            cancel.node.cancel_because(ContextError::Canceled, Some(Arc::new(cause)));
        }
    }
}

impl fmt::Debug for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelCause").field("cancel", &self.cancel).finish()
    }
}

/// The future of [`Context::done`]; its output is why the context is done.
#[must_use = "futures do nothing unless polled"]
pub struct Done {
    ctx: Context,
    slot: Option<u64>,
    site: Site,
}

impl Future for Done {
    type Output = ContextError;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<ContextError> {
        let this = self.get_mut();
        let Some(node) = this.ctx.node.canceller() else {
            bubble::note_blocked_at(this.site, "Context::done");
            return Poll::Pending;
        };
        check_bubble(node, this.site);
        let mut state = node.state();
        if let Some(err) = state.err {
            state.waiters.forget(&mut this.slot);
            return Poll::Ready(err);
        }
        state.waiters.register(&mut this.slot, cx.waker());
        bubble::note_pending_on(node.bubble.as_ref(), this.site, "Context::done");
        Poll::Pending
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(node) = self.ctx.node.canceller().filter(|_| self.slot.is_some()) {
            node.state().waiters.forget(&mut self.slot);
        }
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").field("site", &self.site).finish_non_exhaustive()
    }
}

/// Panics when a context that belongs to a bubble is awaited from outside it.
fn check_bubble(node: &Node, site: Site) {
    if let Some(owner) = &node.bubble {
        bubble::check_owner(owner, "Context", node.site, site);
    }
}
