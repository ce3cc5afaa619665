//! The live terminal view of `tickerd sub`: a status line (the connection's
//! state) and one line per topic (its value, its last move coloured and its
//! seq), redrawn in place with ANSI escapes, at most every [`View::EVERY`]:
//! a topic with thousands of updates a second costs a few redraws.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;
use tickerd::client::{Event, State};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
/// The longest value shown; the rest is cut with `…`.
const WIDTH: usize = 60;

/// One topic's line.
struct Row {
    value: String,
    /// The headline number, to tell the next move.
    number: Option<f64>,
    /// The last move of the headline number.
    change: Option<f64>,
    seq: u64,
    gone: bool,
}

/// The view: what is on screen, and how many lines it takes.
pub(super) struct View {
    state: String,
    rows: BTreeMap<String, Row>,
    drawn: usize,
    /// Something changed since the last drawing.
    dirty: bool,
}

impl View {
    /// How often the view is redrawn at most.
    pub(super) const EVERY: std::time::Duration = std::time::Duration::from_millis(50);

    pub(super) fn new() -> View {
        View {
            state: String::new(),
            rows: BTreeMap::new(),
            drawn: 0,
            dirty: false,
        }
    }

    /// Draws what changed since the last drawing, if anything did.
    pub(super) fn flush(&mut self) {
        if self.dirty {
            self.draw();
        }
    }

    /// The connection's state changed.
    pub(super) fn state(&mut self, state: &State) {
        let colour = match state {
            State::Live { .. } => GREEN,
            State::Connecting | State::Reconnecting { .. } => YELLOW,
            State::Closed => RED,
        };
        self.state = format!("{colour}● {state}{RESET}");
        self.dirty = true;
    }

    /// An update or a deleted topic.
    pub(super) fn event(&mut self, event: &Event) {
        match event {
            Event::Update(u) => {
                let number = headline(&u.data);
                let row = self.rows.entry(u.topic.clone()).or_insert(Row {
                    value: String::new(),
                    number: None,
                    change: None,
                    seq: 0,
                    gone: false,
                });
                row.change = match (row.number, number) {
                    (Some(a), Some(b)) if a != b => Some(b - a),
                    (_, Some(_)) if row.change.is_some() => row.change,
                    _ => None,
                };
                row.number = number;
                row.value = cut(&u.data.to_string());
                row.seq = u.seq;
                row.gone = false;
            }
            Event::Gone { topic } => {
                if let Some(row) = self.rows.get_mut(topic) {
                    row.gone = true;
                }
            }
        }
        self.dirty = true;
    }

    /// Moves up over the last drawing and writes every line again.
    fn draw(&mut self) {
        self.dirty = false;
        let width = self.rows.keys().map(String::len).max().unwrap_or(0);
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let topics = self.rows.len();
        // Cursor-up cannot climb past the top of the screen: show what fits.
        let room = screen_rows().saturating_sub(2).max(1);
        let shown = if topics > room { room - 1 } else { topics };
        let s = if topics == 1 { "" } else { "s" };
        text.push_str(&format!(
            "\r\x1b[2K{}  {DIM}{topics} topic{s}{RESET}\n",
            self.state
        ));
        for (topic, row) in self.rows.iter().take(shown) {
            let line = if row.gone {
                format!("{topic:<width$}  {DIM}gone{RESET}")
            } else {
                let (colour, change) = match row.change {
                    Some(c) if c > 0.0 => (GREEN, format!("▲ +{}", number(c))),
                    Some(c) if c < 0.0 => (RED, format!("▼ {}", number(c))),
                    _ => ("", String::new()),
                };
                format!(
                    "{topic:<width$}  {colour}{}{RESET}  {colour}{change}{RESET}  {DIM}#{}{RESET}",
                    row.value, row.seq
                )
            };
            text.push_str(&format!("\r\x1b[2K{line}\n"));
        }
        let mut drawn = shown + 1;
        if shown < topics {
            let more = topics - shown;
            text.push_str(&format!(
                "\r\x1b[2K{DIM}… {more} more (a larger terminal shows them){RESET}\n"
            ));
            drawn += 1;
        }
        // Lines of an earlier, taller drawing below this one are cleared.
        for _ in drawn..self.drawn {
            text.push_str("\r\x1b[2K\n");
        }
        self.drawn = drawn.max(self.drawn);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// The terminal's height in lines (24 when it cannot be told).
fn screen_rows() -> usize {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|w| usize::from(w.ws_row))
        .filter(|&rows| rows > 0)
        .unwrap_or(24)
}

/// The number a value moves by: the value itself, else its `price`, `value`
/// or `last` field, else its first numeric field.
fn headline(data: &Value) -> Option<f64> {
    match data {
        Value::Number(n) => n.as_f64(),
        Value::Object(map) => ["price", "value", "last"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_f64))
            .or_else(|| map.values().find_map(Value::as_f64)),
        _ => None,
    }
}

/// A move, without float noise.
fn number(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `text` cut to [`WIDTH`] characters.
fn cut(text: &str) -> String {
    if text.chars().count() <= WIDTH {
        return text.to_string();
    }
    let mut s: String = text.chars().take(WIDTH - 1).collect();
    s.push('…');
    s
}
