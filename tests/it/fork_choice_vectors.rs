//! `fork_choice/{on_block,reorg,withholding,deposit_with_reorg}` and `sync/optimistic`
//! vectors (minimal preset; `tests/formats/fork_choice/README.md` and
//! `tests/formats/sync/README.md` of consensus-specs) through
//! `quasar::chain::fork_choice::ForkChoice`, the store the chain uses.
//!
//! The runner keeps what the spec's store keeps beside fork choice — each block's post
//! state, the checkpoint states — and drives the store as the spec does: `anchor_state` /
//! `anchor_block` give `get_forkchoice_store`; a `tick` step is `on_tick`; a `block` step
//! is `on_block` (the parent's state through `state_transition` with every signature
//! verified in one batch, the head computed first as the spec's `on_block` does, the
//! post state's pulled-up checkpoints through `compute_unrealized_checkpoints` — checked
//! here against `process_justification_and_finalization` on a copy), then each of its
//! attestations (`is_from_block`) and attester slashings; an `attestation` step is
//! `on_attestation` with the indexed attestation's signature verified against the target
//! checkpoint state; `checks` compare the head (`get_head` over the justified checkpoint
//! state's balances), `time`, the checkpoints and `proposer_boost_root`. A
//! `block_hash`/`payload_status` step is the mock execution engine's answer for that
//! payload: an INVALID payload refuses its block and invalidates its ancestors down to
//! `latest_valid_hash` (`ForkChoice::on_invalid_payload`).
//!
//! Every case must pass except those in [`PENDING`], listed with the reason; a listed
//! case that starts to pass is a failure until it leaves the list. A missing vector
//! folder is a failure.

use std::collections::HashMap;
use std::path::Path;

use quasar::chain::fork_choice::{
    AttestationVote, ForkChoice, ForkChoiceBlock, ForkChoiceConfig, Root,
};
use quasar::store::Checkpoint;
use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, SignatureChecker, SignatureStrategy, TransitionCtx};
use quasar::types::minimal as ty;
use quasar::types::ssz::hash_tree_root;
use quasar::types::Preset;

use super::light_client::yaml::{self, Yaml};
use super::sanity::minimal::apply_block;
use super::spec_runner::{
    checker_for, file_name, read_ssz, runner_dir, sorted_subdirs, verify_collected,
};

const NO_KZG: &str = "needs KZG verification of the data-column sidecars (verify_data_column_sidecar_kzg_proofs in is_data_available), which quasar does not have yet";

/// Cases that cannot pass, with the reason (`handler/case`).
const PENDING: &[(&str, &str)] = &[
    ("on_block/on_block_peerdas__invalid_index_1", NO_KZG),
    ("on_block/on_block_peerdas__invalid_index_2", NO_KZG),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_column_1",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_column_2",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_kzg_commitments_1",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_kzg_commitments_2",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_kzg_proofs_1",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_mismatch_len_kzg_proofs_2",
        NO_KZG,
    ),
    ("on_block/on_block_peerdas__invalid_wrong_column_1", NO_KZG),
    ("on_block/on_block_peerdas__invalid_wrong_column_2", NO_KZG),
    (
        "on_block/on_block_peerdas__invalid_wrong_commitment_1",
        NO_KZG,
    ),
    (
        "on_block/on_block_peerdas__invalid_wrong_commitment_2",
        NO_KZG,
    ),
    ("on_block/on_block_peerdas__invalid_wrong_proof_1", NO_KZG),
    ("on_block/on_block_peerdas__invalid_wrong_proof_2", NO_KZG),
    ("on_block/on_block_peerdas__invalid_zero_blobs", NO_KZG),
    ("on_block/on_block_peerdas__not_available", NO_KZG),
    ("on_block/on_block_peerdas__ok", NO_KZG),
];

fn root_of(s: &str) -> Result<Root, String> {
    let bytes = yaml::hex(s)?;
    bytes
        .try_into()
        .map_err(|_| format!("{s:?} is not a 32-byte root"))
}

