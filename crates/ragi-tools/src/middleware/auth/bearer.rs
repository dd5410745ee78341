//! RFC 6750 Bearer authentication.

use std::future::Future;
use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::{credentials, find_constant_time, quoted, AuthScheme, Identity, Secret};
use crate::middleware::security_support::refuse;
use crate::{Error, IntoResponse, Layer, SharedApp};

/// Why a bearer token is refused (RFC 6750 §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerError {
    /// The token is expired, revoked, malformed or unknown: 401, `error="invalid_token"`.
    InvalidToken {
        /// `error_description`, for the developer (not shown to end users).
        description: Option<String>,
    },
    /// The token is good but does not allow this: 403, `error="insufficient_scope"`.
    InsufficientScope {
        /// The scope the request needs.
        scope: String,
    },
}

impl BearerError {
    /// `invalid_token` with a description.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::InvalidToken {
            description: Some(description.into()),
        }
    }

    /// `insufficient_scope`, needing `scope`.
    pub fn insufficient_scope(scope: impl Into<String>) -> Self {
        Self::InsufficientScope {
            scope: scope.into(),
        }
    }
}

/// What a bearer verifier may return: `Option<Identity>` (`None` is `invalid_token`) or
/// `Result<Identity, BearerError>`.
pub trait IntoBearerResult {
    /// The result.
    fn into_bearer_result(self) -> Result<Identity, BearerError>;
}

impl IntoBearerResult for Option<Identity> {
    fn into_bearer_result(self) -> Result<Identity, BearerError> {
        self.ok_or(BearerError::InvalidToken { description: None })
    }
}

impl IntoBearerResult for Result<Identity, BearerError> {
    fn into_bearer_result(self) -> Result<Identity, BearerError> {
        self
    }
}

/// Checks a bearer token. Any `Fn(String) -> impl Future<Output = R>` is one, where `R` is
/// `Option<Identity>` or `Result<Identity, BearerError>`.
pub trait BearerVerifier: Send + Sync + 'static {
    /// The identity the token stands for, or why it is refused.
    fn verify(&self, token: String) -> BoxFuture<'static, Result<Identity, BearerError>>;
}

impl<F, Fut, R> BearerVerifier for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoBearerResult,
{
    fn verify(&self, token: String) -> BoxFuture<'static, Result<Identity, BearerError>> {
        let fut = self(token);
        Box::pin(async move { fut.await.into_bearer_result() })
    }
}

/// A fixed list of tokens, compared in constant time.
struct StaticTokens(Vec<(Secret, String)>);

impl BearerVerifier for StaticTokens {
    fn verify(&self, token: String) -> BoxFuture<'static, Result<Identity, BearerError>> {
        let t = Secret::new(token.as_bytes());
        let found = find_constant_time(&self.0, |(s, _)| s.matches(&t));
        let r = found
            .map(|i| Identity::new(self.0[i].1.clone()))
            .ok_or(BearerError::InvalidToken { description: None });
        Box::pin(std::future::ready(r))
    }
}

/// The Bearer-authentication layer. See the [module documentation](super).
#[derive(Clone)]
pub struct BearerAuth {
    realm: Arc<str>,
    verifier: Arc<dyn BearerVerifier>,
    query: Option<Arc<str>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("realm", &self.realm)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

impl BearerAuth {
    /// Checks tokens with `verifier`; `realm` is named in the challenge.
    pub fn new(realm: &str, verifier: impl BearerVerifier) -> Self {
        Self {
            realm: realm.into(),
            verifier: Arc::new(verifier),
            query: None,
        }
    }

    /// Checks tokens against a fixed list of `(token, identity name)`, in constant time.
    pub fn tokens<I, T, N>(realm: &str, tokens: I) -> Self
    where
        I: IntoIterator<Item = (T, N)>,
        T: AsRef<str>,
        N: Into<String>,
    {
        let list = tokens
            .into_iter()
            .map(|(t, n)| (Secret::new(t.as_ref().as_bytes()), n.into()))
            .collect();
        Self::new(realm, StaticTokens(list))
    }

