//! What the test client records of an app's call: the events it sent, the ones refused, and
//! how the call ended.

use ragi::{SendError, SendEvent};

/// One event the app passed to `send`, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sent {
    /// The event, as the app sent it.
    pub event: SendEvent,
    /// The error `send` returned, if it refused the event.
    pub error: Option<SendError>,
}

/// An event the app sent that the server would refuse as a protocol error (the app's `send`
/// got this error too): an event out of order or not valid for the scope, or a header with
/// CR, LF, NUL or a bad name. A `send` refused because the client had left is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The event's name (`"ResponseBody"`, …).
    pub event: &'static str,
    /// The error the app got.
    pub error: SendError,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.event, self.error)
    }
}

/// How the app's call has ended, so far.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppOutcome {
    /// The call has not returned yet.
    Running,
    /// It returned `Ok(())`.
    Returned,
    /// It returned an error or panicked; the text is the error's (`"the app panicked: …"` for
    /// a panic).
    Failed(String),
}

impl AppOutcome {
    /// The failure's text, if the call failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn from_join(r: Result<ragi::AppResult, tokio::task::JoinError>) -> Self {
        match r {
            Ok(Ok(())) => Self::Returned,
            Ok(Err(e)) => Self::Failed(e.to_string()),
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                let msg = if let Some(s) = p.downcast_ref::<&str>() {
                    (*s).to_owned()
                } else if let Some(s) = p.downcast_ref::<String>() {
                    s.clone()
                } else {
                    String::new()
                };
                if msg.is_empty() {
                    Self::Failed("the app panicked".to_owned())
                } else {
                    Self::Failed(format!("the app panicked: {msg}"))
                }
            }
            Err(_) => Self::Failed("the app's task was cancelled".to_owned()),
        }
    }
}

/// The send log of one exchange.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) sent: Vec<Sent>,
}

impl Log {
    pub(crate) fn record(&mut self, event: SendEvent, result: &Result<(), SendError>) {
        self.sent.push(Sent {
            event,
            error: result.as_ref().err().cloned(),
        });
    }

    pub(crate) fn accepted(&self) -> Vec<SendEvent> {
        self.sent
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.event.clone())
            .collect()
    }

    pub(crate) fn violations(&self) -> Vec<Violation> {
        self.sent
            .iter()
            .filter_map(|s| match &s.error {
                Some(e) if !e.is_disconnected() => Some(Violation {
                    event: s.event.name(),
                    error: e.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// A short list of event names, for error messages.
    pub(crate) fn summary(&self) -> String {
        if self.sent.is_empty() {
            return "nothing".to_owned();
        }
        let names: Vec<String> = self
            .sent
            .iter()
            .map(|s| match &s.error {
                None => s.event.name().to_owned(),
                Some(e) => format!("{} (refused: {e})", s.event.name()),
            })
            .collect();
        names.join(", ")
    }
}