fn hex(root: &Root) -> String {
    let mut s = String::from("0x");
    for b in root {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn cp(c: &ty::Checkpoint) -> Checkpoint {
    Checkpoint {
        epoch: c.epoch,
        root: *c.root.as_bytes(),
    }
}

fn yaml_cp(y: &Yaml) -> Result<Checkpoint, String> {
    Ok(Checkpoint {
        epoch: y.req("epoch")?.as_u64()?,
        root: root_of(y.req("root")?.as_str()?)?,
    })
}

/// The mock execution engine's answer for a payload.
#[derive(Debug, Clone)]
struct PayloadStatus {
    status: String,
    latest_valid_hash: Option<Root>,
}

/// The spec's store: fork choice, and the states it keeps beside it.
struct Store {
    fc: ForkChoice,
    block_states: HashMap<Root, ty::BeaconState>,
    checkpoint_states: HashMap<Checkpoint, ty::BeaconState>,
    payloads: HashMap<Root, PayloadStatus>,
    ctx: TransitionCtx,
}

impl Store {
    /// `store.checkpoint_states[checkpoint]`, computed if not yet seen
    /// (`store_target_checkpoint_state`).
    fn checkpoint_state(&mut self, c: Checkpoint) -> Result<&ty::BeaconState, String> {
        if !self.checkpoint_states.contains_key(&c) {
            let mut state = self
                .block_states
                .get(&c.root)
                .ok_or_else(|| format!("no state for checkpoint block {}", hex(&c.root)))?
                .clone();
            let start = c.epoch * ty::SLOTS_PER_EPOCH as u64;
            if state.slot < start {
                t::process_slots(&mut state, start, &mut self.ctx).map_err(|e| e.to_string())?;
            }
            self.checkpoint_states.insert(c, state);
        }
        self.checkpoint_states
            .get(&c)
            .ok_or_else(|| "checkpoint state".to_string())
    }

    /// `get_head(store)`.
    fn head(&mut self) -> Result<Root, String> {
        let justified = self.fc.justified_checkpoint();
        let state = self.checkpoint_state(justified)?;
        // The chain's own balances for fork choice (what `Chain` feeds it).
        let (balances, total) = quasar::chain::minimal::fork_choice_balances(state);
        self.fc
            .find_head(&balances, total)
            .map_err(|e| format!("find_head: {e}"))
    }

    /// `on_block` and the block's attestations and attester slashings; `Err` when the
    /// store refuses the block (nothing changed then).
    fn on_block(&mut self, case: &Path, block: &ty::SignedBeaconBlock) -> Result<(), String> {
        let root = hash_tree_root(&mut block.message.clone()).map_err(|e| e.to_string())?;
        let parent = *block.message.parent_root.as_bytes();
        let hash = *block.message.body.execution_payload.block_hash.as_bytes();
        if let Some(p) = self.payloads.get(&hash).cloned() {
            if p.status == "INVALID" || p.status == "INVALID_BLOCK_HASH" {
                if let Some(lvh) = p.latest_valid_hash {
                    self.fc.on_invalid_payload(&parent, &lvh);
                }
                return Err(format!("the execution engine says {}", p.status));
            }
        }
        if self.fc.contains(&root) {
            return Ok(());
        }
        let mut state = self
            .block_states
            .get(&parent)
            .ok_or("unknown parent")?
            .clone();
        apply_block(&mut state, block, checker_for(case, true)?, &mut self.ctx)
            .map_err(|e| format!("state_transition: {e}"))?;
        let (uj, uf) = t::compute_unrealized_checkpoints(&state).map_err(|e| e.to_string())?;
        let mut pulled = state.clone();
        t::process_justification_and_finalization(&mut pulled).map_err(|e| e.to_string())?;
        if (cp(&uj), cp(&uf))
            != (
                cp(&pulled.current_justified_checkpoint),
                cp(&pulled.finalized_checkpoint),
            )
        {
            return Err(format!(
                "compute_unrealized_checkpoints {:?} differs from process_justification_and_finalization {:?}",
                (cp(&uj), cp(&uf)),
                (cp(&pulled.current_justified_checkpoint), cp(&pulled.finalized_checkpoint))
            ));
        }
        // `get_head` before the block (the proposer boost's dependent-root check).
        self.head()?;
        self.fc
            .on_block(&ForkChoiceBlock {
                root,
                parent_root: parent,
                slot: block.message.slot,
                justified: cp(&state.current_justified_checkpoint),
                finalized: cp(&state.finalized_checkpoint),
                unrealized_justified: cp(&uj),
                unrealized_finalized: cp(&uf),
                execution_block_hash: hash,
            })
            .map_err(|e| format!("on_block: {e}"))?;
        self.block_states.insert(root, state);
        for att in block.message.body.attestations.iter() {
            // A refused one leaves the store as it was (the spec's failed assert).
            let _ = self.on_attestation(att, true);
        }
        for s in block.message.body.attester_slashings.iter() {
            let _ = self.on_attester_slashing(s, false);
        }
        Ok(())
    }

    /// `on_attestation` with the indexed attestation verified against the target
    /// checkpoint state.
    fn on_attestation(&mut self, att: &ty::Attestation, is_from_block: bool) -> Result<(), String> {
        let data = AttestationVote {
            slot: att.data.slot,
            beacon_block_root: *att.data.beacon_block_root.as_bytes(),
            target: cp(&att.data.target),
        };
        self.fc
            .validate_on_attestation(&data, is_from_block)
            .map_err(|e| e.to_string())?;
        let ctx = self.ctx.sibling();
        let target_state = self.checkpoint_state(data.target)?.clone();
        let indexed =
            t::get_indexed_attestation(&target_state, att, &ctx).map_err(|e| e.to_string())?;
        verify_indexed(&target_state, &indexed)?;
        let indices: Vec<u64> = indexed.attesting_indices.iter().copied().collect();
        self.fc
            .on_attestation(&indices, &data, is_from_block)
            .map_err(|e| e.to_string())
    }

    /// `on_attester_slashing` (`verify`: check both indexed attestations against the
    /// justified block's state; a block's were checked by its transition).
    fn on_attester_slashing(
        &mut self,
        s: &ty::AttesterSlashing,
        verify: bool,
    ) -> Result<(), String> {
        if !t::is_slashable_attestation_data(&s.attestation_1.data, &s.attestation_2.data) {
            return Err("not slashable".into());
        }
        if verify {
            let root = self.fc.justified_checkpoint().root;
            let state = self
                .block_states
                .get(&root)
                .ok_or("no justified state")?
                .clone();
            verify_indexed(&state, &s.attestation_1)?;
            verify_indexed(&state, &s.attestation_2)?;
        }
        let a1: Vec<u64> = s.attestation_1.attesting_indices.iter().copied().collect();
        let a2: Vec<u64> = s.attestation_2.attesting_indices.iter().copied().collect();
        self.fc.on_attester_slashing(&a1, &a2);
        Ok(())
    }
}

/// `is_valid_indexed_attestation` with the signature verified.
fn verify_indexed(state: &ty::BeaconState, indexed: &ty::IndexedAttestation) -> Result<(), String> {
    let mut sigs = SignatureChecker::collect();
    t::is_valid_indexed_attestation(state, indexed, &mut sigs).map_err(|e| e.to_string())?;
    if sigs.strategy() == SignatureStrategy::Collect {
        let (sets, _) = sigs.take_sets();
        verify_collected(sets, |i| {
            state
                .validators
                .get(i as usize)
                .map(|v| *v.pubkey.as_bytes())
        })?;
    }
    Ok(())
}

fn step_valid(step: &Yaml) -> Result<bool, String> {
    match step.get("valid") {
        None => Ok(true),
        Some(v) => match v.as_str()? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("valid: {other:?}")),
        },
    }
}

