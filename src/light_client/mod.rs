//! The light-client sync protocol (`specs/altair/light-client/sync-protocol.md`, in its
//! Electra form, unchanged through Fulu): header validity, update ranking
//! (`is_better_update`), the `LightClientStore` and its update processing, and the
//! merkle proofs a full node serves to light clients.
//!
//! As with the state transition, the spec's functions live once (`spec.rs`) and are
//! compiled once per preset ([`minimal`], [`mainnet`]). Fork-dependent values (the fork
//! version of a signature's domain, the Capella/Deneb header rules) come from a
//! [`ForkSchedule`].

use crate::types::primitives::Version;

/// Why a light-client object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightClientError {
    #[error("invalid light-client header: {0}")]
    InvalidHeader(&'static str),
    #[error("bootstrap header root does not match the trusted block root")]
    UntrustedBootstrap,
    #[error("invalid merkle branch for {0}")]
    InvalidBranch(&'static str),
    #[error("invalid update: {0}")]
    InvalidUpdate(&'static str),
    #[error("sync committee signature does not verify")]
    InvalidSignature,
    #[error("cannot compute: {0}")]
    Internal(String),
}

/// The forks of a chain config, for the light client: the fork version at an epoch
/// (`compute_fork_version`) and the epochs whose header rules differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkSchedule {
    pub genesis_fork_version: Version,
    /// `(fork epoch, fork version)`, ascending by epoch: Altair, Bellatrix, … Fulu.
    pub forks: Vec<(u64, Version)>,
    pub capella_fork_epoch: u64,
    pub deneb_fork_epoch: u64,
}

impl ForkSchedule {
    /// Every fork through Fulu at genesis, with the given versions (`0x0?000001` in the
    /// minimal config, `0x0?000000` in mainnet's).
    pub fn all_at_genesis(genesis_fork_version: [u8; 4], fork_versions: &[[u8; 4]]) -> Self {
        ForkSchedule {
            genesis_fork_version: genesis_fork_version.into(),
            forks: fork_versions
                .iter()
                .map(|v| (0, Version::from(*v)))
                .collect(),
            capella_fork_epoch: 0,
            deneb_fork_epoch: 0,
        }
    }

    /// `compute_fork_version(epoch)`: the version of the last fork at or before `epoch`.
    pub fn compute_fork_version(&self, epoch: u64) -> Version {
        self.forks
            .iter()
            .filter(|(e, _)| *e <= epoch)
            .max_by_key(|(e, _)| *e)
            .map(|(_, v)| *v)
            .unwrap_or(self.genesis_fork_version)
    }
}

// `minimal` and `mainnet` compile the same `spec.rs`, on purpose.
#[allow(clippy::duplicate_mod)]
pub mod mainnet;
#[allow(clippy::duplicate_mod)]
pub mod minimal;
