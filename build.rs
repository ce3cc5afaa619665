//! Build script: the git commit that `tickerd --version` prints, as the
//! compile-time variable `TICKERD_COMMIT`.
//!
//! In a git checkout of this crate it is `git rev-parse --short HEAD`; from a
//! crate tarball (no `.git` of its own, or no `git` at all) it is `unknown`.
//! A checkout nested in some other repository (a vendored copy) is not ours:
//! only a work tree whose top level is this crate's directory counts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = git(&dir, &["rev-parse", "--show-toplevel"])
        .filter(|top| same_dir(Path::new(top), &dir))
        .and_then(|_| {
            watch_head(&dir);
            git(&dir, &["rev-parse", "--short", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TICKERD_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// `git ARGS` in `dir`: its trimmed output, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reruns this script when HEAD moves: a commit, a checkout, a branch update.
/// HEAD lives in the work tree's git directory (a linked worktree has its
/// own); the branch it points at lives in the common directory, loose or in
/// `packed-refs`. Only existing files are named: cargo reruns a script on
/// every build while a named file is missing.
fn watch_head(dir: &Path) {
    let mut files = Vec::new();
    if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
        files.push(Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(dir, &["rev-parse", "--git-common-dir"]) {
        let common = dir.join(common);
        files.push(common.join("packed-refs"));
        if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            files.push(common.join(branch));
        }
    }
    for f in files.iter().filter(|f| f.is_file()) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
}
