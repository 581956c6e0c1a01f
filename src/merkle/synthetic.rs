//! Synthetic beacon states with random contents, for the state-root benches and tests:
//! a registry of any size (2^20 validators for the bench) without reading a real state,
//! and a "block" that changes a few balances and validators as a real one does.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::types::common::{
    HistoricalSummary, PendingConsolidation, PendingDeposit, PendingPartialWithdrawal, Validator,
};
use crate::types::primitives::{BLSPubkey, Bytes32};

fn bytes<const N: usize>(rng: &mut StdRng) -> crate::types::ssz::ByteVector<N> {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    crate::types::ssz::ByteVector(b)
}

/// A validator with random fields (mostly active, a few slashed or exited).
pub fn random_validator(rng: &mut StdRng) -> Validator {
    let exited = rng.random_ratio(1, 50);
    Validator {
        pubkey: bytes::<48>(rng),
        withdrawal_credentials: bytes::<32>(rng),
        effective_balance: 32_000_000_000 - rng.random_range(0..4) * 1_000_000_000,
        slashed: rng.random_ratio(1, 100),
        activation_eligibility_epoch: rng.random_range(0..300_000),
        activation_epoch: rng.random_range(0..300_000),
        exit_epoch: if exited {
            rng.random_range(0..300_000)
        } else {
            u64::MAX
        },
        withdrawable_epoch: if exited {
            rng.random_range(0..300_000)
        } else {
            u64::MAX
        },
    }
}

/// A pending deposit with random fields.
pub fn random_pending_deposit(rng: &mut StdRng) -> PendingDeposit {
    PendingDeposit {
        pubkey: bytes::<48>(rng),
        withdrawal_credentials: bytes::<32>(rng),
        amount: rng.random_range(1_000_000_000..2_048_000_000_000),
        signature: bytes::<96>(rng),
        slot: rng.random_range(0..10_000_000),
    }
}

fn random_pubkeys(rng: &mut StdRng, n: usize) -> Vec<BLSPubkey> {
    (0..n).map(|_| bytes::<48>(rng)).collect()
}

fn random_roots(rng: &mut StdRng, n: usize) -> Vec<Bytes32> {
    (0..n).map(|_| bytes::<32>(rng)).collect()
}

/// A fresh seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

