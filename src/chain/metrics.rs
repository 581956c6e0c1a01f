//! The `quasar_chain_*` metric families the chain service records as it imports:
//!
//! - `quasar_chain_blocks_imported_total`, `quasar_chain_blocks_skipped_total` (already known)
//! - `quasar_chain_segments_refused_total` (a segment stopped at an invalid block)
//! - `quasar_chain_signature_sets_verified_total`
//! - `quasar_chain_transition_seconds`, `quasar_chain_signature_verification_seconds`,
//!   `quasar_chain_db_write_seconds` (histograms, one observation per settled batch)
//!
//! The families are cheap handles; [`register`](ChainMetrics::register) exposes them in a
//! registry (the node's `/metrics`).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::pipeline::BatchStats;

#[derive(Debug, Clone)]
pub struct ChainMetrics {
    blocks_imported: Counter,
    blocks_skipped: Counter,
    segments_refused: Counter,
    signature_sets: Counter,
    transition: Histogram,
    signatures: Histogram,
    write: Histogram,
}

fn seconds_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for ChainMetrics {
    fn default() -> Self {
        ChainMetrics {
            blocks_imported: Counter::default(),
            blocks_skipped: Counter::default(),
            segments_refused: Counter::default(),
            signature_sets: Counter::default(),
            transition: seconds_histogram(),
            signatures: seconds_histogram(),
            write: seconds_histogram(),
        }
    }
}

impl ChainMetrics {
    pub fn register(&self, registry: &mut Registry) {
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "quasar_chain_blocks_imported",
            "Blocks verified and imported",
            self.blocks_imported.clone(),
        );
        registry.register(
            "quasar_chain_blocks_skipped",
            "Blocks handed in that the chain already held",
            self.blocks_skipped.clone(),
        );
        registry.register(
            "quasar_chain_segments_refused",
            "Segments that stopped at an invalid block",
            self.segments_refused.clone(),
        );
        registry.register(
            "quasar_chain_signature_sets_verified",
            "Signature sets batch-verified",
            self.signature_sets.clone(),
        );
        registry.register(
            "quasar_chain_transition_seconds",
            "State transition time per settled batch",
            self.transition.clone(),
        );
        registry.register(
            "quasar_chain_signature_verification_seconds",
            "Signature verification time (aggregation and batch verify) per settled batch",
            self.signatures.clone(),
        );
        registry.register(
            "quasar_chain_db_write_seconds",
            "Database write time per settled batch",
            self.write.clone(),
        );
    }

    /// Record a settled batch.
    pub(crate) fn settled(&self, stats: &BatchStats, refused: bool) {
        self.blocks_imported.inc_by(stats.blocks as u64);
        self.blocks_skipped.inc_by(stats.skipped as u64);
        self.signature_sets.inc_by(stats.signature_sets as u64);
        if refused {
            self.segments_refused.inc();
        }
        if stats.blocks > 0 {
            let secs = |d: Duration| d.as_secs_f64();
            self.transition.observe(secs(stats.transition));
            self.signatures.observe(secs(stats.signatures));
            self.write.observe(secs(stats.write));
        }
    }

    /// `quasar_chain_blocks_imported_total`.
    pub fn blocks_imported(&self) -> u64 {
        self.blocks_imported.get()
    }
}
