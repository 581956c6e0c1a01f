//! Genesis and block production for one preset (compiled once per preset, see
//! `devnet::minimal` / `devnet::mainnet`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use blst::min_pk::{AggregateSignature, Signature};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use ssz_rs::{Bitlist, Bitvector};

use super::{t, types};
use crate::bls::DST;
use crate::devnet::{
    block_path, compress, genesis_path, write_file, DevnetError, DevnetOptions, DevnetSummary,
    InteropKeys, SigningMode, Timings,
};
use crate::transition::{ChainConfig, SignatureChecker, TransitionCtx};
use crate::types::ssz::ssz_encode;
use types::{
    AggregateAndProof, Attestation, AttestationData, BLSSignature, BeaconBlock, BeaconBlockBody,
    BeaconBlockHeader, BeaconState, Bytes32, Checkpoint, Eth1Data, ExecutionPayload,
    ExecutionPayloadHeader, Fork, Root, SignedAggregateAndProof, SignedBeaconBlock, SyncAggregate,
    Validator, Version,
};

type Result<T> = std::result::Result<T, DevnetError>;

/// An attestation awaiting its signature, with its signers and signing root.
type Unsigned = (Attestation, Vec<u64>, [u8; 32]);

/// `DOMAIN_SELECTION_PROOF`.
const DOMAIN_SELECTION_PROOF: [u8; 4] = [5, 0, 0, 0];
/// `DOMAIN_AGGREGATE_AND_PROOF`.
const DOMAIN_AGGREGATE_AND_PROOF: [u8; 4] = [6, 0, 0, 0];

