//! Release builds on x86_64 Linux link the functions the server runs (startup and the request
//! paths, profiled by `bench/link_order.py`) first and together, in the order of
//! `link-order.txt`: idle code then sits in a few dozen pages instead of being spread over the
//! whole text segment, and the hot request path shares pages and TLB entries.
//!
//! Only where rustc links with its bundled lld by default (x86_64-unknown-linux-gnu since 1.90)
//! and no other linker was chosen; `PLINTH_LINK_ORDER=0` turns it off, and with it the packed
//! relocations below. Names missing from the binary (the code changed since the file was
//! made) are skipped quietly by the linker.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=PLINTH_LINK_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    // A linker chosen in cargo's config or the environment (`RUSTC_LINKER`), or flags that
    // pick one (`-C linker…`, `-fuse-ld=…`, `-C link-self-contained…`), may not be lld, and
    // GNU ld refuses the options below.
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = !var("RUSTC_LINKER").is_empty()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|flag| rustflags.contains(flag));
    let wanted = var("PLINTH_LINK_ORDER") != "0"
        && var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && !other_linker;
    let file = Path::new(&var("CARGO_MANIFEST_DIR")).join("link-order.txt");
    if wanted && file.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            file.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    // Relative relocations packed (DT_RELR): a PIE binary's ~35,000 of them take 800 KiB as
    // RELA entries, which the loader reads at every start (and which then stay resident); packed
    // they take a few KiB. The loader must know DT_RELR (glibc 2.36+), so only when building
    // for the glibc this machine has and it is that recent.
    if wanted && var("HOST") == var("TARGET") && host_glibc().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The version of the C library this machine runs (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn host_glibc() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
