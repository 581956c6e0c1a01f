//! `ChainConfig::from_yaml` over the consensus-specs config format, and the built-in
//! `mainnet`/`minimal` configs (embedded `configs/*.yaml`).

use quasar::transition::config::{ConfigError, MAINNET_YAML, MINIMAL_YAML};
use quasar::transition::{BlobScheduleEntry, ChainConfig};

/// The values the transition used when the configs were hard-coded (v1.7.0-alpha.13).
fn expected_minimal() -> ChainConfig {
    ChainConfig {
        genesis_fork_version: [0, 0, 0, 1],
        altair_fork_version: [1, 0, 0, 1],
        altair_fork_epoch: u64::MAX,
        bellatrix_fork_version: [2, 0, 0, 1],
        bellatrix_fork_epoch: u64::MAX,
        capella_fork_version: [3, 0, 0, 1],
        capella_fork_epoch: u64::MAX,
        deneb_fork_version: [4, 0, 0, 1],
        deneb_fork_epoch: u64::MAX,
        electra_fork_version: [5, 0, 0, 1],
        fulu_fork_version: [6, 0, 0, 1],
        fulu_fork_epoch: u64::MAX,
        slot_duration_ms: 6000,
        min_validator_withdrawability_delay: 256,
        shard_committee_period: 64,
        ejection_balance: 16_000_000_000,
        churn_limit_quotient: 32,
        inactivity_score_bias: 4,
        inactivity_score_recovery_rate: 16,
        min_per_epoch_churn_limit_electra: 64_000_000_000,
        max_per_epoch_activation_exit_churn_limit: 128_000_000_000,
        electra_fork_epoch: u64::MAX,
        max_blobs_per_block_electra: 9,
        blob_schedule: Vec::new(),
    }
}

fn expected_mainnet() -> ChainConfig {
    ChainConfig {
        genesis_fork_version: [0, 0, 0, 0],
        altair_fork_version: [1, 0, 0, 0],
        altair_fork_epoch: 74_240,
        bellatrix_fork_version: [2, 0, 0, 0],
        bellatrix_fork_epoch: 144_896,
        capella_fork_version: [3, 0, 0, 0],
        capella_fork_epoch: 194_048,
        deneb_fork_version: [4, 0, 0, 0],
        deneb_fork_epoch: 269_568,
        electra_fork_version: [5, 0, 0, 0],
        fulu_fork_version: [6, 0, 0, 0],
        fulu_fork_epoch: 411_392,
        slot_duration_ms: 12000,
        min_validator_withdrawability_delay: 256,
        shard_committee_period: 256,
        ejection_balance: 16_000_000_000,
        churn_limit_quotient: 65536,
        inactivity_score_bias: 4,
        inactivity_score_recovery_rate: 16,
        min_per_epoch_churn_limit_electra: 128_000_000_000,
        max_per_epoch_activation_exit_churn_limit: 256_000_000_000,
        electra_fork_epoch: 364_032,
        max_blobs_per_block_electra: 9,
        blob_schedule: vec![
            BlobScheduleEntry {
                epoch: 412_672,
                max_blobs_per_block: 15,
            },
            BlobScheduleEntry {
                epoch: 419_072,
                max_blobs_per_block: 21,
            },
        ],
    }
}

#[test]
fn chain_config_builtin_minimal_matches_spec_values() {
    assert_eq!(ChainConfig::minimal(), expected_minimal());
    assert_eq!(
        ChainConfig::from_yaml(MINIMAL_YAML).unwrap(),
        expected_minimal()
    );
    assert!(MINIMAL_YAML.contains("CONFIG_NAME: 'minimal'"));
}

#[test]
fn chain_config_builtin_mainnet_matches_spec_values() {
    assert_eq!(ChainConfig::mainnet(), expected_mainnet());
    assert_eq!(
        ChainConfig::from_yaml(MAINNET_YAML).unwrap(),
        expected_mainnet()
    );
    assert!(MAINNET_YAML.contains("CONFIG_NAME: 'mainnet'"));
    let cfg = ChainConfig::mainnet();
    assert_eq!(cfg.max_blobs_per_block(412_671), 9);
    assert_eq!(cfg.max_blobs_per_block(412_672), 15);
    assert_eq!(cfg.max_blobs_per_block(500_000), 21);
}

/// The built-in files are the consensus-specs files, unchanged (checked against the
/// wheel's copies when `QUASAR_SPEC_CONFIGS` names its `configs/` folder).
#[test]
fn chain_config_builtin_files_are_unmodified_when_spec_copy_given() {
    let Some(dir) = std::env::var_os("QUASAR_SPEC_CONFIGS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for (name, text) in [
        ("mainnet.yaml", MAINNET_YAML),
        ("minimal.yaml", MINIMAL_YAML),
    ] {
        let spec = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(spec, text, "{name} differs from the spec's copy");
    }
}

