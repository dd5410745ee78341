//! Forwarded headers: behind a reverse proxy, the real client, scheme, host and path prefix
//! from RFC 7239 `Forwarded` or `X-Forwarded-For/Proto/Host/Prefix` — believed only when the
//! peer is a trusted proxy.
//!
//! ```
//! use ragi_tools::middleware::forwarded::{ForwardedHeaders, OriginalRequest};
//! use ragi_tools::{handler, AppExt, Context, HttpContext};
//!
//! async fn who(cx: HttpContext) -> String {
//!     // The client as the edge proxy saw it; the proxy's own address is kept in the stash.
//!     let behind = cx.stash().get::<OriginalRequest>().map(|o| o.client);
//!     format!("{:?} via {:?} over {}", cx.client(), behind, cx.scheme())
//! }
//!
//! let forwarded = ForwardedHeaders::trusting(["10.0.0.0/8", "fd00::/8"])
//!     .expect("valid proxy networks");
//! let app = handler(who).layer(forwarded);
//! # let _ = app;
//! ```
//!
//! # Whom to believe
//!
//! The headers are read only when the peer (`scope.client`) is in one of the trusted networks
//! (IPv4 and IPv6 CIDRs; an IPv4-mapped IPv6 peer counts as its IPv4 address). By default
//! ([`ForwardedHeaders::new`]) that is the loopback networks, `127.0.0.0/8` and `::1/128`.
//! From anyone else the headers are ignored and the scope is left as it is.
//!
//! # Which client
//!
//! Each proxy appends the address it received the request from, so the list's **right** end
//! is written by the proxies you run and its left end by whoever the client is. The client is
//! found **right to left, skipping trusted hops**: the first address that is not a trusted
//! proxy. If every address is a trusted proxy, the leftmost one is the client. PAGI's proxy
//! middleware trusts the **leftmost** `X-Forwarded-For`, which any client can set
//! (`X-Forwarded-For: 1.2.3.4` spoofs its address; expressjs/express#2099). An entry that
//! names no address (`for=unknown`, an obfuscated `for=_hidden`, an unparsable value) ends the
//! walk: the client is then the nearest trusted hop that reported it (never the spoofable
//! part to its left).
//!
//! # What is rewritten
//!
//! * `scope.client` — the client found above (its port when the header gives one, else 0);
//! * `scope.scheme` — from `proto=` / `X-Forwarded-Proto` (`http`, `https`, `ws`, `wss`; other
//!   values are ignored): `https` or `wss` (by scope kind) when secure, `http` or `ws` when not;
//! * the `host` header — from `host=` / `X-Forwarded-Host`, when it is a valid host;
//! * `scope.root_path` — `X-Forwarded-Prefix` (a path starting with `/`; the trailing slash
//!   dropped) is put in front of it.
//!
//! `proto=` and `host=` are taken from the `Forwarded` element that names the client (the
//! one written by the proxy that received the client's connection). `X-Forwarded-Proto`,
//! `-Host` and `-Prefix` are lined up with `X-Forwarded-For` from the right; when they hold
//! fewer values than there are hops, their leftmost value is used (the usual case: one value
//! set by the edge proxy and passed along). When `Forwarded` is present it is used instead
//! of `X-Forwarded-For/Proto/Host` (the prefix has no RFC 7239 parameter, so
//! `X-Forwarded-Prefix` is read either way).
//!
//! The values before the rewrite are kept in the stash as [`OriginalRequest`]. The rewrite
//! applies to `http`, `sse` and `websocket` scopes alike (PAGI rewrites `http` scopes only, so
//! its WebSocket and SSE apps see the proxy's address). The rate-limit middleware keys on the
//! `scope.client` set here, and [`https_redirect`](super::https_redirect),
//! [`security_headers`](super::security_headers) (HSTS) and [`trusted_host`](super::trusted_host)
//! read the scheme and host set here: place this middleware outside them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::security_support::parse_authority;
use crate::{Layer, SharedApp};

/// An IPv4 or IPv6 network: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A network that does not parse, named by [`Cidr::from_str`] and
/// [`ForwardedHeaders::trusting`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCidr(pub String);

impl std::fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid trusted proxy network {:?}: expected an address or address/prefix-length \
             (10.0.0.0/8, fd00::/8, ::1)",
            self.0
        )
    }
}

impl std::error::Error for InvalidCidr {}

