//! What travels through a channel layer: bytes, text, or a serde value as JSON, with a few
//! optional labels.

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{ChannelError, ChannelErrorKind};

/// What a [`Message`]'s payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Bytes.
    Binary,
    /// UTF-8 text.
    Text,
    /// UTF-8 text holding a JSON value (made by [`Message::json`]).
    Json,
}

/// One message: a payload (bytes, text, or JSON made from a serde value) and optional labels
/// — an event name, an id, the channel it came from.
///
/// Cloning is one reference-count increment, whatever the size: a group send hands every
/// member the same message.
///
/// ```
/// use ragi_tools::channels::{Message, MessageKind};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Said { nick: String, text: String }
///
/// let m = Message::json(&Said { nick: "ann".into(), text: "hi".into() })?.with_event("said");
/// assert_eq!(m.kind(), MessageKind::Json);
/// assert_eq!(m.as_str(), Some(r#"{"nick":"ann","text":"hi"}"#));
/// assert_eq!(m.event(), Some("said"));
/// let back: Said = m.json_value()?;
/// assert_eq!(back.nick, "ann");
///
/// // The wire form a backend (Redis) carries, and back.
/// let again = Message::decode(m.encode()?)?;
/// assert_eq!(again, m);
/// # Ok::<(), ragi_tools::channels::ChannelError>(())
/// ```
#[derive(Clone)]
pub struct Message {
    inner: Arc<Inner>,
}

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    kind: MessageKind,
    data: Data,
    event: Option<Box<str>>,
    id: Option<Box<str>>,
    origin: Option<Box<str>>,
}

#[derive(Clone, PartialEq, Eq)]
enum Data {
    Bytes(Bytes),
    Text(String),
}

/// The longest event name or id in the wire form, in bytes.
pub const MAX_LABEL_LEN: usize = 255;

const WIRE_VERSION: u8 = 1;
const HAS_EVENT: u8 = 1;
const HAS_ID: u8 = 2;
const HAS_ORIGIN: u8 = 4;

