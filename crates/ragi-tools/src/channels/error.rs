//! The channel layer's error: what failed, and whether trying again later may help.

use std::borrow::Cow;
use std::fmt;

/// What kind of failure a [`ChannelError`] is. Match on it; new kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelErrorKind {
    /// The backend cannot be reached (a Redis connection that is down) or did not answer in
    /// time. Publishing fails with this at once, never hangs; an HTTP answer for it is 503.
    Unavailable,
    /// A channel or group name breaks the naming rules (see
    /// [`validate_group`](super::validate_group)).
    InvalidName,
    /// The channel is not a live subscription of this process (`group_add` /
    /// `group_discard` on a channel that ended or belongs to another process).
    UnknownChannel,
    /// A message could not be encoded (a value serde refused, a field too long for the wire
    /// form).
    Encode,
    /// A message could not be decoded (malformed wire form, JSON of the wrong shape).
    Decode,
    /// The layer was closed.
    Closed,
}

/// A channel-layer failure. Converts into [`crate::Error`] with `?`: 503 when the backend is
/// unavailable, 500 otherwise (400 for an invalid name).
pub struct ChannelError {
    kind: ChannelErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ChannelError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ChannelErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The backend is unavailable (a backend's connection is down, an operation timed out).
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ChannelErrorKind::Unavailable, message)
    }

    /// Attaches the underlying cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ChannelErrorKind {
        self.kind
    }

    /// Whether the backend was unavailable (trying again later may succeed).
    pub fn is_unavailable(&self) -> bool {
        self.kind == ChannelErrorKind::Unavailable
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status this failure means when a handler returns it: 503 for an unavailable
    /// backend, 400 for an invalid name, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self.kind {
            ChannelErrorKind::Unavailable | ChannelErrorKind::Closed => 503,
            ChannelErrorKind::InvalidName => 400,
            _ => 500,
        }
    }
}

impl fmt::Debug for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The toolkit error a handler answers with: 503 (with `retry-after: 1`) for an unavailable
/// backend, 400 for an invalid name (with the message), 500 otherwise (the cause logged).
pub(crate) fn into_error(e: ChannelError) -> crate::Error {
    match e.status() {
        503 => crate::Error::new(503, "the channel layer is unavailable")
            .with_header("retry-after", "1")
            .with_source(e),
        400 => crate::Error::bad_request(e.message.clone()).with_source(e),
        _ => crate::Error::internal(e),
    }
}
