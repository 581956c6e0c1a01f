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
    map: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_pubkey: HashMap<[u8; 48], u64>,
    /// Every validator below this index of the registry last indexed is in `by_pubkey`
    /// (registries only grow; a later one is read from here on).
    covered: usize,
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

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pubkeys remembered.
    pub fn len(&self) -> usize {
        self.entries().by_pubkey.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first index of `pubkey` in `validators`, if any (the spec's
    /// `validator_pubkeys.index(pubkey)` where it is found, `None` where not).
    ///
    /// A remembered index is used only once checked against `validators`. The validators
    /// this map has not seen yet (beyond what it covers) are added first, so a lookup
    /// costs one hash probe. A pubkey still not found is looked for by a scan of
    /// `validators`: the map may have been filled from another branch of the chain, whose
    /// registry can differ from this one in validators appended since the two split, so
    /// its silence proves nothing. Misses (a deposit of a new key, a request naming an
    /// unknown one) are bounded per block and epoch by the spec's operation limits.
    pub fn find_validator_index(&self, validators: &[Validator], pubkey: &[u8; 48]) -> Option<u64> {
        let check = |i: u64| {
            validators
                .get(i as usize)
                .is_some_and(|v| v.pubkey.as_bytes() == pubkey)
        };
        let mut m = self.entries();
        if let Some(&i) = m.by_pubkey.get(pubkey) {
            if check(i) {
                return Some(i);
            }
        }
        if validators.len() > m.covered {
            if m.by_pubkey.len() + (validators.len() - m.covered) > MAX_ENTRIES {
                m.by_pubkey.clear();
                m.covered = 0;
            }
            let from = m.covered;
            m.by_pubkey.reserve(validators.len() - from);
            for (i, v) in validators.iter().enumerate().skip(from) {
                // The first of any duplicate wins.
                m.by_pubkey.entry(*v.pubkey.as_bytes()).or_insert(i as u64);
            }
            m.covered = validators.len();
            if let Some(&i) = m.by_pubkey.get(pubkey) {
                if check(i) {
                    return Some(i);
                }
            }
        }
        drop(m);
        validators
            .iter()
            .position(|v| v.pubkey.as_bytes() == pubkey)
            .map(|i| i as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(tag: u8, i: u32) -> Validator {
        let mut v = Validator::default();
        let mut pk = [tag; 48];
        pk[..4].copy_from_slice(&i.to_le_bytes());
        v.pubkey = pk.into();
        v
    }

    fn registry(tag: u8, n: u32) -> Vec<Validator> {
        (0..n).map(|i| validator(tag, i)).collect()
    }

    #[test]
    fn finds_the_first_index_and_misses_unknown_keys() {
        let idx = PubkeyIndex::new();
        let mut r = registry(1, 100);
        r.push(validator(1, 7)); // a duplicate: the first index wins
        for i in 0..100u32 {
            assert_eq!(
                idx.find_validator_index(&r, validator(1, i).pubkey.as_bytes()),
                Some(i as u64)
            );
        }
        assert_eq!(idx.find_validator_index(&r, &[9; 48]), None);
        assert_eq!(idx.len(), 100);
    }

    #[test]
    fn a_branch_with_other_appended_validators_is_answered_right() {
        let idx = PubkeyIndex::new();
        // Two branches share 50 validators and append different ones at 50..60.
        let mut a = registry(1, 50);
        let mut b = a.clone();
        a.extend((50..60).map(|i| validator(2, i)));
        b.extend((50..60).map(|i| validator(3, i)));
        // The map learns branch a (covers 60).
        assert_eq!(
            idx.find_validator_index(&a, validator(2, 55).pubkey.as_bytes()),
            Some(55)
        );
        // Branch b's own validators are found though the map never saw them…
        assert_eq!(
            idx.find_validator_index(&b, validator(3, 55).pubkey.as_bytes()),
            Some(55)
        );
        // …and a's are not in b, though the map has them.
        assert_eq!(
            idx.find_validator_index(&b, validator(2, 55).pubkey.as_bytes()),
            None
        );
        // A shorter registry (an older state) answers for itself.
        assert_eq!(
            idx.find_validator_index(&a[..40], validator(2, 55).pubkey.as_bytes()),
            None
        );
        assert_eq!(
            idx.find_validator_index(&a[..40], validator(1, 39).pubkey.as_bytes()),
            Some(39)
        );
        // A grown registry's new validator is found through the map.
        a.push(validator(4, 60));
        assert_eq!(
            idx.find_validator_index(&a, validator(4, 60).pubkey.as_bytes()),
            Some(60)
        );
    }
}
