//! The item pipeline every document-reading kind shares: read the body (`format`:
//! JSON, or text as `{"value": "<text>"}` via [`text_document`]), point into it
//! (`extract`, an RFC 6901 JSON Pointer), and fan an array out into one item per
//! element. Filling the topic template is the context's job
//! ([`super::FeedContext::publish`]).

use serde_json::Value;

use super::options::Format;

/// How a kind turns one document into items.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pipeline {
    extract: Option<String>,
    format: Format,
}

impl Pipeline {
    /// A pipeline with an optional JSON Pointer and a body format.
    pub(crate) fn new(extract: Option<&str>, format: Format) -> Self {
        Pipeline {
            extract: extract.filter(|p| !p.is_empty()).map(str::to_string),
            format,
        }
    }

    /// The items of one document.
    ///
    /// # Errors
    /// The body is not JSON (with `format = "json"`), or the pointer finds nothing.
    pub(crate) fn items(&self, body: &str) -> Result<Vec<Value>, String> {
        let doc = match self.format {
            Format::Text => text_document(body),
            Format::Json => serde_json::from_str(body).map_err(|e| {
                let mut shown: String = body.chars().take(80).collect();
                if shown.len() < body.len() {
                    shown.push('…');
                }
                format!("body is not JSON ({e}): {shown:?}")
            })?,
        };
        self.items_from(doc)
    }

    /// The items of a document already parsed (a kind that decodes its own
    /// payloads, such as the broker kinds, still shares `extract` and fan-out).
    ///
    /// # Errors
    /// The pointer finds nothing.
    pub(crate) fn items_from(&self, doc: Value) -> Result<Vec<Value>, String> {
        let value = match &self.extract {
            None => doc,
            Some(ptr) => match doc.pointer(ptr) {
                Some(v) => v.clone(),
                None => return Err(format!("extract {ptr:?} points at nothing in the document")),
            },
        };
        Ok(match value {
            Value::Array(items) => items,
            one => vec![one],
        })
    }
}

/// The document of a `format = "text"` body, for every kind that takes
/// `format`: `{"value": "<text>"}`, with one line ending (`\n` or `\r\n`)
/// trimmed, since a line-oriented source (a command's stdout, a file, a
/// message typed into a broker's CLI) ends its text with one.
pub(crate) fn text_document(text: &str) -> Value {
    let text = text
        .strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
    serde_json::json!({ "value": text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_and_fans_out() {
        let p = Pipeline::new(Some("/data/quotes"), Format::Json);
        let items = p
            .items(r#"{"data":{"quotes":[{"s":"A"},{"s":"B"}]}}"#)
            .unwrap();
        assert_eq!(items, vec![json!({"s":"A"}), json!({"s":"B"})]);
        assert!(p.items(r#"{"data":{}}"#).is_err());
        assert!(p.items("garbage").is_err());
        let whole = Pipeline::new(None, Format::Json);
        assert_eq!(whole.items("{\"a\":1}").unwrap(), vec![json!({"a":1})]);
        let text = Pipeline::new(Some(""), Format::Text);
        assert_eq!(text.items("hello").unwrap(), vec![json!({"value":"hello"})]);
    }

    /// Text is `{"value": ..}` with one line ending trimmed, `\n` or `\r\n`.
    #[test]
    fn text_trims_one_line_ending() {
        for (body, want) in [
            ("hello\n", "hello"),
            ("hello\r\n", "hello"),
            ("a\nb\n\n", "a\nb\n"),
            (" x ", " x "),
            ("\r", "\r"),
            ("", ""),
        ] {
            assert_eq!(text_document(body), json!({"value": want}), "{body:?}");
        }
    }
}
