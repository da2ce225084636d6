//! Helpers shared by gonext's integration tests (one test file per feature).

use std::path::PathBuf;

/// The directory that holds the test fixtures, `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
