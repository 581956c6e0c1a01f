//! The `quasar_cache_*` metric families, shared by every cache.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type CacheLabels = [(&'static str, String); 1];
type CacheAndLabels = [(&'static str, String); 2];

/// Eviction reason: an entry count limit was reached.
pub const REASON_CAPACITY: &str = "capacity";
/// Eviction reason: the shared [`MemoryBudget`](super::MemoryBudget) was over its limit.
pub const REASON_MEMORY_BUDGET: &str = "memory_budget";

/// Cache metrics, in their own [`Registry`]:
///
/// - `quasar_cache_hits_total{cache,tier}` (tier = `memory` | `disk` | `database`)
/// - `quasar_cache_misses_total{cache}`
/// - `quasar_cache_evictions_total{cache,reason}` (reason = `capacity` | `memory_budget`)
/// - `quasar_cache_bytes{cache}` (gauge)
/// - `quasar_cache_entries{cache}` (gauge)
///
/// The families are cheap handles (`Arc` inside), so [`register`](Self::register) can
/// also expose them through the node's own registry.
#[derive(Debug)]
pub struct CacheMetrics {
    registry: Registry,
    hits: Family<CacheAndLabels, Counter>,
    misses: Family<CacheLabels, Counter>,
    evictions: Family<CacheAndLabels, Counter>,
    bytes: Family<CacheLabels, Gauge>,
    entries: Family<CacheLabels, Gauge>,
}

impl CacheMetrics {
    /// New families, registered in a fresh registry.
    pub fn new() -> Arc<Self> {
        let mut metrics = CacheMetrics {
            registry: Registry::default(),
            hits: Family::default(),
            misses: Family::default(),
            evictions: Family::default(),
            bytes: Family::default(),
            entries: Family::default(),
        };
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.registry = registry;
        Arc::new(metrics)
    }

    /// Registers (handles to) the families in another registry, e.g. the node's.
    pub fn register(&self, registry: &mut Registry) {
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "quasar_cache_hits",
            "Cache lookups served, by cache and tier",
            self.hits.clone(),
        );
        registry.register(
            "quasar_cache_misses",
            "Cache lookups not served by the cache itself",
            self.misses.clone(),
        );
        registry.register(
            "quasar_cache_evictions",
            "Entries evicted (or demoted to a lower tier), by cache and reason",
            self.evictions.clone(),
        );
        registry.register(
            "quasar_cache_bytes",
            "Approximate bytes held, by cache",
            self.bytes.clone(),
        );
        registry.register(
            "quasar_cache_entries",
            "Entries held, by cache",
            self.entries.clone(),
        );
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn hit(&self, cache: &str, tier: &'static str) {
        self.hits.get_or_create(&two(cache, "tier", tier)).inc();
    }

    pub(crate) fn miss(&self, cache: &str) {
        self.misses.get_or_create(&one(cache)).inc();
    }

    pub(crate) fn evicted(&self, cache: &str, reason: &'static str, count: u64) {
        if count > 0 {
            self.evictions
                .get_or_create(&two(cache, "reason", reason))
                .inc_by(count);
        }
    }

    pub(crate) fn set_size(&self, cache: &str, entries: usize, bytes: u64) {
        let labels = one(cache);
        self.entries
            .get_or_create(&labels)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.bytes
            .get_or_create(&labels)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// `quasar_cache_hits_total{cache,tier}`.
    pub fn hits(&self, cache: &str, tier: &str) -> u64 {
        let labels = [("cache", cache.to_string()), ("tier", tier.to_string())];
        self.hits.get(&labels).map_or(0, |c| c.get())
    }

    /// `quasar_cache_misses_total{cache}`.
    pub fn misses(&self, cache: &str) -> u64 {
        self.misses.get(&one(cache)).map_or(0, |c| c.get())
    }

    /// `quasar_cache_evictions_total{cache,reason}`.
    pub fn evictions(&self, cache: &str, reason: &str) -> u64 {
        let labels = [("cache", cache.to_string()), ("reason", reason.to_string())];
        self.evictions.get(&labels).map_or(0, |c| c.get())
    }

    /// `quasar_cache_bytes{cache}`.
    pub fn bytes(&self, cache: &str) -> i64 {
        self.bytes.get(&one(cache)).map_or(0, |g| g.get())
    }

    /// `quasar_cache_entries{cache}`.
    pub fn entries(&self, cache: &str) -> i64 {
        self.entries.get(&one(cache)).map_or(0, |g| g.get())
    }
}

fn one(cache: &str) -> CacheLabels {
    [("cache", cache.to_string())]
}

fn two(cache: &str, key: &'static str, value: &str) -> CacheAndLabels {
    [("cache", cache.to_string()), (key, value.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_encodes() {
        let m = CacheMetrics::new();
        m.hit("blocks", "memory");
        m.hit("blocks", "memory");
        m.miss("blocks");
        m.evicted("blocks", REASON_CAPACITY, 3);
        m.evicted("blocks", REASON_MEMORY_BUDGET, 0);
        m.set_size("blocks", 5, 1234);
        assert_eq!(m.hits("blocks", "memory"), 2);
        assert_eq!(m.hits("blocks", "disk"), 0);
        assert_eq!(m.misses("blocks"), 1);
        assert_eq!(m.evictions("blocks", "capacity"), 3);
        assert_eq!(m.evictions("blocks", "memory_budget"), 0);
        assert_eq!(m.entries("blocks"), 5);
        assert_eq!(m.bytes("blocks"), 1234);

        let text = m.encode_text();
        for line in [
            "quasar_cache_hits_total{cache=\"blocks\",tier=\"memory\"} 2",
            "quasar_cache_misses_total{cache=\"blocks\"} 1",
            "quasar_cache_evictions_total{cache=\"blocks\",reason=\"capacity\"} 3",
            "quasar_cache_bytes{cache=\"blocks\"} 1234",
            "quasar_cache_entries{cache=\"blocks\"} 5",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("memory_budget"),
            "zero evictions created a series"
        );

        // The same families can be exposed through another registry.
        let mut node = Registry::default();
        m.register(&mut node);
        let mut other = String::new();
        encode(&mut other, &node).unwrap();
        assert!(other.contains("quasar_cache_hits_total{cache=\"blocks\",tier=\"memory\"} 2"));
    }
}