/// Gas limit of the devnet's execution payloads.
const GAS_LIMIT: u64 = 30_000_000;
/// Stand-in for the eth1 block hash the genesis is built from.
const ETH1_BLOCK_HASH: [u8; 32] = [0x42; 32];

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The aggregate signature of every signer in `signers` (validator indices; repeats sign
/// again) over `root`, compressed: each signs in parallel and the signatures are summed,
/// or (`Summed`) their secret keys are summed and sign once — the same bytes.
fn sign_aggregate(
    keys: &InteropKeys,
    mode: SigningMode,
    signers: &[u64],
    root: &[u8; 32],
) -> Result<BLSSignature> {
    if mode == SigningMode::Summed {
        let sk = keys.summed_secret_key(signers)?;
        return Ok(BLSSignature::from(sk.sign(root, DST, &[]).compress()));
    }
    let sigs: Vec<Signature> = signers
        .par_iter()
        .map(|&i| keys.secret[i as usize].sign(root, DST, &[]))
        .collect();
    let refs: Vec<&Signature> = sigs.iter().collect();
    let agg = AggregateSignature::aggregate(&refs, false)
        .map_err(|e| DevnetError::Bls(format!("aggregate: {e:?}")))?;
    Ok(BLSSignature::from(agg.to_signature().compress()))
}

fn sign_one(keys: &InteropKeys, signer: u64, root: &[u8; 32]) -> BLSSignature {
    BLSSignature::from(keys.secret[signer as usize].sign(root, DST, &[]).compress())
}

/// The interop withdrawal credentials of a key: `0x01`, 11 zero bytes, and an execution
/// address taken from the hash of the pubkey.
fn withdrawal_credentials(pubkey: &[u8; 48]) -> Bytes32 {
    let h = sha256(&[pubkey]);
    let mut wc = [0u8; 32];
    wc[0] = t::ETH1_ADDRESS_WITHDRAWAL_PREFIX;
    wc[12..].copy_from_slice(&h[12..]);
    Bytes32::from(wc)
}

/// `hash_tree_root(validators)` through the merkle engine (the SIMD kernels, batched):
/// the same root as ssz_rs's, which hashes a million validators one by one.
fn validators_root(validators: &[Validator]) -> Result<[u8; 32]> {
    let hasher = crate::accel::hash::CpuHasher::simd();
    let merkle = |e: crate::merkle::MerkleError| DevnetError::Ssz(format!("validators root: {e}"));
    let roots = crate::merkle::elements::element_roots(&hasher, validators).map_err(merkle)?;
    let root = crate::merkle::merkleize(
        &hasher,
        &roots,
        Some(crate::types::primitives::VALIDATOR_REGISTRY_LIMIT as u64),
    )
    .map_err(merkle)?;
    Ok(crate::merkle::mix_in_length(&root, validators.len() as u64))
}

/// A Fulu genesis state for the interop `keys`, built directly: every validator active from
/// epoch 0 with 32 ETH and execution (0x01) withdrawal credentials, fork versions from
/// `cfg` (previous Electra, current Fulu, epoch 0), a genesis execution payload header,
/// the sync committees and the proposer lookahead.
pub fn interop_genesis_state(
    keys: &InteropKeys,
    genesis_time: u64,
    cfg: &ChainConfig,
) -> Result<BeaconState> {
    let n = keys.len();
    if n == 0 {
        return Err(DevnetError::Params(
            "at least one validator is needed".into(),
        ));
    }
    let mut state = BeaconState {
        genesis_time,
        fork: Fork {
            previous_version: Version::from(cfg.electra_fork_version),
            current_version: Version::from(cfg.fulu_fork_version),
            epoch: t::GENESIS_EPOCH,
        },
        latest_block_header: BeaconBlockHeader {
            body_root: Root::from(t::hash_tree_root(&BeaconBlockBody::default())?),
            ..Default::default()
        },
        eth1_data: Eth1Data {
            deposit_root: Root::default(),
            deposit_count: n as u64,
            block_hash: Bytes32::from(ETH1_BLOCK_HASH),
        },
        eth1_deposit_index: n as u64,
        // UNSET_DEPOSIT_REQUESTS_START_INDEX
        deposit_requests_start_index: u64::MAX,
        ..Default::default()
    };
    for i in 0..types::EPOCHS_PER_HISTORICAL_VECTOR {
        state.randao_mixes[i] = Bytes32::from(ETH1_BLOCK_HASH);
    }
    let validators: Vec<Validator> = keys
        .pubkeys
        .par_iter()
        .map(|pk| Validator {
            pubkey: types::BLSPubkey::from(*pk),
            withdrawal_credentials: withdrawal_credentials(pk),
            effective_balance: t::MIN_ACTIVATION_BALANCE,
            slashed: false,
            activation_eligibility_epoch: t::GENESIS_EPOCH,
            activation_epoch: t::GENESIS_EPOCH,
            exit_epoch: t::FAR_FUTURE_EPOCH,
            withdrawable_epoch: t::FAR_FUTURE_EPOCH,
        })
        .collect();
    state.validators = t::to_list(validators, "validators")?;
    state.balances = t::to_list(vec![t::MIN_ACTIVATION_BALANCE; n], "balances")?;
    state.previous_epoch_participation = t::to_list(vec![0; n], "participation")?;
    state.current_epoch_participation = t::to_list(vec![0; n], "participation")?;
    state.inactivity_scores = t::to_list(vec![0; n], "inactivity_scores")?;
    state.genesis_validators_root = Root::from(validators_root(&state.validators)?);

    let payload = ExecutionPayload::default();
    state.latest_execution_payload_header = ExecutionPayloadHeader {
        block_hash: Bytes32::from(sha256(&[b"quasar devnet genesis", &ETH1_BLOCK_HASH])),
        prev_randao: Bytes32::from(ETH1_BLOCK_HASH),
        gas_limit: GAS_LIMIT,
        timestamp: genesis_time,
        base_fee_per_gas: ssz_rs::U256::from(1_000_000_000u64),
        transactions_root: Root::from(t::hash_tree_root(&payload.transactions)?),
        withdrawals_root: Root::from(t::hash_tree_root(&payload.withdrawals)?),
        ..Default::default()
    };

    let sync_committee = t::get_next_sync_committee(&state)?;
    state.current_sync_committee = sync_committee.clone();
    state.next_sync_committee = sync_committee;
    state.earliest_exit_epoch = t::compute_activation_exit_epoch(t::GENESIS_EPOCH)?;
    state.exit_balance_to_consume = t::get_activation_exit_churn_limit(&state, cfg)?;
    state.earliest_consolidation_epoch = t::compute_activation_exit_epoch(t::GENESIS_EPOCH)?;
    state.consolidation_balance_to_consume = t::get_consolidation_churn_limit(&state, cfg)?;
    state.proposer_lookahead = t::initialize_proposer_lookahead(&state)?;
    Ok(state)
}

/// Produces a block every slot on top of its head state, every validator doing its duty.
pub struct Generator<'a> {
    keys: &'a InteropKeys,
    cfg: &'a ChainConfig,
    /// The transition context the generator's chain runs with (its own caches and root
    /// carry).
    ctx: TransitionCtx,
    /// The post state of the head block.
    state: BeaconState,
    head_root: [u8; 32],
    /// The root of `state` (the head block's state root): the next slot's
    /// `process_slot` need not hash it again.
    state_root: [u8; 32],
    validator_of_pubkey: HashMap<[u8; 48], u64>,
    mode: SigningMode,
    /// Signatures made so far.
    pub signatures: u64,
    pub timings: Timings,
}

