//! The registry of `compare` cases: one module per gonext feature, each contributing the
//! cases its issue asks for.

use crate::harness::Case;

mod atomic;
mod iter;
mod procs;
mod scope;
mod time;
mod weak;

/// Every registered case, in report order.
pub fn all() -> Vec<Case> {
    [iter::cases(), time::cases(), scope::cases(), weak::cases(), atomic::cases(), procs::cases()]
        .into_iter()
        .flatten()
        .collect()
}
