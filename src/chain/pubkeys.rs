//! The resident pubkey table — every validator's key at its index, KeyValidate'd once —
//! and its copy in the datadir (as Lighthouse keeps its pubkey cache), so that a start
//! does not KeyValidate the whole registry again.
//!
//! The copy is the `pubkeys` column family: one chunk per append (at most
//! [`CHUNK_KEYS`] keys), keyed by its first validator index (big-endian u32), written in
//! the same atomic batch as the blocks whose registry grew (the genesis registry in its
//! own write at the first start). A chunk is
//!
//! ```text
//! "QPK1" | from: u32 LE | count: u32 LE | count × (flag: u8, point: 96 bytes) | sha256
//! ```
//!
//! `flag` 1: the key passed KeyValidate and `point` is its uncompressed affine point
//! (blst's serialization); 0: the key failed it (never summed) and `point` is zero.
//!
//! Loading never trusts the bytes: a chunk whose length, magic, index or checksum is
//! wrong is dropped (with every chunk after it), and each entry must be the registry's
//! own key — the point must be on the curve, not infinity, and compress to the registry's
//! compressed key (so it *is* that key's point); a key marked unusable is KeyValidate'd
//! again (it must fail). The first entry that is not is where loading stops; the rest of
//! the registry is KeyValidate'd as on a first start, and the table written again from
//! there. (The subgroup check is what loading skips: the checksum guards against a torn
//! or corrupted write, not against someone forging the datadir's bytes.)

use std::collections::HashSet;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::accel::aggregate::PubkeyTable;
use crate::bls::parse_pubkey;
use crate::store::{Store, StoreBatch};

/// Keys per stored chunk (~6 MiB), so no write is one huge value.
pub const CHUNK_KEYS: usize = 1 << 16;

const MAGIC: &[u8; 4] = b"QPK1";
const ENTRY: usize = 1 + 96;
const HEADER: usize = 12;

/// How the table was built at the last start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeysLoad {
    /// Keys taken from the stored table (checked, not KeyValidate'd).
    pub loaded: usize,
    /// Keys KeyValidate'd (not stored, or the stored table was refused from there).
    pub validated: usize,
    /// Stored chunks refused (bad length, index, checksum, or not the registry's keys).
    pub refused_chunks: usize,
}

/// Every validator's pubkey at its validator index: the aggregators' table (resident on
/// the GPU, only appended points uploaded), the compressed keys to check a state's
/// registry against, the indices whose key failed KeyValidate, and how much of it the
/// datadir holds.
#[derive(Default)]
pub struct ResidentKeys {
    pub table: PubkeyTable,
    pub compressed: Vec<[u8; 48]>,
    pub unusable: HashSet<u32>,
    /// The uncompressed point of each key (zero where unusable), for the stored copy;
    /// only the part not yet stored is kept.
    unstored: Vec<(bool, [u8; 96])>,
    /// Keys the datadir holds (`compressed[..stored]`).
    stored: usize,
    load: KeysLoad,
}

impl ResidentKeys {
    pub fn len(&self) -> usize {
        self.compressed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compressed.is_empty()
    }

    /// How the table was built at the last [`load`](Self::load) (plus what grew since).
    pub fn load_stats(&self) -> KeysLoad {
        self.load
    }

    /// Append `keys[self.len()..]`, each key parsed and KeyValidate'd once, in parallel.
    pub fn grow<K: Sync>(&mut self, keys: &[K], key: impl Fn(&K) -> [u8; 48] + Sync) {
        let from = self.len();
        if keys.len() <= from {
            return;
        }
        let fresh: Vec<([u8; 48], Option<blst::min_pk::PublicKey>)> = keys[from..]
            .par_iter()
            .map(|k| {
                let bytes = key(k);
                (bytes, parse_pubkey(&bytes).ok())
            })
            .collect();
        self.load.validated += fresh.len();
        for (i, (bytes, p)) in fresh.into_iter().enumerate() {
            match p {
                Some(p) => {
                    self.unstored.push((true, p.serialize()));
                    self.table.push(blst::blst_p1_affine::from(p));
                }
                None => {
                    // Never summed: a set naming it is refused before aggregation.
                    self.unusable.insert((from + i) as u32);
                    self.unstored.push((false, [0u8; 96]));
                    self.table.push(blst::blst_p1_affine::default());
                }
            }
            self.compressed.push(bytes);
        }
    }

    /// Whether a registry agrees with the table where both have keys (it always does on
    /// the head's chain; a fork may have appended different deposits).
    pub fn matches<K>(&self, keys: &[K], key: impl Fn(&K) -> &[u8; 48]) -> bool {
        keys.iter().zip(&self.compressed).all(|(v, k)| key(v) == k)
    }