impl<'a> Generator<'a> {
    /// A generator whose head is the genesis block of `genesis`.
    pub fn new(keys: &'a InteropKeys, cfg: &'a ChainConfig, genesis: BeaconState) -> Result<Self> {
        let state = genesis;
        // The genesis root primes the context's carried root cache: every later root only
        // rehashes what a block or an epoch changed.
        let mut ctx = TransitionCtx::new(cfg.clone());
        let state_root = ctx.state_root(&state)?;
        let mut header = state.latest_block_header.clone();
        header.state_root = Root::from(state_root);
        let head_root = t::hash_tree_root(&header)?;
        let validator_of_pubkey = keys
            .pubkeys
            .iter()
            .enumerate()
            .map(|(i, pk)| (*pk, i as u64))
            .collect();
        Ok(Self {
            keys,
            cfg,
            ctx,
            state,
            head_root,
            state_root,
            validator_of_pubkey,
            mode: SigningMode::Each,
            signatures: 0,
            timings: Timings::default(),
        })
    }

    /// How aggregates are signed (default: each signer signs).
    pub fn with_signing(mut self, mode: SigningMode) -> Self {
        self.mode = mode;
        self
    }

    /// The post state of the head block.
    pub fn state(&self) -> &BeaconState {
        &self.state
    }

    /// The root of the head block.
    pub fn head_root(&self) -> [u8; 32] {
        self.head_root
    }

    /// The root of the head block's post state.
    pub fn state_root(&self) -> [u8; 32] {
        self.state_root
    }

    /// The Electra attestation of every member of every committee of the head's slot,
    /// voting for the head (one attestation spanning all the slot's committees), not yet
    /// signed, with its signers and signing root. `None` when every committee is empty
    /// (fewer validators than slots).
    fn head_attestation(&self) -> Result<Option<Unsigned>> {
        let state = &self.state;
        let slot = state.slot;
        let epoch = t::compute_epoch_at_slot(slot);
        let count = t::get_committee_count_per_slot(state, epoch);
        let mut committee_bits = Bitvector::default();
        let mut signers = Vec::new();
        // One shuffling for all the slot's committees (each `get_beacon_committee` would
        // take a registry pass to find it).
        let shuffling = t::get_shuffling(state, epoch, &self.ctx)?;
        for index in 0..count {
            let committee = t::committee_in(&shuffling, slot, index)?;
            if !committee.is_empty() {
                committee_bits.set(index as usize, true);
                signers.extend_from_slice(committee);
            }
        }
        if signers.is_empty() {
            return Ok(None);
        }
        let start = t::compute_start_slot_at_epoch(epoch)?;
        let target_root = if start == slot {
            Root::from(self.head_root)
        } else {
            t::get_block_root_at_slot(state, start)?
        };
        let data = AttestationData {
            slot,
            index: 0,
            beacon_block_root: Root::from(self.head_root),
            source: state.current_justified_checkpoint.clone(),
            target: Checkpoint {
                epoch,
                root: target_root,
            },
        };
        let domain = t::get_domain(state, t::DOMAIN_BEACON_ATTESTER, Some(epoch))?;
        let root = t::compute_signing_root(&data, domain)?;
        let bits = vec![true; signers.len()];
        let aggregation_bits = Bitlist::try_from(bits.as_slice())
            .map_err(|e| DevnetError::Ssz(format!("aggregation bits: {e}")))?;
        let attestation = Attestation {
            aggregation_bits,
            data,
            signature: BLSSignature::default(),
            committee_bits,
        };
        Ok(Some((attestation, signers, root)))
    }

