//! Disconnect scripting: when the test client leaves, and why.
//!
//! A real client can leave at any moment; the server then ends the request's connection
//! object (spec §3: `is_connected()` false, the reason set, `disconnected()` resolved, the
//! `on_disconnect` callbacks run in order, then a `Disconnect` event queued for `receive`) and
//! refuses every later `send` with the reason. The test client does exactly that, at a point
//! you choose:
//!
//! ```
//! use std::time::Duration;
//! use ragi::DisconnectReason;
//! use ragi_tools::test::{Disconnect, TestClient};
//!
//! # async fn demo(client: TestClient) {
//! // Leave after the app has taken 10 body bytes.
//! let res = client
//!     .post("/upload")
//!     .body(vec![0u8; 100])
//!     .disconnect(Disconnect::MidBody(10), DisconnectReason::ClientClosed)
//!     .send()
//!     .await;
//! assert_eq!(res.connection().disconnect_reason(), Some(DisconnectReason::ClientClosed));
//!
//! // Leave on demand.
//! let req = client.get("/slow");
//! let leave = req.disconnect_handle();
//! let pending = tokio::spawn(req.send());
//! leave.disconnect(DisconnectReason::ReadError);
//! let res = pending.await.unwrap();
//! assert_eq!(res.client_left(), Some(DisconnectReason::ReadError));
//! # let _ = Duration::ZERO;
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ragi::DisconnectReason;

/// When a scripted client leaves. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// Right after the app was called, before any body byte was sent. (A request without a
    /// body still yields its one empty final piece first, as on the server, where the request
    /// had already ended when the client left.)
    BeforeBody,
    /// The client sends only the first `n` body bytes (no end), and leaves the moment the app
    /// has taken them. `MidBody(0)` is [`Disconnect::BeforeBody`].
    MidBody(u64),
    /// The moment the app's response start (`ResponseStart`, `SseStart`, or the decline's
    /// `HttpResponseStart`) was accepted: the app's next `send` fails.
    AfterResponseStart,
    /// Once the client has received at least `n` response body bytes (for an SSE stream, bytes
    /// of the framed stream, keep-alive comments included); the piece that crossed `n` was
    /// received. A HEAD response delivers no body bytes, so it never gets there.
    AfterBytes(u64),
    /// This long after the app was called (tokio's clock: a paused clock makes it exact).
    After(Duration),
}

/// Makes a pending request's client leave when you say: [`RequestBuilder::disconnect_handle`].
///
/// Cheap to clone. Calling [`disconnect`](Self::disconnect) before the request is sent makes
/// the client leave as soon as it is (as [`Disconnect::BeforeBody`]).
///
/// [`RequestBuilder::disconnect_handle`]: super::RequestBuilder::disconnect_handle
#[derive(Clone, Default)]
pub struct DisconnectHandle {
    slot: Arc<Mutex<Slot>>,
}

#[derive(Default)]
struct Slot {
    target: Option<Weak<dyn Leave>>,
    pending: Option<DisconnectReason>,
}

/// Something a client can leave.
pub(crate) trait Leave: Send + Sync {
    /// The client leaves with `reason`; false if the exchange had already ended.
    fn leave(&self, reason: DisconnectReason) -> bool;
}

impl DisconnectHandle {
    /// The client leaves now with `reason`. Returns false if the exchange had already ended
    /// (the response was complete, or the client had left): nothing changes then.
    pub fn disconnect(&self, reason: DisconnectReason) -> bool {
        let target = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match &slot.target {
                Some(t) => t.upgrade(),
                None => {
                    if slot.pending.is_some() {
                        return false;
                    }
                    slot.pending = Some(reason);
                    return true;
                }
            }
        };
        target.is_some_and(|t| t.leave(reason))
    }

    /// Binds the handle to a started exchange; a disconnect asked for earlier happens now.
    pub(crate) fn attach(&self, target: Weak<dyn Leave>) {
        let pending = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.target = Some(target.clone());
            slot.pending.take()
        };
        if let (Some(reason), Some(t)) = (pending, target.upgrade()) {
            t.leave(reason);
        }
    }
}

impl fmt::Debug for DisconnectHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("DisconnectHandle")
            .field("attached", &slot.target.is_some())
            .field("pending", &slot.pending)
            .finish()
    }
}
