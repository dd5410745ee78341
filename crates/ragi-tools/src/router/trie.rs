//! The segment trie the router matches raw paths against.
//!
//! Each node is one path segment deep. Its children are tried in priority order — literal
//! segments (a binary search), then constrained parameters (in registration order), then the
//! plain parameter, then the tail — and the walk backtracks when a branch fails deeper down, so
//! `/users/new/edit` still reaches `/users/{id}/edit` when the literal `/users/new` has no
//! `edit` below it. A match costs one step per segment plus a regex per constrained candidate;
//! nothing is allocated unless a segment carries a `%` escape.

use std::borrow::Cow;

use super::pattern::{Constraint, Segment as PatternSegment};

/// A node: what may follow the segments that lead to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    statics: Vec<(Box<[u8]>, Node)>,
    constrained: Vec<(Constraint, Node)>,
    param: Option<Box<Node>>,
    /// A `{*tail}` route ending here.
    tail: Option<usize>,
    /// A route ending here.
    leaf: Option<usize>,
    /// A mount whose prefix ends here.
    mount: Option<usize>,
}

/// A parameter's span in the raw path.
pub(crate) type Capture = (usize, usize);

/// The captures of a walk: eight inline (no allocation for any sane route), more on the heap.
#[derive(Debug, Default)]
pub(crate) struct Caps {
    inline: [Capture; 8],
    len: usize,
    spill: Vec<Capture>,
}

