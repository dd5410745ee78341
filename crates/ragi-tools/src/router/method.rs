//! Sets of methods, and the `Allow` header made from them.

use http::Method;

/// The standard methods in the order `Allow` lists them.
const ORDER: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

fn bit(m: &Method) -> Option<u16> {
    ORDER.iter().position(|o| o == m).map(|i| 1 << i)
}

const GET: u16 = 1;
const HEAD: u16 = 2;
const OPTIONS: u16 = 1 << 6;

/// A set of methods: the nine standard ones as bits, extension methods in a list, or every
/// method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MethodSet {
    bits: u16,
    other: Vec<Method>,
    any: bool,
}

impl MethodSet {
    /// Every method.
    pub(crate) fn any() -> Self {
        Self {
            bits: u16::MAX,
            other: Vec::new(),
            any: true,
        }
    }

    /// One method.
    pub(crate) fn one(m: Method) -> Self {
        let mut s = Self::default();
        s.insert(m);
        s
    }

    pub(crate) fn insert(&mut self, m: Method) {
        match bit(&m) {
            Some(b) => self.bits |= b,
            None if !self.other.contains(&m) => self.other.push(m),
            None => {}
        }
    }

    pub(crate) fn contains(&self, m: &Method) -> bool {
        if self.any {
            return true;
        }
        // The common methods first, without the position search.
        if *m == Method::GET {
            return self.bits & GET != 0;
        }
        match bit(m) {
            Some(b) => self.bits & b != 0,
            None => self.other.contains(m),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any && self.bits == 0 && self.other.is_empty()
    }

    /// Whether the two sets share a method.
    pub(crate) fn overlaps(&self, other: &MethodSet) -> bool {
        self.any
            || other.any
            || self.bits & other.bits != 0
            || self.other.iter().any(|m| other.other.contains(m))
    }

    pub(crate) fn union_with(&mut self, other: &MethodSet) {
        self.any |= other.any;
        self.bits |= other.bits;
        for m in &other.other {
            if !self.other.contains(m) {
                self.other.push(m.clone());
            }
        }
    }

    /// The `Allow` value: the methods, with HEAD wherever GET is and OPTIONS always (the
    /// router answers it), standard methods in a fixed order, then extension methods sorted.
    pub(crate) fn allow_header(&self) -> String {
        let mut bits = self.bits | OPTIONS;
        if bits & GET != 0 {
            bits |= HEAD;
        }
        let mut out = String::new();
        for (i, m) in ORDER.iter().enumerate() {
            if bits & (1 << i) != 0 {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(m.as_str());
            }
        }
        let mut other: Vec<&str> = self.other.iter().map(Method::as_str).collect();
        other.sort_unstable();
        for m in other {
            out.push_str(", ");
            out.push_str(m);
        }
        out
    }

    /// The methods listed (for messages).
    pub(crate) fn describe(&self) -> String {
        if self.any {
            return "any method".to_owned();
        }
        let mut names: Vec<&str> = ORDER
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, m)| m.as_str())
            .collect();
        names.extend(self.other.iter().map(Method::as_str));
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_head_with_get_and_always_options() {
        let mut s = MethodSet::one(Method::POST);
        assert_eq!(s.allow_header(), "POST, OPTIONS");
        s.insert(Method::GET);
        s.insert(Method::from_bytes(b"PURGE").unwrap());
        s.insert(Method::from_bytes(b"BREW").unwrap());
        assert_eq!(s.allow_header(), "GET, HEAD, POST, OPTIONS, BREW, PURGE");
        assert!(s.contains(&Method::GET));
        assert!(!s.contains(&Method::HEAD));
        assert!(s.contains(&Method::from_bytes(b"PURGE").unwrap()));
    }

    #[test]
    fn overlap_and_any() {
        let get = MethodSet::one(Method::GET);
        let post = MethodSet::one(Method::POST);
        assert!(!get.overlaps(&post));
        assert!(get.overlaps(&MethodSet::any()));
        assert!(MethodSet::any().contains(&Method::from_bytes(b"X").unwrap()));
        let mut u = get.clone();
        u.union_with(&post);
        assert_eq!(u.describe(), "GET, POST");
    }
}
