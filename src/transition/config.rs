//! The runtime chain configuration values the state transition reads (the subset of a
//! consensus-specs `config.yaml` that Fulu's beacon-chain functions use), loaded from
//! the consensus-specs YAML format, with the `mainnet` and `minimal` configs built in
//! (`configs/mainnet.yaml` and `configs/minimal.yaml`, copied unchanged from
//! consensus-specs v1.7.0-alpha.13).
//!
//! The config format is flat: `KEY: value` lines, `#` comments, and one nested value,
//! `BLOB_SCHEDULE`, a list of `{EPOCH, MAX_BLOBS_PER_BLOCK}` maps (block style, or flow
//! style such as `[]`). A small parser reads exactly that; keys the transition does not
//! use are ignored, and a missing or malformed key the transition needs is an error
//! naming it.

use std::collections::HashMap;
use std::sync::LazyLock;

/// One entry of `BLOB_SCHEDULE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobScheduleEntry {
    pub epoch: u64,
    pub max_blobs_per_block: u64,
}

/// Chain config values used by the transition and the network layer (fork versions and
/// epochs: `compute_fork_version`, fork digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub genesis_fork_version: [u8; 4],
    pub altair_fork_version: [u8; 4],
    pub altair_fork_epoch: u64,
    pub bellatrix_fork_version: [u8; 4],
    pub bellatrix_fork_epoch: u64,
    pub capella_fork_version: [u8; 4],
    pub capella_fork_epoch: u64,
    pub deneb_fork_version: [u8; 4],
    pub deneb_fork_epoch: u64,
    pub electra_fork_version: [u8; 4],
    pub fulu_fork_version: [u8; 4],
    pub fulu_fork_epoch: u64,
    pub slot_duration_ms: u64,
    pub min_validator_withdrawability_delay: u64,
    pub shard_committee_period: u64,
    pub ejection_balance: u64,
    pub churn_limit_quotient: u64,
    pub inactivity_score_bias: u64,
    pub inactivity_score_recovery_rate: u64,
    pub min_per_epoch_churn_limit_electra: u64,
    pub max_per_epoch_activation_exit_churn_limit: u64,
    pub electra_fork_epoch: u64,
    pub max_blobs_per_block_electra: u64,
    pub blob_schedule: Vec<BlobScheduleEntry>,
}

/// Why a config YAML could not be loaded. Every variant names the key or line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config: missing required key {key}")]
    MissingKey { key: &'static str },
    #[error("config: {key}: bad value {value:?}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("config: line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("config: key {key} appears twice (lines {first} and {second})")]
    DuplicateKey {
        key: String,
        first: usize,
        second: usize,
    },
}

/// consensus-specs `configs/mainnet.yaml` (v1.7.0-alpha.13).
pub const MAINNET_YAML: &str = include_str!("../../configs/mainnet.yaml");
/// consensus-specs `configs/minimal.yaml` (v1.7.0-alpha.13).
pub const MINIMAL_YAML: &str = include_str!("../../configs/minimal.yaml");

static MAINNET: LazyLock<ChainConfig> = LazyLock::new(|| {
    ChainConfig::from_yaml(MAINNET_YAML).expect("built-in configs/mainnet.yaml parses")
});
static MINIMAL: LazyLock<ChainConfig> = LazyLock::new(|| {
    ChainConfig::from_yaml(MINIMAL_YAML).expect("built-in configs/minimal.yaml parses")
});

impl ChainConfig {
    /// The `minimal` config of consensus-specs (v1.7.0-alpha.13), from the embedded
    /// `configs/minimal.yaml`.
    pub fn minimal() -> Self {
        MINIMAL.clone()
    }

    /// The `mainnet` config of consensus-specs (v1.7.0-alpha.13), from the embedded
    /// `configs/mainnet.yaml`.
    pub fn mainnet() -> Self {
        MAINNET.clone()
    }

