//! Shared state: lifespan state and the server-state object.
//!
//! A [`State`] is a small type map behind an `Arc`: cloning it is cheap and every clone sees
//! the same values. The lifespan app fills one during start-up (a database pool, a model
//! handle); the server hands a clone to every scope of that worker as `scope.state`. The
//! server-state object (`scope.extensions.server_state`, spec §6) is a second one, shared by
//! every app invocation of one server session.
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
use std::sync::{Arc, RwLock};

type Map = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

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
