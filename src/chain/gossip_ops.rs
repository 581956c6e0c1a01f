//! Gossip validation of the operation topics — `voluntary_exit`, `proposer_slashing`,
//! `attester_slashing` (`specs/phase0/p2p-interface.md`, Electra's larger
//! `AttesterSlashing`) and `bls_to_execution_change` (`specs/capella/p2p-interface.md`),
//! with Deneb's EIP-7044 exit domain — in the spec's order: the seen-cache (and, for BLS
//! changes, the wall-clock Capella) checks first, then the state-transition asserts of the
//! operation against the head state (the transition's own `check_*` functions, so gossip
//! and block processing cannot drift apart), then the operation is marked seen and pooled.
//!
//! It runs off the chain thread: against the published head state
//! ([`HeadSnapshot::state`]), on tokio's blocking pool, a few at a time. The seen-caches
//! and the [`OperationPool`] are values of the chain service ([`GossipOps`], shared by every
//! handle), never statics: two nodes in one process share nothing.
//!
//! [`HeadSnapshot::state`]: crate::chain::service::HeadSnapshot

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::chain::error::{BlockError, Fault};
use crate::chain::service::{AnyState, GossipClock, GossipTopic, GossipVerdict, HeadSnapshot};
use crate::transition::{ChainConfig, TransitionError};

/// The operation gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    VoluntaryExit,
    ProposerSlashing,
    AttesterSlashing,
    BlsToExecutionChange,
}

impl OperationKind {
    /// The operation topic of a gossip topic (`None`: not an operation topic).
    pub fn of_topic(topic: GossipTopic) -> Option<Self> {
        Some(match topic {
            GossipTopic::VoluntaryExit => OperationKind::VoluntaryExit,
            GossipTopic::ProposerSlashing => OperationKind::ProposerSlashing,
            GossipTopic::AttesterSlashing => OperationKind::AttesterSlashing,
            GossipTopic::BlsToExecutionChange => OperationKind::BlsToExecutionChange,
            _ => return None,
        })
    }

    /// The SSZ container the topic carries.
    pub fn container(self) -> &'static str {
        match self {
            OperationKind::VoluntaryExit => "SignedVoluntaryExit",
            OperationKind::ProposerSlashing => "ProposerSlashing",
            OperationKind::AttesterSlashing => "AttesterSlashing",
            OperationKind::BlsToExecutionChange => "SignedBLSToExecutionChange",
        }
    }
}

/// Why an operation was not accepted on gossip; [`fault`](Self::fault) says whose it is
/// (IGNORE for [`Fault::Nobody`] and [`Fault::Node`], REJECT for [`Fault::Peer`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    /// The bytes are not the topic's container of the chain's preset.
    #[error("undecodable {}: {reason}", kind.container())]
    Decode { kind: OperationKind, reason: String },
    /// `[IGNORE]` a valid voluntary exit of this validator was seen already.
    #[error("already seen a voluntary exit of validator {validator_index}")]
    ExitAlreadySeen { validator_index: u64 },
    /// `[IGNORE]` a valid proposer slashing of this proposer was seen already.
    #[error("already seen a proposer slashing of proposer {proposer_index}")]
    ProposerSlashingAlreadySeen { proposer_index: u64 },
    /// `[IGNORE]` every index of the two attestations' intersection (possibly none) was
    /// seen in a valid attester slashing already.
    #[error("all {intersection} indices of the attester slashing's intersection already seen")]
    NoNewSlashableIndices { intersection: usize },
    /// `[IGNORE]` the wall clock's epoch is before `CAPELLA_FORK_EPOCH`.
    #[error("epoch {epoch} (wall clock) is before the Capella fork epoch {capella_fork_epoch}")]
    PreCapella { epoch: u64, capella_fork_epoch: u64 },
    /// `[IGNORE]` a valid BLS-to-execution change of this validator was seen already.
    #[error("already seen a bls to execution change of validator {validator_index}")]
    BlsChangeAlreadySeen { validator_index: u64 },
    /// `[REJECT]` one of the operation's state-transition asserts against the head state
    /// failed: the transition error names it (an index out of range, the failed `Check`
    /// with what was found, or the signature set that does not verify).
    #[error("invalid {}: {error}", kind.container())]
    Invalid {
        kind: OperationKind,
        error: TransitionError,
    },
    /// The node failed (hashing, the blocking pool): nobody is penalised.
    #[error("internal: {0}")]
    Internal(String),
}

