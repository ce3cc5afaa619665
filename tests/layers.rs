//! The module graph goes one way: each module of `src/` may use only the
//! modules below it in [`LAYERS`] (and its own submodules). This reads every
//! source file and fails on a `crate::` path that points up or sideways, so an
//! import cycle cannot come back unnoticed. `docs/architecture.md` draws the
//! same order.

#[path = "support/sources.rs"]
mod sources;

use std::path::Path;

use sources::sources;

/// The crate's top-level modules, top (uses the most) to bottom (uses none).
/// `lib.rs` and `main.rs` stand above all of them.
#[rustfmt::skip]
const LAYERS: &[&str] = &[
    "cli", "client", "ticker", "server", "ws", "connection", "state", "cluster", "feeds", "auth",
    "publish", "hub", "delivery", "config", "transform", "reload", "protocol", "frame",
    "metrics", "topic", "closes", "sync", "nearest", "systemd",
];

/// The names that follow `crate::` on a line of code (comments skipped).
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // `$crate::` or a longer identifier ending in `crate` is not ours.
            !code[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    let mut seen = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = first.strip_suffix(".rs").unwrap_or(first);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = rank(module) else {
            wrong.push(format!(
                "{}: module `{module}` is not in LAYERS",
                rel.display()
            ));
            continue;
        };
        seen.push(module.to_string());
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                if used == module || used.is_empty() {
                    continue;
                }
                match rank(&used) {
                    Some(r) if r > own => {}
                    Some(_) => wrong.push(format!(
                        "{}:{}: `{module}` uses `{used}`, which is not below it",
                        rel.display(),
                        n + 1
                    )),
                    // An item of lib.rs (a re-export): the crate root is above all.
                    None => wrong.push(format!(
                        "{}:{}: `{module}` uses the crate root (`crate::{used}`); \
                         use the module that defines it",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    for layer in LAYERS {
        assert!(
            seen.iter().any(|s| s == layer),
            "LAYERS names `{layer}`, which is not a module of src/"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn crate_paths_are_found_in_code_only() {
    assert_eq!(crate_paths("use crate::hub::Hub;"), ["hub"]);
    assert_eq!(
        crate_paths("/// see [`crate::Ticker`]"),
        Vec::<String>::new()
    );
    assert_eq!(crate_paths("let x = crate::a::f(); // crate::b"), ["a"]);
    assert_eq!(crate_paths("$crate::x"), Vec::<String>::new());
}

/// Most lines a file of `src/` may have: a file past it holds more than one
/// concept and is split by concept (see docs/architecture.md).
const MAX_LINES: usize = 450;

/// No file of `src/` grows past [`MAX_LINES`]: each file stays one concept a
/// reader can hold at once.
#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut files = Vec::new();
    sources(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| {
                format!(
                    "{} ({lines} lines)",
                    f.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                        .unwrap_or(f)
                        .display()
                )
            })
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "files of src/ over {MAX_LINES} lines; split each by concept:\n  {}",
        long.join("\n  ")
    );
}
