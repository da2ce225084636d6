//! `Ptr`, weak pointers, cleanups and interning against `Arc`, `std::sync::Weak` and
//! internment.

use std::hint::black_box;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gonext::{Ptr, runtime, unique, weak};
use internment::ArcIntern;

use crate::harness::{Case, iter};

fn ptr_clone_drop() -> Case {
    let ptr = Ptr::new(7u64);
    let arc = Arc::new(7u64);
    Case::time("ptr/clone_drop", iter(move || drop(black_box(ptr.clone()))))
        .peer("std_arc", iter(move || drop(black_box(arc.clone()))))
}

fn weak_value() -> Case {
    let ptr = Ptr::new(7u64);
    let weak = weak::make(&ptr);
    let arc = Arc::new(7u64);
    let std_weak = Arc::downgrade(&arc);
    Case::time(
        "weak/value",
        iter(move || {
            let _keep = &ptr;
            black_box(weak.value())
        }),
    )
    .peer(
        "std_weak_upgrade",
        iter(move || {
            let _keep = &arc;
            black_box(std_weak.upgrade())
        }),
    )
}

/// `Ptr::new` + `add_cleanup` + drop, with the cleanups flushed inside the timing.
fn cleanup_cycle(iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let object = Ptr::new(i);
        runtime::add_cleanup(
            &object,
            |n: u64| {
                black_box(n);
            },
            i,
        );
        drop(object);
    }
    runtime::flush_cleanups();
    start.elapsed()
}

fn cleanups() -> Case {
    Case::time("cleanup/add_drop_run", cleanup_cycle)
}

/// The latency from an object's death to its second cleanup, queued right behind a first one
/// that blocks (for 100 ms at most): the time it takes the workers to move the second one
/// to another worker. The blocker is released once the second one ran, so iterations do not
/// pile up blocked workers.
fn blocked_neighbour(iters: u64) -> Duration {
    let mut latency = Duration::ZERO;
    for _ in 0..iters {
        let object = Ptr::new(());
        let (release, released) = mpsc::channel::<()>();
        let (ran, ran_at) = mpsc::channel::<Instant>();
        runtime::add_cleanup(
            &object,
            |released: mpsc::Receiver<()>| {
                let _ = released.recv_timeout(Duration::from_millis(100));
            },
            released,
        );
        runtime::add_cleanup(
            &object,
            |ran: mpsc::Sender<Instant>| {
                let _ = ran.send(Instant::now());
            },
            ran,
        );
        let died = Instant::now();
        drop(object);
        latency += ran_at.recv().expect("the neighbour runs") - died;
        drop(release);
    }
    runtime::flush_cleanups();
    latency
}

const KEYS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];

/// Interning hits on `threads` threads, `iters` in total; the keys are kept alive meanwhile.
fn hits<H: Send + 'static>(threads: usize, intern: fn(&String) -> H) -> impl FnMut(u64) -> Duration {
    let alive: Vec<H> = KEYS.iter().map(|k| intern(&(*k).to_owned())).collect();
    move |iters| {
        // Captured, so the interned keys stay alive and every lookup is a hit.
        let _alive = &alive;
        let per_thread = iters.div_ceil(threads as u64);
        let start_line = Arc::new(Barrier::new(threads + 1));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let start_line = Arc::clone(&start_line);
                thread::spawn(move || {
                    let keys: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
                    start_line.wait();
                    for i in 0..per_thread {
                        // A constant modulus: dividing by `keys.len()` costs ~10 ns per
                        // lookup, half of a hit, on both sides alike.
                        black_box(intern(&keys[(i as usize + t) % KEYS.len()]));
                    }
                })
            })
            .collect();
        let began = Instant::now();
        start_line.wait();
        workers.into_iter().for_each(|w| w.join().expect("intern thread"));
        began.elapsed().mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
    }
}

/// `unique::make` and `ArcIntern::new` both take the value, so both clone a `String` per hit.
fn intern_hits(name: &'static str, threads: usize) -> Case {
    Case::time(name, hits(threads, |key| unique::make(key.clone())))
        .peer("internment_arcintern", hits(threads, |key| ArcIntern::<String>::new(key.clone())))
}

/// `unique::make_ref` and `ArcIntern::from_ref` both look the `&str` up borrowed and copy it
/// only on a miss, so a hit allocates on neither side.
fn intern_ref_hits(name: &'static str, threads: usize) -> Case {
    Case::time(name, hits(threads, |key| unique::make_ref(key.as_str()))).peer(
        "internment_arcintern_from_ref",
        hits(threads, |key| ArcIntern::<String>::from_ref(key.as_str())),
    )
}

#[gonext::weak_cache]
fn load_setting(name: &str) -> Ptr<String> {
    Ptr::new(name.to_uppercase())
}

/// A `#[weak_cache]` fn taking `&str` and `ArcIntern::from_ref`: both look the key up
/// borrowed, so neither side clones on a hit.
fn weak_cache_hits(name: &'static str, threads: usize) -> Case {
    Case::time(name, hits(threads, |key| load_setting(key))).peer(
        "internment_arcintern_from_ref",
        hits(threads, |key| ArcIntern::<String>::from_ref(key.as_str())),
    )
}

fn intern_miss() -> Case {
    let mut n = 0u64;
    let mut m = 0u64;
    Case::time(
        "intern/miss",
        iter(move || {
            n += 1;
            unique::make(n)
        }),
    )
    .peer(
        "internment_arcintern",
        iter(move || {
            m += 1;
            ArcIntern::new(m)
        }),
    )
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        ptr_clone_drop(),
        weak_value(),
        cleanups(),
        Case::time("cleanup/blocked_neighbour", blocked_neighbour),
        intern_hits("intern/hit_1t", 1),
        intern_hits("intern/hit_2t", 2),
        intern_ref_hits("intern/hit_ref_1t", 1),
        intern_ref_hits("intern/hit_ref_2t", 2),
        weak_cache_hits("intern/weak_cache_hit_1t", 1),
        weak_cache_hits("intern/weak_cache_hit_2t", 2),
        intern_miss(),
    ]
}
