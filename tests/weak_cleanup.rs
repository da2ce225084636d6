//! `Ptr`, `weak`, cleanups and `unique`: Go's Tasks 3 and 4 and the weak-pointer rules.

use gonext::runtime::{self, Cleanup};
use gonext::{Ptr, unique, weak};
use std::collections::HashSet;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts this thread's allocations, so a test can assert that a call allocates nothing
/// while other tests allocate on their own threads.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; the counter does not touch the memory.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System.alloc` with `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// How many allocations `f` made on this thread.
fn allocations_of<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(std::cell::Cell::get);
    let result = f();
    (ALLOCATIONS.with(std::cell::Cell::get) - before, result)
}

/// Tests that count open file descriptors run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Go's Task 4: a handle to a resource with an explicit `close` and a cleanup as safety net.
struct Db {
    file: Ptr<Mutex<Option<File>>>,
    cleanup: Cleanup,
}

impl Db {
    fn open(closed_by_cleanup: &Arc<AtomicUsize>) -> Db {
        let file = File::open("/proc/self/status").expect("a readable file");
        let fd = Arc::new(Mutex::new(Some(file.try_clone().expect("dup"))));
        let shared = Ptr::new(Mutex::new(Some(file)));
        let counter = Arc::clone(closed_by_cleanup);
        let cleanup = runtime::add_cleanup(
            &shared,
            move |duplicate: Arc<Mutex<Option<File>>>| {
                drop(duplicate.lock().unwrap().take());
                counter.fetch_add(1, Ordering::SeqCst);
            },
            fd,
        );
        Db { file: shared, cleanup }
    }

    /// Closes explicitly and stops the cleanup; the stopped cleanup is dropped unrun, which
    /// releases the descriptor it held.
    fn close(self) {
        self.cleanup.stop();
        drop(self.file.lock().unwrap().take());
    }
}

#[test]
fn task4_cleanups_close_what_close_did_not() {
    let _serial = serial();
    runtime::flush_cleanups();
    let before = open_fds();
    let by_cleanup = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        Db::open(&by_cleanup).close();
    }
    for _ in 0..1000 {
        drop(Db::open(&by_cleanup));
    }
    runtime::flush_cleanups();
    assert_eq!(by_cleanup.load(Ordering::SeqCst), 1000, "only the dropped DBs needed their cleanup");
    // Stopped cleanups are dropped unrun, which drops their argument (the duplicate fd) too.
    assert_eq!(open_fds(), before, "no descriptor leaked");
}

#[test]
fn task3_a_weak_map_does_not_keep_values_alive() {
    let mut cache: Vec<weak::Pointer<String>> = Vec::new();
    let value = Ptr::new(String::from("expensive"));
    cache.push(weak::make(&value));
    assert_eq!(cache[0].value().as_deref().map(String::as_str), Some("expensive"));
    drop(value);
    assert!(cache[0].value().is_none(), "the cache did not keep it alive");
}