    /// Parses a consensus-specs config YAML. Keys not used by the transition are ignored;
    /// a missing required key or a malformed value is an error naming the key.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let doc = parse_flat_yaml(text)?;
        let cfg = Self {
            genesis_fork_version: doc.version("GENESIS_FORK_VERSION")?,
            altair_fork_version: doc.version("ALTAIR_FORK_VERSION")?,
            altair_fork_epoch: doc.u64("ALTAIR_FORK_EPOCH")?,
            bellatrix_fork_version: doc.version("BELLATRIX_FORK_VERSION")?,
            bellatrix_fork_epoch: doc.u64("BELLATRIX_FORK_EPOCH")?,
            capella_fork_version: doc.version("CAPELLA_FORK_VERSION")?,
            capella_fork_epoch: doc.u64("CAPELLA_FORK_EPOCH")?,
            deneb_fork_version: doc.version("DENEB_FORK_VERSION")?,
            deneb_fork_epoch: doc.u64("DENEB_FORK_EPOCH")?,
            electra_fork_version: doc.version("ELECTRA_FORK_VERSION")?,
            fulu_fork_version: doc.version("FULU_FORK_VERSION")?,
            fulu_fork_epoch: doc.u64("FULU_FORK_EPOCH")?,
            slot_duration_ms: doc.slot_duration_ms()?,
            min_validator_withdrawability_delay: doc.u64("MIN_VALIDATOR_WITHDRAWABILITY_DELAY")?,
            shard_committee_period: doc.u64("SHARD_COMMITTEE_PERIOD")?,
            ejection_balance: doc.u64("EJECTION_BALANCE")?,
            churn_limit_quotient: doc.nonzero_u64("CHURN_LIMIT_QUOTIENT")?,
            inactivity_score_bias: doc.u64("INACTIVITY_SCORE_BIAS")?,
            inactivity_score_recovery_rate: doc.u64("INACTIVITY_SCORE_RECOVERY_RATE")?,
            min_per_epoch_churn_limit_electra: doc.u64("MIN_PER_EPOCH_CHURN_LIMIT_ELECTRA")?,
            max_per_epoch_activation_exit_churn_limit: doc
                .u64("MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT")?,
            electra_fork_epoch: doc.u64("ELECTRA_FORK_EPOCH")?,
            max_blobs_per_block_electra: doc.u64("MAX_BLOBS_PER_BLOCK_ELECTRA")?,
            blob_schedule: doc.blob_schedule()?,
        };
        Ok(cfg)
    }

    /// `get_blob_parameters(epoch).max_blobs_per_block` (Fulu, EIP-7892).
    pub fn max_blobs_per_block(&self, epoch: u64) -> u64 {
        let mut entries = self.blob_schedule.clone();
        entries.sort_by_key(|e| std::cmp::Reverse(e.epoch));
        for e in entries {
            if epoch >= e.epoch {
                return e.max_blobs_per_block;
            }
        }
        self.max_blobs_per_block_electra
    }
}

/// A value of the flat config format.
#[derive(Debug, Clone)]
enum Value {
    Scalar(String),
    /// A list of maps (`BLOB_SCHEDULE`), each map's pairs in order.
    List(Vec<Vec<(String, String)>>),
}

struct Doc {
    values: HashMap<String, Value>,
}

impl Doc {
    fn get(&self, key: &'static str) -> Result<&Value, ConfigError> {
        self.values.get(key).ok_or(ConfigError::MissingKey { key })
    }

    fn scalar(&self, key: &'static str) -> Result<&str, ConfigError> {
        match self.get(key)? {
            Value::Scalar(s) => Ok(s),
            Value::List(_) => Err(bad(key, "<list>", "expected a scalar, found a list")),
        }
    }

    fn u64(&self, key: &'static str) -> Result<u64, ConfigError> {
        parse_u64(key, self.scalar(key)?)
    }

