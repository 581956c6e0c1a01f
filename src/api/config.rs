//! `/eth/v1/config/*`: the spec (the chain config's keys and the preset's constants), the
//! fork schedule, the deposit contract.

use axum::response::Response;
use serde_json::{json, Map, Value};

use super::ids::hex;
use super::{data, Ctx};
use crate::chain::views;
use crate::transition::config::{MAINNET_YAML, MINIMAL_YAML};
use crate::types::Preset;

/// The top-level `KEY: value` pairs of a consensus-specs config YAML, values as written
/// (quotes dropped); block lists (`BLOB_SCHEDULE`) are left to the caller.
fn flat_yaml(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '-', '#']) {
            continue;
        }
        let line = line.split('#').next().unwrap_or("").trim_end();
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        if k.is_empty() || v.is_empty() || v.starts_with('[') {
            continue;
        }
        out.push((k.trim().to_string(), v.to_string()));
    }
    out
}

fn config_yaml(preset: Preset) -> &'static str {
    match preset {
        Preset::Minimal => MINIMAL_YAML,
        Preset::Mainnet => MAINNET_YAML,
    }
}

/// The fork schedule the chain follows (a devnet chain at Fulu from genesis has every fork
/// at epoch 0).
fn schedule(ctx: &super::ApiContext) -> crate::transition::ChainConfig {
    let head = ctx.chain.head();
    let epoch = head.head.slot / crate::chain::any::slots_per_epoch(ctx.chain.preset());
    crate::chain::any::effective_fork_schedule((*ctx.config).clone(), head.fork_version, epoch)
}

pub(super) async fn spec(ctx: Ctx) -> Response {
    let preset = ctx.chain.preset();
    let cfg = schedule(&ctx);
    let mut m = Map::new();
    for (k, v) in flat_yaml(config_yaml(preset)) {
        m.insert(k, Value::String(v));
    }
    // The values the chain runs with override the file's.
    let forks = [
        ("GENESIS_FORK_VERSION", cfg.genesis_fork_version, None),
        (
            "ALTAIR_FORK_VERSION",
            cfg.altair_fork_version,
            Some(cfg.altair_fork_epoch),
        ),
        (
            "BELLATRIX_FORK_VERSION",
            cfg.bellatrix_fork_version,
            Some(cfg.bellatrix_fork_epoch),
        ),
        (
            "CAPELLA_FORK_VERSION",
            cfg.capella_fork_version,
            Some(cfg.capella_fork_epoch),
        ),
        (
            "DENEB_FORK_VERSION",
            cfg.deneb_fork_version,
            Some(cfg.deneb_fork_epoch),
        ),
        (
            "ELECTRA_FORK_VERSION",
            cfg.electra_fork_version,
            Some(cfg.electra_fork_epoch),
        ),
        (
            "FULU_FORK_VERSION",
            cfg.fulu_fork_version,
            Some(cfg.fulu_fork_epoch),
        ),
    ];
    for (name, version, epoch) in forks {
        m.insert(name.into(), Value::String(hex(&version)));
        if let Some(e) = epoch {
            m.insert(
                name.replace("_VERSION", "_EPOCH"),
                Value::String(e.to_string()),
            );
        }
    }
    m.insert(
        "SLOT_DURATION_MS".into(),
        Value::String(cfg.slot_duration_ms.to_string()),
    );
    m.insert(
        "SECONDS_PER_SLOT".into(),
        Value::String((cfg.slot_duration_ms / 1000).to_string()),
    );
    m.insert(
        "BLOB_SCHEDULE".into(),
        Value::Array(
            cfg.blob_schedule
                .iter()
                .map(|b| {
                    json!({
                        "EPOCH": b.epoch.to_string(),
                        "MAX_BLOBS_PER_BLOCK": b.max_blobs_per_block.to_string(),
                    })
                })
                .collect(),
        ),
    );
    m.insert("PRESET_BASE".into(), Value::String(preset.name().into()));
    for (k, v) in views::preset_constants(preset) {
        m.insert(k.into(), Value::String(v.to_string()));
    }
    data(Value::Object(m))
}

pub(super) async fn fork_schedule(ctx: Ctx) -> Response {
    let cfg = schedule(&ctx);
    let forks = [
        (cfg.genesis_fork_version, 0),
        (cfg.altair_fork_version, cfg.altair_fork_epoch),
        (cfg.bellatrix_fork_version, cfg.bellatrix_fork_epoch),
        (cfg.capella_fork_version, cfg.capella_fork_epoch),
        (cfg.deneb_fork_version, cfg.deneb_fork_epoch),
        (cfg.electra_fork_version, cfg.electra_fork_epoch),
        (cfg.fulu_fork_version, cfg.fulu_fork_epoch),
    ];
    let mut out = Vec::new();
    let mut previous = cfg.genesis_fork_version;
    for (version, epoch) in forks {
        out.push(json!({
            "previous_version": hex(&previous),
            "current_version": hex(&version),
            "epoch": epoch.to_string(),
        }));
        previous = version;
    }
    data(Value::Array(out))
}

pub(super) async fn deposit_contract(ctx: Ctx) -> Response {
    let pairs = flat_yaml(config_yaml(ctx.chain.preset()));
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    data(json!({
        "chain_id": get("DEPOSIT_CHAIN_ID"),
        "address": get("DEPOSIT_CONTRACT_ADDRESS"),
    }))
}
