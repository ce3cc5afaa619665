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

/// The one fenced block of `lang` (```` ```nginx ````) in `file` (relative to
/// the root) whose text contains `marker`, as written: tests run the configs
/// of the docs themselves, so a doc that drifts fails.
pub fn fenced_block(file: &str, lang: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        match &mut open {
            None if line.trim_start() == format!("```{lang}") => open = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    let mut found = blocks.into_iter().filter(|b| b.contains(marker));
    let block = found
        .next()
        .unwrap_or_else(|| panic!("{file}: no ```{lang} block containing {marker:?}"));
    assert!(
        found.next().is_none(),
        "{file}: several ```{lang} blocks contain {marker:?}"
    );
    block
}

/// `text` with each `(from, to)` replaced, each `from` required to be there
/// (a doc that no longer holds what a test substitutes fails loudly).
pub fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from), "{from:?} is not in:\n{text}");
        out = out.replace(from, to);
    }
    out
}
