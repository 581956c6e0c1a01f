//! The runtime chain configuration values the state transition reads (the subset of a
//! consensus-specs `config.yaml` that Fulu's beacon-chain functions use), with the
//! `mainnet` and `minimal` configs built in.

/// One entry of `BLOB_SCHEDULE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobScheduleEntry {
    pub epoch: u64,
    pub max_blobs_per_block: u64,
}

/// Chain config values used by the transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub genesis_fork_version: [u8; 4],
    pub capella_fork_version: [u8; 4],
    pub electra_fork_version: [u8; 4],
    pub fulu_fork_version: [u8; 4],
    pub slot_duration_ms: u64,
    pub min_validator_withdrawability_delay: u64,
    pub shard_committee_period: u64,
    pub ejection_balance: u64,
    pub churn_limit_quotient: u64,
    pub inactivity_score_bias: u64,
    pub inactivity_score_recovery_rate: u64,
    pub min_per_epoch_churn_limit_electra: u64,
    pub max_per_epoch_activation_exit_churn_limit: u64,
    pub electra_fork_epoch: u64,
    pub max_blobs_per_block_electra: u64,
    pub blob_schedule: Vec<BlobScheduleEntry>,
}

impl ChainConfig {
    /// The `minimal` config of consensus-specs (v1.7.0-alpha.13).
    pub fn minimal() -> Self {
        Self {
            genesis_fork_version: [0, 0, 0, 1],
            capella_fork_version: [3, 0, 0, 1],
            electra_fork_version: [5, 0, 0, 1],
            fulu_fork_version: [6, 0, 0, 1],
            slot_duration_ms: 6000,
            min_validator_withdrawability_delay: 256,
            shard_committee_period: 64,
            ejection_balance: 16_000_000_000,
            churn_limit_quotient: 32,
            inactivity_score_bias: 4,
            inactivity_score_recovery_rate: 16,
            min_per_epoch_churn_limit_electra: 64_000_000_000,
            max_per_epoch_activation_exit_churn_limit: 128_000_000_000,
            electra_fork_epoch: u64::MAX,
            max_blobs_per_block_electra: 9,
            blob_schedule: Vec::new(),
        }
    }

    /// The `mainnet` config of consensus-specs (v1.7.0-alpha.13).
    pub fn mainnet() -> Self {
        Self {
            genesis_fork_version: [0, 0, 0, 0],
            capella_fork_version: [3, 0, 0, 0],
            electra_fork_version: [5, 0, 0, 0],
            fulu_fork_version: [6, 0, 0, 0],
            slot_duration_ms: 12000,
            min_validator_withdrawability_delay: 256,
            shard_committee_period: 256,
            ejection_balance: 16_000_000_000,
            churn_limit_quotient: 65536,
            inactivity_score_bias: 4,
            inactivity_score_recovery_rate: 16,
            min_per_epoch_churn_limit_electra: 128_000_000_000,
            max_per_epoch_activation_exit_churn_limit: 256_000_000_000,
            electra_fork_epoch: 364_032,
            max_blobs_per_block_electra: 9,
            blob_schedule: vec![
                BlobScheduleEntry {
                    epoch: 412_672,
                    max_blobs_per_block: 15,
                },
                BlobScheduleEntry {
                    epoch: 419_072,
                    max_blobs_per_block: 21,
                },
            ],
        }
    }

    /// `get_blob_parameters(epoch).max_blobs_per_block` (Fulu, EIP-7892).
    pub fn max_blobs_per_block(&self, epoch: u64) -> u64 {
        let mut entries = self.blob_schedule.clone();
        entries.sort_by_key(|e| std::cmp::Reverse(e.epoch));
        for e in entries {
            if epoch >= e.epoch {
                return e.max_blobs_per_block;
            }
        }
        self.max_blobs_per_block_electra
    }
}
