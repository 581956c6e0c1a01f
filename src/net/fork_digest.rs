//! Fork versions and fork digests on the wire (`specs/*/p2p-interface.md`,
//! `specs/fulu/beacon-chain.md`): `compute_fork_version`, Fulu's `compute_fork_digest`
//! (which mixes the blob parameters of `BLOB_SCHEDULE` into the digest, EIP-7892), the
//! `ENRForkID` of the ENR's `eth2` entry, and [`ForkDigests`], every digest a chain
//! schedules, so that the context bytes of a response chunk (or a gossip topic's
//! digest) map back to the fork they name.
//!
//! The expected values in the tests come from the consensus-specs executable spec
//! (`scripts/fork_digest_oracle.py`, `eth-consensus-specs==1.7.0a13`).

use crate::ssz_container;
use crate::transition::ChainConfig;
use crate::types::primitives::{Epoch, ForkDigest, Version};
use sha2::{Digest, Sha256};
use std::fmt;

/// `FAR_FUTURE_EPOCH`: a fork at this epoch is not scheduled.
pub const FAR_FUTURE_EPOCH: Epoch = u64::MAX;
/// `GENESIS_EPOCH`.
pub const GENESIS_EPOCH: Epoch = 0;

/// The regular (fork-version-changing) forks through Fulu, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForkName {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
}

impl ForkName {
    /// Every fork, oldest first.
    pub const ALL: [ForkName; 7] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
    ];

    /// The spec's lower-case name (`phase0`, `altair`, …).
    pub fn name(self) -> &'static str {
        match self {
            ForkName::Phase0 => "phase0",
            ForkName::Altair => "altair",
            ForkName::Bellatrix => "bellatrix",
            ForkName::Capella => "capella",
            ForkName::Deneb => "deneb",
            ForkName::Electra => "electra",
            ForkName::Fulu => "fulu",
        }
    }

    /// The fork's activation epoch in `cfg` (`GENESIS_EPOCH` for phase0).
    pub fn fork_epoch(self, cfg: &ChainConfig) -> Epoch {
        match self {
            ForkName::Phase0 => GENESIS_EPOCH,
            ForkName::Altair => cfg.altair_fork_epoch,
            ForkName::Bellatrix => cfg.bellatrix_fork_epoch,
            ForkName::Capella => cfg.capella_fork_epoch,
            ForkName::Deneb => cfg.deneb_fork_epoch,
            ForkName::Electra => cfg.electra_fork_epoch,
            ForkName::Fulu => cfg.fulu_fork_epoch,
        }
    }

    /// The fork's version in `cfg`.
    pub fn fork_version(self, cfg: &ChainConfig) -> [u8; 4] {
        match self {
            ForkName::Phase0 => cfg.genesis_fork_version,
            ForkName::Altair => cfg.altair_fork_version,
            ForkName::Bellatrix => cfg.bellatrix_fork_version,
            ForkName::Capella => cfg.capella_fork_version,
            ForkName::Deneb => cfg.deneb_fork_version,
            ForkName::Electra => cfg.electra_fork_version,
            ForkName::Fulu => cfg.fulu_fork_version,
        }
    }
}

impl fmt::Display for ForkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fork in force at `epoch`: the spec's `compute_fork_version` chain of `if`s
/// (Fulu's), newest fork first.
pub fn compute_fork_at_epoch(epoch: Epoch, cfg: &ChainConfig) -> ForkName {
    ForkName::ALL
        .iter()
        .rev()
        .copied()
        .find(|f| epoch >= f.fork_epoch(cfg))
        .unwrap_or(ForkName::Phase0)
}

/// `compute_fork_version(epoch)` (Fulu).
pub fn compute_fork_version(epoch: Epoch, cfg: &ChainConfig) -> [u8; 4] {
    compute_fork_at_epoch(epoch, cfg).fork_version(cfg)
}

/// `BlobParameters` (Fulu).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobParameters {
    pub epoch: Epoch,
    pub max_blobs_per_block: u64,
}

/// `get_blob_parameters(epoch)` (Fulu): the `BLOB_SCHEDULE` entry with the largest
/// epoch at or before `epoch`, else Electra's (`ELECTRA_FORK_EPOCH`,
/// `MAX_BLOBS_PER_BLOCK_ELECTRA`).
pub fn get_blob_parameters(epoch: Epoch, cfg: &ChainConfig) -> BlobParameters {
    cfg.blob_schedule
        .iter()
        .filter(|e| epoch >= e.epoch)
        .max_by_key(|e| e.epoch)
        .map(|e| BlobParameters {
            epoch: e.epoch,
            max_blobs_per_block: e.max_blobs_per_block,
        })
        .unwrap_or(BlobParameters {
            epoch: cfg.electra_fork_epoch,
            max_blobs_per_block: cfg.max_blobs_per_block_electra,
        })
}

