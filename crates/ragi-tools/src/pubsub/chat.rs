//! A multi-room chat with presence: WebSocket, an SSE + POST fallback sharing the same rooms,
//! nicknames, and a members list that says who left and why.
//!
//! ```
//! use ragi_tools::pubsub::Chat;
//!
//! // Mount it at /api/chat (a router's mount, or any URL map): it serves
//! //   GET  /api/chat/{room}/ws?nick=N      WebSocket
//! //   GET  /api/chat/{room}/events?nick=N  SSE (an `sse` scope or a plain GET)
//! //   POST /api/chat/{room}/messages       {"nick", "text"} → 202
//! //   GET  /api/chat/{room}/members        [{"nick", "online", "left_reason"}]
//! let chat = Chat::new(); // the in-memory channel layer and presence
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(chat);
//! ```
//!
//! This is the chat of `ragi demo` (docs/demo-api.md is the interface). Across processes,
//! give it a shared layer and presence ([`Chat::with_backends`]); nothing else changes.
//!
//! # Protocol
//!
//! Everything a client receives is a JSON object with a `type` ([`ChatEvent`]):
//!
//! * `{"type": "message", "room", "nick", "text", "at"}` (`at`: Unix milliseconds);
//! * `{"type": "presence", "room", "nick", "online", "reason"}` when a nick comes online or
//!   goes offline (`reason`: the disconnect reason of its last connection, e.g.
//!   `client_closed`, `keepalive_timeout`, `queue_overflow`);
//! * `{"type": "gap", "room", "reason", "missed"}` when messages may have been lost (the
//!   subscriber fell behind, the channel layer reconnected): refetch what can be refetched;
//! * `{"type": "reconnect"}` is reserved for a server about to drain (issue 13).
//!
//! **WebSocket** (`/ws`): text frames `{"text": "..."}` in (a `nick` field is ignored: the
//! session's nick is used), every event of the room out as a text frame. A binary frame closes
//! the session with 1003, malformed JSON or a bad text with 1008.
//!
//! **SSE** (`/events`): messages as default (`message`) events, presence as `presence` events,
//! gaps as `gap` events; the same JSON as `data`. It sends with **POST** (`/messages`,
//! `content-type: application/json`, `{"nick", "text"}` → 202 with the message; 400 for
//! malformed JSON or a bad nick, 415 for another content type, 422 for a wrong shape or text,
//! 413 over 16 KiB).
//!
//! **Members** (`/members`): `[{"nick", "online", "left_reason"}]`, everyone seen in the room
//! (by this process, or through a shared presence), in the order first seen.
//!
//! Rooms are `[A-Za-z0-9_-]{1,32}`, nicks 1 to 32 characters without control characters;
//! anything else is a 400. Texts are 1 to [`Chat::max_text`] characters (4096).
//!
//! # Presence comes from the connection objects
//!
//! A WebSocket session or an event stream with a nick is a *connection* of that nick in the
//! room. It joins before the handshake is answered; it leaves **from the connection object's
//! `on_disconnect`**, the moment the server knows the client is gone, with the object's reason
//! — not when a read fails or a timeout fires. When the app ends a session itself (the
//! subscriber fell behind: 1013 and `queue_overflow`; a protocol violation:
//! `protocol_error`) it leaves with that reason. A nick with several connections (two tabs, a
//! WebSocket and an event stream) stays online until the last one leaves, and the others see
//! one `presence` event each way.
//!
//! Presence state lives behind [`Presence`] and events go through
//! the [`ChannelLayer`](crate::channels::ChannelLayer), so a Redis backend shares both across
//! processes.
//!
//! # Slow consumers
//!
//! Each connection has its own queue (256 messages by default). Under
//! [`Overflow::DropOldest`] (the default) a client that does not keep up loses the oldest
//! messages and gets a `gap`; under [`Overflow::Close`] its session is closed (WebSocket 1013
//! `queue_overflow`; an event stream ends, and the browser reconnects) and it leaves with
//! `queue_overflow`. Either way the others are not delayed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ragi::{
    App, AppResult, BoxFuture, Connection, Message as WsMessage, ReceiveEvent, Receiver, Scope,
    ScopeKind, Sender,
};
use serde::{Deserialize, Serialize};

