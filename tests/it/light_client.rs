//! `light_client/<handler>` vectors (minimal preset): `single_merkle_proof` (generate and
//! verify the state's sync committee / finality branches and the body's execution
//! branch), `update_ranking` (`is_better_update`) and `sync` (a `LightClientStore` driven
//! through bootstrap, updates and force updates). Also holds the small YAML reader the
//! `merkle_proof` and `networking` runners share.

use std::fs;
use std::path::Path;

use quasar::light_client::minimal as lc;
use quasar::light_client::ForkSchedule;
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::merkle_proof::single_merkle_proof;
use super::spec_runner::{assert_no_failures, read_ssz, run_runner, CaseFn};
use yaml::Yaml;

/// Handlers and cases of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[
    (
        "data_collection",
        "needs a fork-choice store that serves light-client data per block (bootstraps, \
         best updates per period, finality/optimistic updates across forks); quasar has no \
         fork choice yet",
    ),
    (
        "sync/gloas_fork",
        "upgrades the store to Gloas light-client types, which quasar does not define \
         (Fulu node)",
    ),
    (
        "sync/gloas_store_with_legacy_data",
        "a Gloas store fed Fulu data: needs Gloas light-client types, which quasar does \
         not define (Fulu node)",
    ),
];

fn single_merkle_proof_case(case: &Path) -> Result<(), String> {
    single_merkle_proof(case)
}

/// `updates_<i>` are ordered best first: no later update may rank above an earlier one,
/// and each update must rank above the next unless the two tie.
fn update_ranking(case: &Path) -> Result<(), String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let count = meta.req("updates_count")?.as_u64()?;
    if count > 10_000 {
        return Err(format!("updates_count {count} is implausible"));
    }
    let updates: Vec<ty::LightClientUpdate> = (0..count)
        .map(|i| read_ssz(case, &format!("updates_{i}")))
        .collect::<Result<_, _>>()?;
    for i in 0..updates.len() {
        for j in i + 1..updates.len() {
            if lc::is_better_update(&updates[j], &updates[i]) {
                return Err(format!("updates_{j} ranks above updates_{i}"));
            }
        }
    }
    Ok(())
}

fn hex32(y: &Yaml, what: &str) -> Result<[u8; 32], String> {
    let s = y.as_str()?;
    let bytes = yaml::hex(s)?;
    bytes
        .try_into()
        .map_err(|_| format!("{what}: {s:?} is not 32 bytes"))
}

fn hex4(y: &Yaml, what: &str) -> Result<[u8; 4], String> {
    let s = y.as_str()?;
    yaml::hex(s)?
        .try_into()
        .map_err(|_| format!("{what}: {s:?} is not 4 bytes"))
}

/// The fork schedule of the case's `config.yaml`.
fn fork_schedule(case: &Path) -> Result<ForkSchedule, String> {
    let config = yaml::read(case, "config.yaml")?;
    let version = |name: &str| -> Result<[u8; 4], String> {
        hex4(config.req(&format!("{name}_FORK_VERSION"))?, name)
    };
    let epoch =
        |name: &str| -> Result<u64, String> { config.req(&format!("{name}_FORK_EPOCH"))?.as_u64() };
    let mut forks = Vec::new();
    for name in ["ALTAIR", "BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"] {
        forks.push((epoch(name)?, version(name)?.into()));
    }
    // Later forks (Gloas …) are scheduled far in the future in these configs; a store of
    // this node never reaches them.
    Ok(ForkSchedule {
        genesis_fork_version: version("GENESIS")?.into(),
        forks,
        capella_fork_epoch: epoch("CAPELLA")?,
        deneb_fork_epoch: epoch("DENEB")?,
    })
}

fn check_header(
    checks: &Yaml,
    name: &str,
    header: &ty::LightClientHeader,
    forks: &ForkSchedule,
) -> Result<(), String> {
    let Some(expect) = checks.get(name) else {
        return Ok(());
    };
    let slot = expect.req("slot")?.as_u64()?;
    if header.beacon.slot != slot {
        return Err(format!(
            "{name}.slot {} != expected {slot}",
            header.beacon.slot
        ));
    }
    let beacon_root = hex32(expect.req("beacon_root")?, "beacon_root")?;
    let got =
        quasar::merkle::proof::root_of(&mut header.beacon.clone()).map_err(|e| e.to_string())?;
    if got != beacon_root {
        return Err(format!("{name}.beacon_root differs"));
    }
    if let Some(er) = expect.get("execution_root") {
        let want = hex32(er, "execution_root")?;
        let got = lc::get_lc_execution_root(header, forks).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!("{name}.execution_root differs"));
        }
    }
    Ok(())
}

