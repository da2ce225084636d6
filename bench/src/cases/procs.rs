//! `runtime::max_procs`: the cached read every pool does, and a full detection.

use std::sync::OnceLock;

use gonext::runtime::{Detector, max_procs};

use crate::harness::{Case, iter};

fn available_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub(super) fn cases() -> Vec<Case> {
    static STD_CACHED: OnceLock<usize> = OnceLock::new();
    max_procs();
    vec![
        Case::time("procs/cached", iter(max_procs))
            .peer("std_oncelock", iter(|| *STD_CACHED.get_or_init(available_parallelism))),
        Case::time("procs/detect", iter(|| Detector::new().detect().value))
            .peer("std_available_parallelism", iter(available_parallelism)),
    ]
}