fn run_case(case: &Path) -> Result<usize, String> {
    let anchor_state: ty::BeaconState = read_ssz(case, "anchor_state")?;
    let anchor_block: ty::BeaconBlock = read_ssz(case, "anchor_block")?;
    let anchor_root = hash_tree_root(&mut anchor_block.clone()).map_err(|e| e.to_string())?;
    let cfg = ChainConfig::minimal();
    let config = ForkChoiceConfig::new(
        anchor_state.genesis_time,
        cfg.slot_duration_ms,
        ty::SLOTS_PER_EPOCH as u64,
    );
    let anchor_cp = Checkpoint {
        epoch: t::get_current_epoch(&anchor_state),
        root: anchor_root,
    };
    let mut store = Store {
        fc: ForkChoice::new(config, anchor_root, anchor_block.slot, anchor_cp),
        block_states: HashMap::from([(anchor_root, anchor_state.clone())]),
        checkpoint_states: HashMap::from([(anchor_cp, anchor_state)]),
        payloads: HashMap::new(),
        ctx: TransitionCtx::new(cfg),
    };
    let steps = yaml::read(case, "steps.yaml")?;
    let steps = steps.as_list()?;
    let mut checks = 0;
    for (i, step) in steps.iter().enumerate() {
        let at = |e: String| format!("step {i}: {e}");
        if let Some(time) = step.get("tick") {
            if !step_valid(step)? {
                return Err(at("an invalid tick step".into()));
            }
            store.fc.on_tick(time.as_u64()?);
        } else if let Some(name) = step.get("block") {
            let name = name.as_str()?;
            if step.get("columns").is_some() || step.get("blobs").is_some() {
                return Err(at(format!("{name}: data columns or blobs ({NO_KZG})")));
            }
            let block: ty::SignedBeaconBlock = read_ssz(case, name)?;
            let expected = step_valid(step)?;
            match (store.on_block(case, &block), expected) {
                (Ok(()), true) | (Err(_), false) => {}
                (Ok(()), false) => {
                    return Err(at(format!("{name} was accepted, expected invalid")))
                }
                (Err(e), true) => return Err(at(format!("{name} was refused: {e}"))),
            }
        } else if let Some(name) = step.get("attestation") {
            let name = name.as_str()?;
            let att: ty::Attestation = read_ssz(case, name)?;
            let expected = step_valid(step)?;
            match (store.on_attestation(&att, false), expected) {
                (Ok(()), true) | (Err(_), false) => {}
                (Ok(()), false) => {
                    return Err(at(format!("{name} was accepted, expected invalid")))
                }
                (Err(e), true) => return Err(at(format!("{name} was refused: {e}"))),
            }
        } else if let Some(name) = step.get("attester_slashing") {
            let name = name.as_str()?;
            let s: ty::AttesterSlashing = read_ssz(case, name)?;
            let expected = step_valid(step)?;
            match (store.on_attester_slashing(&s, true), expected) {
                (Ok(()), true) | (Err(_), false) => {}
                (Ok(()), false) => {
                    return Err(at(format!("{name} was accepted, expected invalid")))
                }
                (Err(e), true) => return Err(at(format!("{name} was refused: {e}"))),
            }
        } else if let Some(hash) = step.get("block_hash") {
            let status = step.req("payload_status")?;
            let lvh = match status
                .get("latest_valid_hash")
                .map(|v| v.as_str())
                .transpose()?
            {
                None | Some("null") => None,
                Some(h) => Some(root_of(h)?),
            };
            store.payloads.insert(
                root_of(hash.as_str()?)?,
                PayloadStatus {
                    status: status.req("status")?.as_str()?.to_string(),
                    latest_valid_hash: lvh,
                },
            );
        } else if let Some(c) = step.get("checks") {
            let Yaml::Map(items) = c else {
                return Err(at("checks is not a map".into()));
            };
            for (key, value) in items {
                match key.as_str() {
                    "head" => {
                        let head = store.head().map_err(at)?;
                        let want = root_of(value.req("root")?.as_str()?)?;
                        let slot = value.req("slot")?.as_u64()?;
                        if head != want || store.fc.block_slot(&head) != Some(slot) {
                            return Err(at(format!(
                                "head {} at slot {:?}, expected {} at slot {slot}",
                                hex(&head),
                                store.fc.block_slot(&head),
                                hex(&want)
                            )));
                        }
                    }
                    "time" => {
                        let want = value.as_u64()?;
                        if store.fc.time() != want {
                            return Err(at(format!("time {}, expected {want}", store.fc.time())));
                        }
                    }
                    "justified_checkpoint" | "finalized_checkpoint" => {
                        let want = yaml_cp(value)?;
                        let got = if key == "justified_checkpoint" {
                            store.fc.justified_checkpoint()
                        } else {
                            store.fc.finalized_checkpoint()
                        };
                        if got != want {
                            return Err(at(format!(
                                "{key} epoch {} {}, expected epoch {} {}",
                                got.epoch,
                                hex(&got.root),
                                want.epoch,
                                hex(&want.root)
                            )));
                        }
                    }
                    "proposer_boost_root" => {
                        let want = root_of(value.as_str()?)?;
                        let got = store.fc.proposer_boost_root().unwrap_or([0; 32]);
                        if got != want {
                            return Err(at(format!(
                                "proposer_boost_root {}, expected {}",
                                hex(&got),
                                hex(&want)
                            )));
                        }
                    }
                    other => return Err(at(format!("unknown check {other:?}"))),
                }
                checks += 1;
            }
        } else {
            return Err(at(format!("unknown step {step:?}")));
        }
    }
    Ok(checks)
}