impl Caps {
    fn push(&mut self, c: Capture) {
        if self.len < self.inline.len() {
            self.inline[self.len] = c;
        } else {
            self.spill.push(c);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len -= 1;
        if self.len >= self.inline.len() {
            self.spill.pop();
        }
    }

    /// The captures in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Capture> + '_ {
        let n = self.len.min(self.inline.len());
        self.inline[..n].iter().chain(self.spill.iter()).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a walk reports to its caller.
pub(crate) trait Visitor {
    /// Route `leaf` matches the whole path with `caps`; return true to stop the search.
    fn leaf(&mut self, leaf: usize, caps: &Caps) -> bool;
}

impl Node {
    /// The node for `segments` (made if needed), and whether it ends in a tail. The caller
    /// then reads or sets the leaf, tail or mount slot through [`Node::slot`].
    fn descend(&mut self, segments: &[PatternSegment]) -> (&mut Node, bool) {
        let mut node = self;
        for s in segments {
            node = match s {
                PatternSegment::Static(text) => {
                    let key = text.as_bytes();
                    let i = match node.statics.binary_search_by(|(k, _)| by_len(k, key)) {
                        Ok(i) => i,
                        Err(i) => {
                            node.statics.insert(i, (key.into(), Node::default()));
                            i
                        }
                    };
                    &mut node.statics[i].1
                }
                PatternSegment::Param {
                    constraint: Some(c),
                    ..
                } => {
                    let i = match node
                        .constrained
                        .iter()
                        .position(|(o, _)| o.source == c.source)
                    {
                        Some(i) => i,
                        None => {
                            node.constrained.push((c.clone(), Node::default()));
                            node.constrained.len() - 1
                        }
                    };
                    &mut node.constrained[i].1
                }
                PatternSegment::Param {
                    constraint: None, ..
                } => node.param.get_or_insert_with(Default::default),
                PatternSegment::Tail { .. } => return (node, true),
            };
        }
        (node, false)
    }

    /// The leaf slot of the route `segments`: its tail slot when it ends in `{*name}`.
    pub(crate) fn route_slot(&mut self, segments: &[PatternSegment]) -> &mut Option<usize> {
        match self.descend(segments) {
            (node, true) => &mut node.tail,
            (node, false) => &mut node.leaf,
        }
    }

    /// The mount slot of the prefix `segments`.
    pub(crate) fn mount_slot(&mut self, segments: &[PatternSegment]) -> &mut Option<usize> {
        &mut self.descend(segments).0.mount
    }

    /// Walks the routes for the raw path `raw` (which starts with `/`), calling `v` on every
    /// matching route in priority order until it accepts one. On success `caps` holds that
    /// route's captures.
    pub(crate) fn find_route(&self, raw: &[u8], caps: &mut Caps, v: &mut impl Visitor) -> bool {
        debug_assert!(raw.starts_with(b"/"));
        self.walk(raw, Some(1), caps, v)
    }

    /// The literal child whose text is `key` (statics are ordered by length, then bytes, so
    /// most probes compare a length only).
    fn static_child(&self, key: &[u8]) -> Option<&Node> {
        self.statics
            .binary_search_by(|(k, _)| by_len(k, key))
            .ok()
            .map(|i| &self.statics[i].1)
    }

    fn walk(&self, raw: &[u8], pos: Option<usize>, caps: &mut Caps, v: &mut impl Visitor) -> bool {
        let Some(start) = pos else {
            // The path ends at this node.
            return self.leaf.is_some_and(|leaf| v.leaf(leaf, caps));
        };
        let (seg, end, next) = Segment::at(raw, start);
        if let Some(child) = self.static_child(seg.bytes()) {
            if child.walk(raw, next, caps, v) {
                return true;
            }
        }
        if !seg.raw.is_empty() {
            if !self.constrained.is_empty() {
                let text = seg.bytes();
                for (c, child) in &self.constrained {
                    if c.is_match_bytes(text) {
                        caps.push((start, end));
                        if child.walk(raw, next, caps, v) {
                            return true;
                        }
                        caps.pop();
                    }
                }
            }
            if let Some(child) = &self.param {
                caps.push((start, end));
                if child.walk(raw, next, caps, v) {
                    return true;
                }
                caps.pop();
            }
        }
        if let Some(leaf) = self.tail {
            caps.push((start, raw.len()));
            if v.leaf(leaf, caps) {
                return true;
            }
            caps.pop();
        }
        false
    }

    /// The mount that takes `raw`: deeper prefixes before shallower ones along a branch,
    /// branches in priority order. Returns the mount and where its prefix ends in `raw`.
    pub(crate) fn find_mount(&self, raw: &[u8], caps: &mut Caps) -> Option<(usize, usize)> {
        debug_assert!(raw.starts_with(b"/"));
        self.walk_mount(raw, Some(1), caps)
    }

    fn walk_mount(
        &self,
        raw: &[u8],
        pos: Option<usize>,
        caps: &mut Caps,
    ) -> Option<(usize, usize)> {
        if let Some(start) = pos {
            let (seg, end, next) = Segment::at(raw, start);
            if let Some(child) = self.static_child(seg.bytes()) {
                if let Some(found) = child.walk_mount(raw, next, caps) {
                    return Some(found);
                }
            }
            if !seg.raw.is_empty() {
                if !self.constrained.is_empty() {
                    let text = seg.bytes();
                    for (c, child) in &self.constrained {
                        if c.is_match_bytes(text) {
                            caps.push((start, end));
                            if let Some(found) = child.walk_mount(raw, next, caps) {
                                return Some(found);
                            }
                            caps.pop();
                        }
                    }
                }
                if let Some(child) = &self.param {
                    caps.push((start, end));
                    if let Some(found) = child.walk_mount(raw, next, caps) {
                        return Some(found);
                    }
                    caps.pop();
                }
            }
        }
        let consumed = match pos {
            Some(start) => start - 1,
            None => raw.len(),
        };
        self.mount.map(|m| (m, consumed))
    }
}

/// The order of literal children: by length, then bytes.
fn by_len(k: &[u8], key: &[u8]) -> std::cmp::Ordering {
    k.len().cmp(&key.len()).then_with(|| k.cmp(key))
}

/// One raw segment, decoded only when it carries an escape.
struct Segment<'a> {
    raw: &'a [u8],
    decoded: Option<String>,
}

impl<'a> Segment<'a> {
    /// The segment of `raw` starting at `start`, where it ends, and where the next one starts
    /// (`None` when it is the last): one pass that also notes whether it needs decoding.
    fn at(raw: &'a [u8], start: usize) -> (Self, usize, Option<usize>) {
        let mut end = start;
        let mut escaped = false;
        while end < raw.len() {
            match raw[end] {
                b'/' => break,
                b'%' => escaped = true,
                _ => {}
            }
            end += 1;
        }
        let next = (end < raw.len()).then_some(end + 1);
        let seg = &raw[start..end];
        let decoded = escaped.then(|| ragi::scope::percent_decode(seg));
        (Self { raw: seg, decoded }, end, next)
    }