impl OperationError {
    /// Whose fault the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            OperationError::Decode { .. } | OperationError::Invalid { .. } => Fault::Peer,
            OperationError::ExitAlreadySeen { .. }
            | OperationError::ProposerSlashingAlreadySeen { .. }
            | OperationError::NoNewSlashableIndices { .. }
            | OperationError::PreCapella { .. }
            | OperationError::BlsChangeAlreadySeen { .. } => Fault::Nobody,
            OperationError::Internal(_) => Fault::Node,
        }
    }

    /// A transition assert's failure: the peer's when the input is to blame, else ours.
    fn invalid(kind: OperationKind, error: TransitionError) -> Self {
        if error.is_input_fault() {
            OperationError::Invalid { kind, error }
        } else {
            OperationError::Internal(error.to_string())
        }
    }
}

/// A set of validator indices as a bitset: at most one bit per validator of the state
/// (an index is inserted only after it was checked against the validator count).
#[derive(Debug, Default, Clone)]
pub struct IndexSet {
    bits: Vec<u64>,
    len: usize,
}

impl IndexSet {
    pub fn contains(&self, index: u64) -> bool {
        let word = (index / 64) as usize;
        (index / 64) < self.bits.len() as u64 && self.bits[word] & (1 << (index % 64)) != 0
    }

    /// Insert `index` (the caller checked it is a validator index); whether it is new.
    pub fn insert(&mut self, index: u64) -> bool {
        let word = (index / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1 << (index % 64);
        let new = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        self.len += usize::from(new);
        new
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The spec's `Seen` sets of the operation topics (each bounded by the validator count).
#[derive(Debug, Default)]
pub struct SeenOperations {
    pub voluntary_exit_indices: IndexSet,
    pub proposer_slashing_indices: IndexSet,
    pub attester_slashing_indices: IndexSet,
    pub bls_to_execution_change_indices: IndexSet,
}

/// Most voluntary exits the pool holds (a block takes `MAX_VOLUNTARY_EXITS` = 16).
pub const MAX_POOL_VOLUNTARY_EXITS: usize = 4096;
/// Most proposer slashings the pool holds.
pub const MAX_POOL_PROPOSER_SLASHINGS: usize = 1024;
/// Most attester slashings the pool holds (the oldest goes first).
pub const MAX_POOL_ATTESTER_SLASHINGS: usize = 256;
/// Most BLS-to-execution changes the pool holds.
pub const MAX_POOL_BLS_CHANGES: usize = 16384;

/// Operations that passed gossip validation, as SSZ of the chain's preset, for block
/// production. Bounded: past a limit new exits, proposer slashings and BLS changes are not
/// pooled (still ACCEPTed and relayed), and the oldest attester slashing makes room. A
/// producer re-validates against its own pre-state (e.g. Electra's pending-withdrawal
/// check of exits, which gossip does not make).
#[derive(Debug, Default)]
pub struct OperationPool {
    /// By validator index.
    pub voluntary_exits: BTreeMap<u64, Vec<u8>>,
    /// By proposer index.
    pub proposer_slashings: BTreeMap<u64, Vec<u8>>,
    /// In arrival order, with the intersection's indices.
    pub attester_slashings: VecDeque<(Vec<u64>, Vec<u8>)>,
    /// By validator index.
    pub bls_to_execution_changes: BTreeMap<u64, Vec<u8>>,
}

impl OperationPool {
    pub fn len(&self) -> usize {
        self.voluntary_exits.len()
            + self.proposer_slashings.len()
            + self.attester_slashings.len()
            + self.bls_to_execution_changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, kind: OperationKind, keys: &[u64], ssz: Vec<u8>) {
        let bounded = |m: &mut BTreeMap<u64, Vec<u8>>, max: usize| {
            if m.len() < max {
                m.entry(keys[0]).or_insert(ssz.clone());
            }
        };
        match kind {
            OperationKind::VoluntaryExit => {
                bounded(&mut self.voluntary_exits, MAX_POOL_VOLUNTARY_EXITS)
            }
            OperationKind::ProposerSlashing => {
                bounded(&mut self.proposer_slashings, MAX_POOL_PROPOSER_SLASHINGS)
            }
            OperationKind::BlsToExecutionChange => {
                bounded(&mut self.bls_to_execution_changes, MAX_POOL_BLS_CHANGES)
            }
            OperationKind::AttesterSlashing => {
                if self.attester_slashings.len() >= MAX_POOL_ATTESTER_SLASHINGS {
                    self.attester_slashings.pop_front();
                }
                self.attester_slashings.push_back((keys.to_vec(), ssz));
            }
        }
    }
}

/// Operation validations that may run at once (each holds a blocking-pool thread).
const CONCURRENT_VALIDATIONS: usize = 4;

/// The chain service's operation-gossip state: the chain config, the seen-caches and the
/// pool. One per service; every [`ChainHandle`](crate::chain::service::ChainHandle)
/// shares it.
pub struct GossipOps {
    cfg: ChainConfig,
    seen: Mutex<SeenOperations>,
    pool: Mutex<OperationPool>,
    permits: Semaphore,
}

impl std::fmt::Debug for GossipOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipOps").finish_non_exhaustive()
    }
}

/// What a passed validation marks seen: the keys of the message's seen-cache.
enum Seen {
    /// One validator index (exit, proposer slashing, BLS change).
    One(u64),
    /// The attester slashing's intersection (every index a validator index).
    Intersection(Vec<u64>),
}

impl GossipOps {
    pub fn new(cfg: ChainConfig) -> Self {
        GossipOps {
            cfg,
            seen: Mutex::new(SeenOperations::default()),
            pool: Mutex::new(OperationPool::default()),
            permits: Semaphore::new(CONCURRENT_VALIDATIONS),
        }
    }

