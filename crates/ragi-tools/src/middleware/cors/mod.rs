//! CORS: answers preflights and adds the `Access-Control-*` headers to the app's responses.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::cors::Cors;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn api(_cx: HttpContext) -> &'static str { "data" }
//!
//! let cors = Cors::builder()
//!     .allow_origin("https://app.example")         // exact
//!     .allow_origin("https://*.example.org")       // any subdomain, never the apex
//!     .allow_methods(["GET", "POST", "DELETE"])
//!     .allow_headers(["authorization", "x-request-id"])
//!     .expose_headers(["x-request-id"])
//!     .allow_credentials(true)
//!     .max_age(Duration::from_secs(3600))
//!     .build()
//!     .expect("a valid CORS configuration");
//! let app = handler(api).layer(cors);
//! # let _ = app;
//!
//! // Credentials with any origin is refused when the layer is built, not at request time:
//! let err = Cors::builder().allow_any_origin().allow_credentials(true).build().unwrap_err();
//! assert!(err.to_string().contains("credentials"));
//! ```
//!
//! # What it does
//!
//! * **A preflight is `OPTIONS` with `Origin` and `Access-Control-Request-Method`.** The
//!   middleware answers it (204) and the app is not called. Any other `OPTIONS` — without an
//!   `Origin`, or without `Access-Control-Request-Method` — reaches the app like any request
//!   (tower-http treats every `OPTIONS` as a preflight and never calls the app; Starlette's
//!   rule is followed here).
//! * **A preflight for an origin, method or request header that is not allowed gets 400 with
//!   no CORS headers** (Starlette); the browser then blocks the real request.
//! * **Actual requests** (any method, `Origin` present) reach the app; when the origin is
//!   allowed its response gets `Access-Control-Allow-Origin` (the request's origin, or `*`
//!   when any origin is allowed without credentials), `Access-Control-Allow-Credentials` and
//!   `Access-Control-Expose-Headers`. These replace any the app set itself. **Error responses
//!   get them too**: a 401 or 500 the app sends, and the 500 answered for an app that failed
//!   or panicked before answering (the server's own 500 would lack them, and the browser would
//!   hide the error from the page).
//! * **One `Vary`**: `Origin` (and on preflights `Access-Control-Request-Method`,
//!   `Access-Control-Request-Headers`, `Access-Control-Request-Private-Network`) is merged into
//!   the app's `Vary` as a single field, whenever the response depends on the origin — also
//!   when the request carried no `Origin`, so that a cache never serves a response without
//!   CORS headers to a cross-origin request. With any origin and no credentials the answer is
//!   always `*` and nothing is added.
//! * **Credentials never with `*`**: [`CorsBuilder::build`] refuses credentials combined with
//!   any origin or any exposed header ([`CorsError`]); with any method or any header and
//!   credentials, the preflight mirrors the requested method and headers instead of `*`
//!   (which browsers read literally when credentials are involved).
//! * **Origins**: exact strings (compared case-insensitively), wildcard patterns with one
//!   leading `*.` in the host (`https://*.example.com` matches `https://a.example.com` and
//!   `https://a.b.example.com`, never `https://example.com`), regular expressions (always
//!   matched against the whole origin), or a predicate. The opaque origin `null` (sandboxed
//!   frames, `file:` pages, some redirects) is allowed only when listed exactly as `"null"`:
//!   no pattern or regular expression matches it.
//! * **Private network access**: with [`allow_private_network`](CorsBuilder::allow_private_network),
//!   a preflight carrying `Access-Control-Request-Private-Network: true` gets
//!   `Access-Control-Allow-Private-Network: true`.
//!
//! # Scopes
//!
//! `http` and `sse` scopes are handled alike (an `EventSource` is subject to CORS; a refusal on
//! an `sse` scope is sent as the decline pair). `websocket` scopes pass through untouched:
//! browsers do not apply CORS to WebSocket handshakes — refuse foreign origins there with the
//! [`csrf`](super::csrf) middleware.
//!
//! # Defaults
//!
//! No origin allowed; methods `GET`, `HEAD`, `POST`; request headers: the CORS-safelisted
//! `accept`, `accept-language`, `content-language`, `content-type` are always allowed (as
//! Starlette); nothing exposed; no credentials; `Access-Control-Max-Age: 600`; private
//! network access off.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use ragi::{App, AppResult, BoxFuture, Headers, Receiver, Scope, ScopeKind, Sender};
use regex::Regex;