    fn nonzero_u64(&self, key: &'static str) -> Result<u64, ConfigError> {
        let v = self.u64(key)?;
        if v == 0 {
            return Err(bad(key, "0", "must not be zero (it is a divisor)"));
        }
        Ok(v)
    }

    fn version(&self, key: &'static str) -> Result<[u8; 4], ConfigError> {
        let s = self.scalar(key)?;
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| bad(key, s, "expected 0x followed by 8 hex digits"))?;
        if hex.len() != 8 {
            return Err(bad(
                key,
                s,
                "expected 0x followed by 8 hex digits (4 bytes)",
            ));
        }
        let mut out = [0u8; 4];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| bad(key, s, "not a hex number"))?;
        }
        Ok(out)
    }

    /// `SLOT_DURATION_MS`, or `SECONDS_PER_SLOT * 1000` in configs older than the
    /// millisecond slot duration.
    fn slot_duration_ms(&self) -> Result<u64, ConfigError> {
        const KEY: &str = "SLOT_DURATION_MS";
        if self.values.contains_key(KEY) {
            return self.nonzero_u64(KEY);
        }
        if self.values.contains_key("SECONDS_PER_SLOT") {
            let secs = self.nonzero_u64("SECONDS_PER_SLOT")?;
            return secs.checked_mul(1000).ok_or_else(|| {
                bad(
                    "SECONDS_PER_SLOT",
                    &secs.to_string(),
                    "too large in milliseconds",
                )
            });
        }
        Err(ConfigError::MissingKey { key: KEY })
    }

    fn blob_schedule(&self) -> Result<Vec<BlobScheduleEntry>, ConfigError> {
        const KEY: &str = "BLOB_SCHEDULE";
        let entries = match self.get(KEY)? {
            Value::List(l) => l,
            Value::Scalar(s) => return Err(bad(KEY, s, "expected a list")),
        };
        let mut out = Vec::with_capacity(entries.len());
        for (i, map) in entries.iter().enumerate() {
            let field = |name: &str| -> Result<u64, ConfigError> {
                let key = format!("{KEY}[{i}].{name}");
                let mut found = map.iter().filter(|(k, _)| k == name);
                let (_, v) = found.next().ok_or_else(|| ConfigError::BadValue {
                    key: key.clone(),
                    value: String::new(),
                    reason: "missing".into(),
                })?;
                if found.next().is_some() {
                    return Err(ConfigError::BadValue {
                        key,
                        value: v.clone(),
                        reason: "given twice".into(),
                    });
                }
                parse_u64(&key, v)
            };
            out.push(BlobScheduleEntry {
                epoch: field("EPOCH")?,
                max_blobs_per_block: field("MAX_BLOBS_PER_BLOCK")?,
            });
        }
        // The spec requires distinct epochs (`get_blob_parameters` picks one per epoch).
        for (i, a) in out.iter().enumerate() {
            if out[..i].iter().any(|b| b.epoch == a.epoch) {
                return Err(bad(
                    KEY,
                    &a.epoch.to_string(),
                    "two entries share this EPOCH",
                ));
            }
        }
        Ok(out)
    }
}

fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_u64(key: &str, s: &str) -> Result<u64, ConfigError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(key, s, "expected a decimal unsigned integer"));
    }
    s.parse::<u64>()
        .map_err(|_| bad(key, s, "does not fit in 64 bits"))
}

/// Strips a trailing `# comment` outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Removes one pair of matching quotes around a scalar.
fn unquote(s: &str, line: usize) -> Result<String, ConfigError> {
    let s = s.trim();
    for q in ['\'', '"'] {
        if let Some(rest) = s.strip_prefix(q) {
            let inner = rest.strip_suffix(q).ok_or_else(|| ConfigError::Syntax {
                line,
                reason: format!("unterminated quote in {s:?}"),
            })?;
            return Ok(inner.to_string());
        }
    }
    Ok(s.to_string())
}

