//! A thread-safe LRU cache bounded by entry count, with weighed entries charged to the
//! shared memory budget. Used for blocks (root → `Arc<block>`), shufflings and committees.

use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use ::lru::LruCache;

use super::metrics::{REASON_CAPACITY, REASON_MEMORY_BUDGET};
use super::{CacheMetrics, MemoryBudget};

struct Inner<K, V> {
    /// Unbounded: the count limit is enforced here so that every eviction is accounted.
    lru: LruCache<K, (V, u64)>,
    bytes: u64,
}

/// An LRU cache of at most `max_entries` entries, each weighed by `weigher` and charged to
/// the [`MemoryBudget`].
///
/// Inserts evict least-recently-used entries beyond `max_entries` (reason `capacity`);
/// [`evict_to_budget`](Self::evict_to_budget) evicts them while the budget is over its
/// limit (reason `memory_budget`). Values are cloned out, so `V` is typically an `Arc`.
pub struct WeighedLru<K, V> {
    name: String,
    max_entries: usize,
    weigher: fn(&V) -> usize,
    budget: Arc<MemoryBudget>,
    metrics: Arc<CacheMetrics>,
    inner: Mutex<Inner<K, V>>,
}

impl<K: Hash + Eq, V: Clone> WeighedLru<K, V> {
    /// A cache named `name` (the `cache` label of its metrics) holding at most
    /// `max_entries` entries (at least one).
    pub fn new(
        name: impl Into<String>,
        max_entries: usize,
        weigher: fn(&V) -> usize,
        budget: Arc<MemoryBudget>,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        let cache = WeighedLru {
            name: name.into(),
            max_entries: max_entries.max(1),
            weigher,
            budget,
            metrics,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        };
        cache.metrics.set_size(&cache.name, 0, 0);
        cache
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        // A panic elsewhere cannot leave the map inconsistent: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &Inner<K, V>) {
        self.metrics
            .set_size(&self.name, inner.lru.len(), inner.bytes);
    }

