//! Server-to-client WebSocket frames read straight off the byte stream, for the
//! cheap client of the `scale` scenario (`gen --raw`): a few bytes of state per
//! connection, no copy of a payload unless asked for, so one generator core can
//! count millions of deliveries per second (tungstenite's per-message work is
//! what limits the ordinary client).
//!
//! Frames from a server are unmasked and, from the servers benchmarked, never
//! fragmented; a continuation frame is counted as "not an update".

/// What every delivery starts with, on tickerd and on the peers.
pub const UPDATE_PREFIX: &[u8] = br#"{"type":"update""#;

/// WebSocket opcodes this client acts on.
pub const TEXT: u8 = 0x1;
/// A Ping, answered with a Pong carrying the same payload.
pub const PING: u8 = 0x9;

/// One complete frame.
pub struct Frame<'a> {
    /// The opcode (low 4 bits of the first byte).
    pub opcode: u8,
    /// A text frame whose payload starts with [`UPDATE_PREFIX`].
    pub update: bool,
    /// The payload, when kept: always for control frames, for the others only
    /// while [`FrameReader::keep`] is set.
    pub payload: Option<&'a [u8]>,
}

/// The parsing state of one connection, carried from one read to the next.
#[derive(Default)]
pub struct FrameReader {
    /// Keep data frames' payloads (to read the ack, or to sample latency).
    pub keep: bool,
    /// Header bytes gathered so far (a header may be split over reads).
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes of the current frame still to come; `None` between frames.
    left: Option<u64>,
    opcode: u8,
    /// How much of [`UPDATE_PREFIX`] the payload matched so far; `None` once it
    /// did not.
    matched: Option<usize>,
    payload: Vec<u8>,
}

impl FrameReader {
    /// Between frames, keeping data payloads or not.
    pub fn new(keep: bool) -> Self {
        FrameReader {
            keep,
            ..Default::default()
        }
    }

    /// Feeds the bytes of one read; calls `on_frame` for each frame they complete.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while !bytes.is_empty() || self.left == Some(0) {
            let Some(left) = self.left else {
                // Gather the header: 2 bytes, then what they say follows.
                let need = header_len(&self.head[..self.head_len]);
                let take = (need - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
                self.head_len += take;
                bytes = &bytes[take..];
                if self.head_len == header_len(&self.head[..self.head_len]) {
                    self.start_frame();
                }
                continue;
            };
            let take = (left.min(bytes.len() as u64)) as usize;
            let (chunk, rest) = bytes.split_at(take);
            self.matched = self.matched.and_then(|m| {
                let n = (UPDATE_PREFIX.len() - m).min(chunk.len());
                (chunk[..n] == UPDATE_PREFIX[m..m + n]).then_some(m + n)
            });
            if self.keep || self.opcode >= 0x8 {
                self.payload.extend_from_slice(chunk);
            }
            bytes = rest;
            self.left = Some(left - take as u64);
            if self.left == Some(0) {
                let update = self.opcode == TEXT && self.matched == Some(UPDATE_PREFIX.len());
                let kept = self.keep || self.opcode >= 0x8;
                on_frame(Frame {
                    opcode: self.opcode,
                    update,
                    payload: kept.then_some(self.payload.as_slice()),
                });
                self.payload.clear();
                self.left = None;
            }
        }
    }

    /// The header is complete: note the opcode and the payload length.
    fn start_frame(&mut self) {
        let h = &self.head[..self.head_len];
        let len7 = u64::from(h[1] & 0x7f);
        let len = match len7 {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            n => n,
        };
        self.opcode = h[0] & 0x0f;
        self.matched = (self.opcode == TEXT).then_some(0);
        self.left = Some(len);
        self.head_len = 0;
    }
}

/// How long the header is, given its first bytes (2 until they are known).
fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// A client frame (masked, as RFC 6455 requires of clients) with `payload`.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x5a, 0x3c, 0xa5, 0xc3];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Frames split at every possible point between reads are counted the
    /// same: updates by their prefix, other text frames not, lengths past 125
    /// through the 16-bit length, empty frames too.
    #[test]
    fn counts_frames_whatever_the_read_boundaries() {
        let update = br#"{"type":"update","topic":"bench.s01","data":{"t":1}}"#;
        let long = [
            br#"{"type":"update","pad":""#.as_slice(),
            &[b'x'; 300],
            b"\"}",
        ]
        .concat();
        let mut stream = Vec::new();
        stream.extend(server_frame(TEXT, update));
        stream.extend(server_frame(TEXT, br#"{"type":"ack","id":1}"#));
        stream.extend(server_frame(TEXT, &long));
        stream.extend(server_frame(PING, b""));
        stream.extend(server_frame(TEXT, br#"{"type":"upd"#));
        for cut in 0..stream.len() {
            for keep in [false, true] {
                let mut r = FrameReader::new(keep);
                let mut seen = Vec::new();
                for part in [&stream[..cut], &stream[cut..]] {
                    r.feed(part, |f| {
                        seen.push((f.opcode, f.update, f.payload.map(<[u8]>::to_vec)))
                    });
                }
                let kinds: Vec<_> = seen.iter().map(|(o, u, _)| (*o, *u)).collect();
                assert_eq!(
                    kinds,
                    [
                        (TEXT, true),
                        (TEXT, false),
                        (TEXT, true),
                        (PING, false),
                        (TEXT, false)
                    ],
                    "cut at {cut}"
                );
                assert_eq!(
                    seen[3].2.as_deref(),
                    Some(&b""[..]),
                    "a ping's payload is kept"
                );
                let first = seen[0].2.as_deref();
                assert_eq!(first, keep.then_some(&update[..]), "cut at {cut}");
            }
        }
    }

    /// A client frame is masked and unmasks to its payload.
    #[test]
    fn client_frames_are_masked() {
        let f = client_frame(TEXT, b"hello");
        assert_eq!(f[0], 0x81);
        assert_eq!(f[1], 0x80 | 5);
        let key = &f[2..6];
        let text: Vec<u8> = (f[6..].iter().enumerate())
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(text, b"hello");
    }
}
