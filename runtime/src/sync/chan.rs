//! Go channels: buffered and unbuffered, many senders and receivers, closed when the last
//! sender drops, usable from blocking code and from async code alike.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::waiters::Waiters;
use crate::sync_shim::{Arc, Mutex, MutexGuard};
use crate::time::bubble::{self, BubbleState, Site};

/// Creates a channel holding up to `cap` values; `cap = 0` is unbuffered (a send waits for a
/// receiver), as in Go's `make(chan T, cap)`.
///
/// The channel closes when every [`Sender`] is dropped: receivers then drain what is left
/// and get `None`. Inside a virtual-time bubble, blocking on a channel is a durable block.
///
/// ```
/// use gonext::{sync, thread};
///
/// let (tx, rx) = sync::chan(0);
/// let producer = thread::spawn(move || {
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
/// }); // `tx` drops here: the channel closes
/// let received: Vec<i32> = rx.iter().collect();
/// assert_eq!(received, [0, 1, 2]);
/// producer.join().unwrap();
/// ```
///
/// # Differences from Go
///
/// Go closes a channel with `close(ch)` and panics on a send to a closed channel; here the
/// channel closes when the last `Sender` drops, so sending on a closed channel cannot be
/// written. A send with no receiver left returns the value in [`SendError`] instead of
/// blocking forever. A value sent to a waiting receiver that is then cancelled (a `select!`
/// that chose another branch) stays in the channel for the next receiver.
///
/// Go panics when a bubble's channel is closed outside the bubble. Here closing is a drop,
/// and a drop never panics — Rust runs drops while unwinding, where a second panic aborts,
/// and when a value simply leaves the bubble with its owner. So the last `Sender` of a
/// bubble's channel may be dropped anywhere, and its receivers wake. The bubble does not
/// wait for that, though: its members blocked on its own channel are durably blocked, and
/// if nothing inside the bubble can wake them, that is reported as a deadlock even while
/// an outside thread still holds a `Sender`. Every other use outside the bubble panics.
#[track_caller]
pub fn chan<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Chan {
        state: Mutex::new(State {
            buf: VecDeque::with_capacity(cap.min(1024)),
            cap,
            senders: 1,
            receivers: 1,
            pending: VecDeque::new(),
            next_send: 0,
            receivers_waiting: Waiters::new(),
        }),
        bubble: bubble::current(),
        site: Location::caller(),
    });
    (Sender { chan: Arc::clone(&shared) }, Receiver { chan: shared })
}

struct PendingSend<T> {
    id: u64,
    value: T,
    waker: Waker,
}

struct State<T> {
    buf: VecDeque<T>,
    cap: usize,
    senders: usize,
    receivers: usize,
    /// Senders blocked with their value, oldest first.
    pending: VecDeque<PendingSend<T>>,
    next_send: u64,
    receivers_waiting: Waiters,
}

struct Chan<T> {
    state: Mutex<State<T>>,
    bubble: Option<std::sync::Arc<BubbleState>>,
    site: Site,
}

impl<T> Chan<T> {
    /// Locks the channel after checking that the caller may use it.
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        if let Some(owner) = &self.bubble {
            bubble::check_owner(owner, "sync::chan", self.site, Location::caller());
        }
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> State<T> {
    /// Takes the next value: from the buffer (refilling it from a blocked sender), else
    /// directly from a blocked sender. The sender to wake is returned.
    fn take(&mut self) -> Option<(T, Option<Waker>)> {
        if let Some(value) = self.buf.pop_front() {
            let sender = (self.buf.len() < self.cap).then(|| self.pending.pop_front()).flatten().map(|p| {
                self.buf.push_back(p.value);
                p.waker
            });
            return Some((value, sender));
        }
        self.pending.pop_front().map(|p| (p.value, Some(p.waker)))
    }
}

/// The sending half of a [`chan`]. Clone it for more senders; the channel closes when the
/// last one drops.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a [`chan`]. Clone it for more receivers (each value goes to one).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// A send failed because every receiver is gone; the value is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not send; the value is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or, unbuffered, no receiver is waiting).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// Nothing is buffered and no sender is waiting.
    Empty,
    /// Every sender is gone and the channel is drained.
    Disconnected,
}

impl<T> Sender<T> {
    /// Sends `value`, blocking while the buffer is full (unbuffered: until a receiver takes
    /// it). Fails, returning the value, once every receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = gonext::sync::chan(1);
    /// tx.send("hello").unwrap();
    /// assert_eq!(rx.recv(), Some("hello"));
    /// drop(rx);
    /// assert_eq!(tx.send("nobody").unwrap_err().0, "nobody");
    /// ```
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let site = Location::caller();
        bubble::block_on(self.send_at(value, site), site, "chan send")
    }

    /// The async form of [`send`](Self::send). Dropping the future before it completes
    /// withdraws the value (it is dropped, never delivered).
    #[track_caller]
    pub fn send_async(&self, value: T) -> Send<'_, T> {
        self.send_at(value, Location::caller())
    }

    fn send_at(&self, value: T, site: Site) -> Send<'_, T> {
        Send { sender: self, value: Some(value), pending: None, site }
    }

    /// Sends without blocking.
    #[track_caller]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.chan.lock();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        let receiver = state.receivers_waiting.take_one();
        if state.buf.len() >= state.cap && receiver.is_none() {
            return Err(TrySendError::Full(value));
        }
        state.buf.push_back(value);
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// The number of values buffered now.
    pub fn len(&self) -> usize {
        self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).buf.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer size given to [`chan`].
    pub fn capacity(&self) -> usize {
        self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).cap
    }
}

