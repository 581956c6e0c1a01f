#!/usr/bin/env bash
# Generate HELD-OUT fulu/minimal block sequences for quasar's state transition: vectors
# produced the same way as ../shared/vectors (the executable spec from PyPI,
# eth-consensus-specs==1.7.0a13, `pytest --fork=fulu --preset=minimal --reftests`), but
# from test modules whose cases are NOT in the shared tree:
#
#   fulu/random/test_random.py      -> tests/minimal/fulu/random/random/pyspec_tests/randomized_*
#       (16 randomized multi-block/multi-epoch scenarios: attestations, slashings, exits,
#        deposits, sync aggregates, BLS always on; `only_generator`, so pytest without
#        --reftests skips them)
#   phase0/finality/test_finality.py -> tests/minimal/fulu/finality/finality/pyspec_tests/*
#       (multi-epoch justification/finalization sequences, run for fulu)
#
# Both are in the `sanity/blocks` format: pre, blocks_<i>, post, meta.yaml (blocks_count).
# The output is kept out of the repository.
#
# usage: scripts/gen_heldout_vectors.sh [OUT_DIR]          (default /var/tmp/quasar-heldout)
#   env: VENV (default /tmp/venv-heldout), PYTHON (default python3, must be 3.11+)
#
# then:  QUASAR_HELDOUT_VECTORS=OUT_DIR cargo test --release --test it heldout -- --ignored
set -euo pipefail

OUT="${1:-/var/tmp/quasar-heldout}"
VENV="${VENV:-/tmp/venv-heldout}"
PYTHON="${PYTHON:-python3}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$OUT/" in
  "$repo"/*) echo "OUT_DIR must be outside the repository ($repo)" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# The package's `test` extra brings what its test suite imports (ckzg, trie/rlp, eth-hash
# backend, pytest, pytest-xdist …).
if ! "$VENV/bin/python" -c 'import eth_consensus_specs, ckzg, snappy, pytest, rlp, trie, xdist' 2>/dev/null; then
  "$VENV/bin/pip" install -q 'eth-consensus-specs[test]==1.7.0a13' ckzg==2.1.8 python-snappy==0.7.3
fi

test_root="$("$VENV/bin/python" -c 'import eth_consensus_specs, pathlib; print(pathlib.Path(eth_consensus_specs.__file__).parent / "test")')"
modules=(
  "$test_root/fulu/random/test_random.py"
  "$test_root/phase0/finality/test_finality.py"
)
for m in "${modules[@]}"; do
  [ -f "$m" ] || { echo "missing test module $m" >&2; exit 1; }
done

# The wheel's helpers/deposits.py imports its churn helper by the spec repository's path,
# `tests.core.pyspec.eth_consensus_specs…`; give it that path (a symlink to the installed
# package; same shim as scripts/gen_mainnet_vectors.py).
shim="$(mktemp -d /tmp/quasar-specshim-XXXXXX)"
trap 'rm -rf "$shim"' EXIT
mkdir -p "$shim/tests/core/pyspec"
touch "$shim/tests/__init__.py" "$shim/tests/core/__init__.py" "$shim/tests/core/pyspec/__init__.py"
ln -s "$(dirname "$test_root")" "$shim/tests/core/pyspec/eth_consensus_specs"

set -x
cd "$test_root"
PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  --fork=fulu --preset=minimal \
  --reftests --reftests-output="$OUT/tests" \
  "${modules[@]}" "${@:2}"
set +x

for h in random/random finality/finality; do
  d="$OUT/tests/minimal/fulu/$h/pyspec_tests"
  echo "$h: $(find "$d" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) cases in $d"
done