    /// The value for `key`, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let value = self.lock().lru.get(key).map(|(v, _)| v.clone());
        match value {
            Some(_) => self.metrics.hit(&self.name, "memory"),
            None => self.metrics.miss(&self.name),
        }
        value
    }

    /// The value for `key`, without touching the LRU order or the metrics.
    pub fn peek(&self, key: &K) -> Option<V> {
        self.lock().lru.peek(key).map(|(v, _)| v.clone())
    }

    /// Whether `key` is cached (does not touch the LRU order).
    pub fn contains(&self, key: &K) -> bool {
        self.lock().lru.contains(key)
    }

    /// Inserts (or replaces) `key`, evicting least-recently-used entries beyond the count
    /// limit.
    pub fn insert(&self, key: K, value: V) {
        let weight = (self.weigher)(&value) as u64;
        let mut inner = self.lock();
        self.budget.charge(weight);
        inner.bytes += weight;
        if let Some((_, old)) = inner.lru.put(key, (value, weight)) {
            self.budget.release(old);
            inner.bytes -= old;
        }
        let mut evicted = 0u64;
        while inner.lru.len() > self.max_entries {
            let Some((_, (_, w))) = inner.lru.pop_lru() else {
                break;
            };
            self.budget.release(w);
            inner.bytes -= w;
            evicted += 1;
        }
        self.publish(&inner);
        drop(inner);
        self.metrics.evicted(&self.name, REASON_CAPACITY, evicted);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &K) -> Option<V> {
        let mut inner = self.lock();
        let (value, weight) = inner.lru.pop(key)?;
        self.budget.release(weight);
        inner.bytes -= weight;
        self.publish(&inner);
        Some(value)
    }

    /// Evicts least-recently-used entries while the memory budget is over its limit (down
    /// to an empty cache if need be). Returns how many were evicted.
    pub fn evict_to_budget(&self) -> usize {
        let mut inner = self.lock();
        let (mut count, mut bytes) = (0usize, 0u64);
        while self.budget.is_over() {
            let Some((_, (_, w))) = inner.lru.pop_lru() else {
                break;
            };
            self.budget.release(w);
            inner.bytes -= w;
            count += 1;
            bytes += w;
        }
        self.publish(&inner);
        drop(inner);
        if count > 0 {
            self.metrics
                .evicted(&self.name, REASON_MEMORY_BUDGET, count as u64);
            tracing::info!(
                cache = %self.name,
                evicted = count,
                bytes,
                budget_used = self.budget.used(),
                budget_limit = ?self.budget.limit(),
                "evicted cache entries under the memory budget"
            );
        }
        count
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.lru.clear();
        self.budget.release(inner.bytes);
        inner.bytes = 0;
        self.publish(&inner);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the entries' weights.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The entry count limit.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The cache's name (its metrics label).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<K, V> Drop for WeighedLru<K, V> {
    fn drop(&mut self) {
        let bytes = match self.inner.get_mut() {
            Ok(inner) => inner.bytes,
            Err(poisoned) => poisoned.into_inner().bytes,
        };
        self.budget.release(bytes);
    }
}

impl<K, V> std::fmt::Debug for WeighedLru<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeighedLru")
            .field("name", &self.name)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weigh(v: &Arc<Vec<u8>>) -> usize {
        v.len()
    }

    fn blob(len: usize, fill: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![fill; len])
    }

    #[test]
    fn capacity_evicts_least_recently_used() {
        let budget = Arc::new(MemoryBudget::unlimited());
        let metrics = CacheMetrics::new();
        let cache = WeighedLru::new("blocks", 3, weigh, budget.clone(), metrics.clone());
        for i in 0..3u8 {
            cache.insert(i, blob(10, i));
        }
        // Touch 0 so that 1 is the least recently used.
        assert_eq!(cache.get(&0).unwrap()[0], 0);
        cache.insert(3, blob(10, 3));
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&1), "1 was least recently used");
        assert!(cache.contains(&0) && cache.contains(&2) && cache.contains(&3));
        assert_eq!(cache.bytes(), 30);
        assert_eq!(budget.used(), 30);
        assert_eq!(metrics.evictions("blocks", "capacity"), 1);
        assert_eq!(metrics.evictions("blocks", "memory_budget"), 0);
        assert!(cache.get(&1).is_none());
        assert_eq!(metrics.hits("blocks", "memory"), 1);
        assert_eq!(metrics.misses("blocks"), 1);
        assert_eq!(metrics.entries("blocks"), 3);
        assert_eq!(metrics.bytes("blocks"), 30);

        // Replacing a key re-weighs it without evicting.
        cache.insert(3, blob(25, 9));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.bytes(), 45);
        assert_eq!(budget.used(), 45);
        assert_eq!(cache.remove(&3).unwrap()[0], 9);
        assert_eq!(budget.used(), 20);

        drop(cache);
        assert_eq!(budget.used(), 0, "dropping the cache releases its bytes");
    }

    #[test]
    fn budget_evicts_until_under_limit() {
        let budget = Arc::new(MemoryBudget::new(Some(250)));
        let metrics = CacheMetrics::new();
        let cache = WeighedLru::new("shufflings", 100, weigh, budget.clone(), metrics.clone());
        for i in 0..5u32 {
            cache.insert(i, blob(100, i as u8));
        }
        // Inserts do not evict by bytes; the owner asks.
        assert_eq!(cache.len(), 5);
        assert_eq!(budget.over_by(), 250);
        cache.get(&0); // 0 becomes most recently used; 1, 2, 3 go first.
        assert_eq!(cache.evict_to_budget(), 3);
        assert_eq!(budget.used(), 200);
        assert_eq!(budget.over_by(), 0);
        assert!(cache.contains(&0) && cache.contains(&4));
        assert!(!cache.contains(&1) && !cache.contains(&2) && !cache.contains(&3));
        assert_eq!(metrics.evictions("shufflings", "memory_budget"), 3);
        assert_eq!(metrics.evictions("shufflings", "capacity"), 0);
        assert_eq!(cache.evict_to_budget(), 0, "already under budget");

        // Pressure from elsewhere may empty the cache, but never underflows.
        budget.charge(10_000);
        assert_eq!(cache.evict_to_budget(), 2);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
        assert_eq!(budget.used(), 10_000);
        let text = metrics.encode_text();
        assert!(text.contains(
            "quasar_cache_evictions_total{cache=\"shufflings\",reason=\"memory_budget\"} 5"
        ));
    }

    #[test]
    fn shared_between_threads() {
        let budget = Arc::new(MemoryBudget::unlimited());
        let cache = Arc::new(WeighedLru::new(
            "committees",
            64,
            weigh,
            budget.clone(),
            CacheMetrics::new(),
        ));
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..100u64 {
                        cache.insert(t * 1000 + i, blob(4, 0));
                        cache.get(&(t * 1000 + i / 2));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cache.len(), 64);
        assert_eq!(cache.bytes(), 256);
        assert_eq!(budget.used(), 256);
    }
}
