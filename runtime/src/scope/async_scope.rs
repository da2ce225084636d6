//! The runtime of `async_scope!`: a future that polls its children itself, so they may borrow
//! from the enclosing async fn and need no spawning, under any executor.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};

use crate::context::{Cancel, Context};
use crate::time::bubble::Site;

type Child<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The children of one `async_scope!`, polled by [`AsyncScope::run`].
pub struct AsyncScope<'a> {
    ctx: Context,
    cancel: Mutex<Option<Cancel>>,
    children: Mutex<Vec<(Child<'a>, Site)>>,
    panic: Mutex<Option<(Box<dyn Any + Send>, Site)>>,
}

impl fmt::Debug for AsyncScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncScope").finish_non_exhaustive()
    }
}

impl Default for AsyncScope<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> AsyncScope<'a> {
    /// A scope with no children and a fresh cancellable context.
    pub fn new() -> Self {
        let (ctx, cancel) = Context::background().with_cancel();
        AsyncScope {
            ctx,
            cancel: Mutex::new(Some(cancel)),
            children: Mutex::default(),
            panic: Mutex::default(),
        }
    }

    /// Adds `child`, polled from now on by the scope's `run`.
    #[track_caller]
    pub fn go(&self, child: impl Future<Output = ()> + Send + 'a) {
        let site = Location::caller();
        self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((Box::pin(child), site));
    }

    /// Adds the future `make(ctx)` builds from the scope's context.
    #[track_caller]
    pub fn go_with<F: Future<Output = ()> + Send + 'a>(&self, make: impl FnOnce(Context) -> F) {
        self.go(make(self.ctx.clone()));
    }

    /// Runs `body` and every child until all are done; a child's panic cancels the scope's
    /// context and resumes once the others have finished.
    pub async fn run<T>(&self, body: impl Future<Output = T>) -> T {
        let mut body = std::pin::pin!(body);
        let mut value = None;
        std::future::poll_fn(|cx| {
            if value.is_none()
                && let Poll::Ready(output) = body.as_mut().poll(cx)
            {
                value = Some(output);
            }
            self.poll_children(cx);
            let idle = self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty();
            if value.is_some() && idle { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        if let Some((payload, site)) =
            self.panic.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
        {
            eprintln!(
                "gonext: the future started by `go` at {site} panicked; resuming the panic in its async_scope"
            );
            panic::resume_unwind(payload);
        }
        value.expect("the body completed")
    }

    /// Polls every child once, keeping the pending ones; children added meanwhile are kept.
    fn poll_children(&self, cx: &mut TaskContext<'_>) {
        loop {
            let mut batch =
                std::mem::take(&mut *self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            if batch.is_empty() {
                return;
            }
            batch.retain_mut(|(child, site)| {
                match catch_unwind(AssertUnwindSafe(|| child.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => true,
                    Ok(Poll::Ready(())) => false,
                    Err(payload) => {
                        self.panic
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .get_or_insert((payload, *site));
                        drop(self.cancel.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
                        false
                    }
                }
            });
            let mut children = self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let added = std::mem::replace(&mut *children, batch);
            let new_children = !added.is_empty();
            children.extend(added);
            drop(children);
            if !new_children {
                return;
            }
        }
    }
}
