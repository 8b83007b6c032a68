//! Whether this machine can run the tests, and the skip-or-fail rule: a developer without root or
//! FUSE sees a printed skip, CI (`CI` set) fails.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// True when the `CI` environment variable is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| {
            let v = v.trim();
            !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
        })
        .unwrap_or(false)
}

/// Reports that a test cannot run here: prints `SKIPPED: <reason>` to stderr and returns, so the
/// caller can `return` — except under CI ([`in_ci`]), where it panics: CI must run these tests.
#[track_caller]
pub fn skip_or_fail(reason: impl Display) {
    if in_ci() {
        panic!("cannot run this test, and CI is set so it must not be skipped: {reason}");
    }
    eprintln!("SKIPPED: {reason} (set CI=true to make this a failure)");
}

/// True if the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Why FUSE mounts cannot work here, or `None` if they should: needs root (this crate mounts
/// with `mount(2)` itself) and a usable `/dev/fuse`.
pub fn fuse_unavailable() -> Option<String> {
    if !is_root() {
        return Some("FUSE tests need root (they mount with mount(2))".into());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/fuse is not usable: {e}")),
    }
}

/// True if FUSE can be used; otherwise calls [`skip_or_fail`] with the reason (prefixed by
/// `test`) and returns false.
#[track_caller]
pub fn fuse_or_skip(test: &str) -> bool {
    match fuse_unavailable() {
        None => true,
        Some(reason) => {
            skip_or_fail(format!("{test}: {reason}"));
            false
        }
    }
}

/// The first of `names` found as an executable in `PATH`, `/usr/sbin` or `/sbin`.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    names
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
