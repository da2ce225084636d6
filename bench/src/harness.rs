//! The measurement behind `compare`: case registry, warm-up, interleaved timed batches,
//! medians and the JSON-lines report of DESIGN.md.
//!
//! A time case gives each implementation a routine `FnMut(iters) -> Duration` that runs the
//! operation `iters` times (criterion's `iter_custom` shape, so setup can stay untimed);
//! [`iter`] builds one from a plain closure. Each routine is warmed up until it has run for
//! the warm-up time, which also estimates its cost and so the batch size. Then batches run
//! round-robin over gonext and its peers, and each implementation reports the median
//! nanoseconds per operation of its batches.
//!
//! A memory case gives each implementation a routine that keeps `n` objects alive and
//! returns the bytes they hold (see [`crate::alloc`]); it reports `bytes_per_op`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Warm-up time per implementation, which also calibrates the batch size.
    pub warm_up: Duration,
    /// Target duration of one timed batch.
    pub batch: Duration,
    /// Number of timed batches per implementation; the median is reported.
    pub batches: usize,
}

impl Config {
    /// The full run: long batches, many of them.
    pub const FULL: Config =
        Config { warm_up: Duration::from_millis(150), batch: Duration::from_millis(40), batches: 15 };
    /// `--quick`: enough for a ratio, whole run well under a minute on 2 cores.
    pub const QUICK: Config =
        Config { warm_up: Duration::from_millis(20), batch: Duration::from_millis(8), batches: 5 };
}

/// Runs an operation `iters` times and returns how long that took.
pub type TimeRoutine = Box<dyn FnMut(u64) -> Duration>;
/// Keeps `n` objects alive at once and returns the bytes they occupy in total.
pub type BytesRoutine = Box<dyn FnMut(u64) -> u64>;

enum Routine {
    Time(TimeRoutine),
    Bytes(BytesRoutine),
}

struct Impl {
    name: &'static str,
    routine: Routine,
}

/// One benchmark case: a gonext implementation and the peers it is compared with.
pub struct Case {
    name: &'static str,
    ops_per_iter: u64,
    objects: u64,
    gonext: Impl,
    peers: Vec<Impl>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Builds a [`TimeRoutine`] body that calls `op` once per iteration through `black_box`.
pub fn iter<O>(mut op: impl FnMut() -> O) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(op());
        }
        start.elapsed()
    }
}

impl Case {
    /// A time case whose gonext implementation is `routine`.
    pub fn time(name: &'static str, routine: impl FnMut(u64) -> Duration + 'static) -> Case {
        Case {
            name,
            ops_per_iter: 1,
            objects: 0,
            gonext: Impl { name: "gonext", routine: Routine::Time(Box::new(routine)) },
            peers: Vec::new(),
        }
    }

    /// A memory case: `routine(n)` keeps `n` objects alive and returns their total bytes.
    pub fn bytes(name: &'static str, n: u64, routine: impl FnMut(u64) -> u64 + 'static) -> Case {
        Case {
            name,
            ops_per_iter: 1,
            objects: n,
            gonext: Impl { name: "gonext", routine: Routine::Bytes(Box::new(routine)) },
            peers: Vec::new(),
        }
    }

    /// Each iteration of the routines performs `ops` operations (for example one scope of
    /// 10,000 tasks): results are reported per operation.
    pub fn ops_per_iter(mut self, ops: u64) -> Case {
        assert!(ops > 0, "case {}: ops_per_iter must be at least 1", self.name);
        self.ops_per_iter = ops;
        self
    }

    /// Adds a peer measured like the gonext implementation (time routine).
    pub fn peer(mut self, name: &'static str, routine: impl FnMut(u64) -> Duration + 'static) -> Case {
        self.expect_kind(false, name);
        self.peers.push(Impl { name, routine: Routine::Time(Box::new(routine)) });
        self
    }

    /// Adds a peer to a memory case.
    pub fn peer_bytes(mut self, name: &'static str, routine: impl FnMut(u64) -> u64 + 'static) -> Case {
        self.expect_kind(true, name);
        self.peers.push(Impl { name, routine: Routine::Bytes(Box::new(routine)) });
        self
    }

    fn expect_kind(&self, bytes: bool, peer: &str) {
        let is_bytes = matches!(self.gonext.routine, Routine::Bytes(_));
        assert_eq!(
            is_bytes, bytes,
            "case {}: peer {peer} must be measured like the gonext implementation",
            self.name
        );
    }

