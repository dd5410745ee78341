//! Errors an app sees.
//!
//! [`SendError`] is opaque, in hyper's style: ask it with the `is_*` predicates; its `Display`
//! text is for people and may change.

use std::fmt;

use crate::{DisconnectReason, InvalidHeader};

/// `send` refused an event. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendError {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Disconnected(DisconnectReason),
    InvalidEvent(String),
    InvalidHeader(InvalidHeader),
}

impl SendError {
    /// The client is gone (or the exchange was ended) for `reason`.
    pub fn disconnected(reason: DisconnectReason) -> Self {
        Self {
            kind: Kind::Disconnected(reason),
        }
    }

    /// The event is not valid for the scope or the exchange's state.
    pub fn invalid_event(why: impl Into<String>) -> Self {
        Self {
            kind: Kind::InvalidEvent(why.into()),
        }
    }

    /// A header in the event was refused.
    pub fn invalid_header(h: InvalidHeader) -> Self {
        Self {
            kind: Kind::InvalidHeader(h),
        }
    }

    /// Whether the client is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self.kind, Kind::Disconnected(_))
    }

    /// Why the client is gone, when it is.
    pub fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        match &self.kind {
            Kind::Disconnected(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the event was not valid for the scope or the state.
    pub fn is_invalid_event(&self) -> bool {
        matches!(self.kind, Kind::InvalidEvent(_))
    }

    /// Whether a header was refused (CR, LF, NUL, bad name).
    pub fn is_invalid_header(&self) -> bool {
        matches!(self.kind, Kind::InvalidHeader(_))
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Disconnected(r) => write!(f, "the client is gone ({r})"),
            Kind::InvalidEvent(why) => write!(f, "invalid event: {why}"),
            Kind::InvalidHeader(h) => write!(f, "{h}"),
        }
    }
}

impl std::error::Error for SendError {}

/// An app does not handle this kind of scope. Returning it is the normal way to decline; the
/// server answers the client (500 for http, 403 for a WebSocket handshake) and goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedScope(pub crate::ScopeKind);

impl fmt::Display for UnsupportedScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the app does not handle {} scopes", self.0.as_str())
    }
}

impl std::error::Error for UnsupportedScope {}