#[test]
fn weak_pointers_compare_by_allocation_even_after_death() {
    let a = Ptr::new(1);
    let b = Ptr::new(1);
    let (wa1, wa2, wb) = (weak::make(&a), weak::make(&a.clone()), Ptr::downgrade(&b));
    assert_eq!(wa1, wa2);
    assert_ne!(wa1, wb, "equal values, different allocations");
    assert_eq!(a, b, "Ptr compares by value, like Arc");
    drop((a, b));
    assert_eq!(wa1, wa2);
    let set: HashSet<_> = [wa1, wa2, wb].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn several_cleanups_run_off_the_dropping_thread() {
    let _serial = serial();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let object = Ptr::new(());
    for i in 0..3 {
        let ran = Arc::clone(&ran);
        runtime::add_cleanup(
            &object,
            move |i: u32| ran.lock().unwrap().push((i, std::thread::current().id())),
            i,
        );
    }
    drop(object);
    runtime::flush_cleanups();
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_by_key(|(i, _)| *i);
    assert_eq!(ran.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(ran.iter().all(|(_, thread)| *thread != std::thread::current().id()));
}

#[test]
fn stop_cancels_before_start_and_is_a_no_op_after() {
    let _serial = serial();
    let ran = Arc::new(AtomicUsize::new(0));
    let object = Ptr::new(5);
    let counter = Arc::clone(&ran);
    let stopped = runtime::add_cleanup(
        &object,
        move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        (),
    );
    let counter = Arc::clone(&ran);
    let kept = runtime::add_cleanup(
        &object,
        move |_: ()| {
            counter.fetch_add(10, Ordering::SeqCst);
        },
        (),
    );
    assert!(stopped.stop());
    assert!(!stopped.stop(), "a second stop does nothing");
    drop(object);
    runtime::flush_cleanups();
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    assert!(!kept.stop(), "stop after the cleanup ran is a no-op");
}

#[test]
fn a_panicking_cleanup_does_not_stop_the_others() {
    let _serial = serial();
    let ran = Arc::new(AtomicUsize::new(0));
    let object = Ptr::new(());
    runtime::add_cleanup(&object, |_: ()| panic!("cleanup failed on purpose"), ());
    let counter = Arc::clone(&ran);
    runtime::add_cleanup(
        &object,
        move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        (),
    );
    drop(object);
    runtime::flush_cleanups();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let later = Ptr::new(());
    let counter = Arc::clone(&ran);
    runtime::add_cleanup(
        &later,
        move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        (),
    );
    drop(later);
    runtime::flush_cleanups();
    assert_eq!(ran.load(Ordering::SeqCst), 2, "the worker survived the panic");
}

#[test]
fn passing_the_object_itself_as_the_argument_panics_at_the_caller() {
    let object = Ptr::new(String::from("self"));
    let same = object.clone();
    let payload = catch_unwind(AssertUnwindSafe(|| runtime::add_cleanup(&object, drop, same))).unwrap_err();
    let message = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("runtime::add_cleanup at tests/weak_cleanup.rs:"), "{message}");
    assert!(message.contains("the object itself"), "{message}");
    let weak_self = weak::make(&object);
    assert!(catch_unwind(AssertUnwindSafe(|| runtime::add_cleanup(&object, drop, weak_self))).is_err());
    let other = Ptr::new(String::from("other"));
    runtime::add_cleanup(&object, drop, other).stop();
}

#[test]
fn unique_handles_are_equal_for_equal_values_across_threads() {
    let handles: Vec<unique::Handle<String>> = (0..8)
        .map(|_| std::thread::spawn(|| unique::make(String::from("shared-key"))))
        .map(|t| t.join().unwrap())
        .collect();
    assert!(handles.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(handles[0].value(), "shared-key");
    assert_ne!(handles[0], unique::make(String::from("other-key")));
}

#[test]
fn unique_entries_disappear_when_the_last_handle_drops() {
    #[derive(PartialEq, Eq, Hash)]
    struct Region(&'static str);
    assert_eq!(unique::live::<Region>(), 0);
    let a = unique::make(Region("a"));
    let b = unique::make(Region("b"));
    let a2 = a.clone();
    assert_eq!(unique::live::<Region>(), 2);
    drop((a, b));
    assert_eq!(unique::live::<Region>(), 1, "a2 still holds \"a\"");
    drop(a2);
    assert_eq!(unique::live::<Region>(), 0);
    assert_eq!(unique::make(Region("a")).value().0, "a", "a dead value is interned afresh");
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[gonext::weak_cache]
fn slow_load(name: &str) -> Ptr<String> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(50));
    Ptr::new(name.to_uppercase())
}

#[test]
fn weak_cache_runs_the_body_once_for_concurrent_equal_keys() {
    let _serial = serial();
    let start = Arc::new(std::sync::Barrier::new(8));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                slow_load("shared")
            })
        })
        .collect();
    let results: Vec<Ptr<String>> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(LOADS.load(Ordering::SeqCst), 1, "singleflight: one load for 8 callers");
    assert!(results.windows(2).all(|w| Ptr::ptr_eq(&w[0], &w[1])));
    assert_eq!(*results[0], "SHARED");
}

#[gonext::weak_cache]
fn cached_len(text: String, times: usize) -> Ptr<usize> {
    Ptr::new(text.len() * times)
}

#[test]
fn weak_cache_entries_disappear_with_their_values() {
    let _serial = serial();
    let a = cached_len("abc".to_owned(), 2);
    let again = cached_len("abc".to_owned(), 2);
    let other = cached_len("abc".to_owned(), 3);
    assert!(Ptr::ptr_eq(&a, &again));
    assert!(!Ptr::ptr_eq(&a, &other));
    assert_eq!(cached_len::len(), 2);
    let observer = weak::make(&a);
    drop((a, again));
    assert!(observer.value().is_none(), "the cache did not keep the value alive");
    runtime::flush_cleanups();
    assert_eq!(cached_len::len(), 1, "the dead entry was removed by its cleanup");
    cached_len::clear();
    assert!(cached_len::is_empty());
    assert_eq!(*other, 9, "clearing does not touch values still in use");
}

static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

#[gonext::weak_cache]
fn flaky(id: u32) -> Result<Ptr<u32>, String> {
    match ATTEMPTS.fetch_add(1, Ordering::SeqCst) {
        0 => Err(format!("{id}: first attempt fails")),
        1 => panic!("second attempt panics"),
        _ => Ok(Ptr::new(id * 100)),
    }
}

#[test]
fn weak_cache_does_not_cache_errors_or_poison_on_panic() {
    let _serial = serial();
    assert_eq!(flaky(7).unwrap_err(), "7: first attempt fails");
    assert!(catch_unwind(|| flaky(7)).is_err());
    let value = flaky(7).unwrap();
    assert_eq!(*value, 700);
    assert!(Ptr::ptr_eq(&value, &flaky(7).unwrap()), "the success is cached");
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 3);
}

