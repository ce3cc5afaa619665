//! The crate's source files, for the tests that read `src/` as text
//! (`tests/layers.rs`, `tests/public_api.rs`). Included by path, so those tests
//! stay free of the rest of `tests/support`.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
pub(crate) fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
