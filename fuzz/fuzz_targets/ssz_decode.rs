//! Every SSZ container decoder of both presets over arbitrary bytes, through the
//! `ssz_static` type dispatch (`quasar::types::ssz_static`).
//!
//! Input: `[selector, bytes…]`: the selector picks the preset (bit 0) and the type.
//! Checked: no panic; what decodes is canonical (its re-encoding is the input) and
//! decodes again to the same value and root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quasar::types::ssz_static::{roundtrip, TYPE_NAMES};
use quasar::types::Preset;

fuzz_target!(|data: &[u8]| {
    let [selector, bytes @ ..] = data else {
        return;
    };
    let preset = if selector & 1 == 0 {
        Preset::Minimal
    } else {
        Preset::Mainnet
    };
    let type_name = TYPE_NAMES[(*selector as usize >> 1) % TYPE_NAMES.len()];
    if let Ok(first) = roundtrip(preset, type_name, bytes) {
        assert_eq!(
            first.encoded, bytes,
            "{preset} {type_name}: accepted a non-canonical encoding"
        );
        let second = roundtrip(preset, type_name, &first.encoded).expect("re-encoding decodes");
        assert_eq!(second, first);
    }
});
