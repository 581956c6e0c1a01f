//! Single-leaf merkle proofs by generalized index (`specs/ssz/merkle-proofs.md`):
//! [`compute_merkle_proof`] builds the branch of any node of a container's tree, descending
//! into sub-containers (e.g. `BeaconState.finalized_checkpoint.root`, gindex 169), and
//! [`is_valid_merkle_branch`] / [`is_valid_normalized_merkle_branch`] check one.
//!
//! A container opts in through [`ContainerProof`], implemented here for the containers
//! whose proofs the protocol uses (block body commitments and execution payload, the
//! state's sync committees and checkpoints, block and header) in both presets. The field
//! lists are checked for completeness at compile time (an exhaustive destructuring) and
//! for order by the tests (their merkleization must equal `hash_tree_root`).

use sha2::{Digest, Sha256};
use ssz_rs::Merkleized;

use crate::types::ssz::node_bytes;

/// A 32-byte node.
pub type Chunk = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("generalized index 0 does not exist")]
    ZeroGindex,
    #[error(
        "generalized index {gindex} points into the zero padding of {container} ({fields} fields)"
    )]
    Padding {
        gindex: u64,
        container: &'static str,
        fields: usize,
    },
    #[error("generalized index {gindex} descends below field {field} of {container}, which offers no proof path")]
    NoPath {
        gindex: u64,
        container: &'static str,
        field: &'static str,
    },
    #[error("merkleization failed: {0}")]
    Merkleization(String),
}

/// A proof of `leaf` at a generalized index: `branch[0]` is the deepest sibling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    pub leaf: Chunk,
    pub branch: Vec<Chunk>,
}

/// A container whose merkle tree can be walked field by field.
pub trait ContainerProof {
    /// The container's name, for errors.
    fn container_name(&self) -> &'static str;
    /// The fields' names, in merkleization order.
    fn field_names(&self) -> &'static [&'static str];
    /// `hash_tree_root` of each field, in order.
    fn field_roots(&mut self) -> Result<Vec<Chunk>, ProofError>;
    /// The field at `index` when it is itself a container a proof may descend into.
    fn field_container(&mut self, index: usize) -> Option<&mut dyn ContainerProof>;
}