    /// The head's attestation, signed by every member of the slot's committees.
    pub fn attest_head(&mut self) -> Result<Option<Attestation>> {
        let Some((mut attestation, signers, root)) = self.head_attestation()? else {
            return Ok(None);
        };
        attestation.signature = sign_aggregate(self.keys, self.mode, &signers, &root)?;
        self.signatures += signers.len() as u64;
        Ok(Some(attestation))
    }

    /// The aggregates of the head's slot as the spec's honest validators make them
    /// (`specs/phase0/validator.md`, Electra's changes): per committee, one attestation
    /// voting for the head with every member's bit set and their aggregate signature; each
    /// member signs the slot with `DOMAIN_SELECTION_PROOF` (`get_slot_signature`), and
    /// every member that proof selects (`is_aggregator`: `bytes_to_uint64(hash(proof)[0:8])
    /// % max(1, len(committee) // TARGET_AGGREGATORS_PER_COMMITTEE) == 0`) signs an
    /// `AggregateAndProof` with `DOMAIN_AGGREGATE_AND_PROOF`. In committee order, then
    /// member order; empty when every committee is empty.
    pub fn head_aggregates(&mut self) -> Result<Vec<SignedAggregateAndProof>> {
        let Some((all, _, root)) = self.head_attestation()? else {
            return Ok(Vec::new());
        };
        let state = &self.state;
        let slot = state.slot;
        let epoch = t::compute_epoch_at_slot(slot);
        let count = t::get_committee_count_per_slot(state, epoch);
        let selection_root = t::compute_signing_root(
            &slot,
            t::get_domain(state, DOMAIN_SELECTION_PROOF, Some(epoch))?,
        )?;
        let aggregate_domain = t::get_domain(state, DOMAIN_AGGREGATE_AND_PROOF, Some(epoch))?;
        let mut out = Vec::new();
        let shuffling = t::get_shuffling(state, epoch, &self.ctx)?;
        for index in 0..count {
            let committee = t::committee_in(&shuffling, slot, index)?.to_vec();
            if committee.is_empty() {
                continue;
            }
            let mut committee_bits = Bitvector::default();
            committee_bits.set(index as usize, true);
            let bits = vec![true; committee.len()];
            let aggregate = Attestation {
                aggregation_bits: Bitlist::try_from(bits.as_slice())
                    .map_err(|e| DevnetError::Ssz(format!("aggregation bits: {e}")))?,
                data: all.data.clone(),
                signature: sign_aggregate(self.keys, self.mode, &committee, &root)?,
                committee_bits,
            };
            self.signatures += committee.len() as u64;
            let modulo = (committee.len() as u64
                / crate::chain::gossip_attestation::TARGET_AGGREGATORS_PER_COMMITTEE)
                .max(1);
            let proofs: Vec<(u64, BLSSignature)> = committee
                .par_iter()
                .map(|&v| (v, sign_one(self.keys, v, &selection_root)))
                .collect();
            self.signatures += proofs.len() as u64;
            for (v, selection_proof) in proofs {
                let proof: [u8; 96] = selection_proof
                    .as_ref()
                    .try_into()
                    .map_err(|_| DevnetError::Bls("selection proof length".into()))?;
                if !crate::chain::gossip_attestation::selects_aggregator(&proof, modulo) {
                    continue;
                }
                let message = AggregateAndProof {
                    aggregator_index: v,
                    aggregate: aggregate.clone(),
                    selection_proof,
                };
                let signing_root = t::compute_signing_root(&message, aggregate_domain)?;
                let signature = sign_one(self.keys, v, &signing_root);
                self.signatures += 1;
                out.push(SignedAggregateAndProof { message, signature });
            }
        }
        Ok(out)
    }

