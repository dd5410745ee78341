//! Presence: who is in a topic (a chat room), by member, with the reason of the last leave.
//!
//! A member (a nickname) may be present through several connections at once (two tabs, a
//! WebSocket and an event stream); it is *online* while at least one is, and goes offline
//! with the reason of the last one to leave. The trait is async and backend-neutral, like the
//! [`ChannelLayer`](super::ChannelLayer) beside it: [`MemoryPresence`] keeps the state in
//! this process; a Redis implementation (issue 13) keeps it where every process sees it, and
//! its join/leave answers say whether the member crossed online/offline across all of them.
//!
//! ```
//! use ragi_tools::channels::{MemoryPresence, Presence};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let presence = MemoryPresence::new();
//! assert!(presence.join("lobby", "ann", "conn-1").await?.changed); // ann came online
//! assert!(!presence.join("lobby", "ann", "conn-2").await?.changed); // a second tab
//! assert!(!presence.leave("lobby", "ann", "conn-1", "client_closed").await?.changed);
//! let gone = presence.leave("lobby", "ann", "conn-2", "keepalive_timeout").await?;
//! assert!(gone.changed && !gone.online);
//! let members = presence.members("lobby").await?;
//! assert_eq!(members[0].left_reason.as_deref(), Some("keepalive_timeout"));
//! # Ok::<(), ragi_tools::channels::ChannelError>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use ragi::BoxFuture;

use super::ChannelError;

/// What a join or leave did to the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceChange {
    /// Whether the member is online after it.
    pub online: bool,
    /// Whether it crossed between offline and online (announce it then).
    pub changed: bool,
}

/// One member of a topic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberState {
    /// The member (a nickname).
    pub member: String,
    /// Whether at least one of its connections is there.
    pub online: bool,
    /// How many of its connections are there.
    pub connections: usize,
    /// Why its last connection left, while offline.
    pub left_reason: Option<String>,
    /// When it last came online or went offline (Unix milliseconds).
    pub since: u64,
}

/// Presence state behind an async, backend-neutral interface. See the
/// [module documentation](self).
///
/// `connection` names one connection of the member, unique across processes (the
/// subscription's channel name is a good one). Joining twice with one connection, or
/// leaving with one that is not there, changes nothing.
pub trait Presence: Send + Sync + 'static {
    /// `member` is there through `connection`.
    fn join<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        connection: &'a str,
    ) -> BoxFuture<'a, Result<PresenceChange, ChannelError>>;

    /// `member`'s `connection` left for `reason` (a disconnect reason's name).
    fn leave<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        connection: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<PresenceChange, ChannelError>>;

    /// Everyone seen in `topic` (online or not, up to the implementation's bound), in the
    /// order they were first seen.
    fn members<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<MemberState>, ChannelError>>;
}

/// The in-memory [`Presence`] of one process.
///
/// Offline members are remembered (so a list shows who left and why) up to
/// [`max_offline`](Self::max_offline) per topic (1000 by default); beyond it the one offline
/// longest is forgotten. A topic with nobody left in it keeps its offline members.
pub struct MemoryPresence {
    topics: Mutex<HashMap<String, Topic>>,
    max_offline: usize,
}

#[derive(Default)]
struct Topic {
    /// In order of first sight.
    members: Vec<Entry>,
}

struct Entry {
    member: String,
    connections: Vec<String>,
    left_reason: Option<String>,
    since: u64,
}

