//! The local fan-out every backend shares: this process's subscriptions, its group
//! membership, and delivery into the subscribers' bounded queues.
//!
//! The in-memory layer is a [`Hub`] and nothing more. A distributed backend (Redis, issue 13's
//! shape: one subscriber connection per process, membership per process, fan-out in memory)
//! keeps one too: what arrives from the backend for a group or a channel of this process is
//! handed to [`Hub::deliver_group`] / [`Hub::deliver`], and a lost backend connection becomes
//! [`Hub::gap_all`], so every subscriber of the process learns of it.
//!
//! ```
//! use ragi_tools::channels::{Delivery, Gap, Hub, Message, SubscribeOptions};
//!
//! let hub = Hub::new();
//! let (mut sub, first) = hub.open(&SubscribeOptions::new().group("news"))?;
//! assert_eq!(first, ["news"]); // its first local member: a backend subscribes upstream
//! assert_eq!(hub.deliver_group("news", &Message::text("hello")), 1);
//! hub.gap_all(&Gap::reconnected()); // a backend lost its connection
//! assert!(matches!(sub.try_recv(), Some(Delivery::Message(_))));
//! assert!(matches!(sub.try_recv(), Some(Delivery::Gap(_))));
//! # Ok::<(), ragi_tools::channels::ChannelError>(())
//! ```
//!
//! Delivery never waits: each push takes one subscriber's queue lock for a few instructions
//! and applies that subscriber's overflow policy. A group send is one read lock of the
//! registry and, per member, a reference-count increment of the message — O(members), with no
//! allocation per member.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use super::subscription::{Pushed, Queue};
use super::{
    validate_channel, validate_group, ChannelError, ChannelErrorKind, Ended, Gap, GapReason,
    Message, SubscribeOptions, Subscription,
};

/// What a backend learns from its hub when membership changes without it (a subscription
/// dropped or ended: its groups are left at once).
pub trait HubHooks: Send + Sync + 'static {
    /// `groups` just lost their last local member (a Redis backend unsubscribes from them).
    fn groups_emptied(&self, groups: &[Arc<str>]);
}

