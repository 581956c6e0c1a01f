#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for N seconds (default 60):
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address, sanitizer
# coverage). On the stable toolchain RUSTC_BOOTSTRAP=1 unlocks them, which is what the
# script does by default; QUASAR_FUZZ_TOOLCHAIN=nightly uses a nightly toolchain instead.
# It installs cargo-fuzz (`cargo install cargo-fuzz`) when it is missing. Crashes land in
# fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/.
#
# The fuzz build has its own target dir (the main build's flags differ), kept outside the
# clone like the main one: QUASAR_FUZZ_TARGET_DIR, default /var/tmp/quasar-fuzz-target.
set -euo pipefail

secs="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(req_resp_decode ssz_decode gossip_decode)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

toolchain=()
if [ -n "${QUASAR_FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=("+$QUASAR_FUZZ_TOOLCHAIN")
else
    export RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="${QUASAR_FUZZ_TARGET_DIR:-/var/tmp/quasar-fuzz-target}"

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    cargo "${toolchain[@]}" fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1
done
