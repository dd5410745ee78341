//! Trait-based HTTP endpoints: one method per verb.
//!
//! ```
//! use http::Method;
//! use ragi_tools::endpoint::{endpoint, HttpEndpoint};
//! use ragi_tools::prelude::*;
//! use ragi_tools::router::Router;
//!
//! struct Users;
//!
//! impl HttpEndpoint for Users {
//!     const ALLOW: &'static [Method] = &[Method::GET, Method::POST];
//!
//!     async fn get(&self, _cx: HttpContext) -> HandlerResult {
//!         Ok(Response::json(&serde_json::json!([])))
//!     }
//!
//!     async fn post(&self, _cx: HttpContext) -> HandlerResult {
//!         Ok((201, "created").into_response())
//!     }
//! }
//!
//! let app = endpoint(Users);                           // an app of its own, or
//! let routed = Router::new().endpoint("/users", Users); // a route
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app); is_app(routed);
//! ```
//!
//! [`HttpEndpoint::ALLOW`] lists the verbs the type implements (Rust cannot ask a type which
//! default methods it overrode, so the list is written once, beside the methods). A request
//! with another method gets 405 with `Allow` (HEAD added where GET is, OPTIONS always); HEAD
//! goes to `get` unless HEAD is listed; OPTIONS is answered `204` with `Allow` unless listed.
//! A verb that is listed but not implemented answers 405 as well (and logs it). Mounted in a
//! [`Router`](crate::router::Router) with [`Router::endpoint`](crate::router::Router::endpoint),
//! the listed verbs join the router's table, so its 405 and OPTIONS answers include them.

use std::future::Future;
use std::sync::Arc;

use http::Method;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::response::Responder;
use crate::{Error, HandlerResult, HttpContext, IntoResponse, Response};

/// An HTTP endpoint: one method per verb. See the [module documentation](self).
///
/// Implement the verbs with `async fn`; each returns a [`HandlerResult`] (`Ok(response)` or an
/// [`Error`] that renders as one).
pub trait HttpEndpoint: Send + Sync + 'static {
    /// The verbs this endpoint implements, among GET, HEAD, POST, PUT, PATCH, DELETE and
    /// OPTIONS.
    const ALLOW: &'static [Method];

    /// Answers GET (and HEAD, unless HEAD is in [`ALLOW`](Self::ALLOW)).
    fn get(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers HEAD (the server drops any body).
    fn head(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers POST.
    fn post(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers PUT.
    fn put(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers PATCH.
    fn patch(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers DELETE.
    fn delete(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }

    /// Answers OPTIONS (instead of the automatic `204` with `Allow`).
    fn options(&self, cx: HttpContext) -> impl Future<Output = HandlerResult> + Send {
        not_implemented::<Self>(cx)
    }
}

/// The `Allow` value of `E`.
fn allow<E: HttpEndpoint + ?Sized>() -> String {
    let mut set = crate::router::MethodSet::default();
    for m in E::ALLOW {
        set.insert(m.clone());
    }
    set.allow_header()
}

async fn not_implemented<E: HttpEndpoint + ?Sized>(cx: HttpContext) -> HandlerResult {
    if E::ALLOW.contains(cx.method()) {
        tracing::error!(
            endpoint = std::any::type_name::<E>(),
            method = %cx.method(),
            "the endpoint lists this method in ALLOW but does not implement it"
        );
    }
    Err(Error::method_not_allowed(&allow::<E>()))
}

/// The app that serves every HTTP request with `e`. See the [module documentation](self).
pub fn endpoint<E: HttpEndpoint>(e: E) -> EndpointApp<E> {
    EndpointApp { inner: Arc::new(e) }
}

/// An app made of an [`HttpEndpoint`]; built by [`endpoint`].
pub struct EndpointApp<E> {
    inner: Arc<E>,
}

impl<E> Clone for EndpointApp<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<E> std::fmt::Debug for EndpointApp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointApp")
            .field("endpoint", &std::any::type_name::<E>())
            .finish()
    }
}

async fn dispatch<E: HttpEndpoint>(e: &E, cx: HttpContext) -> Response {
    let method = cx.method().clone();
    let result = if E::ALLOW.contains(&method) {
        match method {
            Method::GET => e.get(cx).await,
            Method::HEAD => e.head(cx).await,
            Method::POST => e.post(cx).await,
            Method::PUT => e.put(cx).await,
            Method::PATCH => e.patch(cx).await,
            Method::DELETE => e.delete(cx).await,
            Method::OPTIONS => e.options(cx).await,
            _ => Err(Error::method_not_allowed(&allow::<E>())),
        }
    } else if method == Method::HEAD && E::ALLOW.contains(&Method::GET) {
        e.get(cx).await
    } else if method == Method::OPTIONS {
        Ok(Response::no_content().header("allow", allow::<E>()))
    } else {
        Err(Error::method_not_allowed(&allow::<E>()))
    };
    result.into_response()
}

impl<E: HttpEndpoint> App for EndpointApp<E> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let e = self.inner.clone();
        Box::pin(async move {
            match scope.kind {
                ScopeKind::Http | ScopeKind::Sse => {}
                other => return Err(UnsupportedScope(other).into()),
            }
            let responder = Responder::new(&scope, send);
            let cx = HttpContext::from_parts(scope, receive, responder.clone());
            let response = dispatch(&*e, cx).await;
            responder.complete(response).await
        })
    }
}