/// Splits `KEY: rest` and checks the key's spelling.
fn split_key(s: &str, line: usize) -> Result<(String, &str), ConfigError> {
    let (k, v) = s.split_once(':').ok_or_else(|| ConfigError::Syntax {
        line,
        reason: format!("expected `KEY: value`, found {s:?}"),
    })?;
    let k = k.trim();
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError::Syntax {
            line,
            reason: format!("bad key {k:?}"),
        });
    }
    Ok((k.to_string(), v.trim()))
}

/// Splits `KEY: scalar` (the scalar unquoted; it may be empty).
fn split_pair(s: &str, line: usize) -> Result<(String, String), ConfigError> {
    let (k, v) = split_key(s, line)?;
    Ok((k, unquote(v, line)?))
}

/// Parses a flow list of flow maps: `[]`, `[{EPOCH: 1, MAX_BLOBS_PER_BLOCK: 2}, …]`.
fn parse_flow_list(s: &str, line: usize) -> Result<Vec<Vec<(String, String)>>, ConfigError> {
    let syntax = |reason: String| ConfigError::Syntax { line, reason };
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| syntax(format!("unterminated flow list {s:?}")))?
        .trim();
    let mut out = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let body = rest
            .strip_prefix('{')
            .ok_or_else(|| syntax(format!("expected `{{` in flow list, found {rest:?}")))?;
        let end = body
            .find('}')
            .ok_or_else(|| syntax("unterminated `{` in flow list".into()))?;
        let mut map = Vec::new();
        for pair in body[..end]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            map.push(split_pair(pair, line)?);
        }
        out.push(map);
        rest = body[end + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(syntax(format!("expected `,` in flow list, found {rest:?}")));
        }
    }
    Ok(out)
}

/// Reads the flat consensus-specs config format into key → value.
fn parse_flat_yaml(text: &str) -> Result<Doc, ConfigError> {
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut lines_of: HashMap<String, usize> = HashMap::new();
    // The top-level key whose block list is being read, if any.
    let mut open_list: Option<String> = None;
    // Indentation of the current list item's keys.
    let mut item_indent: Option<usize> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        if line.contains('\t') {
            return Err(ConfigError::Syntax {
                line: line_no,
                reason: "tab characters are not allowed in YAML indentation".into(),
            });
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();

        if indent > 0 {
            // Inside a block list under a top-level key.
            let Some(key) = open_list.clone() else {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    reason: "indented line outside a list".into(),
                });
            };
            let Some(Value::List(items)) = values.get_mut(&key) else {
                unreachable!("open_list names a list value");
            };
            if let Some(item) =
                body.strip_prefix("- ")
                    .or(if body == "-" { Some("") } else { None })
            {
                let mut map = Vec::new();
                let item = item.trim();
                if !item.is_empty() {
                    map.push(split_pair(item, line_no)?);
                }
                items.push(map);
                item_indent = Some(indent + 2);
            } else {
                let (Some(map), Some(want)) = (items.last_mut(), item_indent) else {
                    return Err(ConfigError::Syntax {
                        line: line_no,
                        reason: format!("{key}: expected `- ` to start a list item"),
                    });
                };
                if indent != want {
                    return Err(ConfigError::Syntax {
                        line: line_no,
                        reason: format!("{key}: inconsistent indentation"),
                    });
                }
                map.push(split_pair(body, line_no)?);
            }
            continue;
        }

        // A top-level `KEY: value`.
        open_list = None;
        item_indent = None;
        let (key, raw_value) = split_key(body, line_no)?;
        let value = if raw_value.is_empty() {
            open_list = Some(key.clone());
            Value::List(Vec::new())
        } else if raw_value.starts_with('[') {
            Value::List(parse_flow_list(raw_value, line_no)?)
        } else {
            Value::Scalar(unquote(raw_value, line_no)?)
        };
        if let Some(first) = lines_of.insert(key.clone(), line_no) {
            return Err(ConfigError::DuplicateKey {
                key,
                first,
                second: line_no,
            });
        }
        values.insert(key, value);
    }
    Ok(Doc { values })
}
