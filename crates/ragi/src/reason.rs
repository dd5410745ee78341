//! Why a connection, request or session ended.
//!
//! A [`DisconnectReason`] is what a [`Connection`](crate::Connection) reports once the client is
//! gone or the exchange was ended abnormally. The twelve standard reasons have fixed string
//! forms ([`DisconnectReason::as_str`]) that are part of ragi's contract: they appear in logs,
//! in the lifecycle listener's `closed` notice and in the probe app's JSON. Servers and
//! middleware may add their own reasons; their names start with `x-`.
//!
//! ```
//! use ragi::DisconnectReason;
//!
//! let r: DisconnectReason = "client_closed".parse().unwrap();
//! assert_eq!(r, DisconnectReason::ClientClosed);
//! assert_eq!(r.to_string(), "client_closed");
//!
//! let custom: DisconnectReason = "x-quota-exceeded".parse().unwrap();
//! assert_eq!(custom.as_str(), "x-quota-exceeded");
//! assert!("quota".parse::<DisconnectReason>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The reason a client, request or session went away.
///
/// Cheap to clone (an extra reason holds an `Arc<str>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed cleanly: TCP FIN, or an HTTP/2 `RST_STREAM` from the client.
    ClientClosed,
    /// The client stopped sending in the middle of a request (read stall).
    ClientTimeout,
    /// No request arrived in time on a fresh connection.
    IdleTimeout,
    /// A kept-alive connection idled between requests, or a WebSocket pong did not come.
    KeepaliveTimeout,
    /// The client did not take the response bytes in time.
    WriteTimeout,
    /// A socket write failed (EPIPE, ECONNRESET).
    WriteError,
    /// A socket read failed (ECONNRESET, TLS error).
    ReadError,
    /// Malformed HTTP, an HTTP/2 protocol violation, a WebSocket frame violation.
    ProtocolError,
    /// Graceful shutdown reached this request before it completed.
    ServerShutdown,
    /// The app failed or produced no response; the server produced the backstop answer.
    ServerError,
    /// The request body exceeded the limit.
    BodyTooLarge,
    /// A bounded queue (incoming WebSocket messages, outgoing buffer) overflowed.
    QueueOverflow,
    /// An extra reason; its name starts with `x-`. Build it with [`DisconnectReason::extra`].
    Extra(ExtraReason),
}

/// The name of an extra (`x-`) reason. Always starts with `x-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExtraReason(Arc<str>);

impl ExtraReason {
    /// The reason's name, `x-` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The error returned when a string is not a reason: neither a standard name nor `x-…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidReason(String);

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a disconnect reason: {:?} (standard names, or `x-` followed by a name)",
            self.0
        )
    }
}

impl std::error::Error for InvalidReason {}

impl DisconnectReason {
    /// Every standard reason, in the order of the specification's table.
    pub const STANDARD: [DisconnectReason; 12] = [
        Self::ClientClosed,
        Self::ClientTimeout,
        Self::IdleTimeout,
        Self::KeepaliveTimeout,
        Self::WriteTimeout,
        Self::WriteError,
        Self::ReadError,
        Self::ProtocolError,
        Self::ServerShutdown,
        Self::ServerError,
        Self::BodyTooLarge,
        Self::QueueOverflow,
    ];

    /// An extra reason. `name` must start with `x-` and have at least one more character made
    /// of ASCII letters, digits, `-`, `_` or `.`.
    pub fn extra(name: &str) -> Result<Self, InvalidReason> {
        let rest = name
            .strip_prefix("x-")
            .ok_or_else(|| InvalidReason(name.to_owned()))?;
        let ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self::Extra(ExtraReason(Arc::from(name))))
        } else {
            Err(InvalidReason(name.to_owned()))
        }
    }

    /// The reason's string form, e.g. `"client_closed"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::ClientTimeout => "client_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::WriteError => "write_error",
            Self::ReadError => "read_error",
            Self::ProtocolError => "protocol_error",
            Self::ServerShutdown => "server_shutdown",
            Self::ServerError => "server_error",
            Self::BodyTooLarge => "body_too_large",
            Self::QueueOverflow => "queue_overflow",
            Self::Extra(x) => x.as_str(),
        }
    }

    /// True when the client's side caused the end (close, reset, stall, bad input).
    pub fn is_client_side(&self) -> bool {
        matches!(
            self,
            Self::ClientClosed
                | Self::ClientTimeout
                | Self::IdleTimeout
                | Self::KeepaliveTimeout
                | Self::WriteTimeout
                | Self::WriteError
                | Self::ReadError
                | Self::ProtocolError
                | Self::BodyTooLarge
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DisconnectReason {
    type Err = InvalidReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::STANDARD
            .iter()
            .find(|r| r.as_str() == s)
            .cloned()
            .map_or_else(|| Self::extra(s), Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_names_round_trip() {
        let names = [
            "client_closed",
            "client_timeout",
            "idle_timeout",
            "keepalive_timeout",
            "write_timeout",
            "write_error",
            "read_error",
            "protocol_error",
            "server_shutdown",
            "server_error",
            "body_too_large",
            "queue_overflow",
        ];
        for (r, name) in DisconnectReason::STANDARD.iter().zip(names) {
            assert_eq!(r.as_str(), name);
            assert_eq!(name.parse::<DisconnectReason>().unwrap(), *r);
        }
    }

    #[test]
    fn extra_reasons_need_the_prefix() {
        assert!(DisconnectReason::extra("x-a.b_c-1").is_ok());
        assert!(DisconnectReason::extra("x-").is_err());
        assert!(DisconnectReason::extra("y-thing").is_err());
        assert!(DisconnectReason::extra("x-bad name").is_err());
        assert!("x-\r\n".parse::<DisconnectReason>().is_err());
    }
}
