//! Fulu das-core custody: which custody groups a node keeps (`get_custody_groups`) and
//! which data columns a group holds (`compute_columns_for_custody_group`). Names follow
//! the spec (`specs/fulu/das-core.md`).

use sha2::{Digest, Sha256};
use std::fmt;

/// `NUMBER_OF_CUSTODY_GROUPS` (chain config, the same in mainnet and minimal).
pub const NUMBER_OF_CUSTODY_GROUPS: u64 = 128;
/// `NUMBER_OF_COLUMNS` (preset-independent).
pub const NUMBER_OF_COLUMNS: u64 = crate::types::primitives::NUMBER_OF_COLUMNS as u64;

pub type CustodyIndex = u64;
pub type ColumnIndex = u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustodyError {
    #[error("custody group count {count} exceeds NUMBER_OF_CUSTODY_GROUPS ({max})")]
    TooManyGroups { count: u64, max: u64 },
    #[error("custody group {group} is not below NUMBER_OF_CUSTODY_GROUPS ({max})")]
    GroupOutOfRange { group: u64, max: u64 },
    #[error("node id {0:?} is not a decimal uint256")]
    BadNodeId(String),
}

/// A `NodeID`: a uint256, held as its 32 little-endian bytes (`uint_to_bytes(node_id)`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// `UINT256_MAX`.
    pub const MAX: NodeId = NodeId([0xff; 32]);

    /// From the 32 bytes of a discv5 node id (big-endian, as `uint256(int.from_bytes(b, "big"))`).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Self {
        let mut le = bytes;
        le.reverse();
        NodeId(le)
    }

    /// Parses a decimal uint256 (as the vectors write node ids).
    pub fn from_decimal(s: &str) -> Result<Self, CustodyError> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CustodyError::BadNodeId(s.to_string()));
        }
        let mut le = [0u8; 32];
        for digit in s.bytes() {
            // le = le * 10 + digit, checking for overflow past 2^256.
            let mut carry = u32::from(digit - b'0');
            for byte in le.iter_mut() {
                let v = u32::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return Err(CustodyError::BadNodeId(s.to_string()));
            }
        }
        Ok(NodeId(le))
    }

    /// `uint_to_bytes(node_id)`: 32 little-endian bytes.
    pub fn to_le_bytes(self) -> [u8; 32] {
        self.0
    }

    /// `node_id + 1`, wrapping `UINT256_MAX` to 0 as the spec's loop does.
    pub fn wrapping_increment(self) -> Self {
        let mut le = self.0;
        for byte in le.iter_mut() {
            let (v, overflow) = byte.overflowing_add(1);
            *byte = v;
            if !overflow {
                break;
            }
        }
        NodeId(le)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(0x")?;
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// `get_custody_groups(node_id, custody_group_count)`: the sorted custody groups of a node.
pub fn get_custody_groups(
    node_id: NodeId,
    custody_group_count: u64,
) -> Result<Vec<CustodyIndex>, CustodyError> {
    if custody_group_count > NUMBER_OF_CUSTODY_GROUPS {
        return Err(CustodyError::TooManyGroups {
            count: custody_group_count,
            max: NUMBER_OF_CUSTODY_GROUPS,
        });
    }
    // Skip computation if all groups are custodied.
    if custody_group_count == NUMBER_OF_CUSTODY_GROUPS {
        return Ok((0..NUMBER_OF_CUSTODY_GROUPS).collect());
    }
    let mut current_id = node_id;
    let mut seen = [false; NUMBER_OF_CUSTODY_GROUPS as usize];
    let mut custody_groups = Vec::with_capacity(custody_group_count as usize);
    while (custody_groups.len() as u64) < custody_group_count {
        let digest: [u8; 32] = Sha256::digest(current_id.to_le_bytes()).into();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let custody_group = u64::from_le_bytes(first) % NUMBER_OF_CUSTODY_GROUPS;
        if !seen[custody_group as usize] {
            seen[custody_group as usize] = true;
            custody_groups.push(custody_group);
        }
        current_id = current_id.wrapping_increment();
    }
    custody_groups.sort_unstable();
    Ok(custody_groups)
}

/// `compute_columns_for_custody_group(custody_group)`: the columns a custody group holds.
pub fn compute_columns_for_custody_group(
    custody_group: CustodyIndex,
) -> Result<Vec<ColumnIndex>, CustodyError> {
    if custody_group >= NUMBER_OF_CUSTODY_GROUPS {
        return Err(CustodyError::GroupOutOfRange {
            group: custody_group,
            max: NUMBER_OF_CUSTODY_GROUPS,
        });
    }
    let columns_per_group = NUMBER_OF_COLUMNS / NUMBER_OF_CUSTODY_GROUPS;
    Ok((0..columns_per_group)
        .map(|i| NUMBER_OF_CUSTODY_GROUPS * i + custody_group)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_node_ids() {
        assert_eq!(NodeId::from_decimal("0").unwrap(), NodeId::default());
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(NodeId::from_decimal(max).unwrap(), NodeId::MAX);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(NodeId::from_decimal(over).is_err());
        assert!(NodeId::from_decimal("12a").is_err());
        assert_eq!(NodeId::MAX.wrapping_increment(), NodeId::default());
        let mut be = [0u8; 32];
        be[31] = 1;
        assert_eq!(
            NodeId::from_be_bytes(be),
            NodeId::from_decimal("1").unwrap()
        );
    }

    #[test]
    fn groups_bounds() {
        assert!(get_custody_groups(NodeId::default(), NUMBER_OF_CUSTODY_GROUPS + 1).is_err());
        assert!(compute_columns_for_custody_group(NUMBER_OF_CUSTODY_GROUPS).is_err());
        assert_eq!(
            get_custody_groups(NodeId::MAX, 0).unwrap(),
            Vec::<u64>::new()
        );
    }
}
