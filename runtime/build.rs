//! Turns the `std-time` feature into `cfg(gonext_std_time)` on the targets where libc
//! interposition works (Linux glibc, x86_64 and aarch64, dynamically linked); elsewhere the
//! feature compiles to nothing.

use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gonext_std_time)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = |key: &str| env::var(key).unwrap_or_default();
    let supported = target("CARGO_CFG_TARGET_OS") == "linux"
        && target("CARGO_CFG_TARGET_ENV") == "gnu"
        && matches!(target("CARGO_CFG_TARGET_ARCH").as_str(), "x86_64" | "aarch64")
        && !target("CARGO_CFG_TARGET_FEATURE").split(',').any(|feature| feature == "crt-static");
    if env::var_os("CARGO_FEATURE_STD_TIME").is_some() && supported {
        println!("cargo::rustc-cfg=gonext_std_time");
    }
}