/// `compute_fork_data_root(current_version, genesis_validators_root)`: the hash tree
/// root of `ForkData`, a two-chunk container (the version padded to 32 bytes, the root).
fn fork_data_root(version: [u8; 4], genesis_validators_root: &[u8; 32]) -> [u8; 32] {
    let mut chunk = [0u8; 32];
    chunk[..4].copy_from_slice(&version);
    let mut h = Sha256::new();
    h.update(chunk);
    h.update(genesis_validators_root);
    h.finalize().into()
}

/// `compute_fork_digest(genesis_validators_root, epoch)` as modified in Fulu: the first
/// four bytes of the fork data root, XORed from `FULU_FORK_EPOCH` on with
/// `hash(uint_to_bytes(blob_parameters.epoch) + uint_to_bytes(max_blobs_per_block))`.
pub fn compute_fork_digest(
    genesis_validators_root: &[u8; 32],
    epoch: Epoch,
    cfg: &ChainConfig,
) -> [u8; 4] {
    let base = fork_data_root(compute_fork_version(epoch, cfg), genesis_validators_root);
    let mut digest = [0u8; 4];
    digest.copy_from_slice(&base[..4]);
    if epoch < cfg.fulu_fork_epoch {
        return digest;
    }
    let params = get_blob_parameters(epoch, cfg);
    let mut h = Sha256::new();
    h.update(params.epoch.to_le_bytes());
    h.update(params.max_blobs_per_block.to_le_bytes());
    let mask: [u8; 32] = h.finalize().into();
    for (d, m) in digest.iter_mut().zip(mask) {
        *d ^= m;
    }
    digest
}

ssz_container! {
    /// The value of the ENR's `eth2` entry (phase0 `ENRForkID`, values per Fulu).
    pub struct ENRForkID {
        pub fork_digest: ForkDigest,
        pub next_fork_version: Version,
        pub next_fork_epoch: Epoch,
    }
}

/// One digest a chain schedules: in force from `epoch` until the next entry's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForkDigestEntry {
    /// The first epoch of this digest.
    pub epoch: Epoch,
    /// The regular fork in force (its SSZ types are the chunks' types).
    pub fork: ForkName,
    pub fork_version: [u8; 4],
    /// The blob parameters mixed into the digest (Fulu and later), `None` before Fulu.
    pub blob_parameters: Option<BlobParameters>,
    pub digest: [u8; 4],
}

/// Every fork digest of a chain (regular forks and, from Fulu on, Blob-Parameters-Only
/// forks), ascending by epoch. Forks at `FAR_FUTURE_EPOCH` are not scheduled and have
/// no entry; forks that share an activation epoch have one entry (the newest fork's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkDigests {
    genesis_validators_root: [u8; 32],
    entries: Vec<ForkDigestEntry>,
}

impl ForkDigests {
    /// The digests `cfg` schedules for the chain of `genesis_validators_root`.
    pub fn new(genesis_validators_root: [u8; 32], cfg: &ChainConfig) -> Self {
        let mut epochs: Vec<Epoch> = ForkName::ALL.iter().map(|f| f.fork_epoch(cfg)).collect();
        if cfg.fulu_fork_epoch != FAR_FUTURE_EPOCH {
            // Blob-parameter changes before Fulu do not change a digest.
            epochs.extend(
                cfg.blob_schedule
                    .iter()
                    .map(|e| e.epoch)
                    .filter(|&e| e >= cfg.fulu_fork_epoch),
            );
        }
        epochs.retain(|&e| e != FAR_FUTURE_EPOCH);
        epochs.sort_unstable();
        epochs.dedup();
        let entries = epochs
            .into_iter()
            .map(|epoch| {
                let fork = compute_fork_at_epoch(epoch, cfg);
                ForkDigestEntry {
                    epoch,
                    fork,
                    fork_version: fork.fork_version(cfg),
                    blob_parameters: (epoch >= cfg.fulu_fork_epoch)
                        .then(|| get_blob_parameters(epoch, cfg)),
                    digest: compute_fork_digest(&genesis_validators_root, epoch, cfg),
                }
            })
            .collect();
        ForkDigests {
            genesis_validators_root,
            entries,
        }
    }