    /// The full sync aggregate of the (advanced) state's slot: every member of the current
    /// sync committee signs the previous slot's block root.
    fn sync_aggregate(&mut self) -> Result<SyncAggregate> {
        let state = &self.state;
        let previous_slot = state.slot.saturating_sub(1);
        let domain = t::get_domain(
            state,
            t::DOMAIN_SYNC_COMMITTEE,
            Some(t::compute_epoch_at_slot(previous_slot)),
        )?;
        let root =
            t::compute_signing_root(&t::get_block_root_at_slot(state, previous_slot)?, domain)?;
        let members = state
            .current_sync_committee
            .pubkeys
            .iter()
            .map(|pk| {
                self.validator_of_pubkey
                    .get(pk.as_bytes())
                    .copied()
                    .ok_or_else(|| DevnetError::Params("sync committee member has no key".into()))
            })
            .collect::<Result<Vec<u64>>>()?;
        let sync_committee_signature = sign_aggregate(self.keys, self.mode, &members, &root)?;
        self.signatures += members.len() as u64;
        let mut sync_committee_bits = Bitvector::default();
        for i in 0..types::SYNC_COMMITTEE_SIZE {
            sync_committee_bits.set(i, true);
        }
        Ok(SyncAggregate {
            sync_committee_bits,
            sync_committee_signature,
        })
    }