    /// The decoded bytes, what literals compare against.
    fn bytes(&self) -> &[u8] {
        self.decoded.as_deref().map_or(self.raw, str::as_bytes)
    }
}

/// A raw segment, percent-decoded (borrowed when it has no escape).
pub(crate) fn decode(seg: &[u8]) -> Cow<'_, str> {
    if !seg.contains(&b'%') {
        if let Ok(s) = std::str::from_utf8(seg) {
            return Cow::Borrowed(s);
        }
    }
    Cow::Owned(ragi::scope::percent_decode(seg))
}

#[cfg(test)]
mod tests {
    use super::super::pattern::Pattern;
    use super::*;

    struct First(Option<(usize, Vec<String>)>, &'static [u8]);

    impl Visitor for First {
        fn leaf(&mut self, leaf: usize, caps: &Caps) -> bool {
            let vals = caps
                .iter()
                .map(|(s, e)| decode(&self.1[s..e]).into_owned())
                .collect();
            self.0 = Some((leaf, vals));
            true
        }
    }

    fn trie(patterns: &[&str]) -> Node {
        let mut root = Node::default();
        for (i, p) in patterns.iter().enumerate() {
            let p = Pattern::parse(p).unwrap();
            *root.route_slot(&p.segments) = Some(i);
        }
        root
    }

    fn find(root: &Node, path: &'static str) -> Option<(usize, Vec<String>)> {
        let mut v = First(None, path.as_bytes());
        root.find_route(path.as_bytes(), &mut Caps::default(), &mut v);
        v.0
    }

    #[test]
    fn priorities_and_backtracking() {
        let t = trie(&[
            "/users/new",         // 0
            r"/users/{id:\d+}",   // 1
            "/users/{name}",      // 2
            "/users/{*rest}",     // 3
            "/users/{id}/edit",   // 4
            "/",                  // 5
            "/users/new/preview", // 6
        ]);
        assert_eq!(find(&t, "/users/new"), Some((0, vec![])));
        assert_eq!(find(&t, "/users/42"), Some((1, vec!["42".into()])));
        assert_eq!(find(&t, "/users/bob"), Some((2, vec!["bob".into()])));
        assert_eq!(find(&t, "/users/a/b"), Some((3, vec!["a/b".into()])));
        assert_eq!(
            find(&t, "/users/new/edit"),
            Some((4, vec!["new".into()])),
            "backtracks from the literal"
        );
        assert_eq!(find(&t, "/"), Some((5, vec![])));
        assert_eq!(
            find(&t, "/users/"),
            Some((3, vec!["".into()])),
            "a tail may be empty"
        );
        assert_eq!(find(&t, "/users"), None);
        assert_eq!(find(&t, "/nope"), None);
    }

    #[test]
    fn raw_paths_are_matched_then_decoded() {
        let t = trie(&["/files/{name}", "/files/{name}/x", "/caf\u{e9}"]);
        assert_eq!(find(&t, "/files/a%2Fb"), Some((0, vec!["a/b".into()])));
        assert_eq!(find(&t, "/files/a%2Fb/x"), Some((1, vec!["a/b".into()])));
        assert_eq!(
            find(&t, "/%66iles/x"),
            Some((0, vec!["x".into()])),
            "literals compare decoded"
        );
        assert_eq!(find(&t, "/caf%C3%A9"), Some((2, vec![])));
        assert_eq!(find(&t, "/files/a/b"), None);
    }

    #[test]
    fn mounts_take_prefixes_on_segment_boundaries() {
        let mut root = Node::default();
        for (i, p) in ["/api", "/api/v2", "/", "/t/{tenant}"].iter().enumerate() {
            *root.mount_slot(&Pattern::parse_prefix(p).unwrap().segments) = Some(i);
        }
        let m = |p: &str| root.find_mount(p.as_bytes(), &mut Caps::default());
        assert_eq!(m("/api"), Some((0, 4)));
        assert_eq!(m("/api/"), Some((0, 4)));
        assert_eq!(m("/api/x"), Some((0, 4)));
        assert_eq!(m("/api/v2/x"), Some((1, 7)));
        assert_eq!(m("/apix"), Some((2, 0)));
        assert_eq!(m("/t/acme/x"), Some((3, 7)));
        assert_eq!(m("/t//x"), Some((2, 0)), "a parameter is never empty");
    }
}
