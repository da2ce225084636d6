//! Go's `runtime` package, the parts that make sense for Rust.
//!
//! ```
//! use gonext::{Ptr, runtime};
//! use std::sync::mpsc;
//!
//! let (closed, log) = mpsc::channel();
//! let file = Ptr::new("an open file");
//! runtime::add_cleanup(&file, move |fd: i32| closed.send(fd).unwrap(), 3); // Go's runtime.AddCleanup
//! drop(file); // the object dies: its cleanup is queued for a background worker
//! runtime::flush_cleanups();
//! assert_eq!(log.try_recv(), Ok(3));
//!
//! println!("{}", runtime::max_procs_report()); // Go 1.25's GOMAXPROCS, with where it came from
//! assert!(runtime::max_procs() >= 1);
//! ```
//!
//! - [`max_procs`] mirrors Go 1.25's automatic `GOMAXPROCS` (and uber-go/automaxprocs): how many
//!   threads a CPU-bound pool should run, honouring an explicit override, the container's cgroup
//!   CPU quota and the CPU affinity mask, in that order. [`max_procs_report`] says where the
//!   number came from, for a startup log line, and [`Detector`] runs the same detection against
//!   a fake filesystem root. Like Go 1.25 the value is re-detected once a second
//!   ([`on_max_procs_change`] announces changes, [`set_update_max_procs`] turns it off), and
//!   [`set_max_procs`] / [`set_default_max_procs`] are Go's `GOMAXPROCS(n)` /
//!   `SetDefaultGOMAXPROCS`. [`memory_limit`] reads the cgroup memory limit the same way.
//! - [`add_cleanup`] mirrors Go 1.24's `runtime.AddCleanup`: a function run on a background
//!   worker after a [`Ptr`](crate::Ptr)'s object dies, cancellable with [`Cleanup::stop`];
//!   as in Go 1.25, cleanups run concurrently, so one that blocks cannot stall the others.
//!   [`flush_cleanups`] waits for the queued ones, [`pending_cleanups`] counts them.

pub(crate) mod cleanup;
mod procs;

pub use cleanup::{Cleanup, add_cleanup, flush_cleanups, pending_cleanups, set_slow_cleanup_threshold};
pub use procs::{
    Detector, OnMaxProcsChange, Procs, Rounding, Source, Throttling, max_procs, max_procs_report,
    memory_limit, on_max_procs_change, refresh, set_default_max_procs, set_max_procs, set_update_max_procs,
};