use crate::channels::presence::now_ms;
use crate::channels::{
    self, ChannelError, Ended, Gap, Incoming, Layer, MemoryLayer, MemoryPresence, Message,
    Overflow, Presence, SubscribeOptions, Subscription, DEFAULT_CAPACITY,
};
use crate::sse::Event;
use crate::{Context, Error, HttpContext, Response, SseContext, WsContext};

use super::broadcast::publish_failed;
use super::TRY_AGAIN_LATER as TRY_AGAIN_LATER_CODE;
use super::{send_or_end, Keepalive};

/// What a chat client receives (and what travels through the channel layer), as JSON with a
/// `type`. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChatEvent {
    /// A message.
    Message {
        /// The room.
        room: String,
        /// Who said it.
        nick: String,
        /// What was said.
        text: String,
        /// When (Unix milliseconds).
        at: u64,
    },
    /// A nick came online or went offline.
    Presence {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// Online now?
        online: bool,
        /// Why it went offline (a disconnect reason's name); `null` when it came online.
        reason: Option<String>,
    },
    /// Messages may have been lost.
    Gap {
        /// The room.
        room: String,
        /// Why (`queue_overflow`, `reconnected`, …).
        reason: String,
        /// How many, when known.
        missed: Option<u64>,
    },
    /// The server is about to drain: reconnect (possibly elsewhere).
    Reconnect {},
}

impl ChatEvent {
    /// The SSE event name: `None` for a message (the default type), else the `type`.
    fn sse_name(&self) -> Option<&'static str> {
        match self {
            Self::Message { .. } => None,
            Self::Presence { .. } => Some("presence"),
            Self::Gap { .. } => Some("gap"),
            Self::Reconnect {} => Some("reconnect"),
        }
    }

    fn to_message(&self) -> Result<Message, ChannelError> {
        let m = Message::json(self)?;
        Ok(match self.sse_name() {
            Some(name) => m.with_event(name),
            None => m,
        })
    }
}

/// One entry of the members list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The nick.
    pub nick: String,
    /// Whether one of its connections is there.
    pub online: bool,
    /// Why its last connection left, while offline.
    pub left_reason: Option<String>,
}

/// The chat app. See the [module documentation](self).
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    layer: Layer,
    presence: Arc<dyn Presence>,
    group_prefix: String,
    capacity: usize,
    overflow: Overflow,
    ws_keepalive: Option<Keepalive>,
    sse_keepalive: Option<Duration>,
    max_text: usize,
    max_body: usize,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("Chat")
            .field("group_prefix", &i.group_prefix)
            .field("capacity", &i.capacity)
            .field("overflow", &i.overflow)
            .field("ws_keepalive", &i.ws_keepalive)
            .field("sse_keepalive", &i.sse_keepalive)
            .field("max_text", &i.max_text)
            .finish_non_exhaustive()
    }
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

/// The room a request is for, put in the stash by [`Chat`]'s own dispatch (a router gives it
/// as the path parameter `room` instead).
struct ChatRoom(String);

impl Chat {
    /// A chat on its own in-memory channel layer and presence.
    pub fn new() -> Self {
        Self::with_backends(
            Arc::new(MemoryLayer::new()),
            Arc::new(MemoryPresence::new()),
        )
    }

