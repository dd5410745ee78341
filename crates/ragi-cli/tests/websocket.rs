//! WebSocket through the probe, over real sockets: the RFC 6455 handshake and its refusals,
//! echo, fragmentation, ping/pong, every close code and disconnect reason, compression
//! negotiation, keep-alive, idle timeout, backpressure, shutdown, the lifecycle notices, and a
//! real client (`tokio-tungstenite`).
//!
//! The raw client here writes masked frames by hand so that it can also do what a broken or
//! hostile client does.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use support::{Conn, End, Fill, Server};

/// RFC 6455 §1.3's example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

struct Ws {
    c: Conn,
}

fn frame_bytes(fin: bool, rsv1: bool, opcode: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
    let m = if mask { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else if payload.len() <= 0xffff {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    if mask {
        let key = [0x37u8, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

impl Ws {
    /// Opens a connection and completes the handshake for `path`, with `extra` header lines.
    fn open(s: &Server, path: &str, extra: &str) -> (Ws, support::Response) {
        let mut c = s.connect();
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
            s.hostport()
        ));
        let r = c.read_head_only(Duration::from_secs(5));
        (Ws { c }, r)
    }

    fn connect(s: &Server, path: &str) -> Ws {
        let (ws, r) = Ws::open(s, path, "");
        assert_eq!(r.status, 101, "{r}");
        ws
    }

    fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.c.send(frame_bytes(fin, false, opcode, payload, true));
    }

    fn send_text(&mut self, t: &str) {
        self.send_frame(true, TEXT, t.as_bytes());
    }

    fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(true, CLOSE, &p);
    }

    /// The next frame, or how the connection ended.
    fn read_frame(&mut self, timeout: Duration) -> Result<Frame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((f, n)) = parse_frame(&self.c.buf) {
                self.c.buf.drain(..n);
                return Ok(f);
            }
            match self.c.fill(deadline) {
                Fill::Data(_) => {}
                Fill::End(e) => return Err(format!("ended: {e:?}")),
                Fill::Timeout => return Err("timeout".to_owned()),
            }
        }
    }

    fn expect_frame(&mut self) -> Frame {
        self.read_frame(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("expected a frame: {e}"))
    }

    /// Reads frames until a close frame; pings are skipped.
    fn expect_close_frame(&mut self) -> Frame {
        loop {
            let f = self.expect_frame();
            if f.opcode == CLOSE {
                return f;
            }
        }
    }

    /// After a close frame: the server closes TCP.
    fn expect_tcp_close(&mut self) -> End {
        let (_, end) = self.c.expect_close(Duration::from_secs(5));
        end
    }
}

fn parse_frame(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
    let (len, mut off) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([b[2], b[3]]) as usize, 4)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            )
        }
        n => (n as usize, 2),
    };
    if b.len() < off + len {
        return None;
    }
    let payload = b[off..off + len].to_vec();
    off += len;
    Some((
        Frame {
            fin: b[0] & 0x80 != 0,
            rsv1: b[0] & 0x40 != 0,
            opcode: b[0] & 0x0f,
            payload,
        },
        off,
    ))
}

// ----- handshake ------------------------------------------------------------------------------

#[test]
fn handshake_answers_101_with_the_accept_key_and_echoes() {
    let s = Server::start(&[]);
    let (mut ws, r) = Ws::open(&s, "/ws/echo", "");
    assert_eq!(r.status, 101, "{r}");
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    assert!(r.has_token("connection", "upgrade"), "{r}");
    assert!(r.has_token("upgrade", "websocket"), "{r}");
    assert_eq!(r.header("sec-websocket-extensions"), None);
    ws.send_text("hello");
    let f = ws.expect_frame();
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, TEXT, &b"hello"[..])
    );
    ws.send_frame(true, BINARY, &[0, 1, 2, 255]);
    let f = ws.expect_frame();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (BINARY, &[0u8, 1, 2, 255][..])
    );
    // A 100 KiB binary message (64-bit length).
    let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    ws.send_frame(true, BINARY, &big);
    let f = ws.expect_frame();
    assert_eq!(f.payload, big);
}

#[test]
fn the_root_path_takes_a_websocket_too() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/");
    ws.send_text("root");
    assert_eq!(ws.expect_frame().payload, b"root");
}