impl fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPresence")
            .field("topics", &self.lock().len())
            .field("max_offline", &self.max_offline)
            .finish()
    }
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl MemoryPresence {
    /// Empty, remembering up to 1000 offline members per topic.
    pub fn new() -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            max_offline: 1000,
        }
    }

    /// How many offline members a topic remembers.
    pub fn max_offline(mut self, n: usize) -> Self {
        self.max_offline = n;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join_now(&self, topic: &str, member: &str, connection: &str) -> PresenceChange {
        let mut topics = self.lock();
        let t = topics.entry(topic.to_owned()).or_default();
        let entry = match t.members.iter().position(|e| e.member == member) {
            Some(i) => &mut t.members[i],
            None => {
                t.members.push(Entry {
                    member: member.to_owned(),
                    connections: Vec::new(),
                    left_reason: None,
                    since: now_ms(),
                });
                t.members.last_mut().expect("just pushed")
            }
        };
        if entry.connections.iter().any(|c| c == connection) {
            return PresenceChange {
                online: true,
                changed: false,
            };
        }
        entry.connections.push(connection.to_owned());
        let changed = entry.connections.len() == 1;
        if changed {
            entry.left_reason = None;
            entry.since = now_ms();
        }
        PresenceChange {
            online: true,
            changed,
        }
    }

    fn leave_now(
        &self,
        topic: &str,
        member: &str,
        connection: &str,
        reason: &str,
    ) -> PresenceChange {
        let mut topics = self.lock();
        let Some(t) = topics.get_mut(topic) else {
            return PresenceChange {
                online: false,
                changed: false,
            };
        };
        let Some(entry) = t.members.iter_mut().find(|e| e.member == member) else {
            return PresenceChange {
                online: false,
                changed: false,
            };
        };
        let before = entry.connections.len();
        entry.connections.retain(|c| c != connection);
        let online = !entry.connections.is_empty();
        let changed = before > 0 && !online;
        if changed {
            entry.left_reason = Some(reason.to_owned());
            entry.since = now_ms();
            self.forget_oldest_offline(t);
        }
        PresenceChange { online, changed }
    }

    fn forget_oldest_offline(&self, t: &mut Topic) {
        let offline = t
            .members
            .iter()
            .filter(|e| e.connections.is_empty())
            .count();
        if offline <= self.max_offline {
            return;
        }
        if let Some(i) = t
            .members
            .iter()
            .enumerate()
            .filter(|(_, e)| e.connections.is_empty())
            .min_by_key(|(_, e)| e.since)
            .map(|(i, _)| i)
        {
            t.members.remove(i);
        }
    }

    fn members_now(&self, topic: &str) -> Vec<MemberState> {
        let topics = self.lock();
        let Some(t) = topics.get(topic) else {
            return Vec::new();
        };
        t.members
            .iter()
            .map(|e| MemberState {
                member: e.member.clone(),
                online: !e.connections.is_empty(),
                connections: e.connections.len(),
                left_reason: e.left_reason.clone(),
                since: e.since,
            })
            .collect()
    }
}

impl Presence for MemoryPresence {
    fn join<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        connection: &'a str,
    ) -> BoxFuture<'a, Result<PresenceChange, ChannelError>> {
        Box::pin(std::future::ready(Ok(
            self.join_now(topic, member, connection)
        )))
    }

    fn leave<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        connection: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<PresenceChange, ChannelError>> {
        Box::pin(std::future::ready(Ok(
            self.leave_now(topic, member, connection, reason)
        )))
    }

    fn members<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<MemberState>, ChannelError>> {
        Box::pin(std::future::ready(Ok(self.members_now(topic))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_while_any_connection_is_there() {
        let p = MemoryPresence::new();
        assert_eq!(
            p.join_now("t", "ann", "c1"),
            PresenceChange {
                online: true,
                changed: true
            }
        );
        assert!(
            !p.join_now("t", "ann", "c1").changed,
            "same connection twice"
        );
        assert!(!p.join_now("t", "ann", "c2").changed);
        p.join_now("t", "bob", "c3");
        let step = p.leave_now("t", "ann", "c2", "client_closed");
        assert_eq!((step.online, step.changed), (true, false));
        let step = p.leave_now("t", "ann", "c1", "write_timeout");
        assert_eq!((step.online, step.changed), (false, true));
        let again = p.leave_now("t", "ann", "c1", "client_closed");
        assert_eq!((again.online, again.changed), (false, false));
        assert!(!p.leave_now("t", "nobody", "c9", "x").changed);
        assert!(!p.leave_now("other", "ann", "c1", "x").changed);
        let m = p.members_now("t");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].member, "ann");
        assert!(!m[0].online);
        assert_eq!(m[0].left_reason.as_deref(), Some("write_timeout"));
        assert_eq!(
            (m[1].member.as_str(), m[1].online, m[1].connections),
            ("bob", true, 1)
        );
        // Back online: the reason is cleared.
        assert!(p.join_now("t", "ann", "c4").changed);
        assert_eq!(p.members_now("t")[0].left_reason, None);
        assert!(p.members_now("nowhere").is_empty());
    }

    #[test]
    fn offline_members_are_bounded() {
        let p = MemoryPresence::new().max_offline(2);
        for (i, nick) in ["a", "b", "c", "d"].iter().enumerate() {
            let c = format!("c{i}");
            p.join_now("t", nick, &c);
            p.leave_now("t", nick, &c, "client_closed");
        }
        p.join_now("t", "e", "ce");
        let names: Vec<String> = p.members_now("t").into_iter().map(|m| m.member).collect();
        assert_eq!(names, ["c", "d", "e"]);
    }
}
