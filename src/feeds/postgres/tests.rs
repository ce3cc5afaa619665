//! Unit tests of `postgres`.

use super::rows::numeric_to_string;
use super::*;

/// Encodes a numeric the way PostgreSQL sends it.
fn raw(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [digits.len() as u16, weight as u16, sign, dscale] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    for d in digits {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

/// Binary numerics decode to their exact decimal text: fractions, leading
/// zero groups, trailing zero groups, negatives, specials, garbage.
#[test]
fn numeric_decodes_exactly() {
    let n = |w, s, d, digits: &[u16]| numeric_to_string(&raw(w, s, d, digits)).unwrap();
    assert_eq!(n(0, 0, 2, &[123, 4500]), "123.45");
    assert_eq!(n(-1, 0, 3, &[10]), "0.001");
    assert_eq!(n(1, 0, 0, &[1]), "10000");
    assert_eq!(n(1, 0x4000, 2, &[12, 3456, 7800]), "-123456.78");
    assert_eq!(n(0, 0, 0, &[]), "0");
    assert_eq!(n(-2, 0, 8, &[5]), "0.00000005");
    assert_eq!(n(0, 0xC000, 0, &[]), "NaN");
    assert_eq!(n(0, 0xD000, 0, &[]), "Infinity");
    assert_eq!(numeric_to_string(&[0, 1]), None);
    assert_eq!(numeric_to_string(&raw(0, 0x1234, 0, &[])), None);
}

fn options(toml_text: &str) -> PostgresOptions {
    toml::from_str(toml_text).unwrap()
}

/// The checks `tickerd check` runs: a password in the URL, no mode or two
/// modes, a bad channel name, payload keys in query mode.
#[test]
fn checks_say_what_is_wrong() {
    let keys = |o: &PostgresOptions| {
        check_postgres(o)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    let ok = options("url = \"postgres://t@127.0.0.1/db\"\nlisten = [\"prices\"]");
    assert!(check_postgres(&ok).is_empty());
    let secret = options("url = \"postgres://t:hunter2@127.0.0.1/db\"\nquery = \"SELECT 1\"");
    let msgs = check_postgres(&secret);
    assert_eq!(msgs[0].0, "url");
    assert!(msgs[0].1.contains("password_env") && !msgs[0].1.contains("hunter2"));
    assert_eq!(keys(&options("url = \"postgres://t@h/db\"")), ["listen"]);
    assert_eq!(
        keys(&options(
            "url = \"postgres://t@h/db\"\nlisten = [\"a\"]\nquery = \"SELECT 1\""
        )),
        ["query"]
    );
    assert_eq!(
        keys(&options("url = \"postgres://t@h/db\"\nlisten = [\"\"]")),
        ["listen"]
    );
    assert_eq!(
        keys(&options(
            "url = \"postgres://t@h/db\"\nquery = \"SELECT 1\"\nextract = \"/a\""
        )),
        ["extract"]
    );
    assert_eq!(
        keys(&options("url = \"http://[::1\"\nlisten = [\"a\"]")),
        ["url"]
    );
}