impl FromStr for Cidr {
    type Err = InvalidCidr;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidCidr(s.to_owned());
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What the scope said before the forwarded headers were applied (in the stash).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OriginalRequest {
    /// The peer: the nearest proxy.
    pub client: Option<SocketAddr>,
    /// The scheme of the connection to the proxy.
    pub scheme: &'static str,
    /// The `host` header the proxy sent.
    pub host: Option<Bytes>,
    /// The root path before the prefix was added.
    pub root_path: String,
    /// The trusted proxies the request passed, nearest first (the peer included).
    pub proxies: Vec<IpAddr>,
}

/// The forwarded-headers layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct ForwardedHeaders {
    trusted: Arc<Vec<Cidr>>,
    forwarded: bool,
    x_forwarded: bool,
    prefix: bool,
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardedHeaders {
    /// Trusts proxies on the loopback networks (`127.0.0.0/8`, `::1/128`).
    pub fn new() -> Self {
        Self::trusting(["127.0.0.0/8", "::1/128"]).expect("loopback networks parse")
    }

    /// Trusts proxies in `networks`; names the first that does not parse.
    pub fn trusting<I, S>(networks: I) -> Result<Self, InvalidCidr>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let trusted = networks
            .into_iter()
            .map(|n| n.as_ref().parse())
            .collect::<Result<Vec<Cidr>, _>>()?;
        Ok(Self {
            trusted: Arc::new(trusted),
            forwarded: true,
            x_forwarded: true,
            prefix: true,
        })
    }

    /// Whether RFC 7239 `Forwarded` is read (on by default).
    pub fn use_forwarded(mut self, on: bool) -> Self {
        self.forwarded = on;
        self
    }

    /// Whether `X-Forwarded-For`, `-Proto` and `-Host` are read (on by default).
    pub fn use_x_forwarded(mut self, on: bool) -> Self {
        self.x_forwarded = on;
        self
    }

