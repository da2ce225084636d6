//! Extracts README.md's blocks that gonext's doctests cannot run (they need a feature or a
//! crate gonext does not depend on) into `$OUT_DIR/readme_<name>.rs`, for the test files to
//! `include!`. A block is named by the comment line before its fence:
//! `<!-- readme-block <name>: … -->`.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let readme = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../README.md");
    println!("cargo::rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).unwrap_or_else(|e| panic!("reading {}: {e}", readme.display()));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let mut lines = text.lines();
    let mut found = 0;
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("<!-- readme-block ") else { continue };
        let name = rest.split(':').next().unwrap().trim();
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```rust"),
            "README block `{name}`: the next line must open a ```rust fence"
        );
        let code: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        fs::write(out.join(format!("readme_{name}.rs")), code.join("\n") + "\n").unwrap();
        found += 1;
    }
    assert!(found > 0, "README.md has no `<!-- readme-block … -->` blocks");
}