use super::security_support::{
    edit_heads, header_text, merge_vary, refuse, run_answering_failures,
};
use crate::{Error, IntoResponse, Layer, Response, SharedApp};

/// Headers a browser may send cross-origin without them being allowed (the CORS-safelisted
/// request headers; Starlette allows them always).
const SAFELISTED: [&str; 4] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// A CORS configuration that cannot be right, named when [`CorsBuilder::build`] refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsError {
    /// Credentials with any origin: every site could read the user's authenticated responses.
    CredentialsWithAnyOrigin,
    /// Credentials with `Access-Control-Expose-Headers: *`, which browsers then read literally.
    CredentialsWithAnyExposedHeader,
    /// An origin that is not `scheme://host[:port]` or `null` (a trailing slash, a path, a
    /// misplaced wildcard).
    InvalidOrigin(String),
    /// A regular expression that does not compile.
    InvalidRegex(String),
    /// A method or header name that is not an HTTP token.
    InvalidToken(String),
}

impl std::fmt::Display for CorsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CredentialsWithAnyOrigin => f.write_str(
                "CORS: credentials cannot be allowed for any origin (`*`); list the origins, or use \
                 allow_origin_fn to decide per request",
            ),
            Self::CredentialsWithAnyExposedHeader => f.write_str(
                "CORS: credentials cannot be combined with exposing any header (`*`); list the \
                 headers to expose",
            ),
            Self::InvalidOrigin(o) => write!(
                f,
                "CORS: invalid origin {o:?}: expected scheme://host[:port] (no path, no trailing \
                 slash), `null`, or a leading `*.` wildcard in the host"
            ),
            Self::InvalidRegex(e) => write!(f, "CORS: invalid origin regular expression: {e}"),
            Self::InvalidToken(t) => write!(f, "CORS: {t:?} is not a valid method or header name"),
        }
    }
}

impl std::error::Error for CorsError {}

type OriginFn = Arc<dyn Fn(&str, &Scope) -> bool + Send + Sync>;

#[derive(Clone, Default)]
enum Origins {
    #[default]
    None,
    Any,
    Some {
        exact: Vec<String>,
        /// `*.` patterns, matched against the lower-cased origin.
        wildcards: Vec<Regex>,
        /// The user's expressions, matched against the origin as sent.
        regexes: Vec<Regex>,
        predicates: Vec<OriginFn>,
    },
}

#[derive(Clone)]
enum Names {
    Any,
    List(Vec<String>),
}

/// Builds a [`Cors`] layer; see the [module documentation](self).
#[must_use = "call build() to get the layer"]
pub struct CorsBuilder {
    origins: Vec<String>,
    regexes: Vec<String>,
    predicates: Vec<OriginFn>,
    any_origin: bool,
    methods: Names,
    headers: Names,
    expose: Names,
    credentials: bool,
    max_age: Option<Duration>,
    private_network: bool,
}

impl std::fmt::Debug for CorsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorsBuilder")
            .field("origins", &self.origins)
            .field("regexes", &self.regexes)
            .field("any_origin", &self.any_origin)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Default for CorsBuilder {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            regexes: Vec::new(),
            predicates: Vec::new(),
            any_origin: false,
            methods: Names::List(vec!["GET".into(), "HEAD".into(), "POST".into()]),
            headers: Names::List(Vec::new()),
            expose: Names::List(Vec::new()),
            credentials: false,
            max_age: Some(Duration::from_secs(600)),
            private_network: false,
        }
    }
}

