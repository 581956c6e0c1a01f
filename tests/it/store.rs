//! `quasar::store`: RocksDB schema, batched atomic writes, range reads, pruning.

use std::collections::HashSet;

use quasar::store::schema::{
    CF_BLOCKS, CF_BLOCK_SLOTS, CF_METADATA, CF_STATES, CF_STATE_SUMMARIES, COLUMN_FAMILIES,
    META_SCHEMA_VERSION,
};
use quasar::store::{
    Checkpoint, Head, Root, StateSummary, Store, StoreConfig, StoreError, SCHEMA_VERSION,
};

fn root(n: u64) -> Root {
    let mut r = [0u8; 32];
    r[..8].copy_from_slice(&n.to_le_bytes());
    r[31] = 0xAB;
    r
}

/// Bytes shaped like an SSZ `SignedBeaconBlock`: offset 100, a 96-byte signature, then a
/// message starting with the slot (u64 LE), then `body_len` bytes of filler.
fn fake_block(slot: u64, tag: u8, body_len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(108 + body_len);
    v.extend_from_slice(&100u32.to_le_bytes());
    v.extend_from_slice(&[tag; 96]);
    v.extend_from_slice(&slot.to_le_bytes());
    v.extend((0..body_len).map(|i| (i as u8) ^ tag));
    v
}

#[test]
fn store_round_trips_per_column_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.get_block(&root(1)).unwrap(), None);
    assert_eq!(store.head().unwrap(), None);

    let block = fake_block(7, 1, 1000);
    let state = vec![9u8; 5000];
    let summary = StateSummary {
        slot: 7,
        latest_block_root: root(1),
    };
    let head = Head {
        slot: 7,
        root: root(1),
    };
    let justified = Checkpoint {
        epoch: 3,
        root: root(2),
    };
    let finalized = Checkpoint {
        epoch: 2,
        root: root(3),
    };

    let mut b = store.batch();
    b.put_block(&root(1), &block).unwrap();
    b.put_state(&root(100), &state).unwrap();
    b.put_state_summary(&root(100), &summary).unwrap();
    b.put_block_root_at_slot(7, &root(1)).unwrap();
    b.put_head(&head).unwrap();
    b.put_justified(&justified).unwrap();
    b.put_finalized(&finalized).unwrap();
    b.put_metadata(b"custom", b"value").unwrap();
    // Nothing is visible before commit at the default 16 MiB threshold.
    assert_eq!(b.commits(), 0);
    assert_eq!(store.get_block(&root(1)).unwrap(), None);
    let stats = b.commit().unwrap();
    assert_eq!(stats.commits, 1);
    assert_eq!(stats.ops, 8);

    assert_eq!(store.get_block(&root(1)).unwrap(), Some(block));
    assert!(store.has_block(&root(1)).unwrap());
    assert!(!store.has_block(&root(2)).unwrap());
    assert_eq!(store.get_state(&root(100)).unwrap(), Some(state));
    assert_eq!(store.get_state_summary(&root(100)).unwrap(), Some(summary));
    assert_eq!(store.block_root_at_slot(7).unwrap(), Some(root(1)));
    assert_eq!(store.block_root_at_slot(8).unwrap(), None);
    assert_eq!(store.head().unwrap(), Some(head));
    assert_eq!(store.justified_checkpoint().unwrap(), Some(justified));
    assert_eq!(store.finalized_checkpoint().unwrap(), Some(finalized));
    assert_eq!(
        store.get_metadata(b"custom").unwrap().as_deref(),
        Some(&b"value"[..])
    );
    store.set_metadata(b"custom", b"other").unwrap();
    assert_eq!(
        store.get_metadata(b"custom").unwrap().as_deref(),
        Some(&b"other"[..])
    );

    // Deletes.
    let mut b = store.batch();
    b.delete_block(&root(1)).unwrap();
    b.delete_state(&root(100)).unwrap();
    b.delete_state_summary(&root(100)).unwrap();
    b.delete_block_root_at_slot(7).unwrap();
    b.commit().unwrap();
    assert_eq!(store.get_block(&root(1)).unwrap(), None);
    assert_eq!(store.get_state(&root(100)).unwrap(), None);
    assert_eq!(store.get_state_summary(&root(100)).unwrap(), None);
    assert_eq!(store.block_root_at_slot(7).unwrap(), None);
}