    /// A chat on `layer` and `presence` (shared with other apps, or across processes).
    pub fn with_backends(layer: Layer, presence: Arc<dyn Presence>) -> Self {
        Self {
            inner: Arc::new(Inner {
                layer,
                presence,
                group_prefix: "chat.".to_owned(),
                capacity: DEFAULT_CAPACITY,
                overflow: Overflow::DropOldest,
                ws_keepalive: Some(Keepalive {
                    interval: Duration::from_secs(20),
                    timeout: Duration::from_secs(10),
                }),
                sse_keepalive: Some(Duration::from_secs(15)),
                max_text: 4096,
                max_body: 16 * 1024,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configure the chat before cloning it")
    }

    /// Each connection's queue bound, in messages (256).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.inner_mut().capacity = messages;
        self
    }

    /// The slow-consumer policy ([`Overflow::DropOldest`]).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.inner_mut().overflow = policy;
        self
    }

    /// WebSocket pings every `interval`; a client whose pong does not come within `timeout`
    /// is gone with `keepalive_timeout` (20 s and 10 s). `None` turns pings off.
    pub fn ws_keepalive(mut self, keepalive: Option<(Duration, Duration)>) -> Self {
        self.inner_mut().ws_keepalive =
            keepalive.map(|(interval, timeout)| Keepalive { interval, timeout });
        self
    }

    /// An SSE keep-alive comment after `interval` of quiet (15 s); `None` turns it off.
    pub fn sse_keepalive(mut self, interval: Option<Duration>) -> Self {
        self.inner_mut().sse_keepalive = interval;
        self
    }

    /// The longest text, in characters (4096).
    pub fn max_text(mut self, chars: usize) -> Self {
        self.inner_mut().max_text = chars;
        self
    }

    /// The group names' prefix (`chat.`: room `lobby` is group `chat.lobby`).
    pub fn group_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inner_mut().group_prefix = prefix.into();
        self
    }

    /// The channel layer.
    pub fn layer(&self) -> &Layer {
        &self.inner.layer
    }

    /// The presence store.
    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.inner.presence
    }

    /// Says `text` in `room` as `nick`, from server code (what a POST does). Returns the
    /// event sent.
    pub async fn say(&self, room: &str, nick: &str, text: &str) -> Result<ChatEvent, Error> {
        check_room(room)?;
        check_nick(nick)?;
        self.inner.check_text(text)?;
        Ok(self.inner.say(room, nick, text).await?)
    }

    /// The members list of `room`.
    pub async fn members(&self, room: &str) -> Result<Vec<Member>, Error> {
        check_room(room)?;
        self.inner.members(room).await
    }

    /// The WebSocket endpoint alone, taking the room from the route parameter `room`.
    pub fn websocket_app(&self) -> impl App + Clone {
        let inner = self.inner.clone();
        crate::ws::handler(move |cx: WsContext| ws_session(inner.clone(), cx))
    }

    /// The SSE endpoint alone (room from the route parameter `room`).
    pub fn events_app(&self) -> impl App + Clone {
        let inner = self.inner.clone();
        crate::sse::handler(move |cx: SseContext| sse_session(inner.clone(), cx))
    }

    /// The POST endpoint alone (room from the route parameter `room`).
    pub fn messages_app(&self) -> impl App + Clone {
        let inner = self.inner.clone();
        crate::handler(move |cx: HttpContext| post_message(inner.clone(), cx))
    }

    /// The members endpoint alone (room from the route parameter `room`).
    pub fn members_app(&self) -> impl App + Clone {
        let inner = self.inner.clone();
        crate::handler(move |cx: HttpContext| list_members(inner.clone(), cx))
    }
}

impl App for Chat {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let route = scope
            .path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map(|(room, what)| (room.to_owned(), what.to_owned()));
        let Some((room, what)) = route else {
            return not_found(scope, receive, send);
        };
        scope.stash.insert(ChatRoom(room));
        match (what.as_str(), scope.kind) {
            ("ws", _) => self.websocket_app().call(scope, receive, send),
            ("events", ScopeKind::Http | ScopeKind::Sse) => {
                self.events_app().call(scope, receive, send)
            }
            ("messages", ScopeKind::Http | ScopeKind::Sse) => {
                self.messages_app().call(scope, receive, send)
            }
            ("members", ScopeKind::Http | ScopeKind::Sse) => {
                self.members_app().call(scope, receive, send)
            }
            _ => not_found(scope, receive, send),
        }
    }
}