/// The lock-free cleanup lists and queue: many threads register cleanups on shared objects,
/// stop some through cloned handles on other threads, panic in some, drop the objects from
/// any thread and flush concurrently; every unstopped cleanup runs exactly once.
#[test]
fn cleanup_lists_and_queue_survive_threads_stops_and_panics() {
    let _serial = serial();
    const THREADS: usize = 4;
    const OBJECTS: usize = 200;
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped_args = Arc::new(AtomicUsize::new(0));
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let objects: Vec<Ptr<usize>> = (0..OBJECTS).map(Ptr::new).collect();
    let stopped = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (objects, ran, dropped_args, stopped) = (&objects, &ran, &dropped_args, &stopped);
            s.spawn(move || {
                let mut handles: Vec<Cleanup> = Vec::new();
                for (i, object) in objects.iter().enumerate() {
                    let ran = Arc::clone(ran);
                    let arg = CountDrop(Arc::clone(dropped_args));
                    let handle = runtime::add_cleanup(
                        object,
                        move |arg: CountDrop| {
                            ran.fetch_add(1, Ordering::SeqCst);
                            assert!((i + t) % 7 != 0, "cleanup {i}/{t} panics on purpose");
                            drop(arg);
                        },
                        arg,
                    );
                    if (i + t) % 5 == 0 {
                        handles.push(handle.clone());
                    }
                }
                // Stop from another thread through a cloned handle.
                std::thread::scope(|inner| {
                    inner.spawn(move || {
                        for handle in handles {
                            if handle.stop() {
                                stopped.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    });
                });
                runtime::flush_cleanups();
            });
        }
    });
    let expected_stops =
        (0..THREADS).flat_map(|t| (0..OBJECTS).map(move |i| (i + t) % 5 == 0)).filter(|&s| s).count();
    assert_eq!(stopped.load(Ordering::SeqCst), expected_stops, "objects are alive: every stop wins");
    // Drop the objects from several threads, flushing while others still drop.
    let chunks: Vec<Vec<Ptr<usize>>> = objects.chunks(OBJECTS / THREADS).map(<[_]>::to_vec).collect();
    drop(objects);
    std::thread::scope(|s| {
        for chunk in chunks {
            s.spawn(move || {
                drop(chunk);
                runtime::flush_cleanups();
            });
        }
    });
    runtime::flush_cleanups();
    let total = THREADS * OBJECTS;
    assert_eq!(ran.load(Ordering::SeqCst), total - expected_stops, "every unstopped cleanup ran once");
    assert_eq!(
        dropped_args.load(Ordering::SeqCst),
        total,
        "every argument was dropped, run, stopped or panicked"
    );
}

#[test]
fn flush_cleanups_inside_a_cleanup_is_reported_not_a_deadlock() {
    let _serial = serial();
    let result = Arc::new(Mutex::new(None));
    let object = Ptr::new(());
    let slot = Arc::clone(&result);
    runtime::add_cleanup(
        &object,
        move |_: ()| {
            let caught = catch_unwind(runtime::flush_cleanups)
                .map_err(|payload| payload.downcast_ref::<String>().cloned().unwrap_or_default());
            *slot.lock().unwrap() = Some(caught);
        },
        (),
    );
    drop(object);
    runtime::flush_cleanups();
    let message = result.lock().unwrap().take().expect("the cleanup ran").unwrap_err();
    assert!(message.contains("called by a cleanup"), "{message}");
}