#[test]
fn a_wrong_version_is_426_and_a_bad_key_400() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "GET /ws/echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 426, "{r}");
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let mut c = s.connect();
    c.send(format!(
        "GET /ws/echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.hostport()
    ));
    assert_eq!(c.read_response().status, 400);
    // The server goes on.
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn subprotocols_are_negotiated() {
    let s = Server::start(&[]);
    let (_ws, r) = Ws::open(
        &s,
        "/ws/echo?subprotocol=first",
        "Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n",
    );
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), Some("chat.v2"));
    let (_ws, r) = Ws::open(&s, "/ws/echo", "Sec-WebSocket-Protocol: chat.v2\r\n");
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-protocol"), None);
}

#[test]
fn the_app_can_deny_with_any_response_or_close_for_403() {
    let s = Server::start(&[]);
    let (mut ws, r) = Ws::open(&s, "/ws/echo?deny=418", "");
    assert_eq!(r.status, 418, "{r}");
    let (rest, _) = ws.c.expect_close(Duration::from_secs(5));
    assert_eq!(rest, b"denied");
    let (_ws, r) = Ws::open(&s, "/ws/echo?reject=1", "");
    assert_eq!(r.status, 403, "{r}");
    let (_ws, r) = Ws::open(&s, "/ws/nowhere", "");
    assert_eq!(r.status, 404, "{r}");
}

// ----- messages -------------------------------------------------------------------------------

#[test]
fn fragments_with_pings_between_them_make_one_message() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo");
    ws.send_frame(false, TEXT, b"Hel");
    ws.send_frame(true, PING, b"p1");
    ws.send_frame(false, CONT, "lo, ".as_bytes());
    ws.send_frame(true, CONT, "wörld".as_bytes());
    let pong = ws.expect_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"p1"[..]));
    let f = ws.expect_frame();
    assert_eq!((f.opcode, f.fin), (TEXT, true));
    assert_eq!(String::from_utf8(f.payload).unwrap(), "Hello, wörld");
}

// ----- ends -----------------------------------------------------------------------------------

#[test]
fn a_client_close_is_answered_and_reported() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/cc1");
    s.wait_seen("cc1", Duration::from_secs(5));
    ws.send_close(1000, "bye");
    let f = ws.expect_frame();
    assert_eq!(f.close_code(), Some(1000));
    assert_eq!(ws.expect_tcp_close(), End::Eof);
    let v = observed_json(&s, "cc1");
    assert_eq!(v["reason"], "client_closed", "{v}");
    assert_eq!(v["ws_code"], 1000, "{v}");
    assert_eq!(v["ws_reason"], "bye", "{v}");
}

#[test]
fn a_close_without_code_is_1005_for_the_app() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/cc2");
    ws.send_frame(true, CLOSE, b"");
    let f = ws.expect_frame();
    assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0));
    let v = observed_json(&s, "cc2");
    assert_eq!(v["ws_code"], 1005, "{v}");
    assert_eq!(v["ws_reason"], "client_closed", "{v}");
}

#[test]
fn fin_and_rst_without_a_close_frame_are_1006() {
    let s = Server::start(&[]);
    let ws = Ws::connect(&s, "/ws/echo/fin1");
    s.wait_seen("fin1", Duration::from_secs(5));
    ws.c.shutdown_write();
    let v = observed_json(&s, "fin1");
    assert_eq!(v["reason"], "client_closed", "{v}");
    assert_eq!(v["ws_code"], 1006, "{v}");
    assert!(v["after_ms"].as_f64().unwrap() < 5000.0);

    let ws = Ws::connect(&s, "/ws/hold/rst1");
    s.wait_seen("rst1", Duration::from_secs(5));
    let t = Instant::now();
    ws.c.reset();
    let o = s.observed("rst1", 3000);
    assert_eq!(o.reason.as_deref(), Some("read_error"), "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn the_app_closing_completes_the_session() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/ac1?close=4000");
    let f = ws.expect_close_frame();
    assert_eq!(f.close_code(), Some(4000));
    assert_eq!(&f.payload[2..], b"probe closes");
    ws.send_close(4000, "");
    assert_eq!(ws.expect_tcp_close(), End::Eof);
    let v = observed_json(&s, "ac1");
    assert_eq!(v["completed"], true, "{v}");
    assert_eq!(v["reason"], serde_json::Value::Null, "{v}");
    assert_eq!(v["ws_code"], 4000, "{v}");
}

#[test]
fn invalid_utf8_is_1007_and_a_protocol_error() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/u1");
    ws.send_frame(
        true,
        TEXT,
        &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xff, 0x80],
    );
    let f = ws.expect_close_frame();
    assert_eq!(f.close_code(), Some(1007));
    let v = observed_json(&s, "u1");
    assert_eq!(v["reason"], "protocol_error", "{v}");
    assert_eq!(v["ws_code"], 1007, "{v}");
    assert_eq!(ws.expect_tcp_close(), End::Eof);
}