    pub fn genesis_validators_root(&self) -> &[u8; 32] {
        &self.genesis_validators_root
    }

    /// The entries, ascending by epoch; the first is at `GENESIS_EPOCH`.
    pub fn entries(&self) -> &[ForkDigestEntry] {
        &self.entries
    }

    /// The entry in force at `epoch`.
    pub fn at_epoch(&self, epoch: Epoch) -> &ForkDigestEntry {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        // The first entry is at epoch 0, so `i >= 1`.
        &self.entries[i.saturating_sub(1)]
    }

    /// `compute_fork_digest(genesis_validators_root, epoch)`.
    pub fn digest_at_epoch(&self, epoch: Epoch) -> [u8; 4] {
        self.at_epoch(epoch).digest
    }

    /// The entry whose digest is `digest` (the earliest, should two coincide), or `None`
    /// for a digest this chain never uses: context bytes → fork.
    pub fn by_digest(&self, digest: [u8; 4]) -> Option<&ForkDigestEntry> {
        self.entries.iter().find(|e| e.digest == digest)
    }

    /// The fork whose types a chunk with context bytes `digest` carries.
    pub fn fork_of_digest(&self, digest: [u8; 4]) -> Option<ForkName> {
        self.by_digest(digest).map(|e| e.fork)
    }

    /// The next scheduled entry after `epoch` (regular or BPO fork), if any.
    pub fn next_after(&self, epoch: Epoch) -> Option<&ForkDigestEntry> {
        self.entries.iter().find(|e| e.epoch > epoch)
    }

    /// The ENR `nfd` entry at `epoch`: the next scheduled digest, zero if none.
    pub fn next_fork_digest(&self, epoch: Epoch) -> [u8; 4] {
        self.next_after(epoch).map(|e| e.digest).unwrap_or([0; 4])
    }

