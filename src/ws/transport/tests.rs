//! Unit tests of `transport`.

use super::*;
use tokio::io::AsyncReadExt;

/// A connected pair on 127.0.0.1: (the server's side, the client's).
pub(in crate::ws) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (accepted.unwrap().0, client.unwrap())
}

/// The server side's write handle over a TCP socket.
fn outgoing(tcp: TcpStream) -> Outgoing {
    over_tcp(tcp, &[]).outgoing().clone()
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

/// Frames gather until flush, go out in order, and leave no buffer
/// behind.
#[tokio::test]
async fn frames_gather_until_flush_and_free_their_buffer() {
    let (server, mut client) = tcp_pair().await;
    let out = outgoing(server);
    out.push_text([&b"hello"[..], b"world"]);
    out.ping();
    assert_eq!(out.lock().pending.len(), 16, "nothing written before flush");
    out.flush().await.unwrap();
    {
        let o = out.lock();
        assert_eq!(o.pending.capacity(), 0, "buffer freed after flush");
        assert_eq!(o.sending.capacity(), 0, "buffer freed after flush");
    }
    let mut got = [0u8; 16];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x81\x05hello\x81\x05world\x89\x00");
}

/// Encoded frames carry the right header for each length form and parse
/// back (with tungstenite's parser) as text frames of the same payload.
#[test]
fn text_frames_encode_all_three_length_forms() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    for len in [0, 125, 126, 65_535, 65_536] {
        let payload = vec![b'a'; len];
        let mut buf = Vec::new();
        encode(&mut buf, TEXT, &payload);
        let mut cursor = std::io::Cursor::new(&buf[..]);
        let (header, n) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert!(header.is_final);
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert!(header.mask.is_none());
        assert_eq!(n, len as u64);
        assert_eq!(&buf[cursor.position() as usize..], &payload[..]);
    }
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
    let outgoing = outgoing(server);
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
    outgoing.flush().await.unwrap();
    let got = reader.await.unwrap();
    assert!(got.iter().all(|(b0, _)| *b0 == 0x81), "whole text frames");
    assert_eq!(got[0].1, b"first");
    assert!(got[1..=taken].iter().all(|(_, p)| *p == big));
    assert_eq!(got[taken + 1].1, b"gathered");
    assert_eq!(outgoing.write_now(b"now"), Wrote::All, "idle again");
}

/// A Close goes out after what was gathered before it, and nothing
/// follows it: no direct write, no gathered frame, no Ping or Pong, no
/// second Close.
#[tokio::test]
async fn nothing_follows_a_close_frame() {
    let (server, mut client) = tcp_pair().await;
    let out = outgoing(server);
    out.push_text([&b"a"[..]]);
    out.close(Some((1000, "")));
    assert_eq!(out.write_now(b"late"), Wrote::Nothing);
    out.push_text([&b"late"[..]]);
    out.ping();
    assert!(!out.pong(b"p"), "no Pong after a Close");
    out.close(Some((1001, "again")));
    out.flush().await.unwrap();
    drop(out);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, [0x81, 0x01, b'a', 0x88, 0x02, 0x03, 0xE8]);
}

/// A sealed connection takes no more data frames, but its Close still
/// goes out (with no code when it has none to give).
#[tokio::test]
async fn a_sealed_connection_still_sends_its_close() {
    let (server, mut client) = tcp_pair().await;
    let out = outgoing(server);
    out.seal();
    assert_eq!(out.write_now(b"late"), Wrote::Nothing);
    out.push_text([&b"late"[..]]);
    out.close(None);
    out.flush().await.unwrap();
    drop(out);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, [0x88, 0x00]);
}

/// A Pong goes into the socket at once when nothing is ahead of it; behind
/// gathered frames it waits for the writer's flush, and Pings meanwhile get
/// no second Pong.
#[tokio::test]
async fn pongs_go_at_once_or_wait_behind_gathered_frames_one_at_a_time() {
    let (server, mut client) = tcp_pair().await;
    let out = outgoing(server);
    assert!(!out.pong(b"1"), "written at once");
    assert_eq!(read_frame(&mut client).await, (0x8A, b"1".to_vec()));
    out.push_text([&b"a"[..]]);
    assert!(out.pong(b"2"), "behind a gathered frame: the writer's");
    assert!(!out.pong(b"3"), "one Pong owed at a time");
    out.flush().await.unwrap();
    assert_eq!(read_frame(&mut client).await, (0x81, b"a".to_vec()));
    assert_eq!(read_frame(&mut client).await, (0x8A, b"2".to_vec()));
    assert!(!out.pong(b"4"), "idle again: written at once");
    assert_eq!(read_frame(&mut client).await, (0x8A, b"4".to_vec()));
}