#[test]
fn grouped_batches_auto_commit_only_between_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig {
            batch_threshold_bytes: 1024,
        },
    )
    .unwrap();
    let mut b = store.batch().grouped();
    for group in 0..5u64 {
        // A group of three ops, each past the threshold: nothing written inside it.
        for k in 0..3 {
            let i = group * 3 + k;
            b.put_block(&root(i), &fake_block(i, i as u8, 2048))
                .unwrap();
            assert_eq!(b.commits() as u64, group, "inside group {group}");
        }
        assert_eq!(store.count(CF_BLOCKS).unwrap() as u64, group * 3);
        b.end_group().unwrap();
        // Written whole at the group's end.
        assert_eq!(b.commits() as u64, group + 1);
        assert_eq!(store.count(CF_BLOCKS).unwrap() as u64, (group + 1) * 3);
    }
    b.commit().unwrap();
    assert_eq!(store.count(CF_BLOCKS).unwrap(), 15);
}

#[test]
fn store_auto_commits_whole_batches_past_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig {
            batch_threshold_bytes: 64 * 1024,
        },
    )
    .unwrap();
    let mut b = store.batch();
    assert_eq!(b.threshold(), 64 * 1024);
    let n = 100u64; // 100 × ~10 KiB ≈ 1 MiB: ~15 auto-commits
    let mut last_commits = 0;
    for i in 0..n {
        b.put_block(&root(i), &fake_block(i, i as u8, 10 * 1024))
            .unwrap();
        b.put_block_root_at_slot(i, &root(i)).unwrap();
        // Visible data is exactly what the auto-commits wrote: whole batches.
        let visible_blocks = store.count(CF_BLOCKS).unwrap();
        let visible_slots = store.count(CF_BLOCK_SLOTS).unwrap();
        assert_eq!(
            visible_blocks + visible_slots,
            b.committed_ops(),
            "after put {i}"
        );
        assert_eq!(
            b.committed_ops() + b.pending_ops(),
            2 * (i as usize + 1),
            "after put {i}"
        );
        assert!(b.pending_bytes() < 64 * 1024 + 11 * 1024);
        if b.commits() > last_commits {
            // A commit happened at one of this step's two ops: at most the second
            // (the small block_slots put) is pending.
            assert!(b.pending_ops() <= 1);
            last_commits = b.commits();
        }
    }
    assert!(b.commits() >= 10, "{} auto-commits", b.commits());
    // Data is visible before commit().
    assert!(store.get_block(&root(0)).unwrap().is_some());
    let stats = b.commit().unwrap();
    assert_eq!(stats.ops, 2 * n as usize);
    assert_eq!(store.count(CF_BLOCKS).unwrap(), n as usize);
    assert_eq!(store.count(CF_BLOCK_SLOTS).unwrap(), n as usize);
}