/// 404 in the scope's own framing (a WebSocket handshake is denied with it).
fn not_found(scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
    match scope.kind {
        ScopeKind::WebSocket => {
            crate::ws::handler(|_cx: WsContext| async { Err::<(), _>(Error::not_found()) })
                .call(scope, receive, send)
        }
        _ => crate::handler(|_cx: HttpContext| async { Error::not_found() })
            .call(scope, receive, send),
    }
}

// ------------------------------------------------------------------------------------------
// Checks

fn check_room(room: &str) -> Result<(), Error> {
    let ok = (1..=32).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request("a room is 1 to 32 of A-Z a-z 0-9 _ -"))
    }
}

fn check_nick(nick: &str) -> Result<(), Error> {
    let n = nick.chars().count();
    if (1..=32).contains(&n) && !nick.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::bad_request(
            "a nick is 1 to 32 characters, without control characters",
        ))
    }
}

/// The room of a request: the chat's own dispatch, or the route parameter `room`.
fn room_of(cx: &impl Context) -> Result<String, Error> {
    let room = match cx.stash().get::<ChatRoom>() {
        Some(r) => r.0.clone(),
        None => cx.param("room").ok_or_else(Error::not_found)?,
    };
    check_room(&room)?;
    Ok(room)
}

/// The `nick` query parameter, checked.
fn nick_of(cx: &impl Context) -> Result<String, Error> {
    let query = cx.scope().query().unwrap_or("");
    let nick = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "nick")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Error::bad_request("the query must give a nick (?nick=...)"))?;
    check_nick(&nick)?;
    Ok(nick)
}

// ------------------------------------------------------------------------------------------
// The shared core

impl Inner {
    fn group(&self, room: &str) -> String {
        format!("{}{room}", self.group_prefix)
    }

    fn check_text(&self, text: &str) -> Result<(), Error> {
        let n = text.chars().count();
        if n == 0 || n > self.max_text {
            return Err(Error::unprocessable(format!(
                "a text is 1 to {} characters",
                self.max_text
            )));
        }
        Ok(())
    }

    async fn publish(&self, room: &str, event: &ChatEvent) -> Result<(), ChannelError> {
        self.layer
            .group_send(&self.group(room), event.to_message()?)
            .await
    }

    async fn say(&self, room: &str, nick: &str, text: &str) -> Result<ChatEvent, ChannelError> {
        let event = ChatEvent::Message {
            room: room.to_owned(),
            nick: nick.to_owned(),
            text: text.to_owned(),
            at: now_ms(),
        };
        self.publish(room, &event).await?;
        Ok(event)
    }

    async fn members(&self, room: &str) -> Result<Vec<Member>, Error> {
        let list = self.presence.members(room).await?;
        Ok(list
            .into_iter()
            .map(|m| Member {
                nick: m.member,
                online: m.online,
                left_reason: m.left_reason,
            })
            .collect())
    }

    /// Opens a connection's subscription to `room` and joins its presence: before the
    /// handshake or the stream is answered, so a failing layer is an HTTP 503.
    async fn enter(
        self: &Arc<Self>,
        room: &str,
        nick: &str,
        connection: &Connection,
    ) -> Result<(Subscription, Participant), Error> {
        let options = SubscribeOptions::new()
            .capacity(self.capacity)
            .overflow(self.overflow)
            .group(self.group(room))
            .bind(connection);
        let sub = self.layer.subscribe(options).await?;
        let participant = Participant {
            chat: self.clone(),
            room: room.to_owned(),
            nick: nick.to_owned(),
            id: sub.name().to_owned(),
            left: Arc::new(AtomicBool::new(false)),
        };
        let change = self.presence.join(room, nick, sub.name()).await?;
        if change.changed {
            let event = ChatEvent::Presence {
                room: room.to_owned(),
                nick: nick.to_owned(),
                online: true,
                reason: None,
            };
            if let Err(e) = self.publish(room, &event).await {
                participant.leave("server_error").await;
                return Err(e.into());
            }
        }
        participant.bind(connection);
        Ok((sub, participant))
    }
}