/// Cleanups too large for a pooled block, handles that outlive the run and are dropped on
/// another thread, and threads that exit with recycled blocks: nothing runs twice or leaks.
#[test]
fn large_cleanups_and_late_handles_are_released_once() {
    let _serial = serial();
    let sum = Arc::new(AtomicUsize::new(0));
    let handles: Vec<Cleanup> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let sum = Arc::clone(&sum);
                s.spawn(move || {
                    (0..300)
                        .map(|i| {
                            let object = Ptr::new(i);
                            let big = [i + t; 32]; // far larger than a 64-byte block
                            let sum = Arc::clone(&sum);
                            let handle = if i % 2 == 0 {
                                runtime::add_cleanup(
                                    &object,
                                    move |big: [usize; 32]| {
                                        sum.fetch_add(big.iter().sum::<usize>(), Ordering::SeqCst);
                                    },
                                    big,
                                )
                            } else {
                                runtime::add_cleanup(
                                    &object,
                                    move |n: usize| {
                                        sum.fetch_add(n * 32, Ordering::SeqCst);
                                    },
                                    big[0],
                                )
                            };
                            drop(object);
                            handle
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    runtime::flush_cleanups();
    let expected: usize = (0..3).flat_map(|t| (0..300).map(move |i| (i + t) * 32)).sum();
    assert_eq!(sum.load(Ordering::SeqCst), expected);
    assert!(handles.iter().all(|h| !h.stop()), "every cleanup already ran");
    let debug = format!("{:?}", handles[0]);
    assert!(debug.contains("started") && debug.contains("registered_at: tests/weak_cleanup.rs:"), "{debug}");
    std::thread::spawn(move || drop(handles)).join().unwrap();
}

static TOKENS_MADE: AtomicUsize = AtomicUsize::new(0);
static TOKENS_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value that counts its drops, panics when hashed with `hash_panics`, and interns another
/// type while it is dropped (from caches being evicted, swept or destroyed at thread exit).
#[derive(Debug, PartialEq, Eq)]
struct Token {
    key: u32,
    hash_panics: bool,
}

impl Token {
    fn new(key: u32) -> Token {
        TOKENS_MADE.fetch_add(1, Ordering::SeqCst);
        Token { key, hash_panics: false }
    }
}

impl std::hash::Hash for Token {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        assert!(!self.hash_panics, "hashing token {} panics on purpose", self.key);
        self.key.hash(state);
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        TOKENS_DROPPED.fetch_add(1, Ordering::SeqCst);
        let other = unique::make(u64::from(self.key) << 40);
        assert_eq!(*other, u64::from(self.key) << 40);
    }
}

/// `unique`'s per-thread counters: handles made on one thread and cloned or dropped on
/// others, caches evicted (more keys than a cache holds), swept and destroyed at thread
/// exit, re-entrant `make` from `Drop`, and a panicking `Hash`: equal values always give
/// equal handles, and once every handle and thread is gone every value was freed.
#[test]
fn unique_counters_survive_threads_evictions_reentrancy_and_panics() {
    let _serial = serial();
    const THREADS: u32 = 4;
    const KEYS: u32 = 600; // more than the 256 counters a thread caches per type
    let (to_main, from_workers) = std::sync::mpsc::channel::<unique::Handle<Token>>();
    let barrier = std::sync::Barrier::new(THREADS as usize);
    let canonical: Vec<unique::Handle<Token>> = (0..8).map(|k| unique::make(Token::new(k))).collect();
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for t in 0..THREADS {
            let (to_main, barrier, canonical) = (to_main.clone(), &barrier, &canonical);
            workers.push(s.spawn(move || {
                barrier.wait();
                let mut kept = Vec::new();
                for round in 0..5_000u32 {
                    let key = (round * 7 + t * 13) % KEYS;
                    let handle = unique::make(Token::new(key));
                    assert_eq!(handle.key, key);
                    if key < 8 {
                        assert_eq!(handle, canonical[key as usize], "equal values, equal handles");
                    }
                    match round % 5 {
                        0 => kept.push(handle.clone()),
                        1 => to_main.send(handle).unwrap(),
                        2 => drop(canonical[(round % 8) as usize].clone()),
                        _ => {}
                    }
                    if round % 97 == 0 {
                        let mut bad = Token::new(key);
                        bad.hash_panics = true;
                        assert!(catch_unwind(AssertUnwindSafe(|| unique::make(bad))).is_err());
                    }
                    if kept.len() > 50 {
                        // Drop a handle made here on another thread, while this one goes on.
                        let moved = kept.swap_remove(0);
                        std::thread::spawn(move || drop(moved.clone())).join().unwrap();
                    }
                }
                drop(kept);
                drop(to_main);
            }));
        }
        drop(to_main);
        let mut received = Vec::new();
        for handle in from_workers {
            let again = unique::make(Token::new(handle.key));
            assert_eq!(handle, again, "a handle from another thread equals this thread's");
            received.push(handle);
            if received.len() > 100 {
                received.clear();
            }
        }
        drop(received);
        // `join` waits until the thread is gone, its thread-locals (the caches) included;
        // the end of the scope alone does not.
        workers.into_iter().for_each(|w| w.join().unwrap());
    });
    drop(canonical);
    // The workers exited (their caches let go); this thread's cache lets go in `live`.
    assert_eq!(unique::live::<Token>(), 0, "no handle left, no value left");
    assert_eq!(
        TOKENS_DROPPED.load(Ordering::SeqCst),
        TOKENS_MADE.load(Ordering::SeqCst),
        "every value was freed once"
    );
}

static VERSIONS: AtomicUsize = AtomicUsize::new(0);

#[gonext::weak_cache]
fn versioned(name: &str) -> Ptr<(String, usize)> {
    Ptr::new((name.to_owned(), VERSIONS.fetch_add(1, Ordering::SeqCst)))
}

/// Threads remember their hits (a front cache of weak pointers); `clear` must still make
/// every later call load anew, on this thread and on one that remembered the old value.
#[test]
fn weak_cache_clear_reloads_also_where_a_thread_remembered_the_value() {
    let _serial = serial();
    let first = versioned("cfg");
    assert!(Ptr::ptr_eq(&first, &versioned("cfg")), "a hit");
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let (answer, answers) = std::sync::mpsc::channel::<Ptr<(String, usize)>>();
    let other = std::thread::spawn(move || {
        for () in asked {
            answer.send(versioned("cfg")).unwrap();
        }
    });
    ask.send(()).unwrap();
    assert!(Ptr::ptr_eq(&first, &answers.recv().unwrap()), "the other thread hits too");
    versioned::clear();
    let second = versioned("cfg");
    assert!(!Ptr::ptr_eq(&first, &second), "loaded anew after clear, though `first` lives");
    ask.send(()).unwrap();
    let theirs = answers.recv().unwrap();
    assert!(Ptr::ptr_eq(&second, &theirs), "the other thread sees the new value, not the one it remembered");
    drop(ask);
    other.join().unwrap();
    drop((first, second, theirs));
    runtime::flush_cleanups();
    assert!(versioned::is_empty());
    let third = versioned("cfg");
    assert_eq!(third.1, 2, "a dead value is loaded again");
}

/// Values whose hashes all collide share one bucket of the interner: each keeps its own
/// canonical entry, and entries leave the bucket as their values die, in any order.
#[test]
fn unique_values_with_colliding_hashes_stay_distinct() {
    #[derive(Debug, PartialEq, Eq)]
    struct Colliding(u32);
    impl std::hash::Hash for Colliding {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }
    let handles: Vec<_> = (0..40).map(|i| unique::make(Colliding(i))).collect();
    assert_eq!(unique::live::<Colliding>(), 40);
    for (i, handle) in handles.iter().enumerate() {
        assert_eq!(handle.0, i as u32);
        assert_eq!(*handle, unique::make(Colliding(i as u32)));
    }
    let (even, odd): (Vec<_>, Vec<_>) = handles.into_iter().partition(|h| h.0 % 2 == 0);
    drop(even);
    assert_eq!(unique::live::<Colliding>(), 20, "the odd ones live");
    assert!(odd.iter().all(|h| *h == unique::make(Colliding(h.0))));
    let again = unique::make(Colliding(0));
    assert_eq!(unique::live::<Colliding>(), 21, "a dead value is interned afresh");
    drop((odd, again));
    assert_eq!(unique::live::<Colliding>(), 0);
}

/// A lookup compares the entries of its bucket by upgrading them; when a colliding value
/// dies meanwhile, the lookup's temporary reference is the last one, and dropping it removes
/// the entry from the bucket — after the lookup released the bucket's lock, or it would wait
/// for itself.
#[test]
fn a_colliding_value_dying_during_a_lookup_of_its_bucket_does_not_deadlock() {
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Collides(u32);
    impl std::hash::Hash for Collides {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }
    const ROUNDS: usize = 20_000;
    let (done, finished) = std::sync::mpsc::channel();
    let dying = done.clone();
    std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            drop(unique::make(Collides(1)));
            // Lets this thread's cache release the value: it dies here, or in the lookup.
            unique::live::<Collides>();
        }
        dying.send(()).unwrap();
    });
    std::thread::spawn(move || {
        for _ in 0..ROUNDS * 4 {
            assert!(unique::get(&Collides(2)).is_none(), "never interned");
        }
        done.send(()).unwrap();
    });
    for _ in 0..2 {
        // Seconds of work; a generous bound turns the deadlock into a failure, not a hang.
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(120));
        assert!(outcome.is_ok(), "a thread deadlocked (or panicked) in the interner");
    }
    assert_eq!(unique::live::<Collides>(), 0);
}