fn sync(case: &Path) -> Result<(), String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let forks = fork_schedule(case)?;
    let genesis_validators_root: ty::Root = hex32(
        meta.req("genesis_validators_root")?,
        "genesis_validators_root",
    )?
    .into();
    let trusted_block_root: ty::Root =
        hex32(meta.req("trusted_block_root")?, "trusted_block_root")?.into();
    // Electra and Fulu light-client containers are the same, so every digest up to Fulu
    // decodes into the preset's types.
    let bootstrap: ty::LightClientBootstrap = read_ssz(case, "bootstrap")?;
    let mut store = lc::initialize_light_client_store(&trusted_block_root, &bootstrap, &forks)
        .map_err(|e| format!("bootstrap: {e}"))?;
    let steps = yaml::read(case, "steps.yaml")?;
    for (n, step) in steps.as_list()?.iter().enumerate() {
        let checks;
        if let Some(s) = step.get("force_update") {
            let current_slot = s.req("current_slot")?.as_u64()?;
            lc::process_light_client_store_force_update(&mut store, current_slot)
                .map_err(|e| format!("step {n}: force_update: {e}"))?;
            checks = s.get("checks");
        } else if let Some(s) = step.get("process_update") {
            let name = s.req("update")?.as_str()?;
            if name.contains('/') || name.contains("..") {
                return Err(format!("step {n}: bad update file name {name:?}"));
            }
            let update: ty::LightClientUpdate = read_ssz(case, name)?;
            let current_slot = s.req("current_slot")?.as_u64()?;
            lc::process_light_client_update(
                &mut store,
                &update,
                current_slot,
                &genesis_validators_root,
                &forks,
            )
            .map_err(|e| format!("step {n}: process_update {name}: {e}"))?;
            checks = s.get("checks");
        } else if step.get("upgrade_store").is_some() {
            return Err(format!(
                "step {n}: upgrade_store to a later fork is not supported"
            ));
        } else {
            return Err(format!("step {n}: unknown step"));
        }
        if let Some(checks) = checks {
            check_header(checks, "finalized_header", &store.finalized_header, &forks)
                .map_err(|e| format!("step {n}: {e}"))?;
            check_header(
                checks,
                "optimistic_header",
                &store.optimistic_header,
                &forks,
            )
            .map_err(|e| format!("step {n}: {e}"))?;
        }
    }
    Ok(())
}

const HANDLERS: &[(&str, CaseFn)] = &[
    ("single_merkle_proof", single_merkle_proof_case),
    ("sync", sync),
    ("update_ranking", update_ranking),
];

#[test]
fn light_client_minimal() {
    let failures = run_runner(Preset::Minimal, "light_client", HANDLERS, PENDING);
    assert_no_failures("light_client", &failures);
}

/// Reads the subset of YAML the vectors use: block mappings and sequences, flow lists and
/// maps, plain and quoted scalars, plain scalars continued on more-indented lines. Bad
/// input is an error, never a panic.
pub mod yaml {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Yaml {
        Str(String),
        List(Vec<Yaml>),
        Map(Vec<(String, Yaml)>),
    }

    impl Yaml {
        pub fn get(&self, key: &str) -> Option<&Yaml> {
            match self {
                Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn req(&self, key: &str) -> Result<&Yaml, String> {
            self.get(key).ok_or_else(|| format!("missing key {key:?}"))
        }
        pub fn as_str(&self) -> Result<&str, String> {
            match self {
                Yaml::Str(s) => Ok(s),
                other => Err(format!("expected a scalar, got {other:?}")),
            }
        }
        pub fn as_u64(&self) -> Result<u64, String> {
            let s = self.as_str()?;
            s.parse::<u64>()
                .map_err(|e| format!("{s:?} is not a u64: {e}"))
        }
        pub fn as_list(&self) -> Result<&[Yaml], String> {
            match self {
                Yaml::List(l) => Ok(l),
                other => Err(format!("expected a list, got {other:?}")),
            }
        }
    }

    /// `0x`-prefixed hex to bytes.
    pub fn hex(s: &str) -> Result<Vec<u8>, String> {
        let h = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("{s:?} lacks the 0x prefix"))?;
        if h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not hex"));
        }
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect()
    }