impl CorsBuilder {
    /// Allows `origin`: exact (`https://app.example:8443`), `null`, or a pattern with a leading
    /// `*.` in the host (`https://*.example.com`, subdomains only).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allows each of `origins` (see [`allow_origin`](Self::allow_origin)).
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Allows origins matching `regex` — matched against the whole origin (it is anchored), and
    /// never against `null`.
    pub fn allow_origin_regex(mut self, regex: impl Into<String>) -> Self {
        self.regexes.push(regex.into());
        self
    }

    /// Allows the origins for which `f(origin, scope)` is true (`null` included: the
    /// predicate decides).
    pub fn allow_origin_fn(
        mut self,
        f: impl Fn(&str, &Scope) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(f));
        self
    }

    /// Allows any origin (`Access-Control-Allow-Origin: *`). Refused with credentials.
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// The methods a preflight may ask for (replacing the default `GET`, `HEAD`, `POST`).
    pub fn allow_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.methods = Names::List(methods.into_iter().map(Into::into).collect());
        self
    }

    /// Any method (`*`; the requested method itself with credentials).
    pub fn allow_any_method(mut self) -> Self {
        self.methods = Names::Any;
        self
    }

    /// Request headers a preflight may ask for, beyond the safelisted ones.
    pub fn allow_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.headers = Names::List(headers.into_iter().map(Into::into).collect());
        self
    }

    /// Any request header (`*`; the requested headers themselves with credentials).
    pub fn allow_any_header(mut self) -> Self {
        self.headers = Names::Any;
        self
    }

    /// Response headers the page may read (`Access-Control-Expose-Headers`).
    pub fn expose_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.expose = Names::List(headers.into_iter().map(Into::into).collect());
        self
    }

    /// Exposes every response header (`*`). Refused with credentials.
    pub fn expose_any_header(mut self) -> Self {
        self.expose = Names::Any;
        self
    }

    /// Whether cookies and HTTP authentication may go with cross-origin requests
    /// (`Access-Control-Allow-Credentials: true`).
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// How long a browser may cache a preflight's answer (600 s by default).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sends no `Access-Control-Max-Age` (the browser's default applies, 5 s).
    pub fn no_max_age(mut self) -> Self {
        self.max_age = None;
        self
    }

    /// Answers Private Network Access preflights
    /// (`Access-Control-Allow-Private-Network: true`). Off by default.
    pub fn allow_private_network(mut self, allow: bool) -> Self {
        self.private_network = allow;
        self
    }

    /// The layer, or the reason this configuration is refused.
    pub fn build(self) -> Result<Cors, CorsError> {
        if self.credentials && self.any_origin {
            return Err(CorsError::CredentialsWithAnyOrigin);
        }
        if self.credentials && matches!(self.expose, Names::Any) {
            return Err(CorsError::CredentialsWithAnyExposedHeader);
        }
        let mut exact = Vec::new();
        let mut wildcards = Vec::new();
        let mut regexes = Vec::new();
        for o in self.origins {
            if o == "*" {
                return Err(if self.credentials {
                    CorsError::CredentialsWithAnyOrigin
                } else {
                    CorsError::InvalidOrigin("* (use allow_any_origin)".into())
                });
            }
            match origin_rule(&o)? {
                OriginRule::Exact(e) => exact.push(e),
                OriginRule::Pattern(p) => wildcards.push(p),
            }
        }
        for r in self.regexes {
            let anchored = format!("^(?:{r})$");
            regexes
                .push(Regex::new(&anchored).map_err(|e| CorsError::InvalidRegex(e.to_string()))?);
        }
        let tokens = |names: Names, lower: bool| -> Result<Names, CorsError> {
            match names {
                Names::Any => Ok(Names::Any),
                Names::List(list) => list
                    .into_iter()
                    .map(|n| {
                        let n = n.trim().to_owned();
                        if n.is_empty() || !n.bytes().all(ragi::headers::is_token_byte) {
                            Err(CorsError::InvalidToken(n))
                        } else if lower {
                            Ok(n.to_ascii_lowercase())
                        } else {
                            Ok(n)
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Names::List),
            }
        };
        let methods = tokens(self.methods, false)?;
        let headers = tokens(self.headers, true)?;
        let expose = tokens(self.expose, true)?;
        let origins = if self.any_origin {
            Origins::Any
        } else if exact.is_empty()
            && wildcards.is_empty()
            && regexes.is_empty()
            && self.predicates.is_empty()
        {
            Origins::None
        } else {
            Origins::Some {
                exact,
                wildcards,
                regexes,
                predicates: self.predicates,
            }
        };
        Ok(Cors {
            cfg: Arc::new(Config {
                origins,
                methods,
                headers,
                expose,
                credentials: self.credentials,
                max_age: self.max_age,
                private_network: self.private_network,
            }),
        })
    }
}

enum OriginRule {
    Exact(String),
    Pattern(Regex),
}

/// Checks one configured origin: `null`, `scheme://host[:port]`, or `scheme://*.host[:port]`.
fn origin_rule(o: &str) -> Result<OriginRule, CorsError> {
    let bad = || CorsError::InvalidOrigin(o.to_owned());
    if o.eq_ignore_ascii_case("null") {
        return Ok(OriginRule::Exact("null".into()));
    }
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(bad());
    }
    let (wild, authority) = match rest.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if authority.contains('*')
        || super::security_support::parse_authority(authority.as_bytes()).is_none()
    {
        return Err(bad());
    }
    // A trailing dot or an upper-case letter would never equal what a browser sends.
    if authority.ends_with('.') || authority.contains("..") {
        return Err(bad());
    }
    let lower = o.to_ascii_lowercase();
    if !wild {
        return Ok(OriginRule::Exact(lower));
    }
    let re = format!(
        "^{}://(?:[a-z0-9_-]+\\.)+{}$",
        regex::escape(&scheme.to_ascii_lowercase()),
        regex::escape(&authority.to_ascii_lowercase())
    );
    Regex::new(&re).map(OriginRule::Pattern).map_err(|_| bad())
}

