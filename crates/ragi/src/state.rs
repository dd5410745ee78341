//! Shared state: lifespan state, the server-state object, and the per-scope stash.
//!
//! A [`State`] is a small type map behind an `Arc`: cloning it is cheap and every clone sees
//! the same values. The lifespan app fills one during start-up (a database pool, a model
//! handle); the server hands a clone to every scope of that worker as `scope.state`. The
//! server-state object (`scope.extensions.server_state`, spec §6) is a second one, shared by
//! every app invocation of one server session. A [`Stash`] is the same kind of map for one
//! scope: middleware and handlers of one request share what they put in it.
//!
//! ```
//! use ragi::State;
//!
//! struct Pool(u32);
//! let state = State::default();
//! state.insert(Pool(7));
//! let seen = state.clone();
//! assert_eq!(seen.get::<Pool>().unwrap().0, 7);
//! assert!(seen.get::<String>().is_none());
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

type Map = HashMap<TypeId, Arc<dyn Any + Send + Sync>, BuildHasherDefault<TypeIdHasher>>;

/// A `TypeId` is already a hash (std hashes its low 64 bits with `write_u64`); SipHash over it
/// again costs more than the rest of a lookup. (http's `Extensions` does the same.)
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not what `TypeId` calls; kept correct (FNV-1a) should that change.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A shared type map. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct State {
    map: Arc<RwLock<Map>>,
}

impl State {
    /// Stores `value`, replacing (and returning) a value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<Arc<T>> {
        let old = self.write().insert(TypeId::of::<T>(), Arc::new(value));
        old.and_then(|o| o.downcast::<T>().ok())
    }

    /// Stores a value that is already shared (no allocation), replacing (and returning) a value
    /// of the same type.
    pub fn insert_arc<T: Send + Sync + 'static>(&self, value: Arc<T>) -> Option<Arc<T>> {
        let old = self.write().insert(TypeId::of::<T>(), value);
        old.and_then(|o| o.downcast::<T>().ok())
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.write()
            .remove(&TypeId::of::<T>())
            .and_then(|v| v.downcast::<T>().ok())
    }

    /// Whether two handles share one map.
    pub fn ptr_eq(&self, other: &State) -> bool {
        Arc::ptr_eq(&self.map, &other.map)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("State").field("entries", &n).finish()
    }
}

/// A typed map for one scope (`scope.stash`): what a router, middleware and the handler of one
/// request, stream or session share — path parameters, a request id, a session, a value a
/// middleware wants to read back after the inner app returned.
///
/// Built empty and without allocating; the map is made on the first insert or the first clone,
/// and from then on every clone of the scope sees the same map. So a middleware that keeps a
/// clone of the scope before calling the inner app reads what the app stored:
///
/// ```
/// use ragi::{Scope, ScopeKind};
///
/// struct RequestId(String);
/// let scope = Scope::new(ScopeKind::Http);
/// let kept = scope.clone(); // the middleware's copy
/// scope.stash.insert(RequestId("r-1".into())); // inside the app
/// assert_eq!(kept.stash.get::<RequestId>().unwrap().0, "r-1");
/// ```
#[derive(Default)]
pub struct Stash {
    map: std::sync::OnceLock<State>,
}

impl Stash {
    fn shared(&self) -> &State {
        self.map.get_or_init(State::default)
    }

    /// Stores `value`, replacing (and returning) a value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<Arc<T>> {
        self.shared().insert(value)
    }

    /// Stores a value that is already shared (no allocation), replacing (and returning) a value
    /// of the same type.
    pub fn insert_arc<T: Send + Sync + 'static>(&self, value: Arc<T>) -> Option<Arc<T>> {
        self.shared().insert_arc(value)
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.map.get()?.get()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.map.get()?.remove()
    }

    /// Whether anything was ever stored or the stash was shared.
    pub fn is_initialized(&self) -> bool {
        self.map.get().is_some()
    }
}

impl Clone for Stash {
    /// A handle on the same map (made now if it was not yet).
    fn clone(&self) -> Self {
        let map = std::sync::OnceLock::new();
        let _ = map.set(self.shared().clone());
        Self { map }
    }
}

impl fmt::Debug for Stash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.map.get() {
            Some(s) => s.fmt(f),
            None => f.write_str("Stash(empty)"),
        }
    }
}
