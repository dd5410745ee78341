//! The server's error type: opaque, with predicates (hyper's style).

use std::fmt;

/// An error from the server: binding, start-up, or serving. Ask it with the `is_*`
/// predicates; the `Display` text is for people and may change.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug)]
enum Kind {
    Bind(String),
    Startup(String),
    Config(String),
    // Made by the command line's TLS options (`cli`).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    Tls(String),
}

impl Error {
    pub(crate) fn bind(addr: impl fmt::Display, e: std::io::Error) -> Self {
        Self {
            kind: Kind::Bind(addr.to_string()),
            source: Some(Box::new(e)),
        }
    }

    pub(crate) fn startup(message: String) -> Self {
        Self {
            kind: Kind::Startup(message),
            source: None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Config(message.into()),
            source: None,
        }
    }

    /// The TLS certificates or key could not be loaded; `what` says which options gave them.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn tls(what: impl Into<String>, e: crate::tls::TlsError) -> Self {
        Self {
            kind: Kind::Tls(what.into()),
            source: Some(Box::new(e)),
        }
    }

    /// The TLS certificates or key could not be loaded.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls(_))
    }

    /// A listening socket could not be bound.
    pub fn is_bind(&self) -> bool {
        matches!(self.kind, Kind::Bind(_))
    }

    /// The lifespan app reported `StartupFailed`.
    pub fn is_startup_failed(&self) -> bool {
        matches!(self.kind, Kind::Startup(_))
    }

    /// A setting is invalid.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    /// The lifespan start-up failure message, when that is what this is.
    pub fn startup_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Startup(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Bind(a) => write!(f, "cannot listen on {a}")?,
            Kind::Startup(m) => write!(f, "lifespan start-up failed: {m}")?,
            Kind::Config(m) => write!(f, "invalid configuration: {m}")?,
            Kind::Tls(m) => write!(f, "cannot load TLS ({m})")?,
        }
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