#[test]
fn frame_violations_are_1002() {
    let s = Server::start(&[]);
    // An unmasked client frame.
    let mut ws = Ws::connect(&s, "/ws/echo/p1");
    ws.c.send(frame_bytes(true, false, TEXT, b"x", false));
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
    let v = observed_json(&s, "p1");
    assert_eq!(v["reason"], "protocol_error", "{v}");
    assert_eq!(v["ws_code"], 1002, "{v}");
    // A reserved opcode.
    let mut ws = Ws::connect(&s, "/ws/echo/p2");
    ws.send_frame(true, 0x3, b"");
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
    // RSV1 without an extension.
    let mut ws = Ws::connect(&s, "/ws/echo/p3");
    ws.c.send(frame_bytes(true, true, TEXT, b"x", true));
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
    // A continuation with nothing to continue.
    let mut ws = Ws::connect(&s, "/ws/echo/p4");
    ws.send_frame(true, CONT, b"x");
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
    // A fragmented ping.
    let mut ws = Ws::connect(&s, "/ws/echo/p5");
    ws.send_frame(false, PING, b"x");
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
    // An invalid close code.
    let mut ws = Ws::connect(&s, "/ws/echo/p6");
    ws.send_close(1005, "");
    assert_eq!(ws.expect_close_frame().close_code(), Some(1002));
}

#[test]
fn a_message_over_the_limit_is_1009() {
    let s = Server::start(&["--ws-max-message-size", "1000"]);
    let mut ws = Ws::connect(&s, "/ws/echo/big1");
    ws.send_frame(true, BINARY, &[7u8; 1000]);
    assert_eq!(ws.expect_frame().payload.len(), 1000);
    ws.send_frame(false, BINARY, &[7u8; 600]);
    ws.send_frame(true, CONT, &[7u8; 600]);
    assert_eq!(ws.expect_close_frame().close_code(), Some(1009));
    let v = observed_json(&s, "big1");
    assert_eq!(v["reason"], "body_too_large", "{v}");
    assert_eq!(v["ws_code"], 1009, "{v}");
}

#[test]
fn a_receive_queue_overflow_is_1008() {
    let s = Server::start(&["--ws-max-queue", "10"]);
    let mut ws = Ws::connect(&s, "/ws/hold/q1");
    s.wait_seen("q1", Duration::from_secs(5));
    for i in 0..11 {
        ws.send_text(&format!("m{i}"));
    }
    assert_eq!(ws.expect_close_frame().close_code(), Some(1008));
    let o = s.observed("q1", 3000);
    assert_eq!(o.reason.as_deref(), Some("queue_overflow"), "{o:?}");
}

#[test]
fn a_missing_pong_ends_with_keepalive_timeout() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/k1?keepalive_ms=50&pong_timeout_ms=100");
    let f = ws.expect_frame();
    assert_eq!(f.opcode, PING);
    // Never answer: the server drops the connection without a close frame.
    let end = loop {
        match ws.read_frame(Duration::from_secs(5)) {
            Ok(f) => assert_eq!(f.opcode, PING, "only pings before the end: {f:?}"),
            Err(e) => break e,
        }
    };
    assert!(end.starts_with("ended"), "{end}");
    let v = observed_json(&s, "k1");
    assert_eq!(v["reason"], "keepalive_timeout", "{v}");
    assert_eq!(v["ws_code"], 1006, "{v}");
}

#[test]
fn answered_pings_keep_the_session() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo/k2?keepalive_ms=30&pong_timeout_ms=200");
    let until = Instant::now() + Duration::from_millis(400);
    let mut pings = 0;
    while Instant::now() < until {
        if let Ok(f) = ws.read_frame(Duration::from_millis(100)) {
            assert_eq!(f.opcode, PING);
            pings += 1;
            ws.send_frame(true, PONG, &f.payload);
        }
    }
    assert!(pings >= 3, "{pings} pings");
    ws.send_text("still here");
    loop {
        let f = ws.expect_frame();
        if f.opcode == TEXT {
            assert_eq!(f.payload, b"still here");
            break;
        }
    }
    assert_eq!(s.observed("k2", 0).reason, None);
}

#[test]
fn an_idle_session_is_closed_with_1001() {
    let s = Server::start(&["--ws-idle-timeout", "0.2"]);
    let mut ws = Ws::connect(&s, "/ws/echo/i1");
    let t = Instant::now();
    let f = ws.expect_close_frame();
    assert_eq!(f.close_code(), Some(1001));
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let v = observed_json(&s, "i1");
    assert_eq!(v["reason"], "idle_timeout", "{v}");
    ws.send_close(1001, "");
    assert_eq!(ws.expect_tcp_close(), End::Eof);
}

