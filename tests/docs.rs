//! Keeps what a newcomer reads true: every TOML snippet of README.md,
//! SECURITY.md and docs/*.md (as a dashboard file when it has `[[panel]]`),
//! the shipped config and every `feeds/*.toml` pass the config validator;
//! docs/config.md names every key the validator takes; and every HTTP route
//! the README names answers on a real server. A doc edit that breaks a
//! snippet or names a route that is not there fails here.
//!
//! A snippet that is intentionally partial starts with a `# fragment` line: it
//! is only checked to be TOML.

mod support;

use std::path::{Path, PathBuf};

use support::markdown::{markdown_files, root};
use support::{Server, BIN};
use tickerd::Config;

/// Every ```toml block of `text`: (1-based line of its first line, its text).
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```toml") => open = Some((i + 2, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(open.is_none(), "an unclosed ```toml block");
    blocks
}

/// Every ```toml snippet in the Markdown docs is a valid config (or, marked
/// `# fragment`, valid TOML), and the README has some to check.
#[test]
fn markdown_toml_snippets_are_valid_configs() {
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, snippet) in toml_blocks(&text) {
            let name = format!("{}:{line}", file.display());
            if snippet.trim_start().starts_with("# fragment") {
                toml::from_str::<toml::Table>(&snippet)
                    .unwrap_or_else(|e| panic!("{name}: not TOML: {e}"));
            } else if snippet.contains("[[panel]]") {
                tickerd::config::dashboard::parse_dashboard("doc", &snippet, Path::new(&name))
                    .unwrap_or_else(|e| panic!("{name}: not a valid dashboard: {e:?}"));
            } else {
                Config::from_toml(&snippet, Path::new(&name))
                    .unwrap_or_else(|e| panic!("{name}: the snippet is not a valid config:\n{e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found only {checked} snippets");
}

/// The shipped config.toml with every `feeds/*.toml` loads without an error
/// or a warning, and every file of feeds/ holds at least one feed.
#[test]
fn shipped_config_and_every_feed_example_are_valid() {
    let config = Config::load(&root().join("config.toml"))
        .unwrap_or_else(|e| panic!("the shipped config is invalid:\n{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("feeds"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in &files {
        assert!(
            config.feeds.iter().any(|f| f.location.file == *file),
            "{} defines no feed",
            file.display()
        );
    }
    // One example per built-in kind, as the README promises.
    for kind in tickerd::feeds::builtin_kinds() {
        assert!(
            config
                .feeds
                .iter()
                .any(|f| f.kind == kind && f.location.file.starts_with(root().join("feeds"))),
            "feeds/ has no `{kind}` example"
        );
    }
}

/// The keys a section or a kind accepts, as its "unknown field" error lists
/// them: what the validator takes, not what a doc says it takes.
fn accepted_keys(snippet: &str) -> Vec<String> {
    let err = Config::from_toml(snippet, Path::new("probe.toml"))
        .expect_err("an unknown key is an error")
        .to_string();
    // serde words it "expected `a`", "expected `a` or `b`", "expected one of ...".
    let (_, expected) = err
        .split_once("`zz_unknown`, expected")
        .unwrap_or_else(|| panic!("no list of valid keys in: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// docs/config.md names every key of every section and every built-in kind:
/// a key added to the code without a line in the reference fails here.
#[test]
fn config_reference_names_every_key() {
    let reference = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let mut probes: Vec<(String, String)> = ["server", "limits", "history", "dashboard"]
        .iter()
        .map(|s| (format!("[{s}]"), format!("[{s}]\nzz_unknown = 1\n")))
        .collect();
    probes.push((
        "[cluster]".into(),
        "[cluster]\nnats = \"nats://127.0.0.1:4222\"\nnode = \"a\"\nzz_unknown = 1\n".into(),
    ));
    probes.push((
        "[[access]]".into(),
        "[[access]]\ntoken = \"t\"\npatterns = [\"a\"]\nzz_unknown = 1\n".into(),
    ));
    probes.push(("[auth.jwt]".into(), "[auth.jwt]\nzz_unknown = 1\n".into()));
    probes.push((
        "[server.tls]".into(),
        "[server.tls]\ncert = \"c\"\nkey = \"k\"\nzz_unknown = 1\n".into(),
    ));
    for kind in tickerd::feeds::builtin_kinds() {
        probes.push((
            format!("kind = {kind:?}"),
            format!("[[feed]]\nname = \"probe\"\nkind = {kind:?}\ntopic = \"t\"\nzz_unknown = 1\n"),
        ));
    }
    let mut missing = Vec::new();
    for (what, snippet) in &probes {
        let keys = accepted_keys(snippet);
        assert!(!keys.is_empty(), "{what}: no keys found");
        for key in keys {
            if !reference.contains(&format!("`{key}`")) {
                missing.push(format!("{what} {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/config.md does not name: {missing:?}"
    );
}

/// The README's table of panel kinds names, in each kind's row, every key that
/// kind takes: a panel key added to the code without a word for the reader
/// (a `feeds` panel's `show`) fails here.
#[test]
fn panel_table_names_every_key_of_every_kind() {
    use tickerd::config::{Panel, PanelKind};
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut missing = Vec::new();
    for name in PanelKind::NAMES {
        let kind: PanelKind = serde_json::from_value(serde_json::json!(name)).unwrap();
        // The row whose first cell names the kind (`gauge`, `bar` share one).
        let row = readme
            .lines()
            .find(|l| {
                l.starts_with('|')
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|c| c.contains(&format!("`{name}`")))
            })
            .unwrap_or_else(|| panic!("README has no row for the `{name}` panel"));
        for key in Panel::allowed(kind) {
            if !row.contains(&format!("`{key}`")) {
                missing.push(format!("{name}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README's panel table does not name: {missing:?}"
    );
}

/// The Quick start's account of what the shipped config runs names the topics
/// of every enabled feed (and says the rest are disabled).
#[test]
fn quick_start_names_what_the_shipped_config_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## Quick start")
        .expect("a Quick start section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let config = Config::load(&root().join("config.toml")).unwrap();
    for f in config.feeds.iter().filter(|f| f.enabled) {
        let template = f.topic.as_str();
        let prefix = template.split('{').next().unwrap();
        assert!(
            section.contains(prefix),
            "the Quick start does not mention feed {:?} (topic {template})",
            f.name
        );
    }
    assert!(section.contains("disabled"), "{section}");
}

/// Every `dashboards/*.toml` (when there are any) is TOML; validating its
/// content belongs to the dashboards' own checks.
#[test]
fn dashboard_files_are_toml() {
    let Ok(entries) = std::fs::read_dir(root().join("dashboards")) else {
        return; // no dashboards in this tree
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            toml::from_str::<toml::Table>(&text)
                .unwrap_or_else(|e| panic!("{}: not TOML: {e}", path.display()));
        }
    }
}

/// `tickerd check` on the shipped config prints the verdict line the README
/// quotes, with the feed and disabled counts of the real files.
#[tokio::test]
async fn check_of_the_shipped_config_matches_the_readme() {
    let out = tokio::process::Command::new(BIN)
        .arg("check")
        .current_dir(root())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let config = Config::load(&root().join("config.toml")).unwrap();
    let disabled = config.feeds.iter().filter(|f| !f.enabled).count();
    let verdict = format!(
        "config.toml: ok ({} feeds, {disabled} disabled, {} dashboards)",
        config.feeds.len(),
        config.dashboards.len()
    );
    assert_eq!(stdout.trim(), verdict);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("`{verdict}`")),
        "the README should quote `{verdict}`"
    );
}

/// Every `METHOD /path` the README names in code spans, e.g. `GET /api/feeds`.
fn readme_routes() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut routes = Vec::new();
    for span in readme.split('`').skip(1).step_by(2) {
        let mut words = span.split_whitespace();
        let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if ["GET", "POST", "PUT", "DELETE"].contains(&method) && path.starts_with('/') {
            let route = (method.to_string(), path.to_string());
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
    }
    routes
}

/// Every HTTP route the README names exists on a real server: requested as
/// written (a `{topic}` filled with a topic that has a value, publishing with
/// the publish token), none answers 404 or 405.
#[tokio::test]
async fn every_route_the_readme_names_exists() {
    let routes = readme_routes();
    for must in [
        "GET /api/topics",
        "POST /api/publish/{topic}",
        "GET /metrics",
    ] {
        assert!(
            routes.iter().any(|(m, p)| format!("{m} {p}") == must),
            "the README should name `{must}`: {routes:?}"
        );
    }
    let s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n[dashboard]\nenabled = true\n",
    )
    .await;
    s.ticker
        .hub()
        .publish("docs.route", &serde_json::json!(1))
        .unwrap();
    s.ticker
        .hub()
        .publish("docs.delete", &serde_json::json!(1))
        .unwrap();
    let http = reqwest::Client::new();
    for (method, path) in &routes {
        // A topic of its own for DELETE, so that later routes still find theirs.
        let topic = if method == "DELETE" {
            "docs.delete"
        } else {
            "docs.route"
        };
        let path = path.replace("{topic}", topic);
        let request = match method.as_str() {
            "GET" => http.get(s.http(&path)),
            "POST" => http.post(s.http(&path)).bearer_auth("pt").body("1"),
            "DELETE" => http.delete(s.http(&path)).bearer_auth("pt"),
            other => panic!("the README names `{other} {path}`: add it to this test"),
        };
        let status = request.send().await.unwrap().status().as_u16();
        assert!(
            status != 404 && status != 405,
            "`{method} {path}` named in the README answers {status}"
        );
    }
}

/// docs/config.md's opening says how `tickerd` picks its main file, in the
/// CLI's order: `--config PATH`, else `./config.toml` when that file exists,
/// else the built-in default (it once said only `--config` was read).
#[test]
fn config_reference_says_how_the_main_file_is_found() {
    let text = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let intro = text.split("\n\n").nth(1).expect("an opening paragraph");
    let at = |needle: &str| {
        intro.find(needle).unwrap_or_else(|| {
            panic!("docs/config.md's opening does not name {needle:?}:\n{intro}")
        })
    };
    let order = [at("--config"), at("./config.toml"), at("built-in default")];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "docs/config.md's opening names --config, ./config.toml and the built-in default out of order:\n{intro}"
    );
}