    /// The block of the next slot: the head's attestation, a full sync aggregate, the
    /// randao reveal, an execution payload on the latest header, the state root from
    /// applying it, and the proposer's signature. The head moves to it.
    pub fn next_block(&mut self) -> Result<SignedBeaconBlock> {
        let t0 = Instant::now();
        // The generator makes a block every slot: the head block's slot is the state's.
        let head_slot = self.state.slot;
        let slot = head_slot + 1;
        // The head's attestation is signed while the state advances to the next slot.
        let unsigned = self.head_attestation()?;
        let (keys, mode) = (self.keys, self.mode);
        let known_root = self.state_root;
        let (state, ctx) = (&mut self.state, &mut self.ctx);
        let (signed, advanced) = rayon::join(
            || -> Result<Option<Attestation>> {
                let Some((mut attestation, signers, root)) = unsigned else {
                    return Ok(None);
                };
                attestation.signature = sign_aggregate(keys, mode, &signers, &root)?;
                Ok(Some(attestation))
            },
            || {
                let t1 = Instant::now();
                // The state is the head block's post state, whose root is known.
                ctx.with_known_root(Some(known_root), |c| t::process_slots(state, slot, c))
                    .map(|()| t1.elapsed())
            },
        );
        let attestation = signed?;
        let advance_time = advanced?;
        self.signatures += attestation
            .as_ref()
            .map_or(0, |a| a.aggregation_bits.len() as u64);
        let t2 = Instant::now();
        let sync_aggregate = self.sync_aggregate()?;

        let state = &self.state;
        let epoch = t::get_current_epoch(state);
        let proposer_index = t::get_beacon_proposer_index(state);
        let randao_root =
            t::compute_signing_root(&epoch, t::get_domain(state, t::DOMAIN_RANDAO, None)?)?;
        let randao_reveal = sign_one(self.keys, proposer_index, &randao_root);

        let parent = &state.latest_execution_payload_header;
        let withdrawals = t::get_expected_withdrawals(state)?.withdrawals;
        let execution_payload = ExecutionPayload {
            parent_hash: parent.block_hash,
            fee_recipient: Default::default(),
            state_root: Bytes32::from(sha256(&[b"state", &slot.to_le_bytes()])),
            receipts_root: Bytes32::from(sha256(&[b"receipts", &slot.to_le_bytes()])),
            logs_bloom: Default::default(),
            prev_randao: t::get_randao_mix(state, epoch),
            block_number: parent.block_number + 1,
            gas_limit: parent.gas_limit,
            gas_used: 0,
            timestamp: t::compute_time_at_slot(state, slot, self.cfg)?,
            extra_data: Default::default(),
            base_fee_per_gas: parent.base_fee_per_gas.clone(),
            block_hash: Bytes32::from(sha256(&[
                b"quasar devnet block",
                parent.block_hash.as_bytes(),
                &slot.to_le_bytes(),
            ])),
            transactions: Default::default(),
            withdrawals: t::to_list(withdrawals, "withdrawals")?,
            blob_gas_used: 0,
            excess_blob_gas: 0,
        };
        let mut graffiti = [0u8; 32];
        graffiti[..13].copy_from_slice(b"quasar devnet");
        let body = BeaconBlockBody {
            randao_reveal,
            eth1_data: state.eth1_data.clone(),
            graffiti: Bytes32::from(graffiti),
            attestations: t::to_list(attestation.into_iter().collect(), "attestations")?,
            sync_aggregate,
            execution_payload,
            ..Default::default()
        };
        let mut block = BeaconBlock {
            slot,
            proposer_index,
            parent_root: Root::from(self.head_root),
            state_root: Root::default(),
            body,
        };
        let proposer_domain = t::get_domain(state, t::DOMAIN_BEACON_PROPOSER, None)?;
        let t3 = Instant::now();
        // As the importer runs: the registry memo holds from block to block inside an
        // epoch, and as the generator's blocks carry no operation that touches a
        // validator, the registry need not be compared for the root then.
        let continues = t::compute_epoch_at_slot(slot) == t::compute_epoch_at_slot(head_slot);
        let state = &mut self.state;
        self.ctx.with_registry_memo(continues, |c| {
            t::process_block(state, &block, c, &mut SignatureChecker::skip())
        })?;
        let root = self
            .ctx
            .with_unchanged_validators(continues, |c| c.state_root(&self.state))?;
        block.state_root = Root::from(root);
        self.state_root = root;
        let block_root = t::hash_tree_root(&block)?;
        let t4 = Instant::now();
        let signing_root = t::compute_signing_root_of(block_root, proposer_domain)?;
        let signature = sign_one(self.keys, proposer_index, &signing_root);
        self.signatures += 2;
        self.head_root = block_root;
        // Signing overlaps the slot advance: what it took beyond the advance counts as
        // signing.
        self.timings.signing += (t2 - t0).saturating_sub(advance_time) + (t3 - t2) + t4.elapsed();
        self.timings.transition += advance_time + (t4 - t3);
        Ok(SignedBeaconBlock {
            message: block,
            signature,
        })
    }
}

impl crate::devnet::LiveProducer for Generator<'_> {
    fn next_block_ssz(&mut self) -> Result<(u64, Vec<u8>)> {
        let block = self.next_block()?;
        let ssz = ssz_encode(&block).map_err(|e| DevnetError::Ssz(e.to_string()))?;
        Ok((block.message.slot, ssz))
    }

    fn head_aggregates_ssz(&mut self) -> Result<Vec<crate::devnet::LiveAggregate>> {
        self.head_aggregates()?
            .into_iter()
            .map(|a| {
                let committee = t::get_committee_indices(&a.message.aggregate.committee_bits)
                    .first()
                    .copied()
                    .unwrap_or(0);
                Ok(crate::devnet::LiveAggregate {
                    slot: a.message.aggregate.data.slot,
                    committee,
                    aggregator: a.message.aggregator_index,
                    ssz: ssz_encode(&a).map_err(|e| DevnetError::Ssz(e.to_string()))?,
                })
            })
            .collect()
    }
}

