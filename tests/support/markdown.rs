//! The repository's prose, for the tests that check it against the code
//! (`tests/docs.rs`, `tests/readme_curl.rs`).

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, SECURITY.md and docs/*.md (when there is a docs/ folder).
pub fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("SECURITY.md")];
    if let Ok(entries) = std::fs::read_dir(root().join("docs")) {
        let mut docs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}
