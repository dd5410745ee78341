//! Reverse routing: the path of a named route, from a handler or from the router.

use std::collections::HashMap;
use std::sync::Arc;

use ragi::Scope;

use super::pattern::{encode_path, Pattern};
use crate::Error;

/// The named routes of one router (its groups included).
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    map: HashMap<Arc<str>, Pattern>,
}

impl Names {
    pub(crate) fn insert(&mut self, name: Arc<str>, pattern: Pattern) -> bool {
        if self.map.contains_key(&name) {
            return false;
        }
        self.map.insert(name, pattern);
        true
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Pattern> {
        self.map.get(name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What the router that dispatched a request leaves in the stash for `url_for`: its names, the
/// root path it was reached under, and the same for the router that mounted it.
#[derive(Debug)]
pub(crate) struct UrlScope {
    pub(crate) names: Arc<Names>,
    pub(crate) root_path: String,
    pub(crate) parent: Option<Arc<UrlScope>>,
}

/// The path of route `name` with `params` (each percent-encoded as a path segment; a tail
/// parameter keeps its `/`s), under `root_path` (encoded), followed by `query` (form-encoded,
/// in the given order) when it is not empty.
pub(crate) fn build(
    names: &Names,
    root_path: &str,
    name: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
) -> Option<Result<String, Error>> {
    let pattern = names.get(name)?;
    Some(pattern.build(name, params).map(|path| {
        let root = root_path.strip_suffix('/').unwrap_or(root_path);
        let mut out = String::with_capacity(root.len() + path.len());
        out.push_str(&encode_path(root));
        out.push_str(&path);
        if !query.is_empty() {
            out.push('?');
            out.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish(),
            );
        }
        out
    }))
}

/// The path of the route named `name`, resolved against the router that dispatched this
/// request (then the routers that mounted it, outwards), with that router's `root_path` in
/// front. See [`Context::url_for`](crate::Context::url_for).
pub fn url_for(
    scope: &Scope,
    name: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
) -> Result<String, Error> {
    let mut at = scope.stash.get::<UrlScope>();
    while let Some(s) = at {
        if let Some(r) = build(&s.names, &s.root_path, name, params, query) {
            return r;
        }
        at = s.parent.clone();
    }
    Err(Error::internal(format!(
        "url_for: no route named {name:?} in the routers of this request"
    )))
}
