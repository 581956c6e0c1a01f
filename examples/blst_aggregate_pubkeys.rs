//! The peer for `quasar tool aggregate-pubkeys`, timed as a whole command beside it: plain
//! blst on one thread doing the same parse → KeyValidate → aggregate, line by line, printing
//! the same output.
//!
//! cargo run --release --example blst_aggregate_pubkeys -- FILE

use std::process::ExitCode;

use blst::min_pk::{AggregatePublicKey, PublicKey};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: blst_aggregate_pubkeys FILE");
        return ExitCode::FAILURE;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut all_ok = true;
    let mut out = String::new();
    for line in text.lines() {
        let keys: Result<Vec<PublicKey>, String> = line
            .split_whitespace()
            .map(|t| {
                let b = quasar::bls::from_hex(t).map_err(|e| e.to_string())?;
                PublicKey::key_validate(&b).map_err(|e| format!("{e:?}"))
            })
            .collect();
        let agg = keys.and_then(|k| {
            let refs: Vec<&PublicKey> = k.iter().collect();
            AggregatePublicKey::aggregate(&refs, false).map_err(|e| format!("{e:?}"))
        });
        match agg {
            Ok(a) => out.push_str(&quasar::bls::to_hex(&a.to_public_key().compress())),
            Err(e) => {
                all_ok = false;
                out.push_str(&format!("error: {e}"));
            }
        }
        out.push('\n');
    }
    print!("{out}");
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
