//! Go's `IterToChan` bridge: an iterator drained into a channel by a producer thread.

use crate::sync::{self, Receiver};

/// Sends every item of `iter` into a new channel of capacity `cap` from a producer thread
/// and returns the receiving end (clone it for several consumers).
///
/// The producer is a [`thread::spawn`](crate::thread::spawn) thread, so inside a
/// virtual-time bubble it is a member. It stops as soon as every receiver is dropped, and
/// the channel closes when the iterator ends: no thread is leaked either way.
///
/// ```
/// let rx = gonext::iter::to_channel((1..=5).map(|x| x * x), 2);
/// let consumers: Vec<_> = (0..2)
///     .map(|_| {
///         let rx = rx.clone();
///         gonext::thread::spawn(move || rx.iter().sum::<u32>())
///     })
///     .collect();
/// drop(rx);
/// let total: u32 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
/// assert_eq!(total, 55);
/// ```
///
/// # Differences from Go
///
/// Go's sketch leaks the producer goroutine when the consumer stops early unless a `done`
/// channel is threaded through; here dropping the receivers is the signal.
#[track_caller]
pub fn to_channel<I>(iter: I, cap: usize) -> Receiver<I::Item>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    let (tx, rx) = sync::chan(cap);
    let iter = iter.into_iter();
    crate::thread::spawn(move || {
        for item in iter {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}
