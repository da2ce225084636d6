//! gonext's benchmark harness and the cases of the `compare` binary.
//!
//! Every case runs gonext and the peers a user would otherwise pick side by side in one
//! process, interleaving their timed batches so that machine noise hits all of them alike,
//! and reports `ratio = peer / gonext` (above 1 means gonext is faster). See [`harness`] for
//! the measurement and [`cases`] for the registry.

pub mod alloc;
pub mod cases;
pub mod harness;
