//! The server-wide lifecycle listener as exposed by the probe's `/connections`: exactly one
//! `accepted` then exactly one `closed` per connection, in order, with correct counters.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

#[test]
fn accepted_then_closed_once_with_exact_counters() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let peer = c.local();
    for _ in 0..2 {
        c.send(get_req(&s.hostport(), "/", ""));
        let r = c.read_response();
        assert_eq!(r.status, 200);
    }
    // While open: accepted only.
    let ns = s.notices_for(&peer);
    assert_eq!(
        ns.iter().map(|n| n.event.as_str()).collect::<Vec<_>>(),
        vec!["accepted"],
        "{ns:#?}"
    );
    let (sent, received) = (c.sent, c.received);
    c.shutdown_write();
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty());
    assert_eq!(end, End::Eof);
    s.wait_closed(&peer, Duration::from_secs(3));
    let ns = s.notices_for(&peer);
    let closed = assert_lifecycle_pair(&peer, &ns);
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_closed"),
        "{closed:?}"
    );
    assert_eq!(closed.requests, 2, "{closed:?}");
    assert_eq!(
        closed.bytes_in, sent,
        "bytes_in must equal what the client sent: {closed:?}"
    );
    assert_eq!(
        closed.bytes_out, received,
        "bytes_out must equal what the client received: {closed:?}"
    );
}

#[test]
fn ids_are_unique_and_increase() {
    let s = Server::start(&[]);
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut c = s.connect();
        let peer = c.local();
        c.send(get_req(&s.hostport(), "/", "Connection: close\r\n"));
        assert_eq!(c.read_response().status, 200);
        c.expect_close(Duration::from_secs(3));
        let closed = s.wait_closed(&peer, Duration::from_secs(3));
        assert_eq!(
            closed.reason, None,
            "connection {i}: clean server close after `connection: close`: {closed:?}"
        );
        assert_eq!(closed.requests, 1);
        let pair = s.notices_for(&peer);
        assert_lifecycle_pair(&peer, &pair);
        ids.push(closed.id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids of successive connections must increase: {ids:?}"
    );
}

#[test]
fn every_connection_gets_exactly_one_accepted_and_one_closed() {
    let s = Server::start(&["--request-timeout", "0.3", "--max-header-size", "1024"]);
    let h = s.hostport();
    let mut peers = Vec::new();
    // A mix of endings: FIN, RST, server close, error, timeout, HTTP/1.0.
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send(get_req(&h, "/", ""));
        c.read_response();
        c.shutdown_write();
        c.expect_close(Duration::from_secs(3));
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send(get_req(&h, "/", ""));
        c.read_response();
        c.reset();
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send(get_req(&h, "/", "Connection: close\r\n"));
        c.read_response();
        c.expect_close(Duration::from_secs(3));
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send("BROKEN\r\n\r\n");
        c.expect_close(Duration::from_secs(3));
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send("GET / HTTP/1.1\r\n");
        c.expect_close(Duration::from_secs(3));
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send("GET / HTTP/1.0\r\n\r\n");
        c.expect_close(Duration::from_secs(3));
    }
    {
        let mut c = s.connect();
        peers.push(c.local());
        c.send(format!(
            "GET /{} HTTP/1.1\r\nHost: {h}\r\n\r\n",
            "x".repeat(2000)
        ));
        c.expect_close(Duration::from_secs(3));
    }
    let mut reasons = Vec::new();
    for p in &peers {
        s.wait_closed(p, Duration::from_secs(3));
        let closed = assert_lifecycle_pair(p, &s.notices_for(p));
        reasons.push(closed.reason.clone());
    }
    eprintln!("reasons: {reasons:?}");
    assert_eq!(reasons[0].as_deref(), Some("client_closed"));
    assert_eq!(
        reasons[1].as_deref(),
        Some("read_error"),
        "RST on an idle kept-alive connection"
    );
    assert_eq!(reasons[2], None);
    assert_eq!(reasons[3].as_deref(), Some("protocol_error"));
    assert_eq!(reasons[4].as_deref(), Some("client_timeout"));
    assert_eq!(reasons[5], None);

    // Whole-list invariants (excluding the connection serving this very /connections request).
    let all = s.connections();
    let mut accepted: HashMap<u64, usize> = HashMap::new();
    let mut closed: HashMap<u64, usize> = HashMap::new();
    let mut first_pos: HashMap<u64, usize> = HashMap::new();
    for (i, n) in all.iter().enumerate() {
        match n.event.as_str() {
            "accepted" => {
                *accepted.entry(n.id).or_default() += 1;
                first_pos.entry(n.id).or_insert(i);
            }
            "closed" => {
                *closed.entry(n.id).or_default() += 1;
                let a = first_pos.get(&n.id).copied();
                assert!(
                    a.is_some_and(|a| a < i),
                    "closed before accepted for id {}: {all:#?}",
                    n.id
                );
            }
            _ => {}
        }
    }
    assert!(
        accepted.values().all(|&c| c == 1),
        "an id accepted twice: {accepted:?}"
    );
    assert!(
        closed.values().all(|&c| c == 1),
        "an id closed twice: {closed:?}"
    );
    // Every test connection is closed; only the observer's own polling connections (the one
    // serving this request, and one whose close may still be in flight) may be open.
    let open: Vec<_> = all
        .iter()
        .filter(|n| n.event == "accepted" && !closed.contains_key(&n.id))
        .collect();
    let test_peers: Vec<String> = peers.clone();
    assert!(
        open.iter().all(|n| !test_peers.contains(&n.peer)),
        "a test connection has no closed notice: {open:?}\n{all:#?}"
    );
    assert!(
        open.len() <= 2,
        "too many open connections: {open:?}\n{all:#?}"
    );
    // Peers with the same id agree.
    let mut peer_of: HashMap<u64, &str> = HashMap::new();
    for n in &all {
        let p = peer_of.entry(n.id).or_insert(&n.peer);
        assert_eq!(*p, n.peer, "notices of id {} disagree on peer", n.id);
    }
}

#[test]
fn concurrent_connections_have_distinct_ids() {
    let s = Server::start(&[]);
    let mut conns: Vec<Conn> = (0..8).map(|_| s.connect()).collect();
    for c in conns.iter_mut() {
        c.send(get_req(&s.hostport(), "/", ""));
    }
    for c in conns.iter_mut() {
        assert_eq!(c.read_response().status, 200);
    }
    let peers: Vec<String> = conns.iter().map(Conn::local).collect();
    drop(conns);
    let mut ids = Vec::new();
    for p in &peers {
        s.wait_closed(p, Duration::from_secs(3));
        let closed = assert_lifecycle_pair(p, &s.notices_for(p));
        assert_eq!(closed.requests, 1);
        ids.push(closed.id);
    }
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), ids.len(), "ids must be unique: {ids:?}");
}