/// The future of [`Sender::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Send<'a, T> {
    sender: &'a Sender<T>,
    value: Option<T>,
    pending: Option<u64>,
    site: Site,
}

impl<T> Unpin for Send<'_, T> {}

impl<T> Future for Send<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.sender.chan.lock();
        if let Some(id) = this.pending {
            let Some(position) = state.pending.iter().position(|p| p.id == id) else {
                this.pending = None;
                return Poll::Ready(Ok(()));
            };
            if state.receivers == 0 {
                let withdrawn = state.pending.remove(position).expect("position is in range");
                this.pending = None;
                return Poll::Ready(Err(SendError(withdrawn.value)));
            }
            state.pending[position].waker.clone_from(cx.waker());
            bubble::note_pending_on(this.sender.chan.bubble.as_ref(), this.site, "chan send");
            return Poll::Pending;
        }
        let value = this.value.take().expect("Send polled after completion");
        if state.receivers == 0 {
            return Poll::Ready(Err(SendError(value)));
        }
        let receiver = state.receivers_waiting.take_one();
        if state.buf.len() < state.cap || receiver.is_some() {
            state.buf.push_back(value);
            drop(state);
            if let Some(receiver) = receiver {
                receiver.wake();
            }
            return Poll::Ready(Ok(()));
        }
        let id = state.next_send;
        state.next_send += 1;
        state.pending.push_back(PendingSend { id, value, waker: cx.waker().clone() });
        this.pending = Some(id);
        bubble::note_pending_on(this.sender.chan.bubble.as_ref(), this.site, "chan send");
        Poll::Pending
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.pending else { return };
        let mut state = self.sender.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.pending.retain(|p| p.id != id);
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, blocking while the channel is empty; `None` once every
    /// sender is gone and the buffer is drained.
    ///
    /// ```
    /// let (tx, rx) = gonext::sync::chan(2);
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Some(1));
    /// assert_eq!(rx.recv(), None);
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Option<T> {
        let site = Location::caller();
        bubble::block_on(self.recv_at(site), site, "chan recv")
    }

    /// The async form of [`recv`](Self::recv); cancel-safe (dropping it loses no value).
    #[track_caller]
    pub fn recv_async(&self) -> Recv<'_, T> {
        self.recv_at(Location::caller())
    }

    fn recv_at(&self, site: Site) -> Recv<'_, T> {
        Recv { receiver: self, slot: None, site }
    }

    /// Receives without blocking.
    #[track_caller]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.lock();
        match state.take() {
            Some((value, sender)) => {
                drop(state);
                if let Some(sender) = sender {
                    sender.wake();
                }
                Ok(value)
            }
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// A blocking iterator over received values, ending when the channel is closed and
    /// drained (Go's `for v := range ch`).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// The number of values buffered now.
    pub fn len(&self) -> usize {
        self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).buf.len()
    }

    /// Whether nothing is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The future of [`Receiver::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    receiver: &'a Receiver<T>,
    slot: Option<u64>,
    site: Site,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let mut state = this.receiver.chan.lock();
        if let Some((value, sender)) = state.take() {
            state.receivers_waiting.forget(&mut this.slot);
            drop(state);
            if let Some(sender) = sender {
                sender.wake();
            }
            return Poll::Ready(Some(value));
        }
        if state.senders == 0 {
            state.receivers_waiting.forget(&mut this.slot);
            return Poll::Ready(None);
        }
        state.receivers_waiting.register(&mut this.slot, cx.waker());
        bubble::note_pending_on(this.receiver.chan.bubble.as_ref(), this.site, "chan recv");
        Poll::Pending
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        if self.slot.is_none() {
            return;
        }
        let mut state = self.receiver.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = if state.buf.is_empty() {
            state.receivers_waiting.forget(&mut self.slot);
            None
        } else {
            state.receivers_waiting.cancel(&mut self.slot)
        };
        drop(state);
        if let Some(next) = next {
            next.wake();
        }
    }
}

/// The iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.receiver.recv()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).senders += 1;
        Sender { chan: Arc::clone(&self.chan) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.senders -= 1;
        let receivers = if state.senders == 0 { state.receivers_waiting.take_all() } else { Vec::new() };
        drop(state);
        receivers.into_iter().for_each(Waker::wake);
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).receivers += 1;
        Receiver { chan: Arc::clone(&self.chan) }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.chan.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.receivers -= 1;
        let senders: Vec<Waker> = if state.receivers == 0 {
            state.pending.iter().map(|p| p.waker.clone()).collect()
        } else {
            Vec::new()
        };
        drop(state);
        senders.into_iter().for_each(Waker::wake);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("created_at", &self.chan.site).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("created_at", &self.chan.site).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Send<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send").field("site", &self.site).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").field("site", &self.site).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a channel whose receivers are all gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the channel is full"),
            TrySendError::Disconnected(_) => f.write_str("the channel's receivers are all gone"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("the channel is empty"),
            TryRecvError::Disconnected => f.write_str("the channel is closed and drained"),
        }
    }
}

impl std::error::Error for TryRecvError {}
