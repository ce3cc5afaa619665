//! The wording of config errors, pinned: each names file:line (the value's own
//! line), the key, what is expected and an example of a valid value, and one
//! pass reports every error.

use std::path::Path;

use tickerd::Config;

/// The errors of `text` (as `c.toml`), one string each.
fn errors(text: &str) -> Vec<String> {
    match Config::from_toml(text, Path::new("c.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts that some error is exactly `want`.
fn has(errors: &[String], want: &str) {
    assert!(
        errors.iter().any(|e| e == want),
        "no error `{want}` in:\n{}",
        errors.join("\n")
    );
}

/// A bad `[server]` value does not hide the errors of other sections or of
/// feeds: all are reported, each at its own line, in line order.
#[test]
fn one_pass_reports_every_section_and_feed_error() {
    let e = errors(
        "[server]\nheartbeat = \"soon\"\n\n[limits]\nqueue = 0\n\n[history]\nsize = \"big\"\n\n[[feed]]\nname = \"x\"\nkind = \"system\"\ntopic = \"a..b\"\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].starts_with("c.toml:2: [server] heartbeat: "), "{e:#?}");
    assert!(
        e[1].starts_with("c.toml:5: [limits] queue must be greater than zero"),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("c.toml:8: [history] size: expected a whole number"),
        "{e:#?}"
    );
    assert!(e[3].starts_with("c.toml:13: feed \"x\": "), "{e:#?}");
}

/// A duration that is not one, or a number, says what a duration looks like.
#[test]
fn durations_show_valid_examples() {
    let e = errors("[server]\nflush_interval = 5\n\n[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"h.m\"\ninterval = \"5 seconds please\"\n");
    has(
        &e,
        "c.toml:2: [server] flush_interval: expected a duration like \"500ms\", \"5s\" or \"1m\", not the number 5",
    );
    has(
        &e,
        "c.toml:8: feed \"s\": interval: expected a duration like \"500ms\", \"5s\" or \"1m\", not \"5 seconds please\"",
    );
}

/// A host name as `listen` is refused with the value echoed and an IP:port
/// shown; `parse_listen` (also behind `--listen`) says the same.
#[test]
fn listen_echoes_the_value_and_shows_an_address() {
    let e = errors("\n[server]\nlisten = \"localhost:8080\"\n");
    let hint = "\"localhost:8080\" is not an IP address and port (a host name is not accepted); write e.g. \"127.0.0.1:8080\", or \"0.0.0.0:8080\" for every interface";
    has(&e, &format!("c.toml:3: [server] listen: {hint}"));
    assert_eq!(
        tickerd::config::parse_listen("localhost:8080").unwrap_err(),
        hint
    );
    assert!(tickerd::config::parse_listen("127.0.0.1:0").is_ok());
}

/// A command written as a string is shown as the argv list it should be, with
/// no second, phantom "missing field" error.
#[test]
fn a_string_where_a_list_is_expected_shows_the_list() {
    let e = errors(
        "[[feed]]\nname = \"clock\"\nkind = \"command\"\ntopic = \"c.t\"\ncommand = \"date +%s\"\n",
    );
    assert_eq!(
        e,
        ["c.toml:5: feed \"clock\": `command` must be a list, not a string: write command = [\"date\", \"+%s\"]"]
    );
}

/// Unknown sections and keys name the nearest valid name.
#[test]
fn unknown_names_suggest_the_nearest() {
    let e = errors("[sever]\nlisten = \"127.0.0.1:1\"\n\n[limits]\nmax_conections = 5\n\n[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"h.m\"\nintervl = \"1s\"\n");
    has(
        &e,
        "c.toml:1: unknown section [sever]; did you mean [server]? (expected one of [server], [limits], [history], [dashboard], [cluster], [auth], [access], [feed])",
    );
    assert!(
        e.iter().any(|e| e.starts_with(
            "c.toml:5: [limits] unknown field `max_conections`; did you mean `max_connections`? (expected one of"
        )),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|e| e.starts_with(
            "c.toml:11: feed \"s\": unknown field `intervl`; did you mean `interval`?"
        )),
        "{e:#?}"
    );
}

/// A placeholder name outside `[A-Za-z0-9_]+` is refused at the topic's line.
#[test]
fn bad_placeholders_are_refused() {
    let e = errors(
        "[[feed]]\nname = \"s\"\nkind = \"synthetic\"\ntopic = \"s.{sym bol}\"\nsymbols = [\"A\"]\n",
    );
    assert_eq!(
        e,
        ["c.toml:4: feed \"s\": `s.{sym bol}`: bad placeholder `{sym bol}` (a placeholder names an item field: [A-Za-z0-9_]+, or a nested one as a dotted path, e.g. `{symbol}`, `{labels.instance}`)"]
    );
}

/// A duplicate feed name is blamed on the later definition in load order (a
/// feeds_dir file after the main file), naming where the first one is.
#[test]
fn duplicate_names_blame_the_later_file_and_name_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(
        &main,
        "[[feed]]\nname = \"dup\"\nkind = \"system\"\ntopic = \"h.a\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("feeds")).unwrap();
    let extra = dir.path().join("feeds/extra.toml");
    std::fs::write(
        &extra,
        "# added later\n[[feed]]\nname = \"dup\"\nkind = \"system\"\ntopic = \"h.b\"\n",
    )
    .unwrap();
    let e = Config::load(&main).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        e.0[0].to_string(),
        format!(
            "{}:2: feed \"dup\": duplicate feed name: \"dup\" is already defined at {}:1; feed names must be unique (rename or remove one)",
            extra.display(),
            main.display()
        )
    );
}

/// A `feeds_dir` that is written but does not exist loads (no feeds from it)
/// with a warning at its line; the default `feeds` missing is not worth one.
#[test]
fn a_missing_feeds_dir_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(&main, "[server]\nfeeds_dir = \"nope\"\n").unwrap();
    let c = Config::load(&main).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [format!(
            "{}:2: [server] feeds_dir = \"nope\" ({}): no such directory, 0 feeds from it",
            main.display(),
            dir.path().join("nope").display()
        )]
    );
    std::fs::write(&main, "[server]\n").unwrap();
    assert!(Config::load(&main).unwrap().warnings.is_empty());
}

/// A `file` feed's relative `path`, even in a file of `feeds_dir`, is
/// relative to the main config file's directory (as feeds/file.toml says).
#[test]
fn relative_file_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    std::fs::write(&main, "[server]\nfeeds_dir = \"sub/feeds\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("sub/feeds")).unwrap();
    std::fs::write(
        dir.path().join("sub/feeds/f.toml"),
        "[[feed]]\nname = \"f\"\nkind = \"file\"\ntopic = \"f\"\npath = \"data/quotes.log\"\n",
    )
    .unwrap();
    let c = Config::load(&main).unwrap();
    assert_eq!(c.feeds[0].kind, "file");
    assert_eq!(
        c.feeds[0].options["path"].as_str(),
        dir.path().join("data/quotes.log").to_str()
    );
}

/// `[[access]] publish` patterns are checked like `patterns`, and may not
/// name the server's own `$` topics.
#[test]
fn access_publish_patterns_are_checked() {
    let e = errors(
        "[[access]]\ntoken = \"t\"\npatterns = [\"a.>\"]\npublish = [\"a..b\", \"$sys.x\"]\n",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("c.toml:4: [[access]] #1: publish pattern `a..b`"),
        "{e:#?}"
    );
    assert!(
        e[1].contains("topics starting with `$` are the server's own"),
        "{e:#?}"
    );
}

/// A value of the wrong type is said in plain words, naming the key, what was
/// written and what would be right with an example (the value itself when it
/// is one), never serde's `invalid type: string "0.1", expected f64`.
#[test]
fn type_errors_are_said_in_plain_words() {
    let e = errors(concat!(
        "[server]\ntoken = 123\nallowed_origins = { a = 1 }\n\n",
        "[limits]\nqueue = -1\nmax_connections = 1.5\n\n",
        "[dashboard]\nenabled = \"yes\"\n\n",
        "[[feed]]\nname = \"s\"\nkind = \"synthetic\"\ntopic = \"s.{symbol}\"\n",
        "symbols = [\"A\"]\nvolatility = \"0.1\"\n",
    ));
    assert_eq!(
        e,
        [
            "c.toml:2: [server] token: expected a string, e.g. \"123\", not the number 123",
            "c.toml:3: [server] allowed_origins: expected a list, e.g. [\"a\", \"b\"], not a table",
            "c.toml:6: [limits] queue: expected a whole number (0 or more), e.g. 100, not -1",
            "c.toml:7: [limits] max_connections: expected a whole number (0 or more), e.g. 100, not the number 1.5",
            "c.toml:10: [dashboard] enabled: expected true or false, not the string \"yes\"",
            "c.toml:17: feed \"s\": volatility: expected a number, e.g. 0.1, not the string \"0.1\"",
        ],
        "{e:#?}"
    );
}

/// A misspelt transform operation is named with the nearest one (and a
/// misspelt option of a step likewise), at the `transform` line.
#[test]
fn an_unknown_transform_operation_suggests_the_nearest() {
    let e = errors(concat!(
        "[[feed]]\nname = \"s\"\nkind = \"system\"\ntopic = \"h.m\"\n",
        "transform = [{ chnage = \"price\" }, { round = \"p\", digit = 2 }]\n",
    ));
    assert_eq!(
        e,
        [
            "c.toml:5: feed \"s\": transform[0]: unknown operation `chnage`; did you mean `change`? (expected one of rate, change, change_pct, round, rename, select)",
            "c.toml:5: feed \"s\": transform[1]: `round` takes `as` or `digits`, not `digit`; did you mean `digits`?",
        ],
        "{e:#?}"
    );
}

/// A feed's `history` that is neither a count nor a duration says which are
/// accepted; a count above `[limits] max_history` is refused at the
/// `history` line itself (not the `[[feed]]` line), with the maximum.
#[test]
fn a_feeds_history_says_what_is_accepted_and_where() {
    let e = errors(concat!(
        "[limits]\nmax_history = 1000\n\n",
        "[[feed]]\nname = \"a\"\nkind = \"system\"\ntopic = \"h.a\"\nhistory = \"lots\"\n\n",
        "[[feed]]\nname = \"b\"\nkind = \"system\"\n\n\ntopic = \"h.b\"\nhistory = 50000\n",
    ));
    assert_eq!(
        e,
        [
            "c.toml:8: feed \"a\": `history` must be a count of updates (e.g. 500, at most [limits] max_history = 1000) or a duration (e.g. \"15m\"), not \"lots\"",
            "c.toml:16: feed \"b\": history = 50000 is above [limits] max_history (1000): keep at most 1000 updates, or raise [limits] max_history",
        ],
        "{e:#?}"
    );
}

/// The errors of a dashboard file `d.toml`, one string each.
fn dashboard_errors(text: &str) -> Vec<String> {
    match tickerd::config::dashboard::parse_dashboard("d", text, Path::new("d.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// In a dashboard file, `[[panels]]`, a misspelt panel `kind` and a misspelt
/// threshold `level` each name the nearest valid one, like `[sever]` does,
/// and one does not hide the others.
#[test]
fn dashboard_names_suggest_the_nearest() {
    let e = dashboard_errors(concat!(
        "title = \"D\"\n\n",
        "[[panel]]\nkind = \"valu\"\ntopic = \"a.b\"\n\n",
        "[[panel]]\nkind = \"value\"\ntopic = \"a.b\"\n",
        "thresholds = [{ above = 1, level = \"warning\" }]\n\n",
        "[[panels]]\nkind = \"value\"\n",
    ));
    assert_eq!(
        e,
        [
            "d.toml:4: dashboard \"d\": panel #1: unknown kind \"valu\"; did you mean `value`? (expected one of value, tile, table, tape, chart, gauge, bar, feeds, text)",
            "d.toml:10: dashboard \"d\": panel #2: thresholds.level: unknown value `warning`; did you mean `warn`? (expected one of `ok`, `info`, `warn`, `crit`)",
            "d.toml:12: dashboard \"d\": unknown section [[panels]]; did you mean [[panel]]? (expected one of [[panel]], `title`, `columns`)",
        ],
        "{e:#?}"
    );
}

/// `trusted_proxies` entries are IP networks: one that is not is named at its
/// line with examples of valid ones; a bare address is its own network.
#[test]
fn trusted_proxies_must_be_networks() {
    let e = errors(
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0/8\"]\n",
    );
    has(
        &e,
        "c.toml:3: [server] trusted_proxies: \"10.0.0/8\" is not an IP network; write an \
         address with its prefix length, e.g. \"127.0.0.1/32\", \"10.0.0.0/8\" or \"::1/128\"",
    );
    let ok = "[server]\ntrusted_proxies = [\"::1\", \"192.168.0.0/16\"]\n";
    Config::from_toml(ok, Path::new("c.toml")).expect("networks and bare addresses");
}

/// A `[server.tls]` file that cannot be read is named with its path, at the
/// section's line, with what to write instead.
#[test]
fn tls_files_that_cannot_be_read_are_named() {
    let e = errors("[server]\nlisten = \"127.0.0.1:0\"\n\n[server.tls]\ncert = \"no/such.pem\"\nkey = \"k.pem\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with("c.toml:4: [server.tls] cert: cannot read ./no/such.pem: "),
        "{e:#?}"
    );
    assert!(
        e[0].ends_with("(write the path of a PEM certificate file, relative to the config file)"),
        "{e:#?}"
    );
}
