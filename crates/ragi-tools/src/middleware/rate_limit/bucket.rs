//! Token buckets, and a bounded map of them per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::Key;

/// A quota: `capacity` tokens, refilled continuously at `per_sec` tokens a second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quota {
    pub(crate) capacity: f64,
    pub(crate) per_sec: f64,
}

impl Quota {
    /// `n` units per `window`, all of them available at once (burst = `n`).
    pub(crate) fn per_window(n: u64, window: Duration) -> Self {
        let secs = window.as_secs_f64().max(1e-9);
        Self {
            capacity: n as f64,
            per_sec: n as f64 / secs,
        }
    }
}

/// One bucket. Starts full.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What taking from a bucket gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Take {
    /// Taken; `remaining` whole tokens are left, the next one comes in `next`.
    Granted { remaining: u64, next: Duration },
    /// Refused; enough tokens come in `wait`.
    Refused { wait: Duration },
}

impl Bucket {
    pub(crate) fn full(q: &Quota, now: Instant) -> Self {
        Self {
            tokens: q.capacity,
            last: now,
        }
    }

    fn refill(&mut self, q: &Quota, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * q.per_sec).min(q.capacity);
        self.last = now;
    }

    /// Whether the bucket is (or would now be) full: it can be forgotten, a new one is the
    /// same.
    pub(crate) fn is_full(&self, q: &Quota, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * q.per_sec >= q.capacity
    }

    /// Takes `cost` tokens if there are that many.
    pub(crate) fn take(&mut self, q: &Quota, now: Instant, cost: f64) -> Take {
        self.refill(q, now);
        if self.tokens + 1e-9 >= cost {
            self.tokens = (self.tokens - cost).max(0.0);
            Take::Granted {
                remaining: (self.tokens + 1e-9).floor() as u64,
                next: secs(self.until(q, self.tokens.floor() + 1.0)),
            }
        } else if cost > q.capacity {
            // Can never be granted (a message larger than the whole byte quota).
            Take::Refused {
                wait: Duration::MAX,
            }
        } else {
            Take::Refused {
                wait: secs(self.until(q, cost)),
            }
        }
    }

    /// Seconds until the bucket holds `level` tokens (0 if it does).
    fn until(&self, q: &Quota, level: f64) -> f64 {
        let level = level.min(q.capacity);
        ((level - self.tokens) / q.per_sec).max(0.0)
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

pub(crate) use crate::middleware::observe::ceil_secs;

/// Buckets per key, bounded: full buckets are swept (they carry nothing a new one would not),
/// and when the map is still at its bound the least recently used eighth is evicted.
#[derive(Debug)]
pub(crate) struct Buckets {
    quota: Quota,
    max_keys: usize,
    sweep_every: Duration,
    inner: Mutex<Map>,
}

#[derive(Debug)]
struct Map {
    buckets: HashMap<Key, Bucket>,
    last_sweep: Option<Instant>,
}

impl Buckets {
    pub(crate) fn new(quota: Quota, max_keys: usize, sweep_every: Duration) -> Self {
        Self {
            quota,
            max_keys: max_keys.max(1),
            sweep_every,
            inner: Mutex::new(Map {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Takes one token from `key`'s bucket.
    pub(crate) fn take(&self, key: &Key, now: Instant) -> Take {
        let q = self.quota;
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let due = map
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= self.sweep_every);
        if due || (map.buckets.len() >= self.max_keys && !map.buckets.contains_key(key)) {
            map.sweep(&q, now, self.max_keys);
        }
        map.buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(&q, now))
            .take(&q, now, 1.0)
    }

    /// How many keys have a bucket now.
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

impl Map {
    fn sweep(&mut self, q: &Quota, now: Instant, max_keys: usize) {
        self.last_sweep = Some(now);
        self.buckets.retain(|_, b| !b.is_full(q, now));
        if self.buckets.len() < max_keys {
            return;
        }
        // Still at the bound: forget the least recently used eighth (their clients start
        // again with a full bucket; the map never grows past the bound).
        let mut ages: Vec<(Instant, Key)> = self
            .buckets
            .iter()
            .map(|(k, b)| (b.last, k.clone()))
            .collect();
        let n = (ages.len() / 8).max(1);
        ages.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, k) in ages.into_iter().take(n) {
            self.buckets.remove(&k);
        }
        tracing::warn!(
            max_keys,
            evicted = n,
            "rate limit: key map full; least recently used buckets forgotten"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_continuously() {
        let q = Quota::per_window(2, Duration::from_secs(1));
        let t0 = Instant::now();
        let mut b = Bucket::full(&q, t0);
        assert!(matches!(
            b.take(&q, t0, 1.0),
            Take::Granted { remaining: 1, .. }
        ));
        assert!(matches!(
            b.take(&q, t0, 1.0),
            Take::Granted { remaining: 0, .. }
        ));
        match b.take(&q, t0, 1.0) {
            Take::Refused { wait } => assert_eq!(wait, Duration::from_millis(500)),
            other => panic!("{other:?}"),
        }
        let t1 = t0 + Duration::from_millis(500);
        assert!(matches!(
            b.take(&q, t1, 1.0),
            Take::Granted { remaining: 0, .. }
        ));
        assert!(b.is_full(&q, t1 + Duration::from_secs(1)));
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
    }

    #[test]
    fn the_map_stays_bounded() {
        let q = Quota::per_window(1, Duration::from_secs(60));
        let m = Buckets::new(q, 16, Duration::from_secs(3600));
        let now = Instant::now();
        for i in 0..100u32 {
            let _ = m.take(&Key::Text(i.to_string().into()), now);
            assert!(m.len() <= 16);
        }
        // Full buckets are swept when a sweep is due.
        let later = now + Duration::from_secs(7200);
        let _ = m.take(&Key::Text("x".into()), later);
        assert_eq!(m.len(), 1);
    }
}
