//! The public API is a choice, not an accident: every `pub` declaration in
//! `src/` (an item, a field, a re-export) must be listed in
//! `docs/public-api.txt`, and every line there must still exist. Inside the
//! crate, `unreachable_pub` (denied by clippy's `-D warnings`) makes every
//! `pub` declaration reachable from outside, so this list is the surface an
//! embedder sees. After an intended change, regenerate the list with
//! `UPDATE_PUBLIC_API=1 cargo test --test public_api` and review its diff.

#[path = "support/sources.rs"]
mod sources;

use std::path::Path;

use sources::sources;

/// `file: declaration` for each `pub` line outside test modules; the
/// declaration is cut before its body or default.
fn public_lines(root: &Path) -> Vec<String> {
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap().display().to_string();
        if rel == "src/main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            // Unit tests sit at the end of a file.
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            let t = line.trim();
            if !t.starts_with("pub ") {
                continue;
            }
            let cut = t
                .find(" {")
                .or_else(|| t.find(" where"))
                .or_else(|| t.find(" = "))
                .unwrap_or(t.len());
            out.push(format!(
                "{rel}: {}",
                t[..cut].trim_end_matches([';', ',', '('])
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn the_public_api_is_the_listed_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = root.join("docs/public-api.txt");
    let now = public_lines(root);
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(&list, now.join("\n") + "\n").unwrap();
        return;
    }
    let listed: Vec<String> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let added: Vec<&String> = now.iter().filter(|l| !listed.contains(l)).collect();
    let gone: Vec<&String> = listed.iter().filter(|l| !now.contains(l)).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "the public API changed (docs/public-api.txt); if intended, run \
         UPDATE_PUBLIC_API=1 cargo test --test public_api\nadded:\n  {}\ngone:\n  {}",
        added
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The facade an embedder starts from is at the crate root.
#[test]
fn the_facade_is_at_the_crate_root() {
    #[allow(unused_imports)]
    use tickerd::{
        Config, Feed, FeedContext, Hub, Published, StartError, Subscription, Ticker, TickerBuilder,
        Update, CLUSTER_TOPIC, CONFIG_TOPIC, DASHBOARDS_TOPIC,
    };
    assert_eq!(CONFIG_TOPIC, "$sys.config");
    assert_eq!(DASHBOARDS_TOPIC, "$sys.dashboards");
    assert!(CLUSTER_TOPIC.starts_with("$sys."));
}