    /// The ENR `eth2` entry at `epoch` (Fulu rules): the current digest; the next fork's
    /// epoch, regular or BPO (`FAR_FUTURE_EPOCH` if none); the fork version in force at
    /// that epoch (a BPO fork keeps the current version; none scheduled: the current).
    pub fn enr_fork_id(&self, epoch: Epoch) -> ENRForkID {
        let current = self.at_epoch(epoch);
        let (next_fork_version, next_fork_epoch) = match self.next_after(epoch) {
            Some(next) => (next.fork_version, next.epoch),
            None => (current.fork_version, FAR_FUTURE_EPOCH),
        };
        ENRForkID {
            fork_digest: current.digest.into(),
            next_fork_version: next_fork_version.into(),
            next_fork_epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transition::config::{MAINNET_YAML, MINIMAL_YAML};
    use crate::transition::minimal::helpers::compute_fork_data_root;
    use crate::types::primitives::Root;
    use crate::types::ssz::{ssz_encode, SszDecode};

    const MAINNET_GVR: &str = "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

    fn hex4(s: &str) -> [u8; 4] {
        let mut out = [0u8; 4];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn test_gvr() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    /// The minimal YAML with `KEY: value` lines replaced.
    fn minimal_with(overrides: &[(&str, &str)]) -> ChainConfig {
        let text: Vec<String> = MINIMAL_YAML
            .lines()
            .map(|l| {
                for (k, v) in overrides {
                    if l.starts_with(&format!("{k}:")) {
                        return format!("{k}: {v}");
                    }
                }
                l.to_string()
            })
            .collect();
        ChainConfig::from_yaml(&text.join("\n")).unwrap()
    }

    /// `minimal_scheduled` of `scripts/fork_digest_oracle.py`.
    fn minimal_scheduled() -> ChainConfig {
        minimal_with(&[
            ("ALTAIR_FORK_EPOCH", "1"),
            ("BELLATRIX_FORK_EPOCH", "2"),
            ("CAPELLA_FORK_EPOCH", "3"),
            ("DENEB_FORK_EPOCH", "4"),
            ("ELECTRA_FORK_EPOCH", "5"),
            ("FULU_FORK_EPOCH", "6"),
            (
                "BLOB_SCHEDULE",
                "[{EPOCH: 5, MAX_BLOBS_PER_BLOCK: 10}, {EPOCH: 8, MAX_BLOBS_PER_BLOCK: 12}, \
                 {EPOCH: 10, MAX_BLOBS_PER_BLOCK: 14}]",
            ),
        ])
    }

    /// `minimal_genesis` of the oracle: every fork at genesis, BPO forks at 0 and 3.
    fn minimal_genesis() -> ChainConfig {
        minimal_with(&[
            ("ALTAIR_FORK_EPOCH", "0"),
            ("BELLATRIX_FORK_EPOCH", "0"),
            ("CAPELLA_FORK_EPOCH", "0"),
            ("DENEB_FORK_EPOCH", "0"),
            ("ELECTRA_FORK_EPOCH", "0"),
            ("FULU_FORK_EPOCH", "0"),
            (
                "BLOB_SCHEDULE",
                "[{EPOCH: 3, MAX_BLOBS_PER_BLOCK: 21}, {EPOCH: 0, MAX_BLOBS_PER_BLOCK: 9}]",
            ),
        ])
    }

    fn minimal_no_schedule() -> ChainConfig {
        minimal_with(&[("ELECTRA_FORK_EPOCH", "0"), ("FULU_FORK_EPOCH", "0")])
    }

    /// Output of `scripts/fork_digest_oracle.py` (eth-consensus-specs 1.7.0a13).
    const ORACLE: &[(&str, u64, &str)] = &[
        ("mainnet", 0, "b5303f2a"),
        ("mainnet", 74239, "b5303f2a"),
        ("mainnet", 74240, "afcaaba0"),
        ("mainnet", 144895, "afcaaba0"),
        ("mainnet", 144896, "4a26c58b"),
        ("mainnet", 194048, "bba4da96"),
        ("mainnet", 269568, "6a95a1a9"),
        ("mainnet", 364031, "6a95a1a9"),
        ("mainnet", 364032, "ad532ceb"),
        ("mainnet", 411391, "ad532ceb"),
        ("mainnet", 411392, "cc2c5cdb"),
        ("mainnet", 412671, "cc2c5cdb"),
        ("mainnet", 412672, "cb0d1acc"),
        ("mainnet", 419071, "cb0d1acc"),
        ("mainnet", 419072, "8c9f62fe"),
        ("mainnet", 18446744073709551615, "8c9f62fe"),
        ("mainnet_zero_root", 0, "f5a5fd42"),
        ("mainnet_zero_root", 411392, "4ba67af9"),
        ("mainnet_zero_root", 18446744073709551615, "0b1544dc"),
        ("minimal", 0, "88f26a98"),
        ("minimal", 1000, "88f26a98"),
        ("minimal", 18446744073709551614, "88f26a98"),
        ("minimal", 18446744073709551615, "67081988"),
        ("minimal_scheduled", 0, "88f26a98"),
        ("minimal_scheduled", 1, "2223cbd8"),
        ("minimal_scheduled", 2, "103f1fda"),
        ("minimal_scheduled", 3, "b26cf0ba"),
        ("minimal_scheduled", 4, "51c5f3c2"),
        ("minimal_scheduled", 5, "04f9d2f7"),
        ("minimal_scheduled", 6, "edc83bb9"),
        ("minimal_scheduled", 7, "edc83bb9"),
        ("minimal_scheduled", 8, "c27edd67"),
        ("minimal_scheduled", 9, "c27edd67"),
        ("minimal_scheduled", 10, "bcfce0de"),
        ("minimal_scheduled", 11, "bcfce0de"),
        ("minimal_scheduled", 18446744073709551615, "bcfce0de"),
        ("minimal_genesis", 0, "55c9d7d5"),
        ("minimal_genesis", 2, "55c9d7d5"),
        ("minimal_genesis", 3, "c3085f21"),
        ("minimal_genesis", 18446744073709551615, "c3085f21"),
        ("minimal_no_schedule", 0, "55c9d7d5"),
        ("minimal_no_schedule", 5, "55c9d7d5"),
    ];

    fn case(name: &str) -> (ChainConfig, [u8; 32]) {
        match name {
            "mainnet" => (ChainConfig::mainnet(), hex32(MAINNET_GVR)),
            "mainnet_zero_root" => (ChainConfig::mainnet(), [0; 32]),
            "minimal" => (ChainConfig::minimal(), test_gvr()),
            "minimal_scheduled" => (minimal_scheduled(), test_gvr()),
            "minimal_genesis" => (minimal_genesis(), test_gvr()),
            "minimal_no_schedule" => (minimal_no_schedule(), test_gvr()),
            other => panic!("unknown case {other}"),
        }
    }

    #[test]
    fn compute_fork_digest_matches_the_executable_spec() {
        for &(name, epoch, want) in ORACLE {
            let (cfg, gvr) = case(name);
            assert_eq!(
                compute_fork_digest(&gvr, epoch, &cfg),
                hex4(want),
                "{name} at epoch {epoch}"
            );
            // The table agrees with the function everywhere the oracle looked, except at
            // FAR_FUTURE_EPOCH itself, where the spec's function "activates" forks the
            // table does not schedule.
            let all_scheduled = ForkName::ALL
                .iter()
                .all(|f| f.fork_epoch(&cfg) != FAR_FUTURE_EPOCH);
            if epoch == FAR_FUTURE_EPOCH && !all_scheduled {
                continue;
            }
            assert_eq!(
                ForkDigests::new(gvr, &cfg).digest_at_epoch(epoch),
                hex4(want),
                "ForkDigests {name} at epoch {epoch}"
            );
        }
    }

    #[test]
    fn fork_data_root_is_the_transitions() {
        for version in [[0, 0, 0, 0], [6, 0, 0, 1], [0xff; 4]] {
            for gvr in [[0u8; 32], test_gvr(), hex32(MAINNET_GVR)] {
                let want =
                    compute_fork_data_root(&Version::from(version), &Root::from(gvr)).unwrap();
                assert_eq!(fork_data_root(version, &gvr), want);
            }
        }
    }

    #[test]
    fn fork_version_follows_the_schedule() {
        let cfg = ChainConfig::mainnet();
        assert_eq!(compute_fork_version(0, &cfg), [0, 0, 0, 0]);
        assert_eq!(compute_fork_version(74_239, &cfg), [0, 0, 0, 0]);
        assert_eq!(compute_fork_version(74_240, &cfg), [1, 0, 0, 0]);
        assert_eq!(compute_fork_version(364_032, &cfg), [5, 0, 0, 0]);
        assert_eq!(compute_fork_version(411_392, &cfg), [6, 0, 0, 0]);
        assert_eq!(compute_fork_at_epoch(411_391, &cfg), ForkName::Electra);
        // Nothing scheduled in minimal: genesis until the far future, where Fulu's
        // `if epoch >= FULU_FORK_EPOCH` holds.
        let cfg = ChainConfig::minimal();
        assert_eq!(compute_fork_version(12345, &cfg), [0, 0, 0, 1]);
        assert_eq!(compute_fork_version(FAR_FUTURE_EPOCH, &cfg), [6, 0, 0, 1]);
        let cfg = minimal_scheduled();
        for (epoch, fork) in ForkName::ALL.iter().enumerate() {
            assert_eq!(compute_fork_at_epoch(epoch as u64, &cfg), *fork);
        }
    }

    #[test]
    fn blob_parameters_follow_the_schedule() {
        let cfg = minimal_scheduled();
        let p = |epoch| get_blob_parameters(epoch, &cfg);
        // Before the first entry: Electra's parameters.
        assert_eq!(
            p(4),
            BlobParameters {
                epoch: 5,
                max_blobs_per_block: 9
            }
        );
        assert_eq!(p(7).max_blobs_per_block, 10);
        assert_eq!(p(7).epoch, 5);
        assert_eq!(p(9).epoch, 8);
        assert_eq!(p(u64::MAX).max_blobs_per_block, 14);
        for epoch in [0, 5, 8, 100] {
            assert_eq!(p(epoch).max_blobs_per_block, cfg.max_blobs_per_block(epoch));
        }
    }

    #[test]
    fn fork_digests_list_every_scheduled_fork() {
        let gvr = hex32(MAINNET_GVR);
        let digests = ForkDigests::new(gvr, &ChainConfig::mainnet());
        let got: Vec<(u64, ForkName, [u8; 4])> = digests
            .entries()
            .iter()
            .map(|e| (e.epoch, e.fork, e.digest))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, ForkName::Phase0, hex4("b5303f2a")),
                (74_240, ForkName::Altair, hex4("afcaaba0")),
                (144_896, ForkName::Bellatrix, hex4("4a26c58b")),
                (194_048, ForkName::Capella, hex4("bba4da96")),
                (269_568, ForkName::Deneb, hex4("6a95a1a9")),
                (364_032, ForkName::Electra, hex4("ad532ceb")),
                (411_392, ForkName::Fulu, hex4("cc2c5cdb")),
                (412_672, ForkName::Fulu, hex4("cb0d1acc")),
                (419_072, ForkName::Fulu, hex4("8c9f62fe")),
            ]
        );
        assert_eq!(digests.entries()[5].blob_parameters, None);
        assert_eq!(
            digests.entries()[6].blob_parameters,
            Some(BlobParameters {
                epoch: 364_032,
                max_blobs_per_block: 9
            })
        );
        assert_eq!(
            digests.fork_of_digest(hex4("cb0d1acc")),
            Some(ForkName::Fulu)
        );
        assert_eq!(
            digests.fork_of_digest(hex4("6a95a1a9")),
            Some(ForkName::Deneb)
        );
        assert_eq!(digests.by_digest(hex4("deadbeef")), None);
        // Another chain's digests are unknown here.
        assert_eq!(digests.by_digest(hex4("4ba67af9")), None);
        assert_eq!(digests.at_epoch(412_671).epoch, 411_392);
        assert_eq!(digests.at_epoch(u64::MAX).epoch, 419_072);

        // Nothing scheduled: one entry.
        let minimal = ForkDigests::new(test_gvr(), &ChainConfig::minimal());
        assert_eq!(minimal.entries().len(), 1);
        assert_eq!(minimal.entries()[0].digest, hex4("88f26a98"));
        assert_eq!(minimal.next_after(0), None);

        // Forks sharing an epoch: one entry, the newest fork's; a pre-Fulu BPO entry
        // (epoch 5) adds no entry, it only feeds Fulu's digest.
        let scheduled = ForkDigests::new(test_gvr(), &minimal_scheduled());
        let epochs: Vec<u64> = scheduled.entries().iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, vec![0, 1, 2, 3, 4, 5, 6, 8, 10]);
        let genesis = ForkDigests::new(test_gvr(), &minimal_genesis());
        let got: Vec<(u64, ForkName)> = genesis
            .entries()
            .iter()
            .map(|e| (e.epoch, e.fork))
            .collect();
        assert_eq!(got, vec![(0, ForkName::Fulu), (3, ForkName::Fulu)]);
    }

    #[test]
    fn enr_fork_id_per_fulu() {
        let digests = ForkDigests::new(test_gvr(), &minimal_scheduled());
        // Before a regular fork: the next fork's version and epoch.
        let id = digests.enr_fork_id(4);
        assert_eq!(id.fork_digest, hex4("51c5f3c2").into());
        assert_eq!(id.next_fork_version, [5, 0, 0, 1].into());
        assert_eq!(id.next_fork_epoch, 5);
        // Before a BPO fork: its epoch, the version unchanged.
        let id = digests.enr_fork_id(6);
        assert_eq!(id.fork_digest, hex4("edc83bb9").into());
        assert_eq!(id.next_fork_version, [6, 0, 0, 1].into());
        assert_eq!(id.next_fork_epoch, 8);
        assert_eq!(digests.next_fork_digest(6), hex4("c27edd67"));
        // Nothing further: the current version and FAR_FUTURE_EPOCH; `nfd` zero.
        let id = digests.enr_fork_id(10);
        assert_eq!(id.next_fork_version, [6, 0, 0, 1].into());
        assert_eq!(id.next_fork_epoch, FAR_FUTURE_EPOCH);
        assert_eq!(digests.next_fork_digest(10), [0; 4]);

        // 16 bytes of SSZ; the bootnode value of phase0's note.
        let minimal = ForkDigests::new([0; 32], &ChainConfig::minimal());
        let id = minimal.enr_fork_id(GENESIS_EPOCH);
        assert_eq!(
            id,
            ENRForkID {
                fork_digest: compute_fork_digest(&[0; 32], 0, &ChainConfig::minimal()).into(),
                next_fork_version: [0, 0, 0, 1].into(),
                next_fork_epoch: FAR_FUTURE_EPOCH,
            }
        );
        let bytes = ssz_encode(&id).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 1]);
        assert_eq!(&bytes[8..], &[0xff; 8]);
        assert_eq!(ENRForkID::ssz_decode(&bytes).unwrap(), id);
        assert!(ENRForkID::ssz_decode(&bytes[..15]).is_err());
    }

    #[test]
    fn builtin_yaml_fork_epochs_parse() {
        let cfg = ChainConfig::from_yaml(MAINNET_YAML).unwrap();
        assert_eq!(cfg.fulu_fork_epoch, 411_392);
        assert_eq!(cfg.deneb_fork_version, [4, 0, 0, 0]);
    }
}