/// The local registry and fan-out. See the [module documentation](self). Cheap to clone;
/// clones share everything.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: Arc<str>,
    next_id: AtomicU64,
    registry: RwLock<Registry>,
    hooks: RwLock<Option<Arc<dyn HubHooks>>>,
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Arc<str>, Arc<Queue>>,
    groups: HashMap<Arc<str>, Vec<Arc<Queue>>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.read();
        f.debug_struct("Hub")
            .field("prefix", &self.inner.prefix)
            .field("subscriptions", &r.channels.len())
            .field("groups", &r.groups.len())
            .finish()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with a random process prefix (`specific.<16 hex digits>`).
    pub fn new() -> Self {
        Self::with_prefix(super::name::random_prefix())
    }

    /// A hub whose channels are named `<prefix>!<n>`.
    ///
    /// # Panics
    ///
    /// When `prefix` is not a valid group name (it must leave room for `!<n>`).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            validate_group(&prefix).is_ok() && prefix.len() <= 70,
            "invalid process prefix {prefix:?}"
        );
        Self {
            inner: Arc::new(Inner {
                prefix: prefix.into(),
                next_id: AtomicU64::new(1),
                registry: RwLock::new(Registry::default()),
                hooks: RwLock::new(None),
            }),
        }
    }

    /// Sets the hooks a backend wants called.
    pub fn set_hooks(&self, hooks: Arc<dyn HubHooks>) {
        *self.inner.hooks.write().unwrap_or_else(|e| e.into_inner()) = Some(hooks);
    }

    /// The process prefix: the part of every channel name of this hub before the `!`.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a subscription with `options`' queue bound and policy, joins its groups, and
    /// binds it to its connection (last: a client already gone ends it at once). Returns it
    /// with the groups it is the first local member of (a distributed backend subscribes to
    /// those upstream, and drops the subscription if that fails). A resume id is the
    /// backend's business.
    pub fn open(
        &self,
        options: &SubscribeOptions,
    ) -> Result<(Subscription, Vec<String>), ChannelError> {
        for g in &options.groups {
            validate_group(g)?;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = format!("{}!{id}", self.inner.prefix).into();
        let queue = Arc::new(Queue::new(
            id,
            name.clone(),
            options.capacity,
            options.overflow,
        ));
        self.write().channels.insert(name.clone(), queue.clone());
        let sub = Subscription::new(queue.clone(), self.clone());
        let mut first = Vec::new();
        for g in &options.groups {
            if self.add(g, &name)? {
                first.push(g.clone());
            }
        }
        if let Some(conn) = &options.connection {
            let hub = Arc::downgrade(&self.inner);
            let q = Arc::downgrade(&queue);
            conn.on_disconnect(move |reason| {
                end_weak(&hub, &q, Ended::ClientLeft(reason.clone()));
            });
        }
        Ok((sub, first))
    }

    /// Adds the channel `channel` of this process to `group`. Returns whether it is the
    /// group's first local member (a distributed backend subscribes to the group then).
    /// Adding a member twice is a no-op (`false`).
    pub fn add(&self, group: &str, channel: &str) -> Result<bool, ChannelError> {
        validate_group(group)?;
        let mut reg = self.write();
        let queue = reg
            .channels
            .get(channel)
            .cloned()
            .ok_or_else(|| unknown(channel))?;
        let group: Arc<str> = match reg.groups.get_key_value(group) {
            Some((k, _)) => k.clone(),
            None => group.into(),
        };
        let added = queue.with_membership(|registered, groups| {
            if !*registered || groups.contains(&group) {
                return false;
            }
            groups.push(group.clone());
            true
        });
        if !added {
            return Ok(false);
        }
        let members = reg.groups.entry(group).or_default();
        members.push(queue);
        Ok(members.len() == 1)
    }

    /// Removes `channel` from `group`. Returns whether the group has no local member left.
    /// Removing a non-member is a no-op.
    pub fn discard(&self, group: &str, channel: &str) -> Result<bool, ChannelError> {
        validate_group(group)?;
        validate_channel(channel)?;
        let mut reg = self.write();
        let Some(queue) = reg.channels.get(channel).cloned() else {
            return Ok(!reg.groups.contains_key(group));
        };
        queue.with_membership(|_, groups| groups.retain(|g| &**g != group));
        Ok(remove_member(&mut reg, group, queue.id))
    }

    /// Delivers `message` to the subscriber `channel` of this process. Returns whether it
    /// was there (a message for an unknown or ended channel is dropped: at-most-once).
    pub fn deliver(&self, channel: &str, message: &Message) -> bool {
        let queue = self.read().channels.get(channel).cloned();
        match queue {
            Some(q) => {
                if q.push(message.clone()) == Pushed::Closed {
                    self.unregister(&q);
                }
                true
            }
            None => false,
        }
    }

    /// Delivers `message` to every local member of `group`; returns how many there were.
    /// Never waits: a full queue applies its own subscriber's policy.
    pub fn deliver_group(&self, group: &str, message: &Message) -> usize {
        let mut closed: Vec<Arc<Queue>> = Vec::new(); // allocates only if one closes
        let n = {
            let reg = self.read();
            let Some(members) = reg.groups.get(group) else {
                return 0;
            };
            for q in members {
                if q.push(message.clone()) == Pushed::Closed {
                    closed.push(q.clone());
                }
            }
            members.len()
        };
        for q in closed {
            self.unregister(&q);
        }
        n
    }

    /// Tells every subscriber of this process that messages may have been lost (a backend
    /// reconnected): a [`Gap`] after what each has queued.
    pub fn gap_all(&self, gap: &Gap) {
        let queues: Vec<Arc<Queue>> = self.read().channels.values().cloned().collect();
        for q in queues {
            q.push_gap(gap.clone());
        }
    }

    /// Tells the local members of `group` that messages of it may have been lost.
    pub fn gap_group(&self, group: &str, gap: &Gap) {
        let reg = self.read();
        if let Some(members) = reg.groups.get(group) {
            for q in members {
                q.push_gap(gap.clone());
            }
        }
    }

    /// Tells the subscriber `channel` that messages may have been lost (its resume could
    /// not be honoured, say). Returns whether it was there.
    pub fn gap(&self, channel: &str, gap: Gap) -> bool {
        let queue = self.read().channels.get(channel).cloned();
        match queue {
            Some(q) => {
                q.push_gap(gap);
                true
            }
            None => false,
        }
    }

    /// Ends every subscription ([`Ended::LayerClosed`]: each still gets what it had queued).
    pub fn close_all(&self) {
        let queues: Vec<Arc<Queue>> = self.read().channels.values().cloned().collect();
        for q in queues {
            self.end(&q, Ended::LayerClosed);
        }
    }

    /// The groups with at least one local member (a backend resubscribes to them after a
    /// reconnect).
    pub fn groups(&self) -> Vec<String> {
        self.read().groups.keys().map(|g| g.to_string()).collect()
    }

    /// The number of local members of `group`.
    pub fn group_len(&self, group: &str) -> usize {
        self.read().groups.get(group).map_or(0, Vec::len)
    }

    /// The number of live subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.read().channels.len()
    }

    /// Whether `channel` is a live subscription of this hub.
    pub fn contains(&self, channel: &str) -> bool {
        self.read().channels.contains_key(channel)
    }

    /// A [`Gap`] for a subscription that asked to resume where this hub keeps no history.
    pub(crate) fn no_history(&self, channel: &str) {
        self.gap(channel, Gap::new(GapReason::NoHistory));
    }

    /// Ends `queue` with `why` and removes it from the registry.
    pub(crate) fn end(&self, queue: &Arc<Queue>, why: Ended) {
        queue.end(why);
        self.unregister(queue);
    }

    /// Removes a dropped subscription.
    pub(crate) fn remove(&self, queue: &Arc<Queue>) {
        queue.end(Ended::LayerClosed);
        self.unregister(queue);
    }

    /// Takes `queue` out of the registry and its groups (once); tells the hooks which groups
    /// it emptied.
    fn unregister(&self, queue: &Arc<Queue>) {
        let emptied = {
            let mut reg = self.write();
            let groups = queue.with_membership(|registered, groups| {
                if !std::mem::replace(registered, false) {
                    return None;
                }
                Some(std::mem::take(groups))
            });
            let Some(groups) = groups else { return };
            reg.channels.remove(&queue.name);
            let mut emptied = Vec::new();
            for g in groups {
                if remove_member(&mut reg, &g, queue.id) {
                    emptied.push(g);
                }
            }
            emptied
        };
        if emptied.is_empty() {
            return;
        }
        let hooks = self
            .inner
            .hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = hooks {
            h.groups_emptied(&emptied);
        }
    }
}