fn hash_pair(a: &Chunk, b: &Chunk) -> Chunk {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// `floorlog2(x)` for `x >= 1`.
pub fn floorlog2(x: u64) -> u32 {
    63 - x.leading_zeros()
}

/// `get_subtree_index(generalized_index)`: the index of the node within its depth.
pub fn get_subtree_index(gindex: u64) -> u64 {
    gindex % (1u64 << floorlog2(gindex))
}

/// `hash_tree_root` of a value as a chunk.
pub fn root_of<T: Merkleized>(value: &mut T) -> Result<Chunk, ProofError> {
    value
        .hash_tree_root()
        .map(|n| node_bytes(&n))
        .map_err(|e| ProofError::Merkleization(e.to_string()))
}

/// `is_valid_merkle_branch(leaf, branch, depth, index, root)`.
pub fn is_valid_merkle_branch(
    leaf: &Chunk,
    branch: &[Chunk],
    depth: u64,
    index: u64,
    root: &Chunk,
) -> bool {
    if branch.len() as u64 != depth || depth > 64 {
        return false;
    }
    let mut value = *leaf;
    for (i, sibling) in branch.iter().enumerate() {
        value = if (index >> i) & 1 == 1 {
            hash_pair(sibling, &value)
        } else {
            hash_pair(&value, sibling)
        };
    }
    &value == root
}

/// `is_valid_normalized_merkle_branch(leaf, branch, gindex, root)` (Electra): the branch's
/// depth and index come from the generalized index.
pub fn is_valid_normalized_merkle_branch(
    leaf: &Chunk,
    branch: &[Chunk],
    gindex: u64,
    root: &Chunk,
) -> bool {
    if gindex == 0 {
        return false;
    }
    let depth = u64::from(floorlog2(gindex));
    let index = get_subtree_index(gindex);
    let num_extra = branch.len().saturating_sub(depth as usize);
    if branch[..num_extra].iter().any(|b| b != &[0u8; 32]) {
        return false;
    }
    is_valid_merkle_branch(leaf, &branch[num_extra..], depth, index, root)
}

fn siblings(nodes: &[Chunk], mut gindex: usize, out: &mut Vec<Chunk>) {
    while gindex > 1 {
        out.push(nodes[gindex ^ 1]);
        gindex >>= 1;
    }
}

/// `compute_merkle_proof(object, gindex)`: the leaf at `gindex` and its branch.
pub fn compute_merkle_proof(
    object: &mut dyn ContainerProof,
    gindex: u64,
) -> Result<MerkleProof, ProofError> {
    if gindex == 0 {
        return Err(ProofError::ZeroGindex);
    }
    let roots = object.field_roots()?;
    let width = roots.len().max(1).next_power_of_two();
    let depth = width.trailing_zeros();
    let mut nodes = vec![[0u8; 32]; 2 * width];
    nodes[width..width + roots.len()].copy_from_slice(&roots);
    for i in (1..width).rev() {
        nodes[i] = hash_pair(&nodes[2 * i], &nodes[2 * i + 1]);
    }
    let total = floorlog2(gindex);
    if total <= depth {
        // A node of this container's own tree (a field root or an inner node).
        let g = gindex as usize;
        let mut branch = Vec::with_capacity(total as usize);
        siblings(&nodes, g, &mut branch);
        return Ok(MerkleProof {
            leaf: nodes[g],
            branch,
        });
    }
    let below = total - depth;
    let top = (gindex >> below) as usize;
    let field = top - width;
    if field >= roots.len() {
        return Err(ProofError::Padding {
            gindex,
            container: object.container_name(),
            fields: roots.len(),
        });
    }
    let sub_gindex = (1u64 << below) | (gindex & ((1u64 << below) - 1));
    let container = object.container_name();
    let field_name = object.field_names().get(field).copied().unwrap_or("?");
    let child = object.field_container(field).ok_or(ProofError::NoPath {
        gindex,
        container,
        field: field_name,
    })?;
    let mut proof = compute_merkle_proof(child, sub_gindex)?;
    siblings(&nodes, top, &mut proof.branch);
    Ok(proof)
}

/// Implements [`ContainerProof`] from the container's field list (in spec order) and the
/// fields a proof may descend into.
macro_rules! container_proof {
    ($ty:ty { $($field:ident),* $(,)? } $(descend { $($child:ident),* $(,)? })?) => {
        impl ContainerProof for $ty {
            fn container_name(&self) -> &'static str {
                stringify!($ty)
            }
            fn field_names(&self) -> &'static [&'static str] {
                &[$(stringify!($field)),*]
            }
            fn field_roots(&mut self) -> Result<Vec<Chunk>, ProofError> {
                // Fails to compile when a field is missing from the list.
                let Self { $($field: _),* } = self;
                Ok(vec![$(root_of(&mut self.$field)?),*])
            }
            #[allow(unused_variables)]
            fn field_container(&mut self, index: usize) -> Option<&mut dyn ContainerProof> {
                let name = *self.field_names().get(index)?;
                $($(
                    if name == stringify!($child) {
                        return Some(&mut self.$child);
                    }
                )*)?
                None
            }
        }
    };
}

mod common_impls {
    use super::*;
    use crate::types::common::{BeaconBlockHeader, Checkpoint, ExecutionPayloadHeader};

    container_proof!(Checkpoint { epoch, root });
    container_proof!(BeaconBlockHeader {
        slot,
        proposer_index,
        parent_root,
        state_root,
        body_root,
    });
    container_proof!(ExecutionPayloadHeader {
        parent_hash,
        fee_recipient,
        state_root,
        receipts_root,
        logs_bloom,
        prev_randao,
        block_number,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        base_fee_per_gas,
        block_hash,
        transactions_root,
        withdrawals_root,
        blob_gas_used,
        excess_blob_gas,
    });
}

