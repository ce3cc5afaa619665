//! Unit tests of `read`: what a client may send, and what each hostile
//! frame fails with, over a real socket.

use super::*;
use crate::ws::transport::{over_tcp, tests::tcp_pair};
use tokio::io::AsyncWriteExt;

const MAX: usize = 64;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame as tungstenite (a client's framing) writes it: `first`
/// (FIN, RSV and opcode bits), the payload masked with `mask`.
fn framed(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let header = FrameHeader {
        is_final: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        rsv2: first & 0x20 != 0,
        rsv3: first & 0x10 != 0,
        opcode: OpCode::from(first & 0x0F),
        mask,
    };
    let mut out = Vec::new();
    Frame::from_payload(header, payload.to_vec().into())
        .format(&mut out)
        .unwrap();
    out
}

fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    framed(first, payload, Some(MASK))
}

fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    framed(first, payload, None)
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(0x88, &payload)
}

/// What reading `bytes` gives: the messages, then how it ended (the Close
/// code a failure gets, or 0 for the end of the stream).
async fn read_all(bytes: Vec<u8>, step: usize) -> (Vec<Message>, u16) {
    let (server, mut client) = tcp_pair().await;
    let mut incoming = over_tcp(server, &[]);
    let writer = tokio::spawn(async move {
        for chunk in bytes.chunks(step.max(1)) {
            client.write_all(chunk).await.unwrap();
            client.flush().await.unwrap();
        }
        // The end of the stream: the reader sees EOF once it has the rest.
        client.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::new();
    let end = loop {
        match incoming.next(MAX).await {
            Ok(m) => got.push(m),
            Err(ReadError::Eof) => break 0,
            Err(e) => match e.close() {
                Closing::Code(code, _) => break code,
                other => panic!("{e}: {other:?}"),
            },
        }
    };
    drop(writer);
    (got, end)
}

fn text(s: &str) -> Message {
    Message::Text(s.to_owned())
}

/// Every row: the bytes a client sends, the messages read, and the Close
/// code that ends it (0: it ended with the stream). Each row is read whole
/// and byte by byte.
#[tokio::test]
async fn client_frames_are_read_or_refused_with_the_right_code() {
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let long = vec![b'a'; MAX + 1];
    let rows: Vec<(&str, Vec<u8>, Vec<Message>, u16)> = vec![
        ("text", frame(0x81, b"hi"), vec![text("hi")], 0),
        ("empty text", frame(0x81, b""), vec![text("")], 0),
        ("binary", frame(0x82, b"\x00\x01"), vec![Message::Binary], 0),
        (
            "two texts in one read",
            cat(&[frame(0x81, b"a"), frame(0x81, b"b")]),
            vec![text("a"), text("b")],
            0,
        ),
        (
            "fragments with a Ping and a Pong between",
            cat(&[
                frame(0x01, b"he"),
                frame(0x89, b"p"),
                frame(0x8A, b"q"),
                frame(0x00, b"l"),
                frame(0x80, b"lo"),
            ]),
            vec![Message::Ping(b"p".to_vec()), Message::Pong, text("hello")],
            0,
        ),
        (
            "a character split across fragments",
            cat(&[
                frame(0x01, &"é".as_bytes()[..1]),
                frame(0x80, &"é".as_bytes()[1..]),
            ]),
            vec![text("é")],
            0,
        ),
        (
            "a frame of the most bytes",
            frame(0x81, &[b'a'; MAX]),
            vec![text(&"a".repeat(MAX))],
            0,
        ),
        (
            "close without a code",
            frame(0x88, b""),
            vec![Message::Close(None)],
            0,
        ),
        (
            "close 1000 with a reason",
            close(1000, b"bye"),
            vec![Message::Close(Some((1000, "bye".into())))],
            0,
        ),
        (
            "close 4000 (an application's code)",
            close(4000, b""),
            vec![Message::Close(Some((4000, "".into())))],
            0,
        ),
        (
            "close 1005 (may not be sent): answered with 1002",
            close(1005, b""),
            vec![Message::Close(Some((1002, "Protocol violation".into())))],
            0,
        ),
        (
            "close 999: answered with 1002",
            close(999, b""),
            vec![Message::Close(Some((1002, "Protocol violation".into())))],
            0,
        ),
        ("invalid UTF-8 text", frame(0x81, b"\xff"), vec![], 1007),
        (
            "invalid UTF-8 in a first fragment (failed at once)",
            frame(0x01, b"\xc3\x28"),
            vec![],
            1007,
        ),
        (
            "a fragmented text ending mid-character",
            cat(&[frame(0x01, b"a"), frame(0x80, b"\xc3")]),
            vec![],
            1007,
        ),
        (
            "invalid UTF-8 in a Close reason",
            close(1000, b"\xff"),
            vec![],
            1007,
        ),
        ("an unmasked frame", unmasked(0x81, b"hi"), vec![], 1002),
        ("RSV1 set", frame(0xC1, b"hi"), vec![], 1002),
        ("RSV3 set", frame(0x91, b"hi"), vec![], 1002),
        ("reserved data opcode 3", frame(0x83, b""), vec![], 1002),
        ("reserved control opcode 11", frame(0x8B, b""), vec![], 1002),
        ("a fragmented Ping", frame(0x09, b""), vec![], 1002),
        (
            "a Ping over 125 bytes",
            frame(0x89, &[0; 126]),
            vec![],
            1002,
        ),
        ("a Close of one byte", frame(0x88, b"\x03"), vec![], 1002),
        ("a continuation of nothing", frame(0x80, b"x"), vec![], 1002),
        (
            "a new message inside a fragmented one",
            cat(&[frame(0x01, b"a"), frame(0x81, b"b")]),
            vec![],
            1002,
        ),
        ("a frame past the limit", frame(0x81, &long), vec![], 1009),
        (
            "fragments past the limit",
            cat(&[frame(0x01, &long[..MAX]), frame(0x80, b"b")]),
            vec![],
            1009,
        ),
    ];
    for (name, bytes, want, code) in rows {
        for step in [bytes.len(), 1] {
            let (got, end) = read_all(bytes.clone(), step).await;
            assert_eq!((&got, end), (&want, code), "{name}, {step} bytes at a time");
        }
    }
}

/// A frame whose header announces more than the limit is refused before
/// its payload arrives (the peer need not send it).
#[tokio::test]
async fn a_frame_past_the_limit_is_refused_from_its_header() {
    let mut head = frame(0x82, b"");
    head[1] = 0x80 | 127;
    head.splice(2..2, (u64::MAX >> 1).to_be_bytes());
    let (got, end) = read_all(head, 1).await;
    assert_eq!((got, end), (vec![], 1009));
}

/// Between frames an idle connection holds no read buffer, and what the
/// HTTP server read past the upgrade is read first.
#[tokio::test]
async fn between_frames_no_buffer_is_held() {
    let (server, mut client) = tcp_pair().await;
    let mut incoming = over_tcp(server, &frame(0x81, b"early"));
    assert_eq!(incoming.next(MAX).await.unwrap(), text("early"));
    assert_eq!(incoming.buf.capacity(), 0);
    let two = [frame(0x81, b"a"), frame(0x01, b"b")].concat();
    client.write_all(&two).await.unwrap();
    assert_eq!(incoming.next(MAX).await.unwrap(), text("a"));
    client.write_all(&frame(0x80, b"c")).await.unwrap();
    assert_eq!(incoming.next(MAX).await.unwrap(), text("bc"));
    assert_eq!(incoming.buf.capacity(), 0);
    assert!(incoming.partial.is_none());
}

/// A header announcing a frame of the most bytes, and nothing after it,
/// does not make the reader hold that much: it holds what arrived.
#[tokio::test]
async fn a_header_alone_does_not_reserve_its_frame() {
    let (server, mut client) = tcp_pair().await;
    let mut incoming = over_tcp(server, &[]);
    let big = 1 << 20;
    let header = &frame(0x81, &vec![b'a'; big])[..14]; // 2 + 8 (length) + 4 (mask)
    client.write_all(header).await.unwrap();
    // Polled until the reader has the header (what it keeps is then known).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while incoming.buf.len() < header.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the header never came"
        );
        let polled = futures_util::poll!(incoming.next(big));
        assert!(polled.is_pending(), "no whole frame came: {polled:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        incoming.buf.capacity() < 4096,
        "{}",
        incoming.buf.capacity()
    );
}