/// One connection of a nick in a room: leaves exactly once, from the connection object or
/// from the handler, whichever comes first.
struct Participant {
    chat: Arc<Inner>,
    room: String,
    nick: String,
    id: String,
    left: Arc<AtomicBool>,
}

impl Participant {
    /// Leaves the moment the connection object says the client is gone, with its reason.
    fn bind(&self, connection: &Connection) {
        let (chat, room, nick, id) = (
            self.chat.clone(),
            self.room.clone(),
            self.nick.clone(),
            self.id.clone(),
        );
        let left = self.left.clone();
        connection.on_disconnect(move |reason| {
            // The leave is async (a backend may be remote): a task of its own. Without a
            // runtime here, the handler leaves when it sees the end.
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if left.swap(true, Ordering::AcqRel) {
                return;
            }
            let reason = reason.as_str().to_owned();
            rt.spawn(async move { leave(&chat, &room, &nick, &id, &reason).await });
        });
    }

    /// Leaves with `reason` unless it already left.
    async fn leave(&self, reason: &str) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        leave(&self.chat, &self.room, &self.nick, &self.id, reason).await;
    }
}

async fn leave(chat: &Inner, room: &str, nick: &str, id: &str, reason: &str) {
    tracing::debug!(room, nick, reason, "chat connection left");
    let change = match chat.presence.leave(room, nick, id, reason).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(room, nick, error = %e, "chat presence: leave failed");
            return;
        }
    };
    if change.changed {
        let event = ChatEvent::Presence {
            room: room.to_owned(),
            nick: nick.to_owned(),
            online: false,
            reason: Some(reason.to_owned()),
        };
        if let Err(e) = chat.publish(room, &event).await {
            tracing::warn!(room, nick, error = %e, "chat presence: announcing a leave failed");
        }
    }
}

/// The gap event of `room`.
fn gap_event(room: &str, gap: &Gap) -> ChatEvent {
    ChatEvent::Gap {
        room: room.to_owned(),
        reason: gap.reason().as_str().to_owned(),
        missed: gap.missed(),
    }
}

/// The reason a connection left with: the connection object's, else `fallback`.
fn reason_of(connection: &Connection, fallback: &str) -> String {
    connection
        .disconnect_reason()
        .map_or_else(|| fallback.to_owned(), |r| r.as_str().to_owned())
}

// ------------------------------------------------------------------------------------------
// WebSocket

/// What a client sends.
#[derive(Deserialize)]
struct Said {
    text: String,
    #[allow(dead_code)]
    #[serde(default)]
    nick: Option<String>,
}

async fn ws_session(chat: Arc<Inner>, mut cx: WsContext) -> Result<(), Error> {
    let room = room_of(&cx)?;
    let nick = nick_of(&cx)?;
    let connection = cx.connection().clone();
    let (mut sub, participant) = chat.enter(&room, &nick, &connection).await?;
    let result = ws_loop(&chat, &mut cx, &room, &nick, &mut sub).await;
    let fallback = match &result {
        Ok(Some(reason)) => reason,
        Ok(None) => "client_closed",
        Err(e) if e.status() >= 500 => "server_error",
        Err(_) => "protocol_error",
    };
    participant.leave(&reason_of(&connection, fallback)).await;
    result.map(drop)
}

