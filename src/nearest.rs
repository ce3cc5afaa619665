//! The one did-you-mean rule: which valid name a mistyped one most likely
//! meant. It sits at the bottom of the module graph so that every layer that
//! reads names from a user suggests by the same measure: `config` (sections,
//! keys, kinds, panel kinds, enum values), the `transform` steps, and
//! `protocol` (request fields, ops) and the HTTP routes' query parameters.

/// The candidate closest to `name`, when it is close enough to be a typo: at
/// most a third of the longer name's letters are wrong, missing or swapped
/// with their neighbour (at least one may be), or
/// one is the other cut short or spelt out (`warning` for `warn`).
pub(crate) fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let prefix =
        |c: &str| c.len() >= 3 && name.len() >= 3 && (name.starts_with(c) || c.starts_with(name));
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(name, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1) || prefix(c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `NAME`?` for the candidate nearest `name`, or nothing when
/// none is close: the hint every unknown-name message appends.
pub(crate) fn did_you_mean(name: &str, candidates: &[&str]) -> String {
    nearest(name, candidates).map_or_else(String::new, |n| format!("; did you mean `{n}`?"))
}