#[test]
fn a_client_that_does_not_read_stalls_send_until_the_write_timeout() {
    let s = Server::start(&["--write-timeout", "0.5"]);
    let ws = Ws::connect(&s, "/ws/flood/f1?size=65536");
    s.wait_seen("f1", Duration::from_secs(5));
    // Never read: the app's sends wait (backpressure), the write stall ends the session.
    let o = s.observed("f1", 10_000);
    assert_eq!(o.reason.as_deref(), Some("write_timeout"), "{o:?}");
    drop(ws);
}

#[test]
fn shutdown_closes_websockets_with_1001() {
    let mut s = Server::start(&["--shutdown-timeout", "5"]);
    let mut ws = Ws::connect(&s, "/ws/echo/sd1");
    s.wait_seen("sd1", Duration::from_secs(5));
    s.sigterm();
    let f = ws.expect_close_frame();
    assert_eq!(f.close_code(), Some(1001));
    ws.send_close(1001, "");
    assert_eq!(ws.expect_tcp_close(), End::Eof);
    let status = s.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn lifecycle_reports_the_upgrade_and_one_close() {
    let s = Server::start(&[]);
    let mut ws = Ws::connect(&s, "/ws/echo");
    let peer = ws.c.local();
    ws.send_text("x");
    ws.expect_frame();
    ws.send_close(1000, "");
    ws.expect_close_frame();
    ws.expect_tcp_close();
    let closed = s.wait_closed(&peer, Duration::from_secs(5));
    assert_eq!(closed.reason.as_deref(), Some("client_closed"));
    let all = s.get_json("/connections");
    let list = all.as_array().unwrap();
    let upgraded: Vec<_> = list
        .iter()
        .filter(|n| n["event"] == "upgraded" && n["protocol"] == "websocket")
        .collect();
    assert!(!upgraded.is_empty(), "{all}");
    let closes = list
        .iter()
        .filter(|n| n["event"] == "closed" && n["peer"] == peer.as_str())
        .count();
    assert_eq!(closes, 1, "{all}");
}

// ----- compression ----------------------------------------------------------------------------

#[test]
fn permessage_deflate_is_negotiated_and_used_both_ways() {
    let s = Server::start(&[]);
    let (mut ws, r) = Ws::open(
        &s,
        "/ws/echo",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert_eq!(r.status, 101);
    let ext = r.header("sec-websocket-extensions").expect("negotiated");
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    // RFC 7692 §7.2.3.1: "Hello" compressed.
    ws.c.send(frame_bytes(
        true,
        true,
        TEXT,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        true,
    ));
    let f = ws.expect_frame();
    assert_eq!((f.opcode, f.rsv1), (TEXT, true), "{f:?}");
    assert_eq!(inflate(&f.payload), b"Hello");
    // Declined when the server is told not to compress.
    let s = Server::start(&["--ws-no-compression"]);
    let (_ws, r) = Ws::open(
        &s,
        "/ws/echo",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-extensions"), None);
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut data = payload.to_vec();
    data.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut out = Vec::new();
    let mut d = flate2::read::DeflateDecoder::new(&data[..]);
    let mut buf = [0u8; 4096];
    loop {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // The sync marker ends the input without a final block.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("inflate: {e}"),
        }
    }
    out
}

// ----- a real client --------------------------------------------------------------------------

#[test]
fn tokio_tungstenite_echoes_and_closes_cleanly() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let s = Server::start(&[]);
    let url = format!("ws://{}/ws/echo/tt1", s.hostport());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        for i in 0..100 {
            ws.send(Message::Text(format!("msg {i}").into()))
                .await
                .unwrap();
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m.into_text().unwrap().as_str(), format!("msg {i}"));
        }
        ws.send(Message::Binary(vec![1u8; 70_000].into()))
            .await
            .unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_data().len(), 70_000);
        ws.close(None).await.unwrap();
        // The server answers the close and ends the stream.
        while let Some(m) = ws.next().await {
            if m.is_err() {
                break;
            }
        }
    });
    let v = observed_json(&s, "tt1");
    assert_eq!(v["reason"], "client_closed", "{v}");
}

fn observed_json(s: &Server, tag: &str) -> serde_json::Value {
    // Wait for the end, then for the app's disconnect event (recorded just after).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = s.get_json(&format!("/observed/{tag}?wait_ms=3000"));
        let ended = v["completed"] == true || !v["reason"].is_null();
        if ended && (v.get("ws_code").is_some() || Instant::now() > deadline) {
            return v;
        }
        if Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