    pub fn read(case: &Path, file: &str) -> Result<Yaml, String> {
        let path = case.join(file);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    struct Line {
        indent: usize,
        text: String,
    }

    fn depth_delta(s: &str) -> i64 {
        let mut d = 0i64;
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '\'' => quoted = !quoted,
                '[' | '{' if !quoted => d += 1,
                ']' | '}' if !quoted => d -= 1,
                _ => {}
            }
        }
        d
    }

    fn logical_lines(text: &str) -> Vec<Line> {
        let mut out: Vec<Line> = Vec::new();
        let mut open = 0i64;
        for raw in text.lines() {
            let trimmed = raw.trim_end();
            let content = trimmed.trim_start();
            if content.is_empty() || content.starts_with('#') || content == "---" {
                continue;
            }
            if open > 0 {
                if let Some(last) = out.last_mut() {
                    last.text.push(' ');
                    last.text.push_str(content);
                }
            } else {
                out.push(Line {
                    indent: trimmed.len() - content.len(),
                    text: content.to_string(),
                });
            }
            open += depth_delta(content);
        }
        out
    }

    /// `key: rest` when the line starts with a plain key.
    fn split_key(s: &str) -> Option<(&str, &str)> {
        let colon = s.find(':')?;
        let key = &s[..colon];
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return None;
        }
        let rest = &s[colon + 1..];
        if rest.is_empty() || rest.starts_with(' ') {
            Some((key, rest.trim()))
        } else {
            None
        }
    }

    pub fn parse(text: &str) -> Result<Yaml, String> {
        let mut lines = logical_lines(text);
        if lines.is_empty() {
            return Ok(Yaml::Map(Vec::new()));
        }
        let mut i = 0;
        let indent = lines[0].indent;
        let v = node(&mut lines, &mut i, indent, 0)?;
        if i != lines.len() {
            return Err(format!("unexpected line {:?}", lines[i].text));
        }
        Ok(v)
    }

    fn node(
        lines: &mut [Line],
        i: &mut usize,
        indent: usize,
        depth: usize,
    ) -> Result<Yaml, String> {
        if depth > 64 {
            return Err("nesting too deep".into());
        }
        let first = &lines[*i].text;
        if first == "-" || first.starts_with("- ") {
            let mut items = Vec::new();
            while *i < lines.len() && lines[*i].indent == indent {
                let t = lines[*i].text.clone();
                let rest = if t == "-" {
                    ""
                } else if let Some(r) = t.strip_prefix("- ") {
                    r.trim()
                } else {
                    break;
                };
                if rest.is_empty() {
                    *i += 1;
                    if *i < lines.len() && lines[*i].indent > indent {
                        let ind = lines[*i].indent;
                        items.push(node(lines, i, ind, depth + 1)?);
                    } else {
                        items.push(Yaml::Str(String::new()));
                    }
                } else if split_key(rest).is_some() {
                    // A mapping that starts on the dash line.
                    lines[*i].indent = indent + 2;
                    lines[*i].text = rest.to_string();
                    items.push(node(lines, i, indent + 2, depth + 1)?);
                } else {
                    items.push(flow(rest)?);
                    *i += 1;
                }
            }
            return Ok(Yaml::List(items));
        }
        if split_key(first).is_none() {
            // A scalar, possibly continued on following lines of the same indent.
            let mut s = first.clone();
            *i += 1;
            while *i < lines.len()
                && lines[*i].indent >= indent
                && split_key(&lines[*i].text).is_none()
                && !lines[*i].text.starts_with('-')
            {
                s.push(' ');
                s.push_str(&lines[*i].text);
                *i += 1;
            }
            return flow(&s);
        }
        let mut map = Vec::new();
        while *i < lines.len() && lines[*i].indent == indent {
            let t = lines[*i].text.clone();
            let (key, rest) = split_key(&t).ok_or_else(|| format!("expected `key:` in {t:?}"))?;
            *i += 1;
            let value = if !rest.is_empty() {
                flow(rest)?
            } else if *i < lines.len()
                && (lines[*i].indent > indent
                    || (lines[*i].indent == indent && lines[*i].text.starts_with('-')))
            {
                let ind = lines[*i].indent;
                node(lines, i, ind, depth + 1)?
            } else {
                Yaml::Str(String::new())
            };
            map.push((key.to_string(), value));
        }
        Ok(Yaml::Map(map))
    }

    /// A flow value: `[a, b]`, `{k: v}`, `'quoted'` or plain.
    pub fn flow(s: &str) -> Result<Yaml, String> {
        let chars: Vec<char> = s.trim().chars().collect();
        let mut pos = 0;
        let v = flow_value(&chars, &mut pos, 0)?;
        skip_ws(&chars, &mut pos);
        if pos != chars.len() {
            return Err(format!("trailing text in {s:?}"));
        }
        Ok(v)
    }

    fn skip_ws(c: &[char], pos: &mut usize) {
        while *pos < c.len() && c[*pos].is_whitespace() {
            *pos += 1;
        }
    }

    fn flow_value(c: &[char], pos: &mut usize, depth: usize) -> Result<Yaml, String> {
        if depth > 64 {
            return Err("nesting too deep".into());
        }
        skip_ws(c, pos);
        match c.get(*pos) {
            Some('[') => {
                *pos += 1;
                let mut items = Vec::new();
                loop {
                    skip_ws(c, pos);
                    if c.get(*pos) == Some(&']') {
                        *pos += 1;
                        return Ok(Yaml::List(items));
                    }
                    items.push(flow_value(c, pos, depth + 1)?);
                    skip_ws(c, pos);
                    match c.get(*pos) {
                        Some(',') => *pos += 1,
                        Some(']') => {}
                        _ => return Err("unterminated flow list".into()),
                    }
                }
            }
            Some('{') => {
                *pos += 1;
                let mut map = Vec::new();
                loop {
                    skip_ws(c, pos);
                    if c.get(*pos) == Some(&'}') {
                        *pos += 1;
                        return Ok(Yaml::Map(map));
                    }
                    let start = *pos;
                    while *pos < c.len() && c[*pos] != ':' {
                        *pos += 1;
                    }
                    if *pos >= c.len() {
                        return Err("flow map entry without `:`".into());
                    }
                    let key: String = c[start..*pos].iter().collect::<String>().trim().to_string();
                    *pos += 1;
                    let v = flow_value(c, pos, depth + 1)?;
                    map.push((key, v));
                    skip_ws(c, pos);
                    match c.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {}
                        _ => return Err("unterminated flow map".into()),
                    }
                }
            }
            Some('\'') => {
                *pos += 1;
                let mut s = String::new();
                loop {
                    match c.get(*pos) {
                        None => return Err("unterminated quoted scalar".into()),
                        Some('\'') if c.get(*pos + 1) == Some(&'\'') => {
                            s.push('\'');
                            *pos += 2;
                        }
                        Some('\'') => {
                            *pos += 1;
                            return Ok(Yaml::Str(s));
                        }
                        Some(&ch) => {
                            s.push(ch);
                            *pos += 1;
                        }
                    }
                }
            }
            _ => {
                let start = *pos;
                while *pos < c.len() && ![',', ']', '}'].contains(&c[*pos]) {
                    *pos += 1;
                }
                let s: String = c[start..*pos].iter().collect();
                Ok(Yaml::Str(
                    s.split_whitespace().collect::<Vec<_>>().join(" "),
                ))
            }
        }
    }

    #[test]
    fn parses_the_vector_shapes() {
        let y = parse("a: 1\nb:\n- '0x01'\n- '0x02'\nc: [1, 2,\n    3]\nd: \n  long\n").unwrap();
        assert_eq!(y.req("a").unwrap().as_u64().unwrap(), 1);
        assert_eq!(y.req("b").unwrap().as_list().unwrap().len(), 2);
        assert_eq!(y.req("c").unwrap().as_list().unwrap().len(), 3);
        assert_eq!(y.req("d").unwrap().as_str().unwrap(), "long");
        let y = parse("- process_update:\n    update: \n      name_x\n    checks:\n      f: {slot: 3}\n- force_update: {current_slot: 4}\n").unwrap();
        let steps = y.as_list().unwrap();
        assert_eq!(steps.len(), 2);
        let p = steps[0].req("process_update").unwrap();
        assert_eq!(p.req("update").unwrap().as_str().unwrap(), "name_x");
        assert!(parse("a: [1, 2").is_err());
        assert!(parse("a: '0x").is_err());
    }
}