#[test]
fn store_dropped_batch_writes_nothing_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    {
        let mut b = store.batch();
        for i in 0..50 {
            b.put_block(&root(i), &fake_block(i, 1, 100)).unwrap();
            b.put_state_summary(
                &root(1000 + i),
                &StateSummary {
                    slot: i,
                    latest_block_root: root(i),
                },
            )
            .unwrap();
        }
        b.put_head(&Head {
            slot: 49,
            root: root(49),
        })
        .unwrap();
        // dropped here without commit
    }
    for cf in [CF_BLOCKS, CF_STATE_SUMMARIES, CF_BLOCK_SLOTS, CF_STATES] {
        assert_eq!(store.count(cf).unwrap(), 0, "{cf}");
    }
    assert_eq!(store.head().unwrap(), None);

    // With auto-commits: the committed prefix stays, the uncommitted tail is gone.
    let committed;
    {
        let mut b = store.batch_with_threshold(16 * 1024);
        for i in 0..40 {
            b.put_block(&root(i), &fake_block(i, 2, 1024)).unwrap();
        }
        assert!(b.commits() > 0);
        assert!(b.pending_ops() > 0);
        committed = b.committed_ops();
    }
    assert_eq!(store.count(CF_BLOCKS).unwrap(), committed);
    for i in 0..40u64 {
        assert_eq!(
            store.has_block(&root(i)).unwrap(),
            (i as usize) < committed,
            "block {i}"
        );
    }
}

#[test]
fn store_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut b = store.batch().with_sync(true);
        for i in 0..20 {
            b.put_block(&root(i), &fake_block(i, 3, 500)).unwrap();
            b.put_block_root_at_slot(i, &root(i)).unwrap();
            b.put_state(&root(500 + i), &[i as u8; 300]).unwrap();
            b.put_state_summary(
                &root(500 + i),
                &StateSummary {
                    slot: i,
                    latest_block_root: root(i),
                },
            )
            .unwrap();
        }
        b.put_finalized(&Checkpoint {
            epoch: 1,
            root: root(8),
        })
        .unwrap();
        b.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    for i in 0..20u64 {
        assert_eq!(
            store.get_block(&root(i)).unwrap(),
            Some(fake_block(i, 3, 500))
        );
        assert_eq!(store.block_root_at_slot(i).unwrap(), Some(root(i)));
        assert_eq!(
            store.get_state(&root(500 + i)).unwrap(),
            Some(vec![i as u8; 300])
        );
        assert_eq!(
            store.get_state_summary(&root(500 + i)).unwrap(),
            Some(StateSummary {
                slot: i,
                latest_block_root: root(i)
            })
        );
    }
    assert_eq!(
        store.finalized_checkpoint().unwrap(),
        Some(Checkpoint {
            epoch: 1,
            root: root(8)
        })
    );
}

fn raw_db(path: &std::path::Path) -> rocksdb::DB {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    rocksdb::DB::open_cf(&opts, path, COLUMN_FAMILIES).unwrap()
}

#[test]
fn store_refuses_unknown_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle(CF_METADATA).unwrap();
        db.put_cf(meta, META_SCHEMA_VERSION, 99u64.to_be_bytes())
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    match &err {
        StoreError::Schema { found, expected } => {
            assert_eq!(*found, 99);
            assert_eq!(*expected, SCHEMA_VERSION);
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(err.to_string().contains("schema version 99"), "{err}");

    // A version that is not 8 bytes is corrupt, not a panic.
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle(CF_METADATA).unwrap();
        db.put_cf(meta, META_SCHEMA_VERSION, b"v1").unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()).unwrap_err(),
        StoreError::Corrupt { .. }
    ));
}

#[test]
fn store_corrupt_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let db = raw_db(dir.path());
        db.put_cf(db.cf_handle(CF_STATE_SUMMARIES).unwrap(), root(1), b"short")
            .unwrap();
        db.put_cf(
            db.cf_handle(CF_BLOCK_SLOTS).unwrap(),
            5u64.to_be_bytes(),
            b"x",
        )
        .unwrap();
        db.put_cf(db.cf_handle(CF_METADATA).unwrap(), b"head", [0u8; 39])
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.get_state_summary(&root(1)),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.block_root_at_slot(5),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(store.head(), Err(StoreError::Corrupt { .. })));
    let items: Vec<_> = store.block_roots_in_range(0, 10).unwrap().collect();
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(StoreError::Corrupt { .. })));
}

