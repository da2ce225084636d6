//! A counting global allocator for the memory cases (`bytes_per_op`).
//!
//! Counting is off unless a memory case is being measured, so time cases pay two relaxed
//! loads of read-only lines per allocation and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting live bytes while [`measure_live_bytes`] runs.
///
/// Install it in a binary with `#[global_allocator]`.
#[derive(Debug)]
pub struct CountingAlloc;

impl CountingAlloc {
    fn record(&self, delta: i64) {
        // Stored once: a store on every allocation would bounce this cache line between the
        // threads of every multi-threaded case, gonext's and its peers' alike.
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by `System`; the counters do not touch the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.record(layout.size() as i64);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.record(-(layout.size() as i64));
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.record(layout.size() as i64);
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.record(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns the heap bytes still allocated by it when it returns, with its result.
///
/// Allocations of other threads during `f` are counted too, so a case measures while its
/// objects are alive and drops them after this returns.
///
/// # Panics
///
/// If [`CountingAlloc`] is not the global allocator.
pub fn measure_live_bytes<R>(f: impl FnOnce() -> R) -> (i64, R) {
    drop(Box::new(0u8));
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "memory cases need `#[global_allocator] static A: gonext_bench::alloc::CountingAlloc`"
    );
    let before = LIVE.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let result = f();
    COUNTING.store(false, Ordering::Relaxed);
    (LIVE.load(Ordering::Relaxed) - before, result)
}

/// The resident set size of this process in bytes, from `/proc/self/status` (0 where unknown).
///
/// Used for memory that bypasses the allocator, such as `mmap`ed coroutine stacks.
pub fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