static PROBE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Reference and owned arguments together, named like the expansion's own locals: hits are
/// looked up borrowed, equal keys share one value, different ones do not.
#[gonext::weak_cache]
fn probed(key: &str, hash: u32, args: &[u8], hasher: String) -> Ptr<String> {
    PROBE_LOADS.fetch_add(1, Ordering::SeqCst);
    Ptr::new(format!("{key}/{hash}/{}/{hasher}", args.len()))
}

#[test]
fn weak_cache_probes_mix_borrowed_and_owned_arguments() {
    let _serial = serial();
    let a = probed("k", 1, b"xy", "h".to_owned());
    assert_eq!(*a, "k/1/2/h");
    let owned_key = String::from("k");
    let b = probed(&owned_key, 1, &Vec::from(*b"xy"), String::from("h"));
    assert!(Ptr::ptr_eq(&a, &b), "equal arguments, one value");
    assert_eq!(PROBE_LOADS.load(Ordering::SeqCst), 1);
    let others = [
        probed("k", 2, b"xy", "h".to_owned()),
        probed("k", 1, b"xyz", "h".to_owned()),
        probed("k", 1, b"xy", "i".to_owned()),
        probed("j", 1, b"xy", "h".to_owned()),
    ];
    assert!(others.iter().all(|other| !Ptr::ptr_eq(&a, other)), "each argument is part of the key");
    assert_eq!(probed::len(), 5);
    drop((a, b, others));
    runtime::flush_cleanups();
    assert!(probed::is_empty(), "dead entries are removed");
}

#[test]
fn make_ref_hits_allocate_nothing() {
    let miss = unique::make_ref("make-ref-key");
    let line = String::from("GET make-ref-key HTTP/1.1");
    let (allocated, hits) = allocations_of(|| {
        let hits: [unique::Handle<str>; 3] = std::array::from_fn(|_| unique::make_ref(&line[4..16]));
        hits
    });
    assert_eq!(allocated, 0, "a hit copies nothing");
    assert!(hits.iter().all(|hit| *hit == miss));
    let (allocated, _) = allocations_of(|| unique::make_ref("another-key"));
    assert!(allocated > 0, "a miss copies the value (the counter proves it counts)");
}

#[test]
fn get_looks_up_without_inserting() {
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Username(String);
    let admin = unique::make(Username("admin".into()));
    assert_eq!(unique::get(&Username("admin".into())), Some(admin.clone()));
    for attempt in 0..100 {
        assert_eq!(unique::get(&Username(format!("attacker-{attempt}"))), None);
    }
    assert_eq!(unique::live::<Username>(), 1, "lookups of unknown values inserted nothing");
    drop(admin);
    assert_eq!(unique::live::<Username>(), 0, "this thread's cache let go of it");
    assert_eq!(unique::get(&Username("admin".into())), None, "a freed value is not found");
}

#[test]
fn handles_order_display_and_borrow_like_their_values() {
    let mut regions: Vec<unique::Handle<str>> =
        ["us-east-1", "eu-west-1", "ap-south-1"].into_iter().map(unique::make_ref).collect();
    regions.sort();
    let names: Vec<String> = regions.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["ap-south-1", "eu-west-1", "us-east-1"]);
    assert_eq!(format!("{:?}", regions[0]), "\"ap-south-1\"");
    let text: &str = regions[1].as_ref();
    assert_eq!(text, "eu-west-1");
    let bytes = unique::make_ref(&[1u8, 2, 3][..]);
    assert_eq!(bytes, unique::make_ref(&vec![1u8, 2, 3][..]));
    assert_eq!(bytes.len(), 3);
    let owned = unique::make(String::from("eu-west-1"));
    assert_eq!(owned, unique::make_ref(&String::from("eu-west-1")), "make and make_ref share a table");
}