fn replace_line(text: &str, key: &str, new_line: Option<&str>) -> String {
    let mut found = false;
    let out: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            if l.starts_with(&format!("{key}:")) {
                found = true;
                new_line
            } else {
                Some(l)
            }
        })
        .collect();
    assert!(found, "{key} not in the config");
    out.join("\n")
}

#[test]
fn chain_config_unknown_keys_are_ignored() {
    let text = format!("{MINIMAL_YAML}\nSOME_FUTURE_KEY: 0xdeadbeef\nOTHER_LIST:\n  - A: 1\n");
    assert_eq!(ChainConfig::from_yaml(&text).unwrap(), expected_minimal());
}

#[test]
fn chain_config_missing_key_is_an_error_naming_it() {
    let text = replace_line(MAINNET_YAML, "SHARD_COMMITTEE_PERIOD", None);
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert_eq!(
        err,
        ConfigError::MissingKey {
            key: "SHARD_COMMITTEE_PERIOD"
        }
    );
    assert!(err.to_string().contains("SHARD_COMMITTEE_PERIOD"), "{err}");

    let text = replace_line(MAINNET_YAML, "FULU_FORK_VERSION", None);
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert!(err.to_string().contains("FULU_FORK_VERSION"), "{err}");

    let text = replace_line(MINIMAL_YAML, "BLOB_SCHEDULE", None);
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert!(err.to_string().contains("BLOB_SCHEDULE"), "{err}");
}

#[test]
fn chain_config_bad_values_are_errors_naming_the_key() {
    let cases = [
        ("EJECTION_BALANCE", "EJECTION_BALANCE: sixteen"),
        ("EJECTION_BALANCE", "EJECTION_BALANCE: -1"),
        (
            "ELECTRA_FORK_EPOCH",
            "ELECTRA_FORK_EPOCH: 18446744073709551616",
        ),
        ("CHURN_LIMIT_QUOTIENT", "CHURN_LIMIT_QUOTIENT: 0"),
        ("GENESIS_FORK_VERSION", "GENESIS_FORK_VERSION: 0x000000"),
        ("GENESIS_FORK_VERSION", "GENESIS_FORK_VERSION: 0x0000000g"),
        ("GENESIS_FORK_VERSION", "GENESIS_FORK_VERSION: 12345678"),
    ];
    for (key, line) in cases {
        let text = replace_line(MAINNET_YAML, key, Some(line));
        let err = ChainConfig::from_yaml(&text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::BadValue { key: k, .. } if k == key),
            "{line}: {err:?}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn chain_config_blob_schedule_forms() {
    // Flow style, quoted scalars and trailing comments.
    let text = replace_line(
        MINIMAL_YAML,
        "BLOB_SCHEDULE",
        Some("BLOB_SCHEDULE: [{EPOCH: 10, MAX_BLOBS_PER_BLOCK: 12}, {EPOCH: '20', MAX_BLOBS_PER_BLOCK: 18}] # x"),
    );
    let cfg = ChainConfig::from_yaml(&text).unwrap();
    assert_eq!(
        cfg.blob_schedule,
        vec![
            BlobScheduleEntry {
                epoch: 10,
                max_blobs_per_block: 12
            },
            BlobScheduleEntry {
                epoch: 20,
                max_blobs_per_block: 18
            }
        ]
    );
    assert_eq!(cfg.max_blobs_per_block(15), 12);

    // A block-style entry without MAX_BLOBS_PER_BLOCK.
    let text = MAINNET_YAML.replace("    MAX_BLOBS_PER_BLOCK: 21\n", "");
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("BLOB_SCHEDULE[1].MAX_BLOBS_PER_BLOCK"),
        "{err}"
    );

    // A bad number inside the schedule.
    let text = MAINNET_YAML.replace("MAX_BLOBS_PER_BLOCK: 15", "MAX_BLOBS_PER_BLOCK: lots");
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("BLOB_SCHEDULE[0].MAX_BLOBS_PER_BLOCK"),
        "{err}"
    );
}

#[test]
fn chain_config_syntax_errors_and_duplicates() {
    let text = format!("{MINIMAL_YAML}\nEJECTION_BALANCE: 1\n");
    let err = ChainConfig::from_yaml(&text).unwrap_err();
    assert!(
        matches!(&err, ConfigError::DuplicateKey { key, .. } if key == "EJECTION_BALANCE"),
        "{err:?}"
    );
    let text = format!("{MINIMAL_YAML}\nthis is not yaml\n");
    assert!(matches!(
        ChainConfig::from_yaml(&text),
        Err(ConfigError::Syntax { .. })
    ));
    assert!(matches!(
        ChainConfig::from_yaml(""),
        Err(ConfigError::MissingKey { .. })
    ));
}