impl Message {
    fn make(kind: MessageKind, data: Data) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                data,
                event: None,
                id: None,
                origin: None,
            }),
        }
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::make(MessageKind::Binary, Data::Bytes(bytes.into()))
    }

    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::make(MessageKind::Text, Data::Text(text.into()))
    }

    /// A message holding `value` as JSON (serialised once, here).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, ChannelError> {
        let text = serde_json::to_string(value).map_err(|e| {
            ChannelError::new(ChannelErrorKind::Encode, "cannot serialise the message")
                .with_source(e)
        })?;
        Ok(Self::make(MessageKind::Json, Data::Text(text)))
    }

    /// A message holding JSON text that is already serialised (not checked).
    pub fn json_text(text: impl Into<String>) -> Self {
        Self::make(MessageKind::Json, Data::Text(text.into()))
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Labels the message with an event name (the SSE apps send it as `event:`; Django's
    /// `type`).
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.inner_mut().event = Some(event.into().into_boxed_str());
        self
    }

    /// Labels the message with an id (the SSE apps send it as `id:`; a backend with history
    /// sets it to its stream position, which a client sends back as `Last-Event-ID`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.inner_mut().id = Some(id.into().into_boxed_str());
        self
    }

    /// Labels the message with the channel that sent it (a broadcast skips its sender with
    /// it).
    pub fn with_origin(mut self, channel: impl Into<String>) -> Self {
        self.inner_mut().origin = Some(channel.into().into_boxed_str());
        self
    }

    /// What the payload is.
    pub fn kind(&self) -> MessageKind {
        self.inner.kind
    }

    /// The payload's bytes (text as UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.inner.data {
            Data::Bytes(b) => b,
            Data::Text(t) => t.as_bytes(),
        }
    }

    /// The payload as text, for a text or JSON message (`None` for a binary one).
    pub fn as_str(&self) -> Option<&str> {
        match &self.inner.data {
            Data::Bytes(_) => None,
            Data::Text(t) => Some(t),
        }
    }

    /// The payload as [`Bytes`] (no copy for a binary message).
    pub fn to_bytes(&self) -> Bytes {
        match &self.inner.data {
            Data::Bytes(b) => b.clone(),
            Data::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
        }
    }

    /// The payload parsed as JSON (any kind of message whose bytes are JSON).
    pub fn json_value<T: serde::de::DeserializeOwned>(&self) -> Result<T, ChannelError> {
        serde_json::from_slice(self.as_bytes()).map_err(|e| {
            ChannelError::new(
                ChannelErrorKind::Decode,
                "the message is not the JSON expected",
            )
            .with_source(e)
        })
    }

    /// The event name, if labelled.
    pub fn event(&self) -> Option<&str> {
        self.inner.event.as_deref()
    }

    /// The id, if labelled.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// The sending channel, if labelled.
    pub fn origin(&self) -> Option<&str> {
        self.inner.origin.as_deref()
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two handles share one message (a clone).
    pub fn ptr_eq(&self, other: &Message) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The wire form, for a backend that carries messages as bytes: a version byte, the kind,
    /// a flag byte, each label present as a length byte and its bytes, then the payload.
    /// Fails when a label is longer than [`MAX_LABEL_LEN`].
    pub fn encode(&self) -> Result<Bytes, ChannelError> {
        let inner = &*self.inner;
        let labels = [
            (HAS_EVENT, inner.event.as_deref()),
            (HAS_ID, inner.id.as_deref()),
            (HAS_ORIGIN, inner.origin.as_deref()),
        ];
        let mut flags = 0;
        let mut len = 3 + self.len();
        for (flag, label) in labels {
            if let Some(l) = label {
                if l.len() > MAX_LABEL_LEN {
                    return Err(ChannelError::new(
                        ChannelErrorKind::Encode,
                        format!("a message label is longer than {MAX_LABEL_LEN} bytes"),
                    ));
                }
                flags |= flag;
                len += 1 + l.len();
            }
        }
        let mut out = BytesMut::with_capacity(len);
        out.put_u8(WIRE_VERSION);
        out.put_u8(match inner.kind {
            MessageKind::Binary => 0,
            MessageKind::Text => 1,
            MessageKind::Json => 2,
        });
        out.put_u8(flags);
        for (_, label) in labels {
            if let Some(l) = label {
                out.put_u8(l.len() as u8);
                out.put_slice(l.as_bytes());
            }
        }
        out.put_slice(self.as_bytes());
        Ok(out.freeze())
    }

    /// A message from its [wire form](Self::encode). The payload of a binary message is a
    /// slice of `wire` (no copy).
    pub fn decode(wire: Bytes) -> Result<Self, ChannelError> {
        let bad = |what: &str| {
            ChannelError::new(
                ChannelErrorKind::Decode,
                format!("not a channel message: {what}"),
            )
        };
        if wire.len() < 3 {
            return Err(bad("too short"));
        }
        if wire[0] != WIRE_VERSION {
            return Err(bad("unknown version"));
        }
        let kind = match wire[1] {
            0 => MessageKind::Binary,
            1 => MessageKind::Text,
            2 => MessageKind::Json,
            _ => return Err(bad("unknown kind")),
        };
        let flags = wire[2];
        if flags & !(HAS_EVENT | HAS_ID | HAS_ORIGIN) != 0 {
            return Err(bad("unknown flags"));
        }
        let mut at = 3;
        let mut label = |flag: u8| -> Result<Option<Box<str>>, ChannelError> {
            if flags & flag == 0 {
                return Ok(None);
            }
            let n = *wire.get(at).ok_or_else(|| bad("truncated label"))? as usize;
            let bytes = wire
                .get(at + 1..at + 1 + n)
                .ok_or_else(|| bad("truncated label"))?;
            let s = std::str::from_utf8(bytes).map_err(|_| bad("label not UTF-8"))?;
            at += 1 + n;
            Ok(Some(s.into()))
        };
        let event = label(HAS_EVENT)?;
        let id = label(HAS_ID)?;
        let origin = label(HAS_ORIGIN)?;
        let payload = wire.slice(at..);
        let data = match kind {
            MessageKind::Binary => Data::Bytes(payload),
            MessageKind::Text | MessageKind::Json => {
                Data::Text(String::from_utf8(payload.to_vec()).map_err(|_| bad("text not UTF-8"))?)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                kind,
                data,
                event,
                id,
                origin,
            }),
        })
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner == other.inner
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("kind", &self.inner.kind);
        match &self.inner.data {
            Data::Text(t) if t.len() <= 200 => d.field("text", t),
            Data::Text(t) => d.field("text_len", &t.len()),
            Data::Bytes(b) => d.field("bytes_len", &b.len()),
        };
        if let Some(e) = &self.inner.event {
            d.field("event", e);
        }
        if let Some(i) = &self.inner.id {
            d.field("id", i);
        }
        if let Some(o) = &self.inner.origin {
            d.field("origin", o);
        }
        d.finish()
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Self::binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Self::binary(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_every_kind_and_label() {
        let cases = [
            Message::binary(vec![0u8, 255, 1]),
            Message::text("héllo"),
            Message::json(&serde_json::json!({"a": [1, 2]})).unwrap(),
            Message::text("")
                .with_event("e")
                .with_id("42")
                .with_origin("specific.x!1"),
            Message::binary(Bytes::new()).with_origin("o"),
        ];
        for m in cases {
            let wire = m.encode().unwrap();
            let back = Message::decode(wire.clone()).unwrap();
            assert_eq!(back, m);
            assert_eq!(back.kind(), m.kind());
            assert_eq!(back.event(), m.event());
            assert_eq!(back.id(), m.id());
            assert_eq!(back.origin(), m.origin());
            // Every truncation is refused or decodes to a shorter payload, never panics.
            for cut in 0..wire.len() {
                let _ = Message::decode(wire.slice(..cut));
            }
        }
    }

    #[test]
    fn malformed_wire_forms_are_refused() {
        for bad in [
            &b""[..],
            b"\x01\x00",
            b"\x02\x00\x00",
            b"\x01\x07\x00",
            b"\x01\x00\x08",
            b"\x01\x00\x01\x05ab",
            b"\x01\x01\x00\xff",
            b"\x01\x00\x01\x01\xff",
        ] {
            let e = Message::decode(Bytes::from_static(bad)).unwrap_err();
            assert_eq!(e.kind(), ChannelErrorKind::Decode, "{bad:?}");
        }
        let long = Message::text("x").with_id("i".repeat(256));
        assert_eq!(long.encode().unwrap_err().kind(), ChannelErrorKind::Encode);
        assert!(Message::text("x").with_id("i".repeat(255)).encode().is_ok());
    }

    #[test]
    fn clones_share_the_payload_and_labels_copy_only_when_shared() {
        let m = Message::text("x".repeat(1000));
        let c = m.clone();
        assert!(m.ptr_eq(&c));
        let labelled = c.with_event("e");
        assert!(!labelled.ptr_eq(&m));
        assert_eq!(m.event(), None);
        assert_eq!(labelled.event(), Some("e"));
        assert_eq!(Message::binary(vec![1, 2]).as_str(), None);
        assert_eq!(Message::text("ab").to_bytes(), Bytes::from_static(b"ab"));
        let e = Message::text("{")
            .json_value::<serde_json::Value>()
            .unwrap_err();
        assert_eq!(e.kind(), ChannelErrorKind::Decode);
    }
}