struct Config {
    origins: Origins,
    methods: Names,
    headers: Names,
    expose: Names,
    credentials: bool,
    max_age: Option<Duration>,
    private_network: bool,
}

impl Config {
    /// Whether the response depends on the request's `Origin` (then `Vary: Origin`).
    fn varies_by_origin(&self) -> bool {
        !matches!(self.origins, Origins::Any) || self.credentials
    }

    fn origin_allowed(&self, origin: &str, scope: &Scope) -> bool {
        match &self.origins {
            Origins::None => false,
            Origins::Any => true,
            Origins::Some {
                exact,
                wildcards,
                regexes,
                predicates,
            } => {
                let null = origin.eq_ignore_ascii_case("null");
                exact.iter().any(|e| e.eq_ignore_ascii_case(origin))
                    || (!null
                        && (wildcards
                            .iter()
                            .any(|p| p.is_match(&origin.to_ascii_lowercase()))
                            || regexes.iter().any(|p| p.is_match(origin))))
                    || predicates.iter().any(|p| p(origin, scope))
            }
        }
    }

    /// `Access-Control-Allow-Origin` for an allowed `origin`.
    fn allow_origin_value(&self, origin: &str) -> Bytes {
        if matches!(self.origins, Origins::Any) && !self.credentials {
            Bytes::from_static(b"*")
        } else {
            Bytes::copy_from_slice(origin.as_bytes())
        }
    }

    fn method_allowed(&self, method: &str) -> bool {
        match &self.methods {
            Names::Any => true,
            Names::List(l) => l.iter().any(|m| m == method),
        }
    }

    fn header_allowed(&self, name: &str) -> bool {
        SAFELISTED.contains(&name)
            || match &self.headers {
                Names::Any => true,
                Names::List(l) => l.iter().any(|h| h == name),
            }
    }