/// A [`crate::devnet::LiveProducer`] on the interop genesis of `keys` at `genesis_time`,
/// and that genesis state's SSZ.
pub fn live_producer<'a>(
    keys: &'a InteropKeys,
    cfg: &'a ChainConfig,
    genesis_time: u64,
) -> Result<(Vec<u8>, Box<dyn crate::devnet::LiveProducer + 'a>)> {
    let genesis = interop_genesis_state(keys, genesis_time, cfg)?;
    let ssz = ssz_encode(&genesis).map_err(|e| DevnetError::Ssz(e.to_string()))?;
    Ok((ssz, Box::new(Generator::new(keys, cfg, genesis)?)))
}

/// Generate the chain of `opts` and write it under `out` (`genesis.ssz_snappy`,
/// `blocks/<slot>.ssz_snappy`); a progress line per block goes to `progress`.
pub fn generate_to_dir(
    opts: &DevnetOptions,
    cfg: &ChainConfig,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<DevnetSummary> {
    if opts.validators == 0 {
        return Err(DevnetError::Params(
            "--validators must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let keys = InteropKeys::generate(opts.validators)?;
    let keys_time = start.elapsed();
    progress(&format!(
        "{} interop keys in {:.2} s",
        opts.validators,
        keys_time.as_secs_f64()
    ));

    let t0 = Instant::now();
    let genesis = interop_genesis_state(&keys, opts.genesis_time, cfg)?;
    let genesis_time = t0.elapsed();
    let t0 = Instant::now();
    let ssz = ssz_encode(&genesis).map_err(|e| DevnetError::Ssz(e.to_string()))?;
    write_file(&genesis_path(out), &compress(&ssz)?)?;
    let mut writing = t0.elapsed();
    progress(&format!(
        "genesis: {} validators, {} bytes SSZ, {:.2} s",
        opts.validators,
        ssz.len(),
        genesis_time.as_secs_f64()
    ));

    let mut gen = Generator::new(&keys, cfg, genesis)?.with_signing(opts.signing);
    for slot in 1..=opts.slots {
        let t0 = Instant::now();
        let block = gen.next_block()?;
        let made = t0.elapsed();
        let t1 = Instant::now();
        let ssz = ssz_encode(&block).map_err(|e| DevnetError::Ssz(e.to_string()))?;
        write_file(&block_path(out, slot), &compress(&ssz)?)?;
        writing += t1.elapsed();
        let attesters = block
            .message
            .body
            .attestations
            .iter()
            .map(|a| a.aggregation_bits.len())
            .sum::<usize>();
        let s = gen.state();
        progress(&format!(
            "slot {slot}/{} (epoch {}): proposer {}, {attesters} attesters, {} bytes, {:.3} s; justified {} finalized {}",
            opts.slots,
            t::compute_epoch_at_slot(slot),
            block.message.proposer_index,
            ssz.len(),
            made.as_secs_f64(),
            s.current_justified_checkpoint.epoch,
            s.finalized_checkpoint.epoch,
        ));
    }
    let mut timings = gen.timings.clone();
    timings.keys = keys_time;
    timings.genesis = genesis_time;
    timings.writing = writing;
    timings.total = start.elapsed();
    let state_root = gen.state_root();
    let s = gen.state();
    Ok(DevnetSummary {
        preset: if types::SLOTS_PER_EPOCH == 8 {
            crate::types::Preset::Minimal
        } else {
            crate::types::Preset::Mainnet
        },
        validators: opts.validators,
        blocks: opts.slots,
        head_slot: s.slot,
        head_root: gen.head_root(),
        state_root,
        current_justified_epoch: s.current_justified_checkpoint.epoch,
        finalized_epoch: s.finalized_checkpoint.epoch,
        signatures: gen.signatures,
        timings,
    })
}
