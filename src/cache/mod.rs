//! The node's caches: memory accounting, metrics, and the caches built on them.
//!
//! - [`MemoryBudget`] — shared byte accounting with an optional limit (`--memory-budget`).
//! - [`CacheMetrics`] — the `quasar_cache_*` Prometheus families for every cache.
//! - [`WeighedLru`] — a thread-safe, weighed LRU for blocks, shufflings and committees.
//! - [`CheckpointStateCache`] — checkpoint states in three tiers: memory (`Arc<S>`), disk
//!   (snappy-compressed SSZ files) and the database (the caller rebuilds the state).
//! - [`Preloader`] — a background thread that computes upcoming checkpoint states.
//! - [`BufferPool`] — pooled `Vec<u8>` buffers for SSZ bytes.
//!
//! Everything here is preset-independent: a state is any type implementing
//! [`CachedState`].
//!
//! Eviction under memory pressure: the checkpoint cache demotes to disk by itself when
//! an insert leaves the budget over its limit; the LRU caches only evict by count on
//! insert, and by bytes when their owner calls [`WeighedLru::evict_to_budget`] (the node
//! calls it on each cache, least valuable first, when the budget is over).

use std::path::PathBuf;

pub mod budget;
pub mod checkpoint;
pub mod lru;
pub mod metrics;
pub mod pool;
pub mod preload;

pub use budget::{parse_bytes, MemoryBudget};
pub use checkpoint::{
    CheckpointCacheStats, CheckpointKey, CheckpointStateCache, Tier, TieredConfig,
};
pub use lru::WeighedLru;
pub use metrics::CacheMetrics;
pub use pool::{BufferPool, PooledBuf};
pub use preload::{AdvanceFn, PreloadRequest, Preloader};

/// A state the caches can hold: it can be written to the disk tier and read back, and it
/// knows roughly how much memory it occupies (charged to the [`MemoryBudget`]).
pub trait CachedState: Send + Sync + 'static {
    /// The SSZ encoding of the state.
    fn encode_ssz(&self) -> Result<Vec<u8>, String>;
    /// Decodes a state from its SSZ encoding (length-checked; never panics on bad input).
    fn decode_ssz(bytes: &[u8]) -> Result<Self, String>
    where
        Self: Sized;
    /// Approximate heap + inline size in bytes.
    fn approx_bytes(&self) -> usize;
}

/// Errors from the caches.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file of the disk tier could not be created, written, read or renamed.
    #[error("cache file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state could not be encoded, compressed, decompressed or decoded.
    #[error("cache codec: {0}")]
    Codec(String),
    /// The database tier (the caller's loader) failed.
    #[error("loading from the database tier: {0}")]
    Load(String),
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { path, source }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::CachedState;

    /// The toy state of the cache tests: SSZ = epoch (8 bytes LE) ‖ payload.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Toy {
        pub epoch: u64,
        pub payload: Vec<u8>,
    }

    impl Toy {
        pub fn new(epoch: u64, len: usize) -> Self {
            let payload = (0..len)
                .map(|i| (i as u64 * 31 + epoch * 7) as u8)
                .collect();
            Toy { epoch, payload }
        }
    }

    impl CachedState for Toy {
        fn encode_ssz(&self) -> Result<Vec<u8>, String> {
            let mut out = Vec::with_capacity(8 + self.payload.len());
            out.extend_from_slice(&self.epoch.to_le_bytes());
            out.extend_from_slice(&self.payload);
            Ok(out)
        }

        fn decode_ssz(bytes: &[u8]) -> Result<Self, String> {
            if bytes.len() < 8 {
                return Err(format!("toy state: {} bytes, need at least 8", bytes.len()));
            }
            let (epoch, payload) = bytes.split_at(8);
            let epoch = u64::from_le_bytes(epoch.try_into().map_err(|_| "epoch".to_string())?);
            Ok(Toy {
                epoch,
                payload: payload.to_vec(),
            })
        }

        fn approx_bytes(&self) -> usize {
            std::mem::size_of::<Self>() + self.payload.len()
        }
    }
}
