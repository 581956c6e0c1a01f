#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for N seconds (default 60):
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# cargo-fuzz needs a nightly rustc (for -Zsanitizer and the sanitizer-coverage flags).
# The script uses the `nightly` toolchain when rustup has one, and otherwise the stable
# toolchain with RUSTC_BOOTSTRAP=1, which unlocks the same flags. It installs cargo-fuzz
# (`cargo install cargo-fuzz`) when it is missing. Crashes land in
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
    targets=(req_resp_decode ssz_decode)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
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
