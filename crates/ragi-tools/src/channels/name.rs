//! Channel and group names: Django Channels' rules.
//!
//! A name is 1 to 99 ASCII letters, digits, `.`, `-` and `_`. A *process-specific* channel
//! name has one `!` more: `specific.<process>!<n>`, the part before the `!` naming the
//! process that holds its queue (a backend routes a `send` by it).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ChannelError, ChannelErrorKind};

/// The longest name, in bytes (Django's limit is "under 100").
pub const MAX_NAME_LEN: usize = 99;

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks a group name: 1–99 of `[A-Za-z0-9._-]`.
///
/// ```
/// use ragi_tools::channels::validate_group;
/// assert!(validate_group("chat.lobby").is_ok());
/// assert!(validate_group("chat lobby").is_err());
/// assert!(validate_group("").is_err());
/// ```
pub fn validate_group(name: &str) -> Result<(), ChannelError> {
    if !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(name_char) {
        Ok(())
    } else {
        Err(ChannelError::new(
            ChannelErrorKind::InvalidName,
            format!(
                "invalid group name {:?}: 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . - _",
                truncate(name)
            ),
        ))
    }
}

/// Checks a channel name: a group name, or a process-specific name with one `!`
/// (`specific.<process>!<n>`).
pub fn validate_channel(name: &str) -> Result<(), ChannelError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && match name.split_once('!') {
            Some((process, rest)) => {
                !process.is_empty() && process.bytes().all(name_char) && rest.bytes().all(name_char)
            }
            None => name.bytes().all(name_char),
        };
    if ok {
        Ok(())
    } else {
        Err(ChannelError::new(
            ChannelErrorKind::InvalidName,
            format!(
                "invalid channel name {:?}: 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . - _, \
                 with at most one ! after the process part",
                truncate(name)
            ),
        ))
    }
}

/// The process part of a process-specific channel name (before the `!`), if it is one.
///
/// ```
/// use ragi_tools::channels::process_of;
/// assert_eq!(process_of("specific.3fa9c1d2e4b5!7"), Some("specific.3fa9c1d2e4b5"));
/// assert_eq!(process_of("chat.lobby"), None);
/// ```
pub fn process_of(channel: &str) -> Option<&str> {
    channel.split_once('!').map(|(p, _)| p)
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A fresh process prefix: `specific.` and 16 hex digits, random per call (seeded by the
/// standard library's per-process random hash keys, the time and the process id).
pub(crate) fn random_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("specific.{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_djangos_rules() {
        for good in ["a", "chat.room-1_x", &"x".repeat(99)] {
            assert!(validate_group(good).is_ok(), "{good}");
            assert!(validate_channel(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(100), "a!b"] {
            assert!(validate_group(bad).is_err(), "{bad}");
        }
        assert!(validate_channel("specific.abc!12").is_ok());
        assert!(validate_channel("specific.abc!").is_ok());
        for bad in ["!x", "a!b!c", "a b!c", "a!b c"] {
            assert!(validate_channel(bad).is_err(), "{bad}");
        }
        let e = validate_group("no spaces").unwrap_err();
        assert_eq!(e.kind(), ChannelErrorKind::InvalidName);
        assert!(e.message().contains("no spaces"), "{}", e.message());
    }

    #[test]
    fn prefixes_are_distinct_and_valid() {
        let a = random_prefix();
        let b = random_prefix();
        assert_ne!(a, b);
        assert!(validate_group(&a).is_ok());
        assert_eq!(a.len(), "specific.".len() + 16);
    }
}
