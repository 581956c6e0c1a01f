//! The peer for `quasar tool merkleize`, timed as a whole command beside it: Prysm's
//! hashtree (`hashtree-rs`) merkleizing a file of 32-byte chunks on one core, level by
//! level, printing the same `0x…` root (no limit: padded to the chunk count's power of two).
//!
//! cargo run --release --example hashtree_merkleize -- FILE

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: hashtree_merkleize FILE");
        return ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) if b.len() % 32 == 0 && !b.is_empty() => b,
        Ok(_) => {
            eprintln!("error: {path}: empty or not a multiple of 32 bytes");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = quasar::bench::peers::hashtree_merkleize(bytemuck::cast_slice(&bytes));
    println!(
        "0x{}",
        root.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    ExitCode::SUCCESS
}