/// Runs an entered session; `Ok(Some(reason))` when the app ended it for that reason.
async fn ws_loop(
    chat: &Inner,
    cx: &mut WsContext,
    room: &str,
    nick: &str,
    sub: &mut Subscription,
) -> Result<Option<&'static str>, Error> {
    cx.accept().await?;
    if let Some(k) = chat.ws_keepalive {
        cx.keepalive(k.interval, k.timeout).await?;
    }
    loop {
        match channels::select(cx.receive(), sub).await {
            Incoming::Client(Some(WsMessage::Text(t))) => {
                let said: Said =
                    serde_json::from_str(&t).map_err(|e| crate::ws::json_error(e, t.as_bytes()))?;
                chat.check_text(&said.text)?;
                if let Err(e) = chat.say(room, nick, &said.text).await {
                    // An unavailable layer: closed with 1013 (the client may come back).
                    return publish_failed(cx, e).await.map(|()| Some("server_error"));
                }
            }
            Incoming::Client(Some(WsMessage::Binary(_))) => {
                return Err(Error::unsupported_media_type("text frames of JSON"))
            }
            Incoming::Client(None) => return Ok(None),
            Incoming::Message(m) => {
                let send = cx.send_text(m.as_str().unwrap_or_default());
                if let Some(why) = send_or_end(send, sub).await? {
                    return ws_ended(cx, why).await;
                }
            }
            Incoming::Gap(gap) => {
                let event = gap_event(room, &gap);
                let send = cx.send_json(&event);
                if let Some(why) = send_or_end(send, sub).await? {
                    return ws_ended(cx, why).await;
                }
            }
            Incoming::Ended(why) => return ws_ended(cx, why).await,
        }
    }
}

/// Ends a session whose subscription ended; the leave reason when the app closed it.
async fn ws_ended(cx: &WsContext, why: Ended) -> Result<Option<&'static str>, Error> {
    match why {
        Ended::ClientLeft(r) => Err(Error::disconnected(r)),
        Ended::SlowConsumer => {
            cx.close_with(TRY_AGAIN_LATER_CODE, "queue_overflow")
                .await?;
            Ok(Some("queue_overflow"))
        }
        _ => {
            cx.close_with(1001, "server_shutdown").await?;
            Ok(Some("server_shutdown"))
        }
    }
}

// ------------------------------------------------------------------------------------------
// SSE

async fn sse_session(chat: Arc<Inner>, cx: SseContext) -> Result<(), Error> {
    let room = room_of(&cx)?;
    let nick = nick_of(&cx)?;
    let connection = cx.connection().clone();
    let (mut sub, participant) = chat.enter(&room, &nick, &connection).await?;
    let result = sse_loop(&chat, &cx, &room, &mut sub).await;
    let fallback = match &result {
        Ok(Some(reason)) => reason,
        Ok(None) => "client_closed",
        Err(_) => "server_error",
    };
    participant.leave(&reason_of(&connection, fallback)).await;
    result.map(drop)
}

async fn sse_loop(
    chat: &Inner,
    cx: &SseContext,
    room: &str,
    sub: &mut Subscription,
) -> Result<Option<&'static str>, Error> {
    cx.start().await?;
    if let Some(interval) = chat.sse_keepalive {
        cx.keepalive(interval).await?;
    }
    loop {
        match channels::select(cx.closed(), sub).await {
            Incoming::Client(Some(reason)) => return Err(Error::disconnected(reason)),
            Incoming::Client(None) => return Ok(Some("server_shutdown")),
            Incoming::Message(m) => {
                let mut event = Event::new(m.as_str().unwrap_or_default());
                if let Some(name) = m.event() {
                    event = event.event(name);
                }
                if let Some(why) = send_or_end(cx.send(event), sub).await? {
                    return sse_ended(cx, why).await;
                }
            }
            Incoming::Gap(gap) => {
                let data =
                    serde_json::to_string(&gap_event(room, &gap)).map_err(Error::internal)?;
                let send = cx.send(Event::new(data).event("gap"));
                if let Some(why) = send_or_end(send, sub).await? {
                    return sse_ended(cx, why).await;
                }
            }
            Incoming::Ended(why) => return sse_ended(cx, why).await,
        }
    }
}