    /// Adds the headers of an actual (non-preflight) response from an allowed origin.
    fn add_actual(&self, origin: &str, headers: &mut Headers) {
        headers.set(
            "access-control-allow-origin",
            self.allow_origin_value(origin),
        );
        if self.credentials {
            headers.set("access-control-allow-credentials", "true");
        } else {
            headers.remove("access-control-allow-credentials");
        }
        match &self.expose {
            Names::Any => headers.set("access-control-expose-headers", "*"),
            Names::List(l) if !l.is_empty() => {
                headers.set("access-control-expose-headers", l.join(", "))
            }
            Names::List(_) => {}
        }
    }

    /// The answer to a preflight.
    fn preflight(&self, origin: &str, scope: &Scope) -> Response {
        let mut vary = vec![
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ];
        if self.private_network {
            vary.push("Access-Control-Request-Private-Network");
        }
        let refuse = |what: &'static str| {
            let mut r = Error::new(400, what).into_response();
            merge_vary(r.headers_mut(), &vary);
            r
        };
        if !self.origin_allowed(origin, scope) {
            return refuse("Disallowed CORS origin");
        }
        let method = scope
            .headers
            .get("access-control-request-method")
            .and_then(header_text)
            .unwrap_or("");
        if method.is_empty()
            || !method.bytes().all(ragi::headers::is_token_byte)
            || !self.method_allowed(method)
        {
            return refuse("Disallowed CORS method");
        }
        let mut requested: Vec<String> = Vec::new();
        for v in scope.headers.get_all("access-control-request-headers") {
            for h in String::from_utf8_lossy(v).split(',') {
                let h = h.trim().to_ascii_lowercase();
                if !h.is_empty() && !requested.contains(&h) {
                    requested.push(h);
                }
            }
        }
        if requested
            .iter()
            .any(|h| !h.bytes().all(ragi::headers::is_token_byte) || !self.header_allowed(h))
        {
            return refuse("Disallowed CORS headers");
        }
        let mut h = Headers::with_capacity(8);
        h.push(
            "access-control-allow-origin",
            self.allow_origin_value(origin),
        );
        if self.credentials {
            h.push("access-control-allow-credentials", "true");
        }
        match &self.methods {
            Names::Any if self.credentials => {
                h.push("access-control-allow-methods", method.to_owned())
            }
            Names::Any => h.push("access-control-allow-methods", "*"),
            Names::List(l) => h.push("access-control-allow-methods", l.join(", ")),
        }
        match &self.headers {
            Names::Any if self.credentials => {
                if !requested.is_empty() {
                    h.push("access-control-allow-headers", requested.join(", "));
                }
            }
            Names::Any => h.push("access-control-allow-headers", "*"),
            Names::List(l) => {
                let mut all: Vec<&str> = SAFELISTED.to_vec();
                all.extend(
                    l.iter()
                        .map(String::as_str)
                        .filter(|x| !SAFELISTED.contains(x)),
                );
                h.push("access-control-allow-headers", all.join(", "));
            }
        }
        if let Some(age) = self.max_age {
            h.push("access-control-max-age", age.as_secs().to_string());
        }
        if self.private_network
            && scope
                .headers
                .get("access-control-request-private-network")
                .and_then(header_text)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            h.push("access-control-allow-private-network", "true");
        }
        merge_vary(&mut h, &vary);
        let mut r = Response::new(204);
        *r.headers_mut() = h;
        r
    }
}

/// The CORS layer: [`Cors::builder`]. See the [module documentation](self).
#[derive(Clone)]
pub struct Cors {
    cfg: Arc<Config>,
}

impl std::fmt::Debug for Cors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cors")
            .field("credentials", &self.cfg.credentials)
            .field("max_age", &self.cfg.max_age)
            .finish_non_exhaustive()
    }
}

impl Cors {
    /// A builder with the defaults (no origin allowed).
    pub fn builder() -> CorsBuilder {
        CorsBuilder::default()
    }

    /// Any origin, any method, any header, no credentials: a public API.
    pub fn permissive() -> Cors {
        Cors::builder()
            .allow_any_origin()
            .allow_any_method()
            .allow_any_header()
            .build()
            .expect("a permissive configuration is valid")
    }
}

