//! A small least-recently-used cache for results that are costly to rebuild and that a server
//! asks for again and again: models read from the registry, dashboards. Written by hand: a
//! handful of entries behind one mutex needs no crate.

use std::sync::{Mutex, PoisonError};

/// At most `capacity` entries; the least recently used goes first. Safe to share between
/// threads; values are cloned out (keep them in an `Arc` when large).
pub(crate) struct Lru<K, V> {
    capacity: usize,
    entries: Mutex<Vec<(K, V)>>,
}

impl<K: PartialEq, V: Clone> Lru<K, V> {
    pub(crate) const fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            capacity,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The value under `key`, now the most recently used.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let at = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(at);
        let value = entry.1.clone();
        entries.push(entry);
        Some(value)
    }

    /// Keeps `value` under `key` (replacing one there), dropping the least recently used entry
    /// when full.
    pub(crate) fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _)| *k != key);
        if entries.len() >= self.capacity.max(1) {
            entries.remove(0);
        }
        entries.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let cache: Lru<&str, u32> = Lru::new(2);
        cache.put("a", 1);
        cache.put("b", 2);
        assert_eq!(cache.get(&"a"), Some(1)); // a is now newer than b
        cache.put("c", 3);
        assert_eq!(cache.get(&"b"), None);
        assert_eq!((cache.get(&"a"), cache.get(&"c")), (Some(1), Some(3)));
        cache.put("a", 10);
        assert_eq!(cache.get(&"a"), Some(10));
        assert_eq!(cache.get(&"zz"), None);
    }
}