#[test]
fn store_iterates_slot_ranges_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut b = store.batch();
    // Inserted out of order, with gaps, and spanning a byte boundary (255/256) where
    // little-endian keys would sort wrong.
    let slots: Vec<u64> = vec![300, 3, 256, 255, 1, 70000, 2, 511, 512, 100];
    for &s in &slots {
        b.put_block_root_at_slot(s, &root(s)).unwrap();
    }
    b.commit().unwrap();

    let got: Vec<(u64, Root)> = store
        .block_roots_in_range(0, u64::MAX)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut want = slots.clone();
    want.sort();
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), want);
    assert!(got.iter().all(|(s, r)| *r == root(*s)));

    let mid: Vec<u64> = store
        .block_roots_in_range(3, 512)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(mid, vec![3, 100, 255, 256, 300, 511]);
    assert_eq!(store.block_roots_in_range(513, 70000).unwrap().count(), 0);
    assert_eq!(store.block_roots_in_range(10, 10).unwrap().count(), 0);
}

#[test]
fn store_prunes_exactly_non_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Canonical chain: roots 0..20 at slots 0..20. Forks: roots 1000+s at slots s for
    // s in {3, 7, 12, 15, 18}. Finalized slot: 12.
    let finalized_slot = 12;
    let forks = [3u64, 7, 12, 15, 18];
    let mut b = store.batch();
    for s in 0..20u64 {
        b.put_block(&root(s), &fake_block(s, 0, 64)).unwrap();
        b.put_block_root_at_slot(s, &root(s)).unwrap();
        b.put_state_summary(
            &root(5000 + s),
            &StateSummary {
                slot: s,
                latest_block_root: root(s),
            },
        )
        .unwrap();
        if s % 4 == 0 {
            b.put_state(&root(5000 + s), &[1u8; 50]).unwrap();
        }
    }
    for &s in &forks {
        b.put_block(&root(1000 + s), &fake_block(s, 9, 64)).unwrap();
        b.put_state_summary(
            &root(6000 + s),
            &StateSummary {
                slot: s,
                latest_block_root: root(1000 + s),
            },
        )
        .unwrap();
        b.put_state(&root(6000 + s), &[2u8; 50]).unwrap();
    }
    // A stale block_slots entry pointing at a fork block below finality.
    b.put_block_root_at_slot(3, &root(1003)).unwrap();
    b.commit().unwrap();

    let canonical: HashSet<Root> = (0..20u64).map(root).collect();
    let stats = store
        .prune_non_canonical(&canonical, finalized_slot)
        .unwrap();
    assert_eq!(stats.blocks, 2); // forks at 3 and 7
    assert_eq!(stats.summaries, 2);
    assert_eq!(stats.states, 2);
    assert_eq!(stats.block_slots, 1); // slot 3's stale entry

    for s in 0..20u64 {
        assert!(store.has_block(&root(s)).unwrap(), "canonical block {s}");
        assert!(store.get_state_summary(&root(5000 + s)).unwrap().is_some());
        assert_eq!(
            store.get_state(&root(5000 + s)).unwrap().is_some(),
            s % 4 == 0
        );
    }
    for &s in &forks {
        let kept = s >= finalized_slot;
        assert_eq!(store.has_block(&root(1000 + s)).unwrap(), kept, "fork {s}");
        assert_eq!(
            store.get_state_summary(&root(6000 + s)).unwrap().is_some(),
            kept
        );
        assert_eq!(store.get_state(&root(6000 + s)).unwrap().is_some(), kept);
    }
    assert_eq!(store.block_root_at_slot(3).unwrap(), None);
    assert_eq!(store.block_root_at_slot(7).unwrap(), Some(root(7)));
    assert_eq!(store.count(CF_BLOCKS).unwrap(), 20 + 3);
    assert_eq!(store.count(CF_STATES).unwrap(), 5 + 3);

    // Pruning again deletes nothing.
    let again = store
        .prune_non_canonical(&canonical, finalized_slot)
        .unwrap();
    assert_eq!(again, Default::default());
}