/// Go's TestNestedHandle: a value that holds a handle of its own type compiles, and a
/// dropped chain of 1,000 such values is released completely by one drain.
#[test]
fn a_dropped_chain_of_nested_handles_is_fully_released() {
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Link {
        round: u32,
        depth: u32,
        next: Option<unique::Handle<Link>>,
    }
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<unique::Handle<Link>>();
    for round in 0..20 {
        let mut head = None;
        for depth in 0..1000 {
            head = Some(unique::make(Link { round, depth, next: head.take() }));
        }
        assert_eq!(unique::live::<Link>(), 1000);
        assert_eq!(head.as_ref().and_then(|h| h.next.as_ref()).map(|n| n.depth), Some(998));
        drop(head);
        assert_eq!(unique::live::<Link>(), 0, "round {round}: the whole chain was freed");
    }
}

#[test]
fn a_zero_weak_pointer_points_to_nothing_and_equals_other_zero_pointers() {
    let zero: weak::Pointer<String> = weak::Pointer::new();
    assert!(zero.value().is_none());
    assert_eq!(zero, weak::Pointer::default());
    let object = Ptr::new(String::from("x"));
    assert_ne!(zero, weak::make(&object));
    assert!(!zero.points_to(&object));
    let set: HashSet<_> = [zero.clone(), weak::Pointer::new(), weak::make(&object)].into_iter().collect();
    assert_eq!(set.len(), 2);
}

/// A gate that cleanups wait at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let guard = open.lock().unwrap();
        drop(opened.wait_while(guard, |open| !*open).unwrap());
    }

    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

/// Waits (generously) until `condition` holds.
fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

#[test]
fn a_blocked_cleanup_does_not_delay_a_thousand_others() {
    let _serial = serial();
    let gate = Gate::default();
    let blocked = Ptr::new("stuck on the network");
    let waiting = gate.clone();
    runtime::add_cleanup(&blocked, move |_: ()| waiting.wait(), ());
    let ran = Arc::new(AtomicUsize::new(0));
    let others: Vec<Ptr<usize>> = (0..1000).map(Ptr::new).collect();
    for other in &others {
        let ran = Arc::clone(&ran);
        runtime::add_cleanup(
            other,
            move |_: ()| {
                ran.fetch_add(1, Ordering::SeqCst);
            },
            (),
        );
    }
    drop(blocked); // queued first
    drop(others);
    assert!(eventually(|| ran.load(Ordering::SeqCst) == 1000), "the others ran while one blocked");
    let flusher = std::thread::spawn(runtime::flush_cleanups);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!flusher.is_finished(), "flush_cleanups still waits for the blocked cleanup");
    gate.open();
    flusher.join().unwrap();
    assert_eq!(runtime::pending_cleanups(), 0);
}

#[test]
fn pending_cleanups_counts_queued_and_running_ones() {
    let _serial = serial();
    runtime::flush_cleanups();
    assert_eq!(runtime::pending_cleanups(), 0);
    let gate = Gate::default();
    let objects: Vec<Ptr<u8>> = (0..5).map(Ptr::new).collect();
    for object in &objects {
        let gate = gate.clone();
        runtime::add_cleanup(object, move |_: ()| gate.wait(), ());
    }
    let alive = Ptr::new(0u8);
    let _never_queued = runtime::add_cleanup(&alive, |_: ()| {}, ());
    assert_eq!(runtime::pending_cleanups(), 0, "nothing died yet");
    drop(objects);
    assert_eq!(runtime::pending_cleanups(), 5, "five died, none finished");
    gate.open();
    runtime::flush_cleanups();
    assert_eq!(runtime::pending_cleanups(), 0);
}

/// Run in a child process (its stderr is the report): a slow cleanup and a panicking one.
fn report_child() {
    runtime::set_slow_cleanup_threshold(std::time::Duration::from_millis(20));
    let object = Ptr::new(());
    runtime::add_cleanup(&object, |_: ()| std::thread::sleep(std::time::Duration::from_millis(300)), ());
    runtime::add_cleanup(&object, |_: ()| panic!("cleanup failed on purpose"), ());
    drop(object);
    runtime::flush_cleanups();
}

#[test]
fn slow_and_panicking_cleanups_are_reported_with_their_registration_site() {
    const CHILD: &str = "GONEXT_TEST_REPORT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return report_child();
    }
    let _serial = serial(); // the child's pipes are descriptors of this process
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "slow_and_panicking_cleanups_are_reported_with_their_registration_site"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = |needle: &str| {
        let line = stderr.lines().find(|line| line.starts_with("gonext: ") && line.contains(needle));
        line.unwrap_or_else(|| panic!("no report containing {needle:?} in {stderr}"))
    };
    let slow = report("has run for more than 20 ms");
    assert!(slow.starts_with("gonext: the cleanup registered at tests/weak_cleanup.rs:"), "{slow}");
    let panicked = report("cleanup failed on purpose");
    assert!(panicked.starts_with("gonext: the cleanup registered at tests/weak_cleanup.rs:"), "{panicked}");
    assert!(panicked.contains("panicked (the other cleanups still run)"), "{panicked}");
}