    /// Build the table for a registry: the stored chunks as far as they are the
    /// registry's keys (checked, see the module docs), the rest KeyValidate'd. A table
    /// already built is replaced.
    pub fn load<K: Sync>(
        store: &Store,
        keys: &[K],
        key: impl Fn(&K) -> [u8; 48] + Sync,
    ) -> Result<Self, crate::store::StoreError> {
        let mut out = ResidentKeys::default();
        let mut points = Vec::new();
        for (k, v) in store.pubkey_chunks()? {
            let from = out.len();
            if from >= keys.len() {
                break;
            }
            let Some((start, entries)) = decode_chunk(&k, &v) else {
                out.load.refused_chunks += 1;
                continue;
            };
            if start < from {
                // Superseded: the table was written again from an earlier index.
                continue;
            }
            if start > from {
                break;
            }
            let end = (from + entries.len() / ENTRY).min(keys.len());
            let checked: Vec<Option<Option<blst::min_pk::PublicKey>>> = entries
                .par_chunks(ENTRY)
                .zip(&keys[from..end])
                .map(|(e, k)| check_entry(e, &key(k)))
                .collect();
            let good = checked.iter().take_while(|c| c.is_some()).count();
            for (i, c) in checked.into_iter().take(good).enumerate() {
                let bytes = key(&keys[from + i]);
                match c.flatten() {
                    Some(p) => points.push(blst::blst_p1_affine::from(p)),
                    None => {
                        out.unusable.insert((from + i) as u32);
                        points.push(blst::blst_p1_affine::default());
                    }
                }
                out.compressed.push(bytes);
            }
            if good < end - from {
                out.load.refused_chunks += 1;
                // Written again from here; a later chunk at this index supersedes it.
            }
        }
        out.table = PubkeyTable::new(points);
        out.stored = out.len();
        out.load.loaded = out.len();
        out.grow(keys, key);
        Ok(out)
    }

    /// Put the keys the datadir does not hold yet into `batch` (one chunk per
    /// [`CHUNK_KEYS`]); they count as stored once the batch commits (the caller commits
    /// it, or the next write repeats them: loading takes the last chunk written at an index).
    pub fn store_into(&mut self, batch: &mut StoreBatch<'_>) -> crate::store::Result<()> {
        let mut from = self.stored;
        for chunk in self.unstored.chunks(CHUNK_KEYS) {
            batch.put_pubkey_chunk(from as u32, &encode_chunk(from, chunk))?;
            from += chunk.len();
        }
        Ok(())
    }

    /// The batch from [`store_into`](Self::store_into) committed.
    pub fn stored_now(&mut self) {
        self.stored = self.len();
        self.unstored.clear();
    }

    /// Whether keys are waiting to be stored.
    pub fn has_unstored(&self) -> bool {
        !self.unstored.is_empty()
    }
}

fn encode_chunk(from: usize, entries: &[(bool, [u8; 96])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + entries.len() * ENTRY + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(from as u32).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (usable, point) in entries {
        out.push(u8::from(*usable));
        out.extend_from_slice(point);
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// A stored chunk's first index and entries, when its framing and checksum hold.
fn decode_chunk<'a>(key: &[u8], value: &'a [u8]) -> Option<(usize, &'a [u8])> {
    let key: [u8; 4] = key.try_into().ok()?;
    if value.len() < HEADER + 32 || &value[..4] != MAGIC {
        return None;
    }
    let from = u32::from_le_bytes(value[4..8].try_into().ok()?);
    let count = u32::from_le_bytes(value[8..12].try_into().ok()?) as usize;
    if from != u32::from_be_bytes(key)
        || count == 0
        || count > CHUNK_KEYS
        || value.len() != HEADER + count * ENTRY + 32
    {
        return None;
    }
    let (body, sum) = value.split_at(value.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    Some((from as usize, &body[HEADER..]))
}

/// A stored entry against the registry's key: `Some(Some(point))` usable, `Some(None)`
/// unusable (the key fails KeyValidate), `None` not the registry's key.
fn check_entry(entry: &[u8], key: &[u8; 48]) -> Option<Option<blst::min_pk::PublicKey>> {
    match entry[0] {
        1 => {
            // Infinity never passes KeyValidate.
            if key[0] & 0x40 != 0 {
                return None;
            }
            let p = blst::min_pk::PublicKey::deserialize(&entry[1..]).ok()?;
            (p.compress() == *key).then_some(Some(p))
        }
        0 => parse_pubkey(key).is_err().then_some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<[u8; 48]> {
        (0..n)
            .map(|i| {
                let sk = blst::min_pk::SecretKey::key_gen(&[i as u8 + 1; 32], &[]).unwrap();
                sk.sk_to_pk().compress()
            })
            .collect()
    }

    #[test]
    fn a_chunk_round_trips_and_any_flipped_byte_is_refused() {
        let k = keys(3);
        let mut rk = ResidentKeys::default();
        rk.grow(&k, |b| *b);
        let chunk = encode_chunk(0, &rk.unstored);
        let key = 0u32.to_be_bytes();
        let (from, entries) = decode_chunk(&key, &chunk).expect("decodes");
        assert_eq!((from, entries.len()), (0, 3 * ENTRY));
        for (e, key) in entries.chunks(ENTRY).zip(&k) {
            assert!(matches!(check_entry(e, key), Some(Some(_))));
        }
        for i in 0..chunk.len() {
            let mut bad = chunk.clone();
            bad[i] ^= 1;
            assert!(decode_chunk(&key, &bad).is_none(), "byte {i}");
        }
        assert!(decode_chunk(&key, &chunk[..chunk.len() - 1]).is_none());
        assert!(decode_chunk(&1u32.to_be_bytes(), &chunk).is_none());
        // Another key's point is not this key's.
        let e = &entries[..ENTRY];
        assert!(check_entry(e, &k[1]).is_none());
        // An invalid key marked unusable holds; a valid one marked unusable does not.
        let mut zero = vec![0u8; ENTRY];
        zero[0] = 0;
        assert!(matches!(check_entry(&zero, &[0xffu8; 48]), Some(None)));
        assert!(check_entry(&zero, &k[0]).is_none());
    }
}
