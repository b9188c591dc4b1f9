//! The one cache mechanism every service uses for its hot-path slots: a bounded map with a
//! time-to-live, whose fills cannot resurrect what an invalidation removed.
//!
//! A reader notes [`Slots::generation`] before going to the database and hands it back to
//! [`Slots::put`]; if anything in this cache was invalidated meanwhile, the fill is dropped.
//! Otherwise a read that raced a revocation could put the old, unrevoked value back for a whole
//! TTL. Each service owns its slots (keys, providers, prices, model lists); `live` keeps them true
//! when another instance changes the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A bounded TTL cache from a string key to a cheap-to-clone value.
pub struct Slots<V> {
    map: DashMap<String, (Instant, V)>,
    ttl: Duration,
    capacity: usize,
    generation: AtomicU64,
}

impl<V> std::fmt::Debug for Slots<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots").field("len", &self.map.len()).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl<V: Clone> Slots<V> {
    /// At most `capacity` entries, each trusted for `ttl`. When full (after dropping expired
    /// entries), new values are served but not cached: memory stays bounded whatever callers send.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { map: DashMap::new(), ttl, capacity, generation: AtomicU64::new(0) }
    }

    /// The fresh value under `key`, if any (an expired one is removed).
    pub fn get(&self, key: &str) -> Option<V> {
        let entry = self.map.get(key)?;
        if entry.0.elapsed() > self.ttl {
            drop(entry);
            self.map.remove(key);
            return None;
        }
        Some(entry.1.clone())
    }

    /// The invalidation count; note it before reading the database and pass it to [`Slots::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches a value read from the database, unless this cache was invalidated since `seen`.
    pub fn put(&self, key: String, value: V, seen: u64) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let ttl = self.ttl;
            self.map.retain(|_, (at, _)| at.elapsed() <= ttl);
            if self.map.len() >= self.capacity {
                return;
            }
        }
        self.map.insert(key.clone(), (Instant::now(), value));
        // Checked after inserting, so an invalidation that lands in between is not missed.
        if self.generation() != seen {
            self.map.remove(&key);
        }
    }

    /// Drops one entry (and any fill in flight for this cache).
    pub fn invalidate(&self, key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.remove(key);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.clear();
    }

    /// Whether `key` holds a value, fresh or not, for which `test` holds.
    pub fn holds(&self, key: &str, test: impl FnOnce(&V) -> bool) -> bool {
        self.map.get(key).is_some_and(|entry| test(&entry.1))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let slots: Slots<u32> = Slots::new(Duration::from_secs(60), 10);
        let seen = slots.generation();
        slots.invalidate("a");
        slots.put("a".into(), 1, seen);
        assert_eq!(slots.get("a"), None, "the stale read was dropped");
        slots.put("a".into(), 2, slots.generation());
        assert_eq!(slots.get("a"), Some(2));
    }

    #[test]
    fn entries_expire() {
        let slots: Slots<u32> = Slots::new(Duration::ZERO, 10);
        let before = Instant::now();
        slots.put("a".into(), 1, slots.generation());
        // Polls the clock (no sleep): any time at all past the fill is past a zero TTL.
        while before.elapsed().is_zero() {}
        assert_eq!(slots.get("a"), None);
        assert!(slots.is_empty(), "an expired entry is removed when read");
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let slots: Slots<u32> = Slots::new(Duration::from_secs(60), 3);
        for i in 0..100 {
            slots.put(format!("k{i}"), i, slots.generation());
        }
        assert_eq!(slots.len(), 3);
        assert_eq!(slots.get("k0"), Some(0), "what is cached stays until it expires");
        slots.put("k0".into(), 7, slots.generation());
        assert_eq!(slots.get("k0"), Some(7), "an existing entry can be replaced when full");
    }
}
