//! The validator pubkey cache: index → validated, decompressed point, loaded once and
//! grown as validators join. Its affine table is what the aggregators sum over (and what
//! the GPU keeps resident).

use std::collections::HashMap;

use blst::min_pk::PublicKey;

use super::{parse_pubkey, BlsError};

#[derive(Default)]
pub struct PubkeyCache {
    keys: Vec<PublicKey>,
    table: Vec<blst::blst_p1_affine>,
    by_bytes: HashMap<[u8; 48], u32>,
}

impl PubkeyCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a pubkey from outside (KeyValidate'd); returns its index. A key already present
    /// returns its existing index.
    pub fn insert(&mut self, compressed: &[u8]) -> Result<u32, BlsError> {
        let arr: [u8; 48] = compressed.try_into().map_err(|_| {
            BlsError::PubkeyEncoding(format!("{} bytes, want 48", compressed.len()))
        })?;
        if let Some(&i) = self.by_bytes.get(&arr) {
            return Ok(i);
        }
        let pk = parse_pubkey(&arr)?;
        Ok(self.push_validated(arr, pk))
    }

    /// Add a key known to be valid (e.g. read back from our own store).
    pub fn push_validated(&mut self, compressed: [u8; 48], pk: PublicKey) -> u32 {
        let i = self.keys.len() as u32;
        self.table.push(blst::blst_p1_affine::from(pk));
        self.keys.push(pk);
        self.by_bytes.insert(compressed, i);
        i
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn get(&self, index: u32) -> Option<&PublicKey> {
        self.keys.get(index as usize)
    }
    pub fn index_of(&self, compressed: &[u8; 48]) -> Option<u32> {
        self.by_bytes.get(compressed).copied()
    }
    /// The affine points, in index order.
    pub fn table(&self) -> &[blst::blst_p1_affine] {
        &self.table
    }
}