/// Cleanups that block briefly make the monitor hand the rest of their batches to other
/// workers while many threads drop objects and flush: every cleanup runs exactly once, and a
/// flush returns only after each cleanup its thread queued before it has run.
#[test]
fn flushes_see_their_cleanups_run_while_batches_move_between_workers() {
    let _serial = serial();
    const THREADS: usize = 4;
    const OBJECTS: usize = 300;
    let total = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let total = Arc::clone(&total);
            s.spawn(move || {
                let mine = Arc::new(AtomicUsize::new(0));
                for round in 0..3 {
                    let objects: Vec<Ptr<usize>> = (0..OBJECTS).map(Ptr::new).collect();
                    for (i, object) in objects.iter().enumerate() {
                        let (mine, total) = (Arc::clone(&mine), Arc::clone(&total));
                        runtime::add_cleanup(
                            object,
                            move |i: usize| {
                                mine.fetch_add(1, Ordering::SeqCst);
                                total.fetch_add(1, Ordering::SeqCst);
                                if i % 50 == t {
                                    std::thread::sleep(std::time::Duration::from_millis(3));
                                }
                                assert!(i % 7 != t, "cleanup {i} of thread {t} panics on purpose");
                            },
                            i,
                        );
                    }
                    drop(objects);
                    runtime::flush_cleanups();
                    assert_eq!(
                        mine.load(Ordering::SeqCst),
                        (round + 1) * OBJECTS,
                        "thread {t}, round {round}"
                    );
                }
            });
        }
    });
    runtime::flush_cleanups();
    assert_eq!(total.load(Ordering::SeqCst), THREADS * OBJECTS * 3);
    assert_eq!(runtime::pending_cleanups(), 0);
}

/// `Ptr` offers what a user of `Arc` reaches for, and taking the value out ends the object:
/// its cleanups run and its weak pointers see it dead.
#[test]
fn ptr_has_the_api_of_arc() {
    let _serial = serial();
    let mut unique_owner = Ptr::new(vec![1]);
    Ptr::get_mut(&mut unique_owner).unwrap().push(2);
    let other = unique_owner.clone();
    assert!(Ptr::get_mut(&mut unique_owner).is_none(), "shared: no &mut");
    Ptr::make_mut(&mut unique_owner).push(3);
    assert_eq!((&unique_owner[..], &other[..]), (&[1, 2, 3][..], &[1, 2][..]), "make_mut cloned");
    assert!(!Ptr::ptr_eq(&unique_owner, &other));

    let ran = Arc::new(AtomicUsize::new(0));
    let object: Ptr<String> = Ptr::from(Box::new(String::from("taken")));
    let counter = Arc::clone(&ran);
    runtime::add_cleanup(
        &object,
        move |_: ()| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        (),
    );
    let observer = weak::make(&object);
    assert_eq!((Ptr::strong_count(&object), Ptr::weak_count(&object)), (1, 1));
    let second = object.clone();
    let object = Ptr::try_unwrap(object).unwrap_err();
    assert_eq!(Ptr::into_inner(second), None, "another strong pointer is left");
    assert_eq!(Ptr::try_unwrap(object).unwrap(), "taken");
    assert!(observer.value().is_none(), "the object is gone, its value moved out");
    runtime::flush_cleanups();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "its cleanup ran");

    #[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    struct Node {
        name: &'static str,
    }
    struct SelfAware {
        me: weak::Pointer<SelfAware>,
    }
    let cyclic = Ptr::new_cyclic(|me| {
        assert!(me.value().is_none(), "not alive while being built");
        SelfAware { me: me.clone() }
    });
    assert!(Ptr::ptr_eq(&cyclic.me.value().unwrap(), &cyclic));
    let (a, b) = (Ptr::new(Node { name: "a" }), Ptr::new(Node { name: "b" }));
    assert!(a < b && a == Ptr::new(Node { name: "a" }), "Ord and Eq by value");
    let state = std::hash::RandomState::new();
    let by = |p: &Ptr<Node>| std::hash::BuildHasher::hash_one(&state, p);
    assert_eq!(by(&a), by(&Ptr::new(Node { name: "a" })), "Hash by value");
    assert_ne!(by(&a), by(&b));
    assert_eq!(*Ptr::<Node>::default(), Node::default());
}

/// A `WeakMap` shared by 8 threads that load, insert, remove, retain and drop values at
/// once: a lookup never returns another key's value, and once every value died the map is
/// empty.
#[test]
fn weak_map_under_eight_threads_with_values_dying_concurrently() {
    let _serial = serial();
    let map: Arc<weak::WeakMap<u32, (u32, usize)>> = Arc::new(weak::WeakMap::new());
    let loads = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (map, loads) = (Arc::clone(&map), Arc::clone(&loads));
            s.spawn(move || {
                let mut kept: Vec<Ptr<(u32, usize)>> = Vec::new();
                for round in 0..2_000u32 {
                    let key = (round * 7 + t) % 32;
                    let value =
                        map.get_or_insert_with(key, || Ptr::new((key, loads.fetch_add(1, Ordering::SeqCst))));
                    assert_eq!(value.0, key, "the value of the key asked for");
                    if let Some(now) = map.get(&key) {
                        assert_eq!(now.0, key);
                    }
                    match round % 10 {
                        0 => kept.push(value),
                        1 => drop(map.remove(&key)),
                        2 => {
                            let fresh = Ptr::new((key, usize::MAX));
                            map.insert(key, &fresh);
                            // Other threads may replace or remove it at once; it is never
                            // another key's value.
                            assert!(map.get(&key).is_none_or(|now| now.0 == key));
                        }
                        3 if t == 0 => map.retain(|k, _| k % 2 == 0),
                        _ => drop(value),
                    }
                    if kept.len() > 8 {
                        kept.remove(0);
                    }
                }
                assert!(map.iter().all(|(key, value)| value.0 == key));
            });
        }
    });
    assert!(loads.load(Ordering::SeqCst) >= 32, "every key was loaded");
    runtime::flush_cleanups();
    assert_eq!(map.len(), 0, "the threads kept nothing alive");
    assert_eq!(map.iter().count(), 0);
}