macro_rules! synthetic_preset {
    ($preset:ident, $state_fn:ident, $block_fn:ident) => {
        /// A state of this preset with `validators` random validators, random balances,
        /// participation, inactivity scores, histories and a few pending operations.
        pub fn $state_fn(validators: usize, seed: u64) -> crate::types::$preset::BeaconState {
            use crate::types::$preset as p;
            let mut rng = rng(seed);
            let n = validators;
            let vals: Vec<Validator> = (0..n).map(|_| random_validator(&mut rng)).collect();
            let balances: Vec<u64> = (0..n)
                .map(|_| 31_000_000_000 + rng.random_range(0..2_000_000_000))
                .collect();
            let prev: Vec<u8> = (0..n).map(|_| rng.random_range(0..8)).collect();
            let cur: Vec<u8> = (0..n).map(|_| rng.random_range(0..8)).collect();
            let inactivity: Vec<u64> = (0..n)
                .map(|_| {
                    if rng.random_ratio(1, 20) {
                        rng.random_range(0..100)
                    } else {
                        0
                    }
                })
                .collect();
            let summaries: Vec<HistoricalSummary> = (0..150)
                .map(|_| HistoricalSummary {
                    block_summary_root: bytes::<32>(&mut rng),
                    state_summary_root: bytes::<32>(&mut rng),
                })
                .collect();
            let deposits: Vec<PendingDeposit> =
                (0..300).map(|_| random_pending_deposit(&mut rng)).collect();
            let withdrawals: Vec<PendingPartialWithdrawal> = (0
                ..p::PENDING_PARTIAL_WITHDRAWALS_LIMIT.min(40))
                .map(|_| PendingPartialWithdrawal {
                    validator_index: rng.random_range(0..n.max(1) as u64),
                    amount: rng.random_range(0..1_000_000_000),
                    withdrawable_epoch: rng.random_range(0..300_000),
                })
                .collect();
            let consolidations: Vec<PendingConsolidation> = (0..p::PENDING_CONSOLIDATIONS_LIMIT
                .min(20))
                .map(|_| PendingConsolidation {
                    source_index: rng.random_range(0..n.max(1) as u64),
                    target_index: rng.random_range(0..n.max(1) as u64),
                })
                .collect();
            let committee = |rng: &mut StdRng| p::SyncCommittee {
                pubkeys: random_pubkeys(rng, p::SYNC_COMMITTEE_SIZE)
                    .try_into()
                    .expect("committee size"),
                aggregate_pubkey: bytes::<48>(rng),
            };
            let mut state = p::BeaconState {
                genesis_time: 1_606_824_023,
                genesis_validators_root: bytes::<32>(&mut rng),
                slot: 10_000_000 + rng.random_range(0..1000),
                block_roots: random_roots(&mut rng, p::SLOTS_PER_HISTORICAL_ROOT)
                    .try_into()
                    .expect("vector length"),
                state_roots: random_roots(&mut rng, p::SLOTS_PER_HISTORICAL_ROOT)
                    .try_into()
                    .expect("vector length"),
                historical_roots: random_roots(&mut rng, 758).try_into().expect("list bound"),
                eth1_deposit_index: n as u64,
                validators: vals.try_into().expect("list bound"),
                balances: balances.try_into().expect("list bound"),
                randao_mixes: random_roots(&mut rng, p::EPOCHS_PER_HISTORICAL_VECTOR)
                    .try_into()
                    .expect("vector length"),
                slashings: (0..p::EPOCHS_PER_SLASHINGS_VECTOR)
                    .map(|_| {
                        if rng.random_ratio(1, 100) {
                            rng.random_range(0..64_000_000_000)
                        } else {
                            0
                        }
                    })
                    .collect::<Vec<u64>>()
                    .try_into()
                    .expect("vector length"),
                previous_epoch_participation: prev.try_into().expect("list bound"),
                current_epoch_participation: cur.try_into().expect("list bound"),
                inactivity_scores: inactivity.try_into().expect("list bound"),
                current_sync_committee: committee(&mut rng),
                next_sync_committee: committee(&mut rng),
                next_withdrawal_index: rng.random_range(0..100_000_000),
                next_withdrawal_validator_index: rng.random_range(0..n.max(1) as u64),
                historical_summaries: summaries.try_into().expect("list bound"),
                pending_deposits: deposits.try_into().expect("list bound"),
                pending_partial_withdrawals: withdrawals.try_into().expect("list bound"),
                pending_consolidations: consolidations.try_into().expect("list bound"),
                ..Default::default()
            };
            state.fork.epoch = 411_392;
            state.latest_block_header.slot = state.slot;
            state.latest_block_header.body_root = bytes::<32>(&mut rng);
            state.finalized_checkpoint.root = bytes::<32>(&mut rng);
            for i in 0..state.proposer_lookahead.len() {
                state.proposer_lookahead[i] = rng.random_range(0..n.max(1) as u64);
            }
            state
        }

        /// What a block does to the big lists: `balances` random balances change, and
        /// `validators` random validators get a new effective balance or exit. Also the
        /// slot, its block and state roots, and the current randao mix. Returns the
        /// indices of the validators changed.
        pub fn $block_fn(
            state: &mut crate::types::$preset::BeaconState,
            rng: &mut StdRng,
            balances: usize,
            validators: usize,
        ) -> Vec<usize> {
            use crate::types::$preset as p;
            let n = state.validators.len();
            if n > 0 {
                for _ in 0..balances {
                    let i = rng.random_range(0..n);
                    state.balances[i] = rng.random_range(30_000_000_000..34_000_000_000);
                }
            }
            let mut changed = Vec::new();
            for _ in 0..validators.min(n) {
                let i = rng.random_range(0..n);
                let v = &mut state.validators[i];
                if rng.random_bool(0.5) {
                    v.effective_balance = rng.random_range(16..33) * 1_000_000_000;
                } else {
                    v.exit_epoch = rng.random_range(0..400_000);
                    v.withdrawable_epoch = v.exit_epoch + 256;
                }
                changed.push(i);
            }
            let slot = state.slot as usize;
            state.block_roots[slot % p::SLOTS_PER_HISTORICAL_ROOT] = bytes::<32>(rng);
            state.state_roots[slot % p::SLOTS_PER_HISTORICAL_ROOT] = bytes::<32>(rng);
            let epoch = slot / p::SLOTS_PER_EPOCH;
            state.randao_mixes[epoch % p::EPOCHS_PER_HISTORICAL_VECTOR] = bytes::<32>(rng);
            state.slot += 1;
            state.latest_block_header.slot = state.slot;
            changed
        }
    };
}

synthetic_preset!(mainnet, mainnet_state, mainnet_block);
synthetic_preset!(minimal, minimal_state, minimal_block);
