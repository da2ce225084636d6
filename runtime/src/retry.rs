//! Retrying with exponential backoff, on gonext's clock, so that a schedule of seconds or
//! minutes is tested in microseconds inside a virtual-time bubble.
//!
//! The schedule of [`Backoff`] is `initial`, `initial·factor`, `initial·factor²`, … capped at
//! `max_delay`, each delay optionally spread by `±jitter`. Retrying stops at the first
//! success, after `max_attempts`, when the next delay would pass `max_elapsed`, or when the
//! [`Context`] given to [`Backoff::context`] is done (also while sleeping).
//!
//! ```
//! use gonext::retry::Backoff;
//! use gonext::time::{self, Instant};
//! use std::time::Duration;
//!
//! time::bubble(|| {
//!     let start = Instant::now();
//!     let mut attempts = 0;
//!     let value = Backoff::new(Duration::from_millis(100))
//!         .max_attempts(5)
//!         .retry(|| {
//!             attempts += 1;
//!             if attempts < 3 { Err("not yet") } else { Ok(attempts) }
//!         })
//!         .unwrap();
//!     assert_eq!(value, 3);
//!     assert_eq!(start.elapsed(), Duration::from_millis(300)); // 100 ms + 200 ms
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::Location;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::context::{Context, ContextError};
use crate::time::bubble::{self, Site};
use crate::time::{Instant, Sleep};

/// An exponential backoff policy; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
    context: Option<Context>,
    seed: u64,
}

/// Why [`Backoff::retry`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError<E> {
    /// The attempts or the time budget ran out; `last` is the last attempt's error.
    Exhausted {
        /// The error of the last attempt.
        last: E,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The context was done before or between attempts.
    Canceled {
        /// The error of the last attempt, if one was made.
        last: Option<E>,
        /// How many attempts were made.
        attempts: u32,
        /// Why the context is done.
        cause: ContextError,
    },
}

