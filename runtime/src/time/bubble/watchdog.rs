//! The stall watchdog: one background thread that checks every live bubble for progress in
//! real time.

use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::{BubbleState, Failure, report};

/// How often the watchdog looks; stalls are reported at most this much late.
const TICK: Duration = Duration::from_millis(50);

struct Watched {
    bubble: Weak<BubbleState>,
    progress: u64,
    since: Instant,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

/// Starts watching `bubble` (and the watchdog thread, on first use).
pub(super) fn watch(bubble: &Arc<BubbleState>) {
    let mut watched = WATCHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if watched.is_empty() {
        crate::thread::spawn_unadopted(thread::Builder::new().name("gonext-bubble-watchdog".into()), run)
            .expect("the bubble watchdog thread starts");
    }
    watched.push(Watched { bubble: Arc::downgrade(bubble), progress: u64::MAX, since: Instant::now() });
}

/// Checks every bubble each tick; exits when no bubble is left (the next bubble restarts it).
fn run() {
    loop {
        thread::sleep(TICK);
        let mut watched = WATCHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        watched.retain_mut(check);
        if watched.is_empty() {
            return;
        }
    }
}

/// Returns whether the bubble is still alive.
fn check(watched: &mut Watched) -> bool {
    let Some(bubble) = watched.bubble.upgrade() else { return false };
    #[cfg(gonext_std_time)]
    bubble.settle_idle_std_threads();
    let mut inner = bubble.lock();
    if inner.members.is_empty() {
        return true;
    }
    if inner.progress != watched.progress {
        watched.progress = inner.progress;
        watched.since = Instant::now();
        return true;
    }
    let stall = bubble.config.stall;
    if watched.since.elapsed() < stall {
        return true;
    }
    if inner.failure.is_some() {
        inner.abandoned = true;
        bubble.changed.notify_all();
        eprintln!(
            "gonext: {} failed, but some members never returned to gonext; abandoning them",
            bubble.label()
        );
        return true;
    }
    let report = report::stall(&bubble, &inner, stall);
    eprintln!("gonext: {report}");
    drop(bubble.fail_locked(inner, Failure::Report(report)));
    watched.since = Instant::now();
    true
}
