//! `merkle_proof/single_merkle_proof/<Type>` vectors (minimal preset), and the case
//! function the `light_client/single_merkle_proof` handler shares: `proof.yaml` holds a
//! leaf, its generalized index and the branch; the branch must verify against the
//! object's root, and the proof quasar generates must equal it.

use std::path::Path;

use quasar::merkle::proof::{
    compute_merkle_proof, floorlog2, get_subtree_index, is_valid_merkle_branch,
    is_valid_normalized_merkle_branch, root_of, Chunk, ContainerProof,
};
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::light_client::yaml;
use super::spec_runner::{assert_no_failures, file_name, read_ssz, run_runner, CaseFn};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

fn hex32(y: &yaml::Yaml) -> Result<Chunk, String> {
    let s = y.as_str()?;
    yaml::hex(s)?
        .try_into()
        .map_err(|_| format!("{s:?} is not 32 bytes"))
}

fn check_proof(case: &Path, object: &mut dyn ContainerProof, root: Chunk) -> Result<(), String> {
    let proof = yaml::read(case, "proof.yaml")?;
    let leaf = hex32(proof.req("leaf")?)?;
    let gindex = proof.req("leaf_index")?.as_u64()?;
    if gindex == 0 {
        return Err("leaf_index 0 is not a generalized index".into());
    }
    let branch: Vec<Chunk> = proof
        .req("branch")?
        .as_list()?
        .iter()
        .map(hex32)
        .collect::<Result<_, _>>()?;
    let depth = u64::from(floorlog2(gindex));
    if !is_valid_merkle_branch(&leaf, &branch, depth, get_subtree_index(gindex), &root) {
        return Err(format!(
            "the vector's branch for gindex {gindex} does not verify"
        ));
    }
    if !is_valid_normalized_merkle_branch(&leaf, &branch, gindex, &root) {
        return Err("is_valid_normalized_merkle_branch rejects the vector's branch".into());
    }
    let ours = compute_merkle_proof(object, gindex).map_err(|e| e.to_string())?;
    if ours.leaf != leaf {
        return Err(format!("computed leaf differs at gindex {gindex}"));
    }
    if ours.branch != branch {
        return Err(format!("computed branch differs at gindex {gindex}"));
    }
    Ok(())
}

fn check_typed<T>(case: &Path) -> Result<(), String>
where
    T: ContainerProof + quasar::types::ssz::SszDecode,
{
    let mut object: T = read_ssz(case, "object")?;
    let root = root_of(&mut object).map_err(|e| e.to_string())?;
    check_proof(case, &mut object, root)
}

/// One `single_merkle_proof` case; the suite folder names the object's type.
pub fn single_merkle_proof(case: &Path) -> Result<(), String> {
    let suite = case.parent().map(file_name).unwrap_or_default();
    match suite.as_str() {
        "BeaconBlockBody" => check_typed::<ty::BeaconBlockBody>(case),
        "BeaconState" => check_typed::<ty::BeaconState>(case),
        "BeaconBlock" => check_typed::<ty::BeaconBlock>(case),
        other => Err(format!("no proof support for type {other:?}")),
    }
}

const HANDLERS: &[(&str, CaseFn)] = &[("single_merkle_proof", single_merkle_proof)];

#[test]
fn merkle_proof_minimal() {
    let failures = run_runner(Preset::Minimal, "merkle_proof", HANDLERS, PENDING);
    assert_no_failures("merkle_proof", &failures);
}
