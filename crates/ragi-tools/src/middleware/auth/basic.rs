//! RFC 7617 Basic authentication.

use std::future::Future;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::{credentials, find_constant_time, quoted, AuthScheme, Identity, Secret};
use crate::middleware::security_support::refuse;
use crate::{Error, IntoResponse, Layer, SharedApp};

/// Standard base64, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks a user name and password: `Some(identity)` to let the request in. Any
/// `Fn(String, String) -> impl Future<Output = Option<Identity>>` is one.
pub trait BasicVerifier: Send + Sync + 'static {
    /// The identity of `username` if `password` is right.
    fn verify(&self, username: String, password: String) -> BoxFuture<'static, Option<Identity>>;
}

impl<F, Fut> BasicVerifier for F
where
    F: Fn(String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Identity>> + Send + 'static,
{
    fn verify(&self, username: String, password: String) -> BoxFuture<'static, Option<Identity>> {
        Box::pin(self(username, password))
    }
}

/// A fixed list of users and passwords, compared in constant time.
struct StaticCredentials(Vec<(Secret, Secret, String)>);

impl BasicVerifier for StaticCredentials {
    fn verify(&self, username: String, password: String) -> BoxFuture<'static, Option<Identity>> {
        let (u, p) = (
            Secret::new(username.as_bytes()),
            Secret::new(password.as_bytes()),
        );
        let found = find_constant_time(&self.0, |(su, sp, _)| su.matches(&u) & sp.matches(&p));
        let identity = found.map(|i| Identity::new(self.0[i].2.clone()));
        Box::pin(std::future::ready(identity))
    }
}

/// The Basic-authentication layer. See the [module documentation](super).
#[derive(Clone)]
pub struct BasicAuth {
    challenge: String,
    verifier: Arc<dyn BasicVerifier>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Checks credentials with `verifier`; `realm` is named in the challenge.
    pub fn new(realm: &str, verifier: impl BasicVerifier) -> Self {
        Self {
            challenge: format!("Basic realm={}, charset=\"UTF-8\"", quoted(realm)),
            verifier: Arc::new(verifier),
        }
    }

    /// Checks credentials against a fixed list of `(user, password)`, in constant time; the
    /// identity's name is the user name.
    pub fn credentials<I, U, P>(realm: &str, users: I) -> Self
    where
        I: IntoIterator<Item = (U, P)>,
        U: AsRef<str>,
        P: AsRef<str>,
    {
        let list = users
            .into_iter()
            .map(|(u, p)| {
                let (u, p) = (u.as_ref(), p.as_ref());
                (
                    Secret::new(u.as_bytes()),
                    Secret::new(p.as_bytes()),
                    u.to_owned(),
                )
            })
            .collect();
        Self::new(realm, StaticCredentials(list))
    }

    /// The `WWW-Authenticate` value of a refusal.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// `user:password` from the credentials of a `Basic` header.
fn decode(token: &str) -> Option<(String, String)> {
    let bytes = B64.decode(token.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

impl Layer for BasicAuth {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(BasicApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct BasicApp {
    cfg: BasicAuth,
    inner: SharedApp,
}

impl BasicApp {
    fn refuse(
        &self,
        scope: &Scope,
        send: Sender,
        message: &'static str,
    ) -> BoxFuture<'static, AppResult> {
        let response = Error::new(401, message)
            .with_header("www-authenticate", self.cfg.challenge.clone())
            .into_response();
        refuse(scope, send, response)
    }
}

impl App for BasicApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !matches!(
            scope.kind,
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket
        ) {
            return self.inner.call(scope, receive, send);
        }
        let (user, password) = match credentials(&scope, "basic") {
            Ok(Some(token)) => match decode(token) {
                Some(pair) => pair,
                None => return self.refuse(&scope, send, "malformed credentials"),
            },
            Ok(None) => return self.refuse(&scope, send, "authentication required"),
            Err(()) => return self.refuse(&scope, send, "malformed credentials"),
        };
        let verify = self.cfg.verifier.verify(user, password);
        let inner = self.inner.clone();
        let challenge = self.cfg.challenge.clone();
        Box::pin(async move {
            let connection = scope.connection().clone();
            let outcome = tokio::select! {
                identity = verify => Some(identity),
                _ = connection.disconnected() => None,
            };
            match outcome {
                // The client left while the verifier ran: nobody to answer.
                None => Ok(()),
                Some(Some(identity)) => {
                    scope.stash.insert(identity.with_scheme(AuthScheme::Basic));
                    inner.call(scope, receive, send).await
                }
                Some(None) => {
                    let response = Error::new(401, "invalid credentials")
                        .with_header("www-authenticate", challenge)
                        .into_response();
                    refuse(&scope, send, response).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_decode_with_colons_utf8_and_optional_padding() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(decode(&enc("a:b:c")), Some(("a".into(), "b:c".into())));
        assert_eq!(
            decode(&enc("jürgen:pässword")),
            Some(("jürgen".into(), "pässword".into()))
        );
        assert_eq!(
            decode(enc("a:b").trim_end_matches('=')),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(decode(&enc("no colon")), None);
        assert_eq!(decode("%%%"), None);
        assert_eq!(
            decode(&base64::engine::general_purpose::STANDARD.encode([0xff, b':', 0xfe])),
            None
        );
    }
}