macro_rules! preset_impls {
    ($preset:ident) => {
        mod $preset {
            use super::*;
            use crate::types::$preset::{BeaconBlock, BeaconBlockBody, BeaconState};

            container_proof!(BeaconBlockBody {
                randao_reveal,
                eth1_data,
                graffiti,
                proposer_slashings,
                attester_slashings,
                attestations,
                deposits,
                voluntary_exits,
                sync_aggregate,
                execution_payload,
                bls_to_execution_changes,
                blob_kzg_commitments,
                execution_requests,
            });

            container_proof!(BeaconBlock {
                slot,
                proposer_index,
                parent_root,
                state_root,
                body,
            } descend { body });

            container_proof!(BeaconState {
                genesis_time,
                genesis_validators_root,
                slot,
                fork,
                latest_block_header,
                block_roots,
                state_roots,
                historical_roots,
                eth1_data,
                eth1_data_votes,
                eth1_deposit_index,
                validators,
                balances,
                randao_mixes,
                slashings,
                previous_epoch_participation,
                current_epoch_participation,
                justification_bits,
                previous_justified_checkpoint,
                current_justified_checkpoint,
                finalized_checkpoint,
                inactivity_scores,
                current_sync_committee,
                next_sync_committee,
                latest_execution_payload_header,
                next_withdrawal_index,
                next_withdrawal_validator_index,
                historical_summaries,
                deposit_requests_start_index,
                deposit_balance_to_consume,
                exit_balance_to_consume,
                earliest_exit_epoch,
                consolidation_balance_to_consume,
                earliest_consolidation_epoch,
                pending_deposits,
                pending_partial_withdrawals,
                pending_consolidations,
                proposer_lookahead,
            } descend {
                latest_block_header,
                previous_justified_checkpoint,
                current_justified_checkpoint,
                finalized_checkpoint,
                latest_execution_payload_header,
            });
        }
    };
}

preset_impls!(minimal);
preset_impls!(mainnet);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::minimal;

    fn merkleized(object: &mut dyn ContainerProof) -> Chunk {
        let roots = object.field_roots().unwrap();
        crate::types::ssz::merkleize_chunks(&roots, roots.len())
    }

    fn sample_state() -> minimal::BeaconState {
        minimal::BeaconState {
            slot: 5,
            finalized_checkpoint: crate::types::common::Checkpoint {
                epoch: 3,
                root: [7u8; 32].into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn field_lists_merkleize_to_the_root() {
        let mut state = sample_state();
        assert_eq!(merkleized(&mut state), root_of(&mut state).unwrap());
        let mut body = minimal::BeaconBlockBody {
            graffiti: [1u8; 32].into(),
            ..Default::default()
        };
        assert_eq!(merkleized(&mut body), root_of(&mut body).unwrap());
        let mut block = minimal::BeaconBlock::default();
        assert_eq!(merkleized(&mut block), root_of(&mut block).unwrap());
        let mut header = crate::types::common::ExecutionPayloadHeader::default();
        assert_eq!(merkleized(&mut header), root_of(&mut header).unwrap());
        let mut state = crate::types::mainnet::BeaconState::default();
        assert_eq!(merkleized(&mut state), root_of(&mut state).unwrap());
    }

    #[test]
    fn proofs_verify_including_nested() {
        let mut state = sample_state();
        let root = root_of(&mut state).unwrap();
        for gindex in [1u64, 2, 3, 33, 84, 86, 87, 169, 168] {
            let p = compute_merkle_proof(&mut state, gindex).unwrap();
            assert_eq!(p.branch.len() as u32, floorlog2(gindex));
            assert!(is_valid_normalized_merkle_branch(
                &p.leaf, &p.branch, gindex, &root
            ));
        }
        let p = compute_merkle_proof(&mut state, 169).unwrap();
        assert_eq!(p.leaf, [7u8; 32]);
        // A zero padding leaf (38 fields of 64) has a valid proof; below it there is none,
        // nor below a list field.
        let p = compute_merkle_proof(&mut state, 64 + 40).unwrap();
        assert_eq!(p.leaf, [0u8; 32]);
        assert!(is_valid_normalized_merkle_branch(
            &p.leaf, &p.branch, 104, &root
        ));
        assert!(matches!(
            compute_merkle_proof(&mut state, (64 + 40) * 2),
            Err(ProofError::Padding { .. })
        ));
        assert!(matches!(
            compute_merkle_proof(&mut state, (64 + 11) * 2),
            Err(ProofError::NoPath { .. })
        ));
        assert_eq!(
            compute_merkle_proof(&mut state, 0),
            Err(ProofError::ZeroGindex)
        );
    }
}