#[test]
fn weak_map_loads_once_for_concurrent_callers_and_recovers_from_a_panicking_load() {
    let _serial = serial();
    let map: Arc<weak::WeakMap<String, String>> = Arc::new(weak::WeakMap::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(std::sync::Barrier::new(8));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (map, loads, start) = (Arc::clone(&map), Arc::clone(&loads), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                map.get_or_insert_with("cfg".to_owned(), || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    Ptr::new("loaded".to_owned())
                })
            })
        })
        .collect();
    let values: Vec<Ptr<String>> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(loads.load(Ordering::SeqCst), 1, "singleflight");
    assert!(values.windows(2).all(|w| Ptr::ptr_eq(&w[0], &w[1])));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        map.get_or_insert_with("bad".to_owned(), || panic!("the load fails on purpose"))
    }));
    assert!(panicked.is_err());
    assert!(map.get("bad").is_none(), "nothing stored for a panicked load");
    assert_eq!(*map.get_or_insert_with("bad".to_owned(), || Ptr::new("retried".to_owned())), "retried");
}

static GREETINGS: AtomicUsize = AtomicUsize::new(0);

#[gonext::weak_cache]
fn greeting(name: &str, polite: bool) -> Ptr<String> {
    GREETINGS.fetch_add(1, Ordering::SeqCst);
    Ptr::new(if polite { format!("Good day, {name}") } else { format!("hi {name}") })
}

#[gonext::weak_cache]
fn doubled(n: u32) -> Ptr<u32> {
    Ptr::new(n * 2)
}

/// `invalidate` forgets one key, on every thread, and leaves the others cached; `stats`
/// counts calls answered from the cache and calls that ran the body.
#[test]
fn weak_cache_invalidates_one_key_and_counts_hits_and_misses() {
    let _serial = serial();
    let ann = greeting("ann", true);
    let bob = greeting("bob", true);
    assert!(Ptr::ptr_eq(&ann, &greeting("ann", true)), "a hit on this thread's cache");
    let other_thread = std::thread::spawn(|| greeting("ann", true)).join().unwrap();
    assert!(Ptr::ptr_eq(&ann, &other_thread), "a hit in the shared map");
    let stats: gonext::weak::CacheStats = greeting::stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));

    assert!(greeting::invalidate("ann", true), "a live value was forgotten");
    assert!(!greeting::invalidate("ann", false), "never cached");
    let fresh = greeting("ann", true);
    assert!(!Ptr::ptr_eq(&ann, &fresh), "loaded anew although the old value lives");
    assert!(Ptr::ptr_eq(&bob, &greeting(&String::from("bob"), true)), "other keys stay cached");
    let theirs = std::thread::spawn(|| greeting("ann", true)).join().unwrap();
    assert!(Ptr::ptr_eq(&fresh, &theirs), "no thread answers with the forgotten value");
    assert_eq!(GREETINGS.load(Ordering::SeqCst), 3);
    let stats = greeting::stats();
    assert_eq!((stats.hits, stats.misses), (4, 3), "threads that exited keep their counts");

    let four = doubled(2);
    assert!(doubled::invalidate(2));
    assert!(!Ptr::ptr_eq(&four, &doubled(2)), "owned arguments are forgotten too");
    assert_eq!((doubled::stats().hits, doubled::stats().misses), (0, 2));
    drop((ann, bob, fresh, theirs, other_thread, four));
    runtime::flush_cleanups();
    assert!(greeting::is_empty() && doubled::is_empty());
}

/// A cached fn declared inside another fn, with a value type local to that fn: its cache
/// and companion work as at module level, and two such fns keep separate caches.
#[test]
fn weak_cache_works_on_a_fn_declared_inside_a_fn_body() {
    let _serial = serial();

    #[derive(Debug, PartialEq)]
    struct Shout(String);

    #[gonext::weak_cache]
    fn shout(word: &str) -> Ptr<Shout> {
        Ptr::new(Shout(word.to_uppercase()))
    }

    #[gonext::weak_cache]
    fn whisper(word: &str) -> Ptr<Shout> {
        Ptr::new(Shout(word.to_lowercase()))
    }

    let loud = shout("Go");
    assert!(Ptr::ptr_eq(&loud, &shout("Go")), "the second call is a hit");
    assert_eq!(*loud, Shout("GO".to_owned()));
    assert_eq!(*whisper("Go"), Shout("go".to_owned()), "each fn has its own cache");
    assert_eq!((shout::stats().hits, shout::stats().misses), (1, 1));
    assert!(shout::invalidate("Go"));
    assert!(!Ptr::ptr_eq(&loud, &shout("Go")));
    drop(loud);
    runtime::flush_cleanups();
    assert!(shout::is_empty() && whisper::is_empty(), "dead entries were removed");
}