impl Layer for Cors {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(CorsApp {
            cfg: self.cfg.clone(),
            inner,
        })
    }
}

struct CorsApp {
    cfg: Arc<Config>,
    inner: SharedApp,
}

/// The request's one `Origin` (two or more is no origin we can answer for).
fn request_origin(scope: &Scope) -> Option<String> {
    let mut all = scope.headers.get_all("origin");
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    header_text(first)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
}

impl App for CorsApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !matches!(scope.kind, ScopeKind::Http | ScopeKind::Sse) {
            return self.inner.call(scope, receive, send);
        }
        let cfg = self.cfg.clone();
        let origin = request_origin(&scope);
        let preflight = scope.method == Method::OPTIONS
            && origin.is_some()
            && scope.headers.contains("access-control-request-method");
        if preflight {
            let response = cfg.preflight(origin.as_deref().unwrap_or_default(), &scope);
            return refuse(&scope, send, response);
        }
        let allowed = origin
            .as_deref()
            .is_some_and(|o| cfg.origin_allowed(o, &scope))
            .then(|| origin.clone().unwrap_or_default());
        let vary = cfg.varies_by_origin();
        if allowed.is_none() && !vary {
            return self.inner.call(scope, receive, send);
        }
        let started = Arc::new(AtomicBool::new(false));
        let send = edit_heads(send, started.clone(), move |_status, headers| {
            if let Some(o) = &allowed {
                cfg.add_actual(o, headers);
            }
            if vary {
                merge_vary(headers, &["Origin"]);
            }
        });
        run_answering_failures(&self.inner, scope, receive, send, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_that_cannot_be_right_are_refused_with_a_name() {
        let e = Cors::builder()
            .allow_any_origin()
            .allow_credentials(true)
            .build()
            .unwrap_err();
        assert_eq!(e, CorsError::CredentialsWithAnyOrigin);
        let e = Cors::builder()
            .allow_origin("*")
            .allow_credentials(true)
            .build()
            .unwrap_err();
        assert_eq!(e, CorsError::CredentialsWithAnyOrigin);
        let e = Cors::builder()
            .allow_origin("https://a.example")
            .expose_any_header()
            .allow_credentials(true)
            .build()
            .unwrap_err();
        assert_eq!(e, CorsError::CredentialsWithAnyExposedHeader);
        for bad in [
            "https://a.example/",
            "a.example",
            "https://a.*.example",
            "https://*example.com",
            "https://a b",
        ] {
            let e = Cors::builder().allow_origin(bad).build().unwrap_err();
            assert!(matches!(e, CorsError::InvalidOrigin(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(bad));
        }
        assert!(matches!(
            Cors::builder().allow_origin_regex("(").build().unwrap_err(),
            CorsError::InvalidRegex(_)
        ));
        assert!(matches!(
            Cors::builder().allow_methods(["GE T"]).build().unwrap_err(),
            CorsError::InvalidToken(_)
        ));
    }

    #[test]
    fn wildcards_and_regexes_match_the_whole_origin() {
        let cors = Cors::builder()
            .allow_origin("https://*.example.com")
            .allow_origin_regex(r"https://app-\d+\.test")
            .build()
            .unwrap();
        let scope = Scope::new(ScopeKind::Http);
        let ok = |o: &str| cors.cfg.origin_allowed(o, &scope);
        assert!(ok("https://a.example.com"));
        assert!(ok("https://a.b.example.com"));
        assert!(ok("https://A.Example.com"));
        assert!(!ok("https://example.com"));
        assert!(!ok("http://a.example.com"));
        assert!(!ok("https://a.example.com.evil.net"));
        assert!(!ok("https://evilexample.com"));
        assert!(!ok("https://a.example.com:8443"));
        assert!(ok("https://app-12.test"));
        assert!(!ok("https://app-12.test.evil"));
        assert!(!ok("xhttps://app-12.test"));
        assert!(!ok("null"));
    }
}
