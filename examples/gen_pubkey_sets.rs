//! Write a test file for `quasar tool aggregate-pubkeys`: SETS lines, each of KEYS/SETS
//! distinct pubkeys drawn from a table of KEYS valid G1 points (i·G), in hex.
//!
//! cargo run --release --example gen_pubkey_sets -- KEYS SETS > sets.txt

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (keys, sets) = match args[..] {
        [k, s] if k >= s && s > 0 => (k, s),
        _ => {
            eprintln!("usage: gen_pubkey_sets KEYS SETS   (KEYS >= SETS > 0)");
            std::process::exit(2);
        }
    };
    let table = quasar::bench::bls::synthetic_table(keys);
    let per = keys / sets;
    let mut out = String::new();
    for s in 0..sets {
        let line: Vec<String> = table[s * per..(s + 1) * per]
            .iter()
            .map(|k| quasar::bls::to_hex(&k.compress()))
            .collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    print!("{out}");
}