    /// The case's name, such as `gen/fib_1000`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The names of the peers, in registration order.
    pub fn peer_names(&self) -> Vec<&'static str> {
        self.peers.iter().map(|p| p.name).collect()
    }

    /// Measures the case and returns one report line per peer (one line if it has none).
    pub fn run(&mut self, config: &Config) -> Vec<String> {
        let results = match self.gonext.routine {
            Routine::Time(_) => self.run_time(config),
            Routine::Bytes(_) => self.run_bytes(),
        };
        self.report(&results)
    }

    fn impls_mut(&mut self) -> impl Iterator<Item = &mut Impl> {
        std::iter::once(&mut self.gonext).chain(self.peers.iter_mut())
    }

    fn run_time(&mut self, config: &Config) -> Vec<f64> {
        let batch_iters: Vec<u64> = self.impls_mut().map(|imp| calibrate(imp, config)).collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(config.batches); batch_iters.len()];
        let ops_per_iter = self.ops_per_iter;
        for _ in 0..config.batches {
            for ((imp, &iters), samples) in self.impls_mut().zip(&batch_iters).zip(&mut samples) {
                let elapsed = time(imp, iters);
                samples.push(elapsed.as_nanos() as f64 / (iters * ops_per_iter) as f64);
            }
        }
        samples.into_iter().map(median).collect()
    }

    fn run_bytes(&mut self) -> Vec<f64> {
        let n = self.objects;
        let ops = self.ops_per_iter;
        self.impls_mut()
            .map(|imp| {
                let Routine::Bytes(routine) = &mut imp.routine else {
                    unreachable!("memory cases only hold memory routines")
                };
                let samples = (0..3).map(|_| routine(n) as f64 / (n * ops) as f64).collect();
                median(samples)
            })
            .collect()
    }

    fn report(&self, results: &[f64]) -> Vec<String> {
        let metric = match self.gonext.routine {
            Routine::Time(_) => "ns_per_op",
            Routine::Bytes(_) => "bytes_per_op",
        };
        let ours = results[0];
        let line = |peer: Option<(&str, f64)>| {
            let mut out = String::new();
            write!(out, "{{\"case\":{},\"impl\":\"gonext\",\"{metric}\":{}", json_str(self.name), num(ours))
                .expect("writing to a String cannot fail");
            match peer {
                Some((name, theirs)) => write!(
                    out,
                    ",\"peer\":{},\"peer_{metric}\":{},\"ratio\":{}}}",
                    json_str(name),
                    num(theirs),
                    num(theirs / ours)
                ),
                None => write!(out, ",\"peer\":null,\"peer_{metric}\":null,\"ratio\":null}}"),
            }
            .expect("writing to a String cannot fail");
            out
        };
        if self.peers.is_empty() {
            return vec![line(None)];
        }
        self.peers.iter().zip(&results[1..]).map(|(p, &theirs)| line(Some((p.name, theirs)))).collect()
    }
}

fn time(imp: &mut Impl, iters: u64) -> Duration {
    let Routine::Time(routine) = &mut imp.routine else { unreachable!("time cases only hold time routines") };
    routine(iters)
}

/// Warms `imp` up for `config.warm_up` and returns the iterations that fill one batch.
fn calibrate(imp: &mut Impl, config: &Config) -> u64 {
    let mut iters = 1u64;
    let mut total_iters = 0u64;
    let mut total = Duration::ZERO;
    while total < config.warm_up {
        total += time(imp, iters);
        total_iters += iters;
        iters = iters.saturating_mul(2);
    }
    let per_iter = total.as_nanos().max(1) as f64 / total_iters as f64;
    ((config.batch.as_nanos() as f64 / per_iter) as u64).max(1)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) { (samples[mid - 1] + samples[mid]) / 2.0 } else { samples[mid] }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_owned();
    }
    let digits = if x.abs() >= 100.0 { 1 } else { 3 };
    format!("{x:.digits$}")
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                write!(out, "\\u{:04x}", c as u32).expect("writing to a String cannot fail");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn report_lines_are_json_with_ratio_peer_over_gonext() {
        let mut case = Case::time("demo/case", iter(|| 1u8)).peer("peer\"x", iter(|| 2u8));
        let lines = case.report(&[2.0, 5.0]);
        assert_eq!(
            lines,
            vec![
                "{\"case\":\"demo/case\",\"impl\":\"gonext\",\"ns_per_op\":2.000,\"peer\":\"peer\\\"x\",\
                 \"peer_ns_per_op\":5.000,\"ratio\":2.500}"
            ]
        );
        assert_eq!(case.run(&Config::QUICK).len(), 1);
    }

    #[test]
    fn case_without_peers_reports_null_peer() {
        let case = Case::time("demo/alone", iter(|| ()));
        assert_eq!(
            case.report(&[1234.5]),
            vec![
                "{\"case\":\"demo/alone\",\"impl\":\"gonext\",\"ns_per_op\":1234.5,\"peer\":null,\"peer_ns_per_op\":null,\"ratio\":null}"
            ]
        );
    }

    #[test]
    fn ops_per_iter_divides_the_time() {
        let mut case = Case::time("demo/sleepy", Duration::from_micros).ops_per_iter(1000);
        let line = &case.run(&Config::QUICK)[0];
        assert!(line.contains("\"ns_per_op\":1.000"), "{line}");
    }

    #[test]
    #[should_panic(expected = "must be measured like the gonext implementation")]
    fn mixing_time_and_bytes_peers_is_rejected() {
        let _ = Case::bytes("demo/mem", 10, |n| n).peer("p", iter(|| ()));
    }
}
