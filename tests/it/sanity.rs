//! `sanity/slots` and `sanity/blocks` vectors. Blocks run the full `state_transition`
//! (state root checked) with signatures collected per block and verified in one batch, so
//! the collecting path is what the vectors exercise. The handlers are written once and
//! compiled per preset (`minimal` here; `mainnet` for `mainnet_vectors.rs`, and
//! `minimal::apply_block` for the held-out sequences).

use quasar::types::Preset;

use super::spec_runner::{assert_no_failures, run_runner, CaseFn};

macro_rules! sanity_handlers {
    ($preset:ident) => {
        pub mod $preset {
            use std::path::Path;

            use quasar::transition::$preset as t;
            use quasar::transition::{
                ChainConfig, SignatureChecker, SignatureStrategy, TransitionCtx, TransitionError,
            };
            use quasar::types::$preset as ty;

            use crate::spec_runner::{
                checker_for, judge, read_ssz, read_ssz_opt, verify_collected, yaml_u64,
            };

            /// One signed block: `state_transition` with the state root checked, then the
            /// signatures `sigs` collected verified in one batch.
            pub fn apply_block(
                state: &mut ty::BeaconState,
                block: &ty::SignedBeaconBlock,
                mut sigs: SignatureChecker,
                ctx: &mut TransitionCtx,
            ) -> Result<(), TransitionError> {
                t::state_transition(state, block, true, ctx, &mut sigs)?;
                if sigs.strategy() != SignatureStrategy::Collect {
                    return Ok(());
                }
                let (sets, _labels) = sigs.take_sets();
                verify_collected(sets, |i| {
                    state
                        .validators
                        .get(i as usize)
                        .map(|v| *v.pubkey.as_bytes())
                })
                .map_err(|e| TransitionError::Signature {
                    what: "block batch",
                    reason: e,
                })
            }

            pub fn slots(case: &Path) -> Result<(), String> {
                let mut state: ty::BeaconState = read_ssz(case, "pre")?;
                let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
                let n = yaml_u64(case, "slots.yaml", None)?.ok_or("slots.yaml: no slot count")?;
                let mut ctx = TransitionCtx::new(ChainConfig::$preset());
                let target = state.slot.checked_add(n).ok_or("slot overflow")?;
                let result = t::process_slots(&mut state, target, &mut ctx);
                judge(result, &state, post.as_ref())
            }

            pub fn blocks(case: &Path) -> Result<(), String> {
                let mut state: ty::BeaconState = read_ssz(case, "pre")?;
                let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
                let count = yaml_u64(case, "meta.yaml", Some("blocks_count"))?
                    .ok_or("meta.yaml: no blocks_count")?;
                let mut ctx = TransitionCtx::new(ChainConfig::$preset());
                let mut result = Ok(());
                for i in 0..count {
                    let block: ty::SignedBeaconBlock = read_ssz(case, &format!("blocks_{i}"))?;
                    let r = apply_block(&mut state, &block, checker_for(case, true)?, &mut ctx);
                    if r.is_err() {
                        result = r;
                        break;
                    }
                }
                judge(result, &state, post.as_ref())
            }
        }
    };
}

sanity_handlers!(minimal);
sanity_handlers!(mainnet);

/// Sanity handlers or cases not implemented, with the reason (none).
const PENDING: &[(&str, &str)] = &[];

const HANDLERS: &[(&str, CaseFn)] = &[("slots", minimal::slots), ("blocks", minimal::blocks)];

#[test]
fn sanity_minimal() {
    let failures = run_runner(Preset::Minimal, "sanity", HANDLERS, PENDING);
    assert_no_failures("sanity", &failures);
}
