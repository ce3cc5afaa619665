//! A `text/event-stream` parser (the WHATWG "server-sent events" algorithm):
//! bytes in, complete events out. Pure: no I/O, no clock, so it is tested alone.
//!
//! Lines end in CRLF, LF or CR (a CRLF split across two chunks is one end).
//! `data:` lines join with `\n`; `event:` names the event; `id:` sets the last
//! event id (kept across events and, by the caller, across reconnects);
//! `retry:` sets the reconnection delay; lines starting with `:` are comments;
//! a blank line dispatches the event, if it has data.
//!
//! With [`Parser::with_limit`], no line and no event's data may pass `max`
//! bytes: the event being built is dropped as soon as one would (nothing of it
//! is held any longer; the rest of the line and of the event are skipped up to
//! the blank line that ends it), and [`Parser::take_oversized`] counts it.

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` name, `"message"` when none was given.
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
    /// The last event id at dispatch (empty when none was ever set).
    pub(crate) id: String,
}

/// Parser state for one connection.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    line: Vec<u8>,
    /// The previous byte was a CR: a following LF belongs to the same line end.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: String,
    last_id: String,
    retry: Option<Duration>,
    /// Most bytes of one line or one event's data (`usize::MAX`: no limit).
    max: usize,
    /// Inside a line that passed `max`: drop its bytes.
    long_line: bool,
    /// Inside an event that passed `max`: drop it up to the blank line.
    dropping: bool,
    /// Events dropped for size since the last [`Parser::take_oversized`].
    oversized: usize,
}

impl Parser {
    /// A parser whose last event id starts as `last_id` (from the previous
    /// connection).
    pub(crate) fn new(last_id: &str) -> Self {
        Parser {
            last_id: last_id.to_string(),
            max: usize::MAX,
            ..Parser::default()
        }
    }

    /// Caps each line and each event's data at `max` bytes (module docs).
    pub(crate) fn with_limit(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// How many events were dropped for passing the limit since last asked.
    pub(crate) fn take_oversized(&mut self) -> usize {
        std::mem::take(&mut self.oversized)
    }

    /// Drops the event being built (it passed `max`) up to its blank line.
    fn drop_event(&mut self) {
        if !self.dropping {
            self.oversized += 1;
        }
        self.dropping = true;
        self.data = String::new();
        self.has_data = false;
        self.event.clear();
    }

    /// The last event id seen (or given to [`Parser::new`]).
    pub(crate) fn last_id(&self) -> &str {
        &self.last_id
    }

    /// The reconnection delay the server asked for, if it did.
    pub(crate) fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Consumes a chunk of the stream; returns the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if std::mem::take(&mut self.long_line) {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        out.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.long_line {
                        continue;
                    }
                    if self.line.len() >= self.max {
                        self.line = Vec::new();
                        self.long_line = true;
                        self.drop_event();
                        continue;
                    }
                    self.line.push(b);
                }
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" if self.dropping => {}
            "data" if self.data.len() + value.len() + 1 > self.max => self.drop_event(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = std::mem::take(&mut self.event);
        if std::mem::take(&mut self.dropping) {
            return None;
        }
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(Event {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser, chunks: &[&str]) -> Vec<Event> {
        chunks.iter().flat_map(|c| p.push(c.as_bytes())).collect()
    }

    /// `data:` lines join with `\n`, comments are skipped, `event:` names one
    /// event only, and the last id carries on to later events.
    #[test]
    fn joins_data_lines_and_keeps_ids() {
        let mut p = Parser::new("");
        let events = all(
            &mut p,
            &[
                ": hello\nevent: quote\nid: 7\ndata: [1,\ndata:2]\n\n",
                "data: x\n\n",
            ],
        );
        assert_eq!(
            events,
            vec![
                Event {
                    event: "quote".into(),
                    data: "[1,\n2]".into(),
                    id: "7".into()
                },
                Event {
                    event: "message".into(),
                    data: "x".into(),
                    id: "7".into()
                },
            ]
        );
        assert_eq!(p.last_id(), "7");
    }

    /// CRLF, LF and CR all end a line, also when a CRLF or a field name is
    /// split across chunks.
    #[test]
    fn any_line_end_and_split_chunks() {
        let mut p = Parser::new("");
        let events = all(
            &mut p,
            &["data: a\r", "\n\r", "\ndat", "a: b\r\rdata: c\n", "\n"],
        );
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b", "c"]);
    }

    /// `retry:` takes digits only, an event without data is not dispatched, a
    /// bare `data` line is an empty event, and `id` with NUL is ignored.
    #[test]
    fn retry_comments_and_empty_events() {
        let mut p = Parser::new("41");
        // No data: nothing dispatched, but the event name does not leak on.
        let events = all(
            &mut p,
            &["retry: 250\nevent: ping\n\n:comment only\n\nretry: soon\ndata\n\n"],
        );
        assert_eq!(p.retry(), Some(Duration::from_millis(250)));
        assert_eq!(
            events,
            vec![Event {
                event: "message".into(),
                data: "".into(),
                id: "41".into()
            }]
        );
        // An empty id resets it; an id with NUL is ignored.
        all(&mut p, &["id: a\0b\n", "id\n"]);
        assert_eq!(p.last_id(), "");
    }

    /// An endless line and an event whose `data:` lines never end are both
    /// dropped once they pass the limit, without being held, and the events
    /// after them come through.
    #[test]
    fn oversized_lines_and_events_are_dropped_and_counted() {
        let mut p = Parser::new("").with_limit(16);
        let long = "y".repeat(100);
        let mut events = all(&mut p, &[&format!("data: {long}"), &long, "\n\n"]);
        assert!(p.line.capacity() <= 16, "the long line is not held");
        for _ in 0..10 {
            events.extend(p.push(b"data: 12345\n"));
        }
        assert!(p.data.len() <= 16, "the long event is not held");
        events.extend(all(&mut p, &["\n", "data: ok\n\n"]));
        assert_eq!(p.take_oversized(), 2);
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["ok"]);
    }
}