impl<E> RetryError<E> {
    /// The last attempt's error, if any attempt was made.
    pub fn into_last(self) -> Option<E> {
        match self {
            RetryError::Exhausted { last, .. } => Some(last),
            RetryError::Canceled { last, .. } => last,
        }
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Exhausted { attempts, .. } | RetryError::Canceled { attempts, .. } => *attempts,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Exhausted { last, attempts } => {
                write!(f, "gave up after {attempts} attempts: {last}")
            }
            RetryError::Canceled { last: Some(last), attempts, cause } => {
                write!(f, "{cause} after {attempts} attempts; last error: {last}")
            }
            RetryError::Canceled { last: None, cause, .. } => write!(f, "{cause} before the first attempt"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RetryError<E> {}

impl Backoff {
    /// Delays of `initial`, doubling each time up to one minute, no jitter, unlimited
    /// attempts.
    pub fn new(initial: Duration) -> Backoff {
        Backoff {
            initial,
            factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.0,
            max_attempts: None,
            max_elapsed: None,
            context: None,
            seed: std::collections::hash_map::RandomState::new().hash_one(0u8),
        }
    }

    /// Multiplies each delay by `factor` (default 2).
    ///
    /// # Panics
    ///
    /// If `factor` is below 1 or not finite.
    #[track_caller]
    pub fn factor(mut self, factor: f64) -> Backoff {
        assert!(
            factor.is_finite() && factor >= 1.0,
            "Backoff::factor: {factor} must be finite and at least 1"
        );
        self.factor = factor;
        self
    }

    /// Caps every delay (default one minute).
    pub fn max_delay(mut self, max_delay: Duration) -> Backoff {
        self.max_delay = max_delay;
        self
    }

    /// Spreads each delay uniformly over `delay·(1 ± fraction)` (default 0).
    ///
    /// # Panics
    ///
    /// If `fraction` is not within `0.0..=1.0`.
    #[track_caller]
    pub fn jitter(mut self, fraction: f64) -> Backoff {
        assert!((0.0..=1.0).contains(&fraction), "Backoff::jitter: {fraction} is not within 0.0..=1.0");
        self.jitter = fraction;
        self
    }

    /// Seeds the jitter, for a reproducible schedule.
    pub fn seed(mut self, seed: u64) -> Backoff {
        self.seed = seed;
        self
    }

    /// Stops after `attempts` attempts.
    ///
    /// # Panics
    ///
    /// If `attempts` is zero.
    #[track_caller]
    pub fn max_attempts(mut self, attempts: u32) -> Backoff {
        assert!(attempts > 0, "Backoff::max_attempts: at least one attempt is needed");
        self.max_attempts = Some(attempts);
        self
    }

    /// Stops before a delay that would end after `budget` since the first attempt.
    pub fn max_elapsed(mut self, budget: Duration) -> Backoff {
        self.max_elapsed = Some(budget);
        self
    }

    /// Stops as soon as `ctx` is done, including in the middle of a delay.
    pub fn context(mut self, ctx: &Context) -> Backoff {
        self.context = Some(ctx.clone());
        self
    }

    /// The delays between attempts, in order (jittered with this policy's seed).
    ///
    /// ```
    /// use gonext::retry::Backoff;
    /// use std::time::Duration;
    ///
    /// let ms = |n| Duration::from_millis(n);
    /// let schedule: Vec<_> = Backoff::new(ms(100)).max_delay(ms(500)).delays().take(5).collect();
    /// assert_eq!(schedule, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
    /// ```
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let policy = self.clone();
        let mut state = self.seed;
        let mut base = self.initial.as_secs_f64();
        std::iter::from_fn(move || {
            let capped = base.min(policy.max_delay.as_secs_f64());
            base = (base * policy.factor).min(policy.max_delay.as_secs_f64());
            let spread = 1.0 - policy.jitter + 2.0 * policy.jitter * unit_random(&mut state);
            Some(Duration::from_secs_f64(capped * spread))
        })
    }

    /// Calls `op` until it succeeds or the policy gives up, sleeping between attempts on the
    /// caller's clock (a durable block inside a bubble).
    ///
    /// # Errors
    ///
    /// [`RetryError::Exhausted`] with the last error, or [`RetryError::Canceled`] when the
    /// context is done.
    #[track_caller]
    pub fn retry<T, E>(&self, mut op: impl FnMut() -> Result<T, E>) -> Result<T, RetryError<E>> {
        let site = Location::caller();
        let mut schedule = Schedule::new(self);
        loop {
            schedule.check_context()?;
            let delay = match schedule.after_attempt(op()) {
                Step::Done(result) => return result,
                Step::Wait(delay) => delay,
            };
            if let Err(cause) = bubble::block_on(self.pause(delay, site), site, "retry backoff") {
                return Err(schedule.canceled(cause));
            }
        }
    }

    /// The async form of [`retry`](Self::retry): `op` returns a future per attempt.
    ///
    /// # Errors
    ///
    /// As [`retry`](Self::retry).
    #[track_caller]
    pub fn retry_async<T, E, F: Future<Output = Result<T, E>>>(
        &self,
        mut op: impl FnMut() -> F,
    ) -> impl Future<Output = Result<T, RetryError<E>>> {
        let site = Location::caller();
        async move {
            let mut schedule = Schedule::new(self);
            loop {
                schedule.check_context()?;
                let delay = match schedule.after_attempt(op().await) {
                    Step::Done(result) => return result,
                    Step::Wait(delay) => delay,
                };
                if let Err(cause) = self.pause(delay, site).await {
                    return Err(schedule.canceled(cause));
                }
            }
        }
    }

    /// Sleeps for `delay`, or less if the context is done first.
    fn pause(&self, delay: Duration, site: Site) -> impl Future<Output = Result<(), ContextError>> + '_ {
        let mut sleep = Sleep::new(Instant::now() + delay, site);
        let mut done = self.context.as_ref().map(Context::done);
        std::future::poll_fn(move |cx| {
            if let Some(done) = &mut done
                && let Poll::Ready(cause) = Pin::new(done).poll(cx)
            {
                return Poll::Ready(Err(cause));
            }
            Pin::new(&mut sleep).poll(cx).map(Ok)
        })
    }
}

/// The state of one retry loop: attempts made, the next delays, the time budget.
struct Schedule<'a, E> {
    policy: &'a Backoff,
    delays: Box<dyn Iterator<Item = Duration>>,
    attempts: u32,
    start: Instant,
    last: Option<E>,
}

impl<'a, E> Schedule<'a, E> {
    fn new(policy: &'a Backoff) -> Self {
        Schedule { policy, delays: Box::new(policy.delays()), attempts: 0, start: Instant::now(), last: None }
    }

    fn check_context(&mut self) -> Result<(), RetryError<E>> {
        match self.policy.context.as_ref().and_then(Context::err) {
            Some(cause) => Err(self.canceled(cause)),
            None => Ok(()),
        }
    }

    fn canceled(&mut self, cause: ContextError) -> RetryError<E> {
        RetryError::Canceled { last: self.last.take(), attempts: self.attempts, cause }
    }

    /// Records an attempt's outcome: the end (a value or giving up), or the next delay.
    fn after_attempt<T>(&mut self, outcome: Result<T, E>) -> Step<T, E> {
        self.attempts += 1;
        let error = match outcome {
            Ok(value) => return Step::Done(Ok(value)),
            Err(error) => error,
        };
        let out_of_attempts = self.policy.max_attempts.is_some_and(|max| self.attempts >= max);
        let delay = self.delays.next().unwrap_or(self.policy.max_delay);
        let out_of_time = self.policy.max_elapsed.is_some_and(|budget| self.start.elapsed() + delay > budget);
        if out_of_attempts || out_of_time {
            return Step::Done(Err(RetryError::Exhausted { last: error, attempts: self.attempts }));
        }
        self.last = Some(error);
        Step::Wait(delay)
    }
}

/// What a retry loop does after an attempt.
enum Step<T, E> {
    Done(Result<T, RetryError<E>>),
    Wait(Duration),
}

/// A uniform number in `[0, 1)` from a splitmix64 step: jitter needs spread, not secrecy.
fn unit_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