fn end_weak(hub: &Weak<Inner>, queue: &Weak<Queue>, why: Ended) {
    if let (Some(inner), Some(q)) = (hub.upgrade(), queue.upgrade()) {
        Hub { inner }.end(&q, why);
    }
}

/// Removes member `id` from `group`; true when the group is now empty (and gone).
fn remove_member(reg: &mut Registry, group: &str, id: u64) -> bool {
    let Some(members) = reg.groups.get_mut(group) else {
        return true;
    };
    if let Some(i) = members.iter().position(|q| q.id == id) {
        members.swap_remove(i);
    }
    if members.is_empty() {
        reg.groups.remove(group);
        true
    } else {
        false
    }
}

fn unknown(channel: &str) -> ChannelError {
    ChannelError::new(
        ChannelErrorKind::UnknownChannel,
        format!("{channel:?} is not a live subscription of this process"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{Delivery, Overflow};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl HubHooks for Record {
        fn groups_emptied(&self, groups: &[Arc<str>]) {
            let mut v = self.0.lock().unwrap();
            v.extend(groups.iter().map(|g| g.to_string()));
        }
    }

    #[test]
    fn membership_follows_the_subscription() {
        let hub = Hub::with_prefix("specific.test");
        let rec = Arc::new(Record::default());
        hub.set_hooks(rec.clone());
        let a = hub.open(&SubscribeOptions::new()).unwrap().0;
        let b = hub.open(&SubscribeOptions::new()).unwrap().0;
        assert!(a.name().starts_with("specific.test!"));
        assert_ne!(a.name(), b.name());
        assert!(hub.add("g", a.name()).unwrap());
        assert!(!hub.add("g", a.name()).unwrap(), "twice is a no-op");
        assert!(!hub.add("g", b.name()).unwrap());
        assert!(hub.add("h", b.name()).unwrap());
        assert_eq!(hub.group_len("g"), 2);
        assert_eq!(b.groups().len(), 2);
        assert!(!hub.discard("g", b.name()).unwrap());
        assert_eq!(hub.group_len("g"), 1);
        drop(a);
        assert_eq!(hub.group_len("g"), 0);
        assert_eq!(*rec.0.lock().unwrap(), ["g"]);
        drop(b);
        assert_eq!(*rec.0.lock().unwrap(), ["g", "h"]);
        assert_eq!(hub.subscriptions(), 0);
        assert!(hub.groups().is_empty());
        let e = hub.add("g", "specific.test!999").unwrap_err();
        assert_eq!(e.kind(), ChannelErrorKind::UnknownChannel);
        assert_eq!(
            hub.add("bad name", "x").unwrap_err().kind(),
            ChannelErrorKind::InvalidName
        );
    }

    #[test]
    fn a_closed_slow_consumer_leaves_its_groups_at_once() {
        let hub = Hub::new();
        let mut slow = hub
            .open(
                &SubscribeOptions::new()
                    .capacity(1)
                    .overflow(Overflow::Close),
            )
            .unwrap()
            .0;
        let mut fast = hub.open(&SubscribeOptions::new().capacity(1)).unwrap().0;
        hub.add("g", slow.name()).unwrap();
        hub.add("g", fast.name()).unwrap();
        let mut reached = Vec::new();
        for n in 0..3 {
            reached.push(hub.deliver_group("g", &Message::text(n.to_string())));
            assert!(matches!(fast.try_recv(), Some(Delivery::Message(_))));
        }
        // The second send found the slow one full: it ended and left the group.
        assert_eq!(reached, [2, 2, 1]);
        assert_eq!(slow.ended(), Some(Ended::SlowConsumer));
        assert!(slow.try_recv().is_none());
        assert_eq!(hub.group_len("g"), 1);
        assert!(!hub.contains(slow.name()));
    }

    #[test]
    fn the_bound_connection_ends_the_subscription_with_its_reason() {
        let hub = Hub::new();
        let (conn, control) = ragi::Connection::pair();
        let sub = hub.open(&SubscribeOptions::new().bind(&conn)).unwrap().0;
        hub.add("g", sub.name()).unwrap();
        control.disconnect(ragi::DisconnectReason::KeepaliveTimeout);
        assert_eq!(
            sub.ended(),
            Some(Ended::ClientLeft(ragi::DisconnectReason::KeepaliveTimeout))
        );
        assert_eq!(hub.group_len("g"), 0);
        assert_eq!(hub.subscriptions(), 0);
        assert_eq!(hub.deliver_group("g", &Message::text("late")), 0);
    }
}
