//! What a test client call can fail with.

use std::fmt;
use std::time::Duration;

use ragi::DisconnectReason;

/// A test client call did not get what it waited for.
///
/// Calls that wait (a WebSocket message, an SSE event, a response piece, lifespan start-up)
/// give up after the client's timeout (5 s by default, [`TestClient::timeout`]) with
/// [`TestError::Timeout`], which names what was awaited.
///
/// [`TestClient::timeout`]: super::TestClient::timeout
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TestError {
    /// Nothing came in time.
    Timeout {
        /// What the call waited for, e.g. `"a WebSocket message from GET /ws"`.
        waiting_for: String,
        /// How long it waited.
        after: Duration,
    },
    /// The WebSocket session is closed: the close code and reason the client saw (1006 and the
    /// disconnect reason's name when the session ended without a close frame).
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The response or event stream ended cleanly, with nothing more to read.
    Ended,
    /// The app failed after its response had started: the response was cut short (the server
    /// closes the connection without ending the body).
    Aborted,
    /// The client left (a scripted disconnect, [`ResponseStream::disconnect`], a dropped
    /// handle): there is nothing more to read.
    ///
    /// [`ResponseStream::disconnect`]: super::ResponseStream::disconnect
    Disconnected(DisconnectReason),
    /// A message or body was not what the call expected (binary where text was asked, JSON
    /// that does not parse, …).
    Unexpected(String),
    /// Lifespan start-up failed: the app sent `StartupFailed` with this message.
    StartupFailed(String),
    /// Lifespan shut-down failed: the app sent `ShutdownFailed` with this message.
    ShutdownFailed(String),
}

impl TestError {
    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    pub(crate) fn timeout(waiting_for: impl Into<String>, after: Duration) -> Self {
        Self::Timeout {
            waiting_for: waiting_for.into(),
            after,
        }
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waiting_for, after } => {
                write!(f, "timed out after {after:?} waiting for {waiting_for}")
            }
            Self::Closed { code, reason } => {
                write!(
                    f,
                    "the WebSocket is closed (code {code}, reason {reason:?})"
                )
            }
            Self::Ended => f.write_str("the stream ended"),
            Self::Aborted => {
                f.write_str("the response was aborted (the app failed after it started)")
            }
            Self::Disconnected(r) => write!(f, "the client left ({r})"),
            Self::Unexpected(what) => f.write_str(what),
            Self::StartupFailed(m) => write!(f, "lifespan start-up failed: {m}"),
            Self::ShutdownFailed(m) => write!(f, "lifespan shut-down failed: {m}"),
        }
    }
}

impl std::error::Error for TestError {}
