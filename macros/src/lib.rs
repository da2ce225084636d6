//! Procedural macros of [`gonext`](https://docs.rs/gonext).
//!
//! Use them through `gonext` (`use gonext::generator;`), never from this crate directly:
//! expansions refer to `::gonext::__private`, so this crate only works together with the
//! `gonext` version it was released with.
//!
//! Each macro has one module, split into parse → validate → expand; helpers shared by
//! several macros live in `common`.