/// Ends a stream whose subscription ended; the leave reason when the app closed it.
async fn sse_ended(cx: &SseContext, why: Ended) -> Result<Option<&'static str>, Error> {
    let reason = match why {
        Ended::ClientLeft(r) => return Err(Error::disconnected(r)),
        Ended::SlowConsumer => "queue_overflow",
        _ => "server_shutdown",
    };
    cx.close().await?;
    Ok(Some(reason))
}

// ------------------------------------------------------------------------------------------
// POST and members

/// What a POST carries.
#[derive(Deserialize)]
struct Post {
    nick: String,
    text: String,
}

async fn post_message(chat: Arc<Inner>, mut cx: HttpContext) -> Result<Response, Error> {
    let room = room_of(&cx)?;
    if cx.method() != http::Method::POST {
        return Err(Error::method_not_allowed("POST"));
    }
    let json = cx.content_type().is_some_and(|t| {
        t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
    });
    if !json {
        return Err(Error::unsupported_media_type("application/json"));
    }
    let body = read_body(&mut cx, chat.max_body).await?;
    let post: Post = serde_json::from_slice(&body).map_err(|e| crate::ws::json_error(e, &body))?;
    check_nick(&post.nick)?;
    chat.check_text(&post.text)?;
    let event = chat.say(&room, &post.nick, &post.text).await?;
    Ok(Response::json(&event).with_status(202))
}

/// The whole request body, at most `limit` bytes (413 beyond); the client's departure is
/// [`Error::disconnected`], never a partial body.
async fn read_body(cx: &mut HttpContext, limit: usize) -> Result<Bytes, Error> {
    if let Some(len) = cx
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(Error::body_too_large(limit as u64));
        }
    }
    let mut body = BytesMut::new();
    loop {
        match cx.receive().await {
            ReceiveEvent::Request { body: piece, more } => {
                if body.len() + piece.len() > limit {
                    return Err(Error::body_too_large(limit as u64));
                }
                body.extend_from_slice(&piece);
                if !more {
                    return Ok(body.freeze());
                }
            }
            ReceiveEvent::Disconnect { reason } => return Err(Error::disconnected(reason)),
            _ => {}
        }
    }
}

async fn list_members(chat: Arc<Inner>, cx: HttpContext) -> Result<Response, Error> {
    let room = room_of(&cx)?;
    if cx.method() != http::Method::GET && cx.method() != http::Method::HEAD {
        return Err(Error::method_not_allowed("GET, HEAD"));
    }
    Ok(Response::json(&chat.members(&room).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_demo_shapes() {
        let m = ChatEvent::Message {
            room: "r".into(),
            nick: "n".into(),
            text: "t".into(),
            at: 5,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"type": "message", "room": "r", "nick": "n", "text": "t", "at": 5})
        );
        let p = ChatEvent::Presence {
            room: "r".into(),
            nick: "n".into(),
            online: false,
            reason: Some("client_closed".into()),
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"type": "presence", "room": "r", "nick": "n", "online": false, "reason": "client_closed"})
        );
        assert_eq!(
            serde_json::to_value(ChatEvent::Reconnect {}).unwrap(),
            serde_json::json!({"type": "reconnect"})
        );
        assert_eq!(p.to_message().unwrap().event(), Some("presence"));
        assert_eq!(m.to_message().unwrap().event(), None);
    }

    #[test]
    fn rooms_and_nicks_are_checked() {
        for good in ["lobby", "a", "A-z_09", &"r".repeat(32)] {
            assert!(check_room(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", &"r".repeat(33), "a.b"] {
            assert_eq!(check_room(bad).unwrap_err().status(), 400, "{bad}");
        }
        for good in ["ann", "Zoë 🦀", &"é".repeat(32)] {
            assert!(check_nick(good).is_ok(), "{good}");
        }
        for bad in ["", "a\nb", "tab\t", &"n".repeat(33)] {
            assert_eq!(check_nick(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }
}