    /// Whether `X-Forwarded-Prefix` is read (on by default).
    pub fn use_prefix(mut self, on: bool) -> Self {
        self.prefix = on;
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// Rewrites `scope` from its forwarded headers when its peer is trusted; returns whether
    /// it did.
    pub fn apply(&self, scope: &mut Scope) -> bool {
        let Some(peer) = scope.client else {
            return false;
        };
        if !self.is_trusted(peer.ip()) {
            return false;
        }
        let hops = self.hops(scope);
        let mut proxies = vec![peer.ip().to_canonical()];
        let mut client = peer;
        let mut at = None; // the index of the hop naming the client
        let mut found = false;
        for (i, hop) in hops.hops.iter().enumerate().rev() {
            at = Some(i);
            match hop.node {
                Node::Ip(addr) if self.is_trusted(addr.ip()) => {
                    proxies.push(addr.ip().to_canonical());
                    client = addr;
                }
                Node::Ip(addr) => {
                    client = addr;
                    found = true;
                    break;
                }
                Node::Unknown => {
                    // The nearest trusted hop (already in `client`) stays the client.
                    found = true;
                    break;
                }
            }
        }
        if !found && at.is_some() {
            // Every hop was a trusted proxy: the leftmost is the client, not a hop it passed.
            proxies.pop();
        }
        let n = hops.hops.len();
        // X-Forwarded-Proto/Host/Prefix lined up with X-Forwarded-For from the right; the
        // leftmost value when there are fewer values than hops.
        let pick = |values: &[String]| -> Option<String> {
            let from_right = match at {
                Some(i) => n - 1 - i,
                None => 0,
            };
            let last = values.len().checked_sub(1)?;
            Some(values[last.saturating_sub(from_right)].clone())
        };
        let (proto, host) = if hops.rfc7239 {
            let h = at.map(|i| &hops.hops[i]);
            (
                h.and_then(|h| h.proto.clone()),
                h.and_then(|h| h.host.clone()),
            )
        } else {
            (pick(&hops.protos), pick(&hops.hosts))
        };
        let prefix = if self.prefix {
            pick(&list(scope, "x-forwarded-prefix"))
        } else {
            None
        };

        scope.stash.insert(OriginalRequest {
            client: scope.client,
            scheme: scope.scheme,
            host: scope.headers.get("host").cloned(),
            root_path: scope.root_path.clone(),
            proxies,
        });
        scope.client = Some(client);
        if let Some(p) = proto {
            let secure = match p.to_ascii_lowercase().as_str() {
                "https" | "wss" => Some(true),
                "http" | "ws" => Some(false),
                _ => None,
            };
            if let Some(secure) = secure {
                scope.scheme = match (scope.kind == ScopeKind::WebSocket, secure) {
                    (true, true) => "wss",
                    (true, false) => "ws",
                    (false, true) => "https",
                    (false, false) => "http",
                };
            }
        }
        if let Some(h) = host {
            if parse_authority(h.as_bytes()).is_some() {
                scope.headers.set("host", h);
            }
        }
        if let Some(p) = prefix {
            if p.starts_with('/') && !p.contains(['?', '#']) {
                let p = ragi::scope::percent_decode(p.trim_end_matches('/').as_bytes());
                scope.root_path = format!("{p}{}", scope.root_path);
            }
        }
        true
    }

    /// The hops the headers name, left to right, with the proto and host lists.
    fn hops(&self, scope: &Scope) -> Hops {
        if self.forwarded && scope.headers.contains("forwarded") {
            let mut hops = Vec::new();
            for v in scope.headers.get_all("forwarded") {
                let text = String::from_utf8_lossy(v);
                for element in split_outside_quotes(&text, ',') {
                    let mut hop = Hop {
                        node: Node::Unknown,
                        proto: None,
                        host: None,
                    };
                    for pair in split_outside_quotes(element, ';') {
                        let Some((k, v)) = pair.split_once('=') else {
                            continue;
                        };
                        let v = unquote(v.trim());
                        match k.trim().to_ascii_lowercase().as_str() {
                            "for" => hop.node = parse_node(&v),
                            "proto" => hop.proto = Some(v),
                            "host" => hop.host = Some(v),
                            _ => {}
                        }
                    }
                    // An element without `for=` says nothing about who connected: unknown.
                    hops.push(hop);
                }
            }
            return Hops {
                rfc7239: true,
                hops,
                protos: Vec::new(),
                hosts: Vec::new(),
            };
        }
        if !self.x_forwarded {
            return Hops::default();
        }
        Hops {
            rfc7239: false,
            hops: list(scope, "x-forwarded-for")
                .iter()
                .map(|v| Hop {
                    node: parse_node(v),
                    proto: None,
                    host: None,
                })
                .collect(),
            protos: list(scope, "x-forwarded-proto"),
            hosts: list(scope, "x-forwarded-host"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Node {
    Ip(SocketAddr),
    Unknown,
}

#[derive(Debug)]
struct Hop {
    node: Node,
    proto: Option<String>,
    host: Option<String>,
}

#[derive(Debug, Default)]
struct Hops {
    rfc7239: bool,
    hops: Vec<Hop>,
    protos: Vec<String>,
    hosts: Vec<String>,
}

/// The comma-separated values of every field `name`, in order.
fn list(scope: &Scope, name: &str) -> Vec<String> {
    scope
        .headers
        .get_all(name)
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Splits on `sep` outside quoted strings (RFC 7239's grammar).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// A token or a quoted string's content.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(c);
            }
            out
        }
        None => v.to_owned(),
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`, `2001:db8::1` (as
/// `X-Forwarded-For` writes it); `unknown`, `_obfuscated` and anything else are unknown.
fn parse_node(v: &str) -> Node {
    let v = v.trim();
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Node::Ip(SocketAddr::new(ip, 0));
    }
    let port = |p: &str| -> Option<u16> {
        if p.starts_with('_') {
            Some(0) // an obfuscated port
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()
        } else {
            None
        }
    };
    if let Some(rest) = v.strip_prefix('[') {
        if let Some((a, after)) = rest.split_once(']') {
            if let Ok(ip) = a.parse::<Ipv6Addr>() {
                let p = match after {
                    "" => Some(0),
                    a => a.strip_prefix(':').and_then(port),
                };
                if let Some(p) = p {
                    return Node::Ip(SocketAddr::new(IpAddr::V6(ip), p));
                }
            }
        }
        return Node::Unknown;
    }
    if let Some((a, p)) = v.split_once(':') {
        if let (Ok(ip), Some(p)) = (a.parse::<Ipv4Addr>(), port(p)) {
            return Node::Ip(SocketAddr::new(IpAddr::V4(ip), p));
        }
    }
    Node::Unknown
}

impl Layer for ForwardedHeaders {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(ForwardedApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct ForwardedApp {
    cfg: ForwardedHeaders,
    inner: SharedApp,
}

impl App for ForwardedApp {
    fn call(
        &self,
        mut scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        if matches!(
            scope.kind,
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket
        ) {
            self.cfg.apply(&mut scope);
        }
        self.inner.call(scope, receive, send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_contain() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = ForwardedHeaders::trusting(["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(e.to_string().contains("\"nope\""));
    }

    #[test]
    fn nodes_and_rfc7239_syntax() {
        assert!(matches!(parse_node("192.0.2.60"), Node::Ip(a) if a.to_string() == "192.0.2.60:0"));
        assert!(
            matches!(parse_node("[2001:db8:cafe::17]:4711"), Node::Ip(a) if a.to_string() == "[2001:db8:cafe::17]:4711")
        );
        assert!(matches!(parse_node("2001:db8::1"), Node::Ip(_)));
        assert!(matches!(parse_node("192.0.2.43:_x"), Node::Ip(a) if a.port() == 0));
        assert!(matches!(parse_node("unknown"), Node::Unknown));
        assert!(matches!(parse_node("_hidden"), Node::Unknown));
        assert!(matches!(parse_node("[::1"), Node::Unknown));
        assert_eq!(
            split_outside_quotes(r#"for="a,b";proto=https, for=c"#, ','),
            vec![r#"for="a,b";proto=https"#, " for=c"]
        );
        assert_eq!(unquote(r#""a\"b""#), "a\"b");
    }
}