/// Runs every case of `<runner>/<handler>/pyspec_tests`; returns (passed, pending,
/// failures).
fn run_handler(runner: &str, handler: &str) -> (usize, usize, Vec<String>) {
    let dir = runner_dir(Preset::Minimal, runner)
        .join(handler)
        .join("pyspec_tests");
    if !dir.is_dir() {
        return (
            0,
            0,
            vec![format!(
                "FAILURE: vector folder {} is missing",
                dir.display()
            )],
        );
    }
    let cases = match sorted_subdirs(&dir) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return (0, 0, vec![format!("no cases under {}", dir.display())]),
        Err(e) => return (0, 0, vec![e]),
    };
    let (mut passed, mut pending, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        let name = format!("{handler}/{}", file_name(case));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case)))
            .unwrap_or_else(|_| Err("PANIC".into()));
        match (PENDING.iter().find(|(n, _)| *n == name), result) {
            (None, Ok(checks)) => {
                passed += 1;
                println!("{runner} {name}: pass ({checks} checks)");
            }
            (None, Err(e)) => failures.push(format!("{runner}/{name}: {e}")),
            (Some((_, why)), Err(e)) => {
                pending += 1;
                println!("{runner} {name}: PENDING ({why})\n    {e}");
            }
            (Some(_), Ok(_)) => failures.push(format!(
                "{runner}/{name}: passes now; take it out of PENDING"
            )),
        }
    }
    println!(
        "{runner} minimal {handler}: {passed} passed, {pending} pending, {} failed",
        failures.len()
    );
    (passed, pending, failures)
}

fn assert_handlers(runner: &str, handlers: &[&str]) {
    // Every PENDING entry names a case that exists.
    let mut all = Vec::new();
    for handler in handlers {
        let (_, _, failures) = run_handler(runner, handler);
        all.extend(failures);
    }
    for f in &all {
        println!("FAIL {f}");
    }
    assert!(
        all.is_empty(),
        "{runner}: {} failure(s): {all:#?}",
        all.len()
    );
}

#[test]
fn fork_choice_vectors() {
    for (name, _) in PENDING {
        let case = runner_dir(Preset::Minimal, "fork_choice")
            .join(name.split('/').next().unwrap_or(""))
            .join("pyspec_tests")
            .join(name.split('/').nth(1).unwrap_or(""));
        assert!(case.is_dir(), "PENDING names {name}, which is not a case");
    }
    assert_handlers(
        "fork_choice",
        &["on_block", "reorg", "withholding", "deposit_with_reorg"],
    );
}

#[test]
fn sync_optimistic_vectors() {
    assert_handlers("sync", &["optimistic"]);
}
