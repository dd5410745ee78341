//! Trusted hosts (toolkit-references §2.7).

use ragi::{App, HttpVersion};
use ragi_tools::middleware::forwarded::ForwardedHeaders;
use ragi_tools::middleware::trusted_host::TrustedHosts;
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::{AppExt, Stack};

use super::support::{json_of, probe};

fn hosts() -> TrustedHosts {
    TrustedHosts::new([
        "example.com",
        "*.example.com",
        "localhost:8080",
        "[::1]",
        "192.0.2.7",
    ])
    .unwrap()
}

async fn status_for(host: &str, https: bool) -> u16 {
    let (app, _) = probe();
    let mut client = TestClient::new(app.layer(hosts()));
    if https {
        client = client.https();
    }
    client
        .get("/")
        .header("host", host.to_owned())
        .send()
        .await
        .status()
}

#[tokio::test]
async fn names_ports_literals_and_wildcards() {
    for (host, want) in [
        ("example.com", 200),
        ("EXAMPLE.com", 200),
        ("example.com.", 200),
        ("example.com:8443", 200), // no port in the pattern: any port
        ("a.example.com", 200),
        ("a.b.example.com:9", 200),
        ("localhost:8080", 200),
        ("localhost", 400), // port 80 is not 8080
        ("localhost:9090", 400),
        ("[::1]", 200),
        ("[::1]:8000", 200), // Starlette's split(":") breaks here (#3357)
        ("[0:0::1]:8000", 200),
        ("[::2]", 400),
        ("192.0.2.7:81", 200),
        ("evil.com", 400),
        ("evilexample.com", 400),
        ("example.com.evil.com", 400),
        ("exam ple.com", 400),
        ("user@example.com", 400),
        ("example.com/x", 400),
        ("::1", 400),
        ("example.com:99999", 400),
        ("", 400),
    ] {
        assert_eq!(status_for(host, false).await, want, "{host:?}");
    }
}

#[tokio::test]
async fn a_wildcard_never_matches_the_apex() {
    let only_subs = TrustedHosts::new(["*.example.com"]).unwrap();
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(only_subs));
    assert_eq!(
        client
            .get("/")
            .header("host", "www.example.com")
            .send()
            .await
            .status(),
        200
    );
    let res = client.get("/").header("host", "example.com").send().await;
    assert_eq!(res.status(), 400);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn the_default_port_counts_as_written() {
    let tls_only = TrustedHosts::new(["secure.example:443"]).unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(tls_only.clone())).https();
    assert_eq!(
        client
            .get("/")
            .header("host", "secure.example")
            .send()
            .await
            .status(),
        200
    );
    let (app, _) = probe();
    let client = TestClient::new(app.layer(tls_only));
    assert_eq!(
        client
            .get("/")
            .header("host", "secure.example")
            .send()
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn missing_or_doubled_hosts_are_refused() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(hosts())).http_version(HttpVersion::Http10);
    // The test client always sends a host; remove it the way an HTTP/1.0 client would not send it.
    let scope_without_host = |scope: ragi::Scope, rx: ragi::Receiver, tx: ragi::Sender| {
        let mut scope = scope;
        scope.headers.remove("host");
        let (app, _) = probe();
        let app = app.layer(hosts());
        async move { app.call(scope, rx, tx).await }
    };
    let res = TestClient::new(scope_without_host).get("/").send().await;
    assert_eq!(res.status(), 400);
    assert!(res.text().contains("missing host"), "{}", res.text());
    let allow = |scope: ragi::Scope, rx: ragi::Receiver, tx: ragi::Sender| {
        let mut scope = scope;
        scope.headers.remove("host");
        let (app, _) = probe();
        let app = app.layer(hosts().allow_missing_host(true));
        async move { app.call(scope, rx, tx).await }
    };
    assert_eq!(TestClient::new(allow).get("/").send().await.status(), 200);
    let res = client
        .get("/")
        .header("host", "example.com")
        .header("Host", "evil.com")
        .send()
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn http2_authority_is_the_host() {
    // ragi-server puts `:authority` in the scope's `host` field (replacing any `host`), so the
    // check is the same; the socket test drives a real HTTP/2 client.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(hosts())).http_version(HttpVersion::Http2);
    assert_eq!(
        client
            .get("/")
            .header("host", "a.example.com")
            .send()
            .await
            .status(),
        200
    );
    assert_eq!(
        client
            .get("/")
            .header("host", "evil.com")
            .send()
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn websocket_and_sse_with_a_bad_host_are_refused_before_the_app() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(hosts())).host("evil.com");
    match client.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 400);
            assert!(res.text().contains("invalid host"));
        }
        other => panic!("expected a denial before accept, got {other:?}"),
    }
    let res = client.sse("/events").connect().await.declined();
    assert_eq!(res.status(), 400);
    assert_eq!(calls.get(), 0);
    let client = TestClient::new(probe().0.layer(hosts())).host("example.com");
    client.websocket("/ws").connect().await.accepted();
}

#[tokio::test]
async fn a_forwarded_host_is_checked_after_the_rewrite() {
    let stack = || {
        let (app, _) = probe();
        Stack::new()
            .enable(ForwardedHeaders::new())
            .enable(TrustedHosts::new(["public.example"]).unwrap())
            .run(app)
    };
    let client = TestClient::new(stack()).host("10.0.0.5:8000");
    let res = client
        .get("/")
        .header("x-forwarded-host", "public.example")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(&res)["host"], "public.example");
    let res = client
        .get("/")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await;
    assert_eq!(res.status(), 400);
}
