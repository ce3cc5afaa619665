//! The one bound on what a feed reads from its source: `max_item_bytes` (the
//! feed's own, else `[limits] max_item_bytes`). Every kind reads through these
//! helpers, so an upstream can never make a feed hold more than about that
//! much for one item, whatever the kind:
//!
//! - a whole body or output ([`read_capped`], [`collect_capped`]) is read to
//!   at most `max + 1` bytes and refused past `max`;
//! - a stream of lines ([`CappedLines`]) drops a line that passes `max` as
//!   soon as it does, skips to the next newline (resynchronised), and goes on;
//! - SSE events and WebSocket messages are capped by their own parsers with
//!   the same figure.
//!
//! Every refusal is an [`ItemTooLarge`], whose message names the size and the
//! setting, and which the kind turns into an error of the feed (counted on
//! `$sys.feeds`); nothing oversized is ever published. This module never
//! publishes or reports anything itself.

use std::io;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// An item larger than `max_item_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct ItemTooLarge {
    /// The item's size, when it is known (a declared length, a whole line that
    /// was skipped); `None` when reading stopped at the cap.
    pub len: Option<u64>,
    /// The cap it passed.
    pub max: usize,
}

impl std::fmt::Display for ItemTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.len {
            Some(n) => write!(f, "item of {n} bytes")?,
            None => write!(f, "item of more than {} bytes", self.max)?,
        }
        write!(f, " exceeds max_item_bytes = {}", self.max)
    }
}

/// Refuses an item of `len` bytes over `max`: the check for sources that learn
/// an item's size before decoding it (a broker message, a row, a series).
///
/// # Errors
/// `len` is over `max`.
pub(crate) fn check_len(len: usize, max: usize) -> Result<(), ItemTooLarge> {
    if len > max {
        return Err(ItemTooLarge {
            len: Some(len as u64),
            max,
        });
    }
    Ok(())
}

/// Reads `reader` to its end, refusing it past `max` bytes (of which at most
/// `max + 1` are ever held).
///
/// # Errors
/// The read failed (outer), or the content passed `max` (inner).
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(
    reader: R,
    max: usize,
) -> io::Result<Result<Vec<u8>, ItemTooLarge>> {
    let mut out = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut out).await?;
    Ok(if out.len() > max {
        Err(ItemTooLarge { len: None, max })
    } else {
        Ok(out)
    })
}

/// Collects a stream of chunks (an HTTP body), refusing it past `max` bytes.
///
/// # Errors
/// A chunk failed (outer), or the content passed `max` (inner).
pub(crate) async fn collect_capped<S, B, E>(
    mut chunks: S,
    max: usize,
) -> Result<Result<Vec<u8>, ItemTooLarge>, E>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        if out.len() + chunk.len() > max {
            return Ok(Err(ItemTooLarge { len: None, max }));
        }
        out.extend_from_slice(chunk);
    }
    Ok(Ok(out))
}

/// Lines of at most `max` bytes from a buffered reader. A longer line is
/// reported once, as soon as it passes `max`, and the rest of it is skipped
/// without being held.
#[derive(Debug)]
pub(crate) struct CappedLines<R> {
    reader: R,
    max: usize,
    line: Vec<u8>,
    /// Inside a line that passed `max`: skip to its newline.
    skipping: bool,
}

impl<R: AsyncBufRead + Unpin> CappedLines<R> {
    /// Lines of `reader`, each at most `max` bytes (newline not counted).
    pub(crate) fn new(reader: R, max: usize) -> Self {
        CappedLines {
            reader,
            max,
            line: Vec::new(),
            skipping: false,
        }
    }

    /// The next line (without its `\n` or `\r\n`, invalid UTF-8 replaced), or
    /// `None` at the end (an unfinished last line is returned first).
    ///
    /// # Errors
    /// The read failed (outer), or a line passed `max` (inner; the next call
    /// goes on after that line).
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<Result<String, ItemTooLarge>>> {
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Ok(self.take_line())));
            }
            let (used, end) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, Some(i)),
                None => (buf.len(), None),
            };
            let part = &buf[..end.unwrap_or(used)];
            let passed = !self.skipping && self.line.len() + part.len() > self.max;
            if !self.skipping && !passed {
                self.line.extend_from_slice(part);
            }
            self.reader.consume(used);
            if passed {
                self.line = Vec::new();
                self.skipping = end.is_none();
                return Ok(Some(Err(ItemTooLarge {
                    len: None,
                    max: self.max,
                })));
            }
            if end.is_some() {
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                return Ok(Some(Ok(self.take_line())));
            }
        }
    }

    fn take_line(&mut self) -> String {
        let line = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&line);
        text.strip_suffix('\r').unwrap_or(&text).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line past the cap is reported once and skipped; the lines around it
    /// come through whole, whatever the read sizes.
    #[tokio::test]
    async fn an_overlong_line_is_skipped_and_the_stream_resynchronised() {
        let long = "x".repeat(50);
        let text = format!("one\r\n{long}\ntwo\n{long}");
        // A tiny buffer: lines arrive in many reads.
        let reader = tokio::io::BufReader::with_capacity(4, text.as_bytes());
        let mut lines = CappedLines::new(reader, 10);
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line.map_err(|e| e.to_string()));
        }
        let too_large = Err("item of more than 10 bytes exceeds max_item_bytes = 10".to_string());
        assert_eq!(
            got,
            vec![
                Ok("one".to_string()),
                too_large.clone(),
                Ok("two".to_string()),
                too_large
            ]
        );
        assert!(lines.line.capacity() <= 16, "no oversized line is held");
    }

    /// Whole reads stop at the cap.
    #[tokio::test]
    async fn whole_reads_stop_at_the_cap() {
        let fits = read_capped(&b"12345"[..], 5).await.unwrap();
        assert_eq!(fits.unwrap(), b"12345");
        let over = read_capped(&b"123456"[..], 5).await.unwrap();
        assert_eq!(over, Err(ItemTooLarge { len: None, max: 5 }));
        let chunks = futures_util::stream::iter([Ok::<_, ()>(vec![1u8; 4]), Ok(vec![2u8; 4])]);
        assert!(collect_capped(chunks, 7).await.unwrap().is_err());
    }
}