    /// Also takes the token from the query parameter `name` (RFC 6750 §2.3; for WebSocket
    /// handshakes from browsers, which cannot set `Authorization`). The header wins when both
    /// are present.
    pub fn query_token(mut self, name: &str) -> Self {
        self.query = Some(name.into());
        self
    }

    /// The `WWW-Authenticate` value for `error` (none: the plain challenge).
    fn challenge(&self, error: Option<(&str, Option<&str>, Option<&str>)>) -> String {
        let mut c = format!("Bearer realm={}", quoted(&self.realm));
        if let Some((code, description, scope)) = error {
            c.push_str(&format!(", error=\"{code}\""));
            if let Some(d) = description {
                c.push_str(&format!(", error_description={}", quoted(d)));
            }
            if let Some(s) = scope {
                c.push_str(&format!(", scope={}", quoted(s)));
            }
        }
        c
    }

    fn refusal(
        &self,
        status: u16,
        message: &'static str,
        error: Option<(&str, Option<&str>, Option<&str>)>,
    ) -> crate::Response {
        Error::new(status, message)
            .with_header("www-authenticate", self.challenge(error))
            .into_response()
    }

    fn refusal_for(&self, e: &BearerError) -> crate::Response {
        match e {
            BearerError::InvalidToken { description } => self.refusal(
                401,
                "invalid token",
                Some(("invalid_token", description.as_deref(), None)),
            ),
            BearerError::InsufficientScope { scope } => self.refusal(
                403,
                "insufficient scope",
                Some(("insufficient_scope", None, Some(scope))),
            ),
        }
    }

    /// The token of the request: `Ok(None)` when there is none, `Err` when it is malformed.
    fn token(&self, scope: &Scope) -> Result<Option<String>, ()> {
        if let Some(t) = credentials(scope, "bearer")? {
            return if is_b64token(t) {
                Ok(Some(t.to_owned()))
            } else {
                Err(())
            };
        }
        if let Some(name) = &self.query {
            let q = crate::request::Query::parse(&scope.query_string);
            if let Some(t) = q.get(name) {
                return if is_b64token(t) {
                    Ok(Some(t.to_owned()))
                } else {
                    Err(())
                };
            }
        }
        Ok(None)
    }
}

impl Layer for BearerAuth {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(BearerApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct BearerApp {
    cfg: BearerAuth,
    inner: SharedApp,
}

impl App for BearerApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !matches!(
            scope.kind,
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket
        ) {
            return self.inner.call(scope, receive, send);
        }
        let token = match self.cfg.token(&scope) {
            Ok(Some(t)) => t,
            Ok(None) => {
                let r = self.cfg.refusal(401, "authentication required", None);
                return refuse(&scope, send, r);
            }
            Err(()) => {
                let r = self.cfg.refusal(
                    400,
                    "malformed authorization",
                    Some(("invalid_request", None, None)),
                );
                return refuse(&scope, send, r);
            }
        };
        let verify = self.cfg.verifier.verify(token);
        let inner = self.inner.clone();
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let connection = scope.connection().clone();
            let outcome = tokio::select! {
                r = verify => Some(r),
                _ = connection.disconnected() => None,
            };
            match outcome {
                None => Ok(()),
                Some(Ok(identity)) => {
                    scope.stash.insert(identity.with_scheme(AuthScheme::Bearer));
                    inner.call(scope, receive, send).await
                }
                Some(Err(e)) => refuse(&scope, send, cfg.refusal_for(&e)).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64tokens() {
        for ok in ["abc", "a.b.c", "x-y_z~+/==", "eyJhbGciOiJIUzI1NiJ9.e30.sig"] {
            assert!(is_b64token(ok), "{ok}");
        }
        for bad in ["", "=", "a b", "a,b", "a\"b", "=abc"] {
            assert!(!is_b64token(bad), "{bad}");
        }
    }

    #[test]
    fn challenges() {
        let b = BearerAuth::tokens("api", [("t", "n")]);
        assert_eq!(b.challenge(None), "Bearer realm=\"api\"");
        assert_eq!(
            b.challenge(Some(("invalid_token", Some("expired"), None))),
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"expired\""
        );
    }
}
