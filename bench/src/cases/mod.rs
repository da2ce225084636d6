//! The registry of `compare` cases: one module per gonext feature, each contributing the
//! cases its issue asks for.

use crate::harness::Case;

mod atomic;
mod procs;
mod time;

/// Every registered case, in report order.
pub fn all() -> Vec<Case> {
    [atomic::cases(), procs::cases(), time::cases()].into_iter().flatten().collect()
}