    /// Read the pool (e.g. for block production).
    pub fn with_pool<R>(&self, f: impl FnOnce(&OperationPool) -> R) -> R {
        f(&self.pool.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Read the seen-caches.
    pub fn with_seen<R>(&self, f: impl FnOnce(&SeenOperations) -> R) -> R {
        f(&self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, SeenOperations> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validate an operation message received at `now` against the head `head` on the
    /// blocking pool: ACCEPT (marked seen and pooled), IGNORE or REJECT.
    pub async fn validate(
        self: &Arc<Self>,
        kind: OperationKind,
        ssz: Vec<u8>,
        head: Arc<HeadSnapshot>,
        now: GossipClock,
    ) -> GossipVerdict {
        let verdict = |r: Result<(), OperationError>| match r {
            Ok(()) => GossipVerdict::Accept,
            Err(e) => GossipVerdict::refused(BlockError::Operation(e)),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return verdict(Err(OperationError::Internal("validation closed".into())));
        };
        let ops = self.clone();
        let r = tokio::task::spawn_blocking(move || ops.validate_blocking(kind, ssz, &head, now))
            .await
            .unwrap_or_else(|e| Err(OperationError::Internal(format!("validation task: {e}"))));
        verdict(r)
    }

    /// [`validate`](Self::validate) on the calling thread.
    pub fn validate_blocking(
        &self,
        kind: OperationKind,
        ssz: Vec<u8>,
        head: &HeadSnapshot,
        now: GossipClock,
    ) -> Result<(), OperationError> {
        let seen = match &head.state {
            AnyState::Minimal(s) => minimal::validate(self, kind, s, &ssz, now)?,
            AnyState::Mainnet(s) => mainnet::validate(self, kind, s, &ssz, now)?,
        };
        self.accept(kind, seen, ssz)
    }

    /// Mark a validated message seen and pool it, unless a concurrent validation of the
    /// same keys got there first (then the spec's IGNORE, as if it had come second).
    fn accept(&self, kind: OperationKind, seen: Seen, ssz: Vec<u8>) -> Result<(), OperationError> {
        let mut s = self.seen();
        let keys = match seen {
            Seen::One(index) => {
                let (set, e) = match kind {
                    OperationKind::VoluntaryExit => (
                        &mut s.voluntary_exit_indices,
                        OperationError::ExitAlreadySeen {
                            validator_index: index,
                        },
                    ),
                    OperationKind::ProposerSlashing => (
                        &mut s.proposer_slashing_indices,
                        OperationError::ProposerSlashingAlreadySeen {
                            proposer_index: index,
                        },
                    ),
                    OperationKind::BlsToExecutionChange => (
                        &mut s.bls_to_execution_change_indices,
                        OperationError::BlsChangeAlreadySeen {
                            validator_index: index,
                        },
                    ),
                    OperationKind::AttesterSlashing => {
                        return Err(OperationError::Internal(
                            "an attester slashing keyed by one index".into(),
                        ))
                    }
                };
                if !set.insert(index) {
                    return Err(e);
                }
                vec![index]
            }
            Seen::Intersection(indices) => {
                let set = &mut s.attester_slashing_indices;
                if indices.iter().all(|&i| set.contains(i)) {
                    return Err(OperationError::NoNewSlashableIndices {
                        intersection: indices.len(),
                    });
                }
                for &i in &indices {
                    set.insert(i);
                }
                indices
            }
        };
        drop(s);
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, &keys, ssz);
        Ok(())
    }
}

/// The per-preset validation functions (the transition is compiled once per preset).
macro_rules! preset_ops {
    ($preset:ident) => {
        mod $preset {
            use super::{GossipOps, OperationError, OperationKind, Seen};
            use crate::chain::service::GossipClock;
            use crate::transition::$preset as t;
            use crate::transition::SignatureChecker;
            use crate::types::ssz::SszDecode;
            use crate::types::$preset as ty;

            fn decode<T: SszDecode>(kind: OperationKind, ssz: &[u8]) -> Result<T, OperationError> {
                T::ssz_decode(ssz).map_err(|e| OperationError::Decode {
                    kind,
                    reason: e.to_string(),
                })
            }

            pub(super) fn validate(
                ops: &GossipOps,
                kind: OperationKind,
                state: &ty::BeaconState,
                ssz: &[u8],
                now: GossipClock,
            ) -> Result<Seen, OperationError> {
                let cfg = &ops.cfg;
                let invalid = |e| OperationError::invalid(kind, e);
                // Signatures are verified here and now (blst), one message at a time.
                let mut sigs = SignatureChecker::verify_inline();
                match kind {
                    OperationKind::VoluntaryExit => {
                        let exit: ty::SignedVoluntaryExit = decode(kind, ssz)?;
                        let validator_index = exit.message.validator_index;
                        // [IGNORE] The first valid voluntary exit of the validator.
                        if ops.seen().voluntary_exit_indices.contains(validator_index) {
                            return Err(OperationError::ExitAlreadySeen { validator_index });
                        }
                        // [REJECT] The validator index is valid, the validator active and
                        // not exiting, the exit's epoch not in the future, the validator
                        // active long enough, the signature valid (the Capella fork
                        // version's domain: Deneb's EIP-7044).
                        t::check_voluntary_exit(state, &exit, cfg, &mut sigs).map_err(invalid)?;
                        Ok(Seen::One(validator_index))
                    }
                    OperationKind::ProposerSlashing => {
                        let slashing: ty::ProposerSlashing = decode(kind, ssz)?;
                        let proposer_index = slashing.signed_header_1.message.proposer_index;
                        // [IGNORE] The first valid proposer slashing of the proposer.
                        if ops
                            .seen()
                            .proposer_slashing_indices
                            .contains(proposer_index)
                        {
                            return Err(OperationError::ProposerSlashingAlreadySeen {
                                proposer_index,
                            });
                        }
                        // [REJECT] Header slots match, proposer indices match, the headers
                        // differ, the proposer index is valid, the proposer is slashable,
                        // both signatures are valid.
                        t::check_proposer_slashing(state, &slashing, &mut sigs).map_err(invalid)?;
                        Ok(Seen::One(proposer_index))
                    }
                    OperationKind::AttesterSlashing => {
                        let slashing: ty::AttesterSlashing = decode(kind, ssz)?;
                        let second: std::collections::BTreeSet<u64> = slashing
                            .attestation_2
                            .attesting_indices
                            .iter()
                            .copied()
                            .collect();
                        let intersection: Vec<u64> = slashing
                            .attestation_1
                            .attesting_indices
                            .iter()
                            .copied()
                            .collect::<std::collections::BTreeSet<u64>>()
                            .intersection(&second)
                            .copied()
                            .collect();
                        // [IGNORE] At least one index of the intersection not yet seen.
                        {
                            let seen = ops.seen();
                            let set = &seen.attester_slashing_indices;
                            if intersection.iter().all(|&i| set.contains(i)) {
                                return Err(OperationError::NoNewSlashableIndices {
                                    intersection: intersection.len(),
                                });
                            }
                        }
                        // [REJECT] The data are slashable; each attestation's indices are
                        // valid and it is a valid indexed attestation; at least one
                        // validator of the intersection is slashable.
                        t::check_attester_slashing(state, &slashing, &mut sigs).map_err(invalid)?;
                        Ok(Seen::Intersection(intersection))
                    }
                    OperationKind::BlsToExecutionChange => {
                        let change: ty::SignedBLSToExecutionChange = decode(kind, ssz)?;
                        let validator_index = change.message.validator_index;
                        // [IGNORE] The wall clock's epoch is at or after the Capella fork.
                        let slot = now
                            .ms_since_genesis()
                            .checked_div(cfg.slot_duration_ms)
                            .unwrap_or(0);
                        let epoch = t::compute_epoch_at_slot(slot);
                        if epoch < cfg.capella_fork_epoch {
                            return Err(OperationError::PreCapella {
                                epoch,
                                capella_fork_epoch: cfg.capella_fork_epoch,
                            });
                        }
                        // [IGNORE] The first valid change of the validator.
                        if ops
                            .seen()
                            .bls_to_execution_change_indices
                            .contains(validator_index)
                        {
                            return Err(OperationError::BlsChangeAlreadySeen { validator_index });
                        }
                        // [REJECT] The validator index is valid, its credentials are BLS
                        // ones of `from_bls_pubkey`, the signature is valid.
                        t::check_bls_to_execution_change(state, &change, cfg, &mut sigs)
                            .map_err(invalid)?;
                        Ok(Seen::One(validator_index))
                    }
                }
            }
        }
    };
}

preset_ops!(minimal);
preset_ops!(mainnet);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transition::Check;

    #[test]
    fn index_sets_hold_what_was_inserted() {
        let mut s = IndexSet::default();
        assert!(!s.contains(0) && !s.contains(u64::MAX));
        assert!(s.insert(130));
        assert!(!s.insert(130));
        assert!(s.contains(130) && !s.contains(129) && !s.contains(131));
        assert_eq!(s.len(), 1);
        assert!(!s.contains(u64::MAX));
    }

    #[test]
    fn faults_follow_the_spec_verdicts() {
        for e in [
            OperationError::ExitAlreadySeen { validator_index: 1 },
            OperationError::ProposerSlashingAlreadySeen { proposer_index: 1 },
            OperationError::NoNewSlashableIndices { intersection: 0 },
            OperationError::PreCapella {
                epoch: 0,
                capella_fork_epoch: 1,
            },
            OperationError::BlsChangeAlreadySeen { validator_index: 1 },
        ] {
            assert_eq!(e.fault(), Fault::Nobody, "{e}");
            assert_eq!(
                GossipVerdict::refused(BlockError::Operation(e.clone())),
                GossipVerdict::Ignore(BlockError::Operation(e))
            );
        }
        let bad = OperationError::invalid(
            OperationKind::VoluntaryExit,
            TransitionError::check(Check::VoluntaryExit, "validator is not active"),
        );
        assert_eq!(bad.fault(), Fault::Peer);
        assert_eq!(BlockError::Operation(bad).fault(), Fault::Peer);
        let ours = OperationError::invalid(
            OperationKind::VoluntaryExit,
            TransitionError::Internal("hash".into()),
        );
        assert_eq!(ours.fault(), Fault::Node);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut p = OperationPool::default();
        for i in 0..(MAX_POOL_ATTESTER_SLASHINGS as u64 + 5) {
            p.insert(OperationKind::AttesterSlashing, &[i], vec![i as u8]);
        }
        assert_eq!(p.attester_slashings.len(), MAX_POOL_ATTESTER_SLASHINGS);
        assert_eq!(p.attester_slashings.front().unwrap().0, vec![5]);
        for i in 0..(MAX_POOL_PROPOSER_SLASHINGS as u64 + 5) {
            p.insert(OperationKind::ProposerSlashing, &[i], vec![1]);
        }
        assert_eq!(p.proposer_slashings.len(), MAX_POOL_PROPOSER_SLASHINGS);
    }
}
