//! A bounded, sharded map of counters that evicts its coldest entries.
//!
//! Attackers choose the keys (token lineages, addresses, user names), so the map has a
//! hard capacity. When a shard is full, a new key evicts the lightest of a few entries
//! sampled at random: an entry busy enough to matter is almost never the lightest of the
//! sample, so an attacker flooding the table with fresh keys evicts its own one-hit
//! entries, not the hot key it wants to escape. Entries whose windows have passed weigh
//! nothing and go first.
//!
//! Each shard is a vector (for O(1) random sampling) plus an index; a lock is held for
//! one lookup, never across an await or another shard.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

/// Shards per table; a power of two.
const SHARDS: usize = 32;
/// Entries sampled to pick one to evict.
const EVICTION_SAMPLE: usize = 8;

/// What eviction compares: how much an entry would lose if it were forgotten at `now_ms`.
pub trait Weigh {
    /// The entry's current weight; zero once its windows have passed.
    fn weight(&self, now_ms: u64) -> u64;
}

/// A capacity-bounded map from `K` to `V`.
pub struct Table<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    per_shard: usize,
    hasher: RandomState,
}

struct Shard<K, V> {
    entries: Vec<(K, V)>,
    index: HashMap<K, usize>,
    /// xorshift state for sampling; seeded per shard, never zero.
    rng: u64,
    evictions: u64,
}

impl<K: Hash + Eq + Clone, V: Default + Weigh> Table<K, V> {
    /// A table that holds at most `capacity` entries (rounded up to a multiple of the
    /// shard count, at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let hasher = RandomState::new();
        let shards = (0..SHARDS)
            .map(|i| {
                let seed = hasher.hash_one(i) | 1;
                Mutex::new(Shard {
                    entries: Vec::new(),
                    index: HashMap::new(),
                    rng: seed,
                    evictions: 0,
                })
            })
            .collect();
        Self {
            shards,
            per_shard,
            hasher,
        }
    }

    /// Runs `f` on the entry for `key`, creating it (and evicting another if the shard
    /// is full) when absent.
    pub fn update<R>(&self, key: &K, now_ms: u64, f: impl FnOnce(&mut V) -> R) -> R {
        let mut shard = self.shard(key);
        let slot = match shard.index.get(key) {
            Some(&slot) => slot,
            None => shard.insert(key.clone(), self.per_shard, now_ms),
        };
        f(&mut shard.entries[slot].1)
    }

    /// Runs `f` on the entry for `key` if there is one.
    pub fn peek<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let shard = self.shard(key);
        let slot = *shard.index.get(key)?;
        Some(f(&shard.entries[slot].1))
    }

    /// Removes the entry for `key`, if any.
    pub fn remove(&self, key: &K) -> Option<V> {
        self.shard(key).remove(key)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries evicted to make room since the table was made.
    pub fn evictions(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).evictions).sum()
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Every entry `select` picks, cloned out shard by shard.
    pub fn collect<T>(&self, mut select: impl FnMut(&K, &V) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            out.extend(shard.entries.iter().filter_map(|(k, v)| select(k, v)));
        }
        out
    }

    /// Drops every entry whose weight at `now_ms` is zero.
    pub fn prune(&self, now_ms: u64) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let stale: Vec<K> = shard
                .entries
                .iter()
                .filter(|(_, v)| v.weight(now_ms) == 0)
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                shard.remove(&key);
            }
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, Shard<K, V>> {
        let at = self.hasher.hash_one(key) as usize & (SHARDS - 1);
        lock(&self.shards[at])
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a counter half-written; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: Hash + Eq + Clone, V: Default + Weigh> Shard<K, V> {
    fn insert(&mut self, key: K, capacity: usize, now_ms: u64) -> usize {
        if self.entries.len() >= capacity {
            let victim = self.lightest_sampled(now_ms);
            let victim_key = self.entries[victim].0.clone();
            self.remove(&victim_key);
            self.evictions += 1;
        }
        self.entries.push((key.clone(), V::default()));
        let slot = self.entries.len() - 1;
        self.index.insert(key, slot);
        slot
    }

    fn lightest_sampled(&mut self, now_ms: u64) -> usize {
        let len = self.entries.len();
        let mut best = (u64::MAX, 0);
        for _ in 0..EVICTION_SAMPLE.min(len) {
            let slot = (self.next_random() % len as u64) as usize;
            let weight = self.entries[slot].1.weight(now_ms);
            if weight < best.0 {
                best = (weight, slot);
            }
            if weight == 0 {
                break;
            }
        }
        best.1
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.index.remove(key)?;
        let (_, value) = self.entries.swap_remove(slot);
        if let Some((moved, _)) = self.entries.get(slot) {
            self.index.insert(moved.clone(), slot);
        }
        Some(value)
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Hits(u64);

    impl Weigh for Hits {
        fn weight(&self, _now_ms: u64) -> u64 {
            self.0
        }
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let table: Table<u64, Hits> = Table::new(1_000);
        for key in 0..100_000u64 {
            table.update(&key, 0, |h| h.0 += 1);
        }
        assert!(table.len() <= table.capacity());
        assert_eq!(table.capacity(), 1_024);
        assert_eq!(table.evictions(), 100_000 - table.len() as u64);
    }

    #[test]
    fn a_flood_of_fresh_keys_does_not_evict_hot_keys() {
        let table: Table<u64, Hits> = Table::new(3_200);
        let hot: Vec<u64> = (0..50).map(|i| u64::MAX - i).collect();
        for key in &hot {
            table.update(key, 0, |h| h.0 = 1_000);
        }
        // Thirty times the capacity in one-hit keys, with the hot keys still in use.
        for key in 0..100_000u64 {
            table.update(&key, 0, |h| h.0 += 1);
            if key % 1_000 == 0 {
                for hot_key in &hot {
                    table.update(hot_key, 0, |h| h.0 += 1);
                }
            }
        }
        for key in &hot {
            let count = table.peek(key, |h| h.0);
            assert!(
                count.is_some_and(|c| c > 1_000),
                "hot key {key} lost its count"
            );
        }
    }

    #[test]
    fn prune_drops_weightless_entries_and_keeps_the_index_consistent() {
        let table: Table<u64, Hits> = Table::new(6_400);
        for key in 0..40u64 {
            table.update(&key, 0, |h| h.0 = key % 2);
        }
        table.prune(0);
        assert_eq!(table.len(), 20);
        for key in 0..40u64 {
            assert_eq!(table.peek(&key, |h| h.0), (key % 2 == 1).then_some(1));
        }
        assert_eq!(table.remove(&1).map(|h| h.0), Some(1));
        assert_eq!(table.len(), 19);
    }
}
