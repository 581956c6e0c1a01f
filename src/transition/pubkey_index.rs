//! Validator index by pubkey, remembered across calls.
//!
//! `process_sync_aggregate` needs the validator index of each sync committee member
//! (the spec's `all_pubkeys.index(pubkey)`, a scan of the registry per member: 512 scans
//! of the whole registry per block on mainnet). Pubkeys never change once in the
//! registry and are unique in it (a deposit for a known pubkey is a top-up), so an index
//! found once stays right for every later registry of the chain; each hit is still
//! checked against the registry it is used for, and a miss rescans and refreshes.
//!
//! The map is a [`PubkeyIndex`] value owned by whoever runs the transition (through
//! [`TransitionCtx`](crate::transition::TransitionCtx)): two chains never share one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::types::common::Validator;

/// Entries kept before the map is cleared (a mainnet registry has ~2M).
const MAX_ENTRIES: usize = 1 << 23;

/// Pubkey → first validator index, for the registries of one chain.
#[derive(Default)]
pub struct PubkeyIndex {
    map: Mutex<HashMap<[u8; 48], u64>>,
}

impl std::fmt::Debug for PubkeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubkeyIndex")
            .field("entries", &self.len())
            .finish()
    }
}

impl PubkeyIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pubkeys remembered.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first index of `pubkey` in `validators`, if any.
    pub fn find_validator_index(&self, validators: &[Validator], pubkey: &[u8; 48]) -> Option<u64> {
        let mut m = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&i) = m.get(pubkey) {
            if validators
                .get(i as usize)
                .is_some_and(|v| v.pubkey.as_bytes() == pubkey)
            {
                return Some(i);
            }
        }
        if m.len() + validators.len() > MAX_ENTRIES {
            m.clear();
        }
        // Refresh from this registry; in reverse so the first of any duplicate wins.
        let mut found = None;
        for (i, v) in validators.iter().enumerate().rev() {
            m.insert(*v.pubkey.as_bytes(), i as u64);
            if v.pubkey.as_bytes() == pubkey {
                found = Some(i as u64);
            }
        }
        found
    }
}
