//! Unit tests of `transport`.

use super::*;
use crate::delivery::BATCH_LIMIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Frames gather until flush, go out in order, and leave no buffer
/// behind.
#[tokio::test]
async fn batch_io_gathers_until_flush_and_frees_its_buffer() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut io = BatchIo::new(a);
    io.outgoing.push_text([&b"hello "[..]]);
    io.write_all(b"world").await.unwrap();
    assert_eq!(
        io.outgoing.lock().pending.len(),
        13,
        "nothing written before flush"
    );
    io.flush().await.unwrap();
    {
        let out = io.outgoing.lock();
        assert_eq!(out.pending.capacity(), 0, "buffer freed after flush");
        assert_eq!(out.sending.capacity(), 0, "buffer freed after flush");
    }
    let mut got = [0u8; 13];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x81\x06hello world");
}

/// Past BATCH_LIMIT a write pushes what is buffered out first.
#[tokio::test]
async fn batch_io_writes_through_past_its_limit() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut io = BatchIo::new(a);
    let chunk = vec![7u8; BATCH_LIMIT];
    io.write_all(&chunk).await.unwrap();
    io.write_all(b"x").await.unwrap();
    assert_eq!(
        io.outgoing.lock().pending.len(),
        1,
        "the full buffer went out before the next write"
    );
    let mut got = vec![0u8; BATCH_LIMIT];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, chunk);
}

/// Encoded frames carry the right header for each length form and parse
/// back as text frames of the same payload.
#[test]
fn text_frames_encode_all_three_length_forms() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    for len in [0, 125, 126, 65_535, 65_536] {
        let payload = vec![b'a'; len];
        let mut buf = Vec::new();
        encode_text(&mut buf, &payload);
        let mut cursor = std::io::Cursor::new(&buf[..]);
        let (header, n) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert!(header.is_final);
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert!(header.mask.is_none());
        assert_eq!(n, len as u64);
        assert_eq!(&buf[cursor.position() as usize..], &payload[..]);
    }
}

/// A connected pair on 127.0.0.1: (the server's side, the client's).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (accepted.unwrap().0, client.unwrap())
}

/// The server side's [`BatchIo`] over a [`SharedTcp`], and its handle.
fn shared(tcp: TcpStream) -> (BatchIo<SharedTcp>, Outgoing) {
    let outgoing = Outgoing::new(Some(tcp));
    let io = SharedTcp {
        wire: outgoing.clone(),
        read_buf: Bytes::new(),
    };
    (BatchIo::with_outgoing(io, outgoing.clone()), outgoing)
}

/// Reads one unmasked frame; returns its first byte and payload.
async fn read_frame(c: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    c.read_exact(&mut head).await.unwrap();
    let len = match head[1] {
        126 => usize::from(c.read_u16().await.unwrap()),
        127 => c.read_u64().await.unwrap() as usize,
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// Direct writes go out whole and in order: once the peer stops
/// reading and the socket fills, what it took part of is finished by
/// the next flush, ahead of the frames gathered meanwhile, and no direct
/// write overtakes them.
#[tokio::test]
async fn direct_writes_stay_whole_and_in_order_when_the_socket_fills() {
    let (server, mut client) = tcp_pair().await;
    socket2::SockRef::from(&server)
        .set_send_buffer_size(8192)
        .unwrap();
    let (mut io, outgoing) = shared(server);
    assert_eq!(outgoing.write_now(b"first"), Wrote::All);
    let big = vec![b'x'; 50_000];
    let mut taken = 0;
    let last = loop {
        match outgoing.write_now(&big) {
            Wrote::All if taken < 10_000 => taken += 1,
            other => break other,
        }
    };
    assert_ne!(
        last,
        Wrote::All,
        "a peer that does not read fills the socket"
    );
    if last == Wrote::Part {
        taken += 1;
    }
    assert_eq!(outgoing.write_now(b"late"), Wrote::Nothing);
    outgoing.push_text([&b"gathered"[..]]);
    let reader = tokio::spawn(async move {
        let mut got = vec![read_frame(&mut client).await];
        for _ in 0..taken + 1 {
            got.push(read_frame(&mut client).await);
        }
        got
    });
    io.flush().await.unwrap();
    let got = reader.await.unwrap();
    assert!(got.iter().all(|(b0, _)| *b0 == 0x81), "whole text frames");
    assert_eq!(got[0].1, b"first");
    assert!(got[1..=taken].iter().all(|(_, p)| *p == big));
    assert_eq!(got[taken + 1].1, b"gathered");
    assert_eq!(outgoing.write_now(b"now"), Wrote::All, "idle again");
}

/// Once the writer sealed the connection (a Close is on its way), neither
/// a direct write nor the writer's frames follow tungstenite's Close.
#[tokio::test]
async fn nothing_follows_a_close_frame() {
    let (server, mut client) = tcp_pair().await;
    let (mut io, outgoing) = shared(server);
    outgoing.seal();
    // A Pong, then a Close (1000) in one write, as tungstenite may.
    io.write_all(&[0x8A, 0x00, 0x88, 0x02, 0x03, 0xE8])
        .await
        .unwrap();
    assert_eq!(outgoing.write_now(b"late"), Wrote::Nothing);
    assert_eq!(outgoing.push_text([&b"late"[..]]), 6, "nothing appended");
    io.flush().await.unwrap();
    drop((io, outgoing));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, [0x8A, 0x00, 0x88, 0x02, 0x03, 0xE8]);
}

/// Once the peer closed, tungstenite's frames go into the socket as they
/// are written, after what was gathered before them, with no flush: the
/// Close reply reaches the peer.
#[tokio::test]
async fn the_close_reply_goes_out_without_a_flush() {
    let (server, mut client) = tcp_pair().await;
    let (mut io, outgoing) = shared(server);
    outgoing.push_text([&b"a"[..]]);
    outgoing.peer_closed();
    io.write_all(&[0x88, 0x02, 0x03, 0xE8]).await.unwrap();
    let mut got = [0u8; 7];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [0x81, 0x01, b'a', 0x88, 0x02, 0x03, 0xE8]);
}
