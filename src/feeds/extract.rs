//! The item pipeline every document-reading kind shares: read the body (`format`),
//! point into it (`extract`, an RFC 6901 JSON Pointer), and fan an array out into
//! one item per element. Filling the topic template is the context's job
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
            Format::Text => Value::String(body.to_string()),
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
        assert_eq!(text.items("hello").unwrap(), vec![json!("hello")]);
    }
}
