"""Generate fulu/mainnet reference vectors for quasar's mainnet runners, with the
executable spec from PyPI (eth-consensus-specs==1.7.0a13), in the consensus-spec-tests
layout: OUT_DIR/tests/mainnet/fulu/<runner>/<handler>/<suite>/<case>/.

The vectors are kept out of the repository. Setup (Python 3.11):

    python3.11 -m venv /tmp/quasar-mainnet-venv
    /tmp/quasar-mainnet-venv/bin/pip install eth-consensus-specs==1.7.0a13 \
        ckzg==2.1.8 python-snappy==0.7.3 pytest

usage: /tmp/quasar-mainnet-venv/bin/python scripts/gen_mainnet_vectors.py OUT_DIR \
           [--only sanity|ssz_static] [--cases-per-suite N] [-k PYTEST_EXPR]

- `sanity` (handlers `slots` and `blocks`) runs the package's own test suite:
  `pytest --fork=fulu --preset=mainnet --reftests --reftests-output=OUT_DIR/tests`
  over every `<fork>/sanity/` test module of the package (the fulu runs of the
  phase0 … fulu sanity tests, as the spec's generator does).
  On 2 busy cores this takes ~15 minutes for all but two cases; `sanity/slots`
  `historical_accumulator` (8192 slots) and `balance_change_affects_proposer` take far
  longer on mainnet in the Python spec. Skip them with
  `-k "not historical_accumulator and not balance_change_affects_proposer"`.
- `ssz_static` runs scripts/gen_mainnet_ssz_static.py (random values per container).

Then: QUASAR_MAINNET_VECTORS=OUT_DIR cargo test --release --test it mainnet -- --ignored
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import eth_consensus_specs

FORKS_UP_TO_FULU = ["phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu"]


def sanity(out: Path, expr: str | None) -> int:
    test_root = Path(eth_consensus_specs.__file__).parent / "test"
    modules = sorted(
        str(p)
        for fork in FORKS_UP_TO_FULU
        for p in (test_root / fork / "sanity").rglob("test_*.py")
    )
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--fork=fulu", "--preset=mainnet",
        "--reftests", f"--reftests-output={out / 'tests'}",
        *modules,
    ]
    if expr:
        cmd += ["-k", expr]
    print(" ".join(cmd), flush=True)
    # The wheel's helpers/deposits.py imports its churn helper by the spec repository's
    # path, `tests.core.pyspec.eth_consensus_specs…`; give it that path (a symlink to the
    # installed package, the same double import as in the repository, which the
    # package's conftest already handles).
    with tempfile.TemporaryDirectory(prefix="quasar-specshim-") as shim:
        pkg = Path(shim) / "tests" / "core" / "pyspec"
        pkg.mkdir(parents=True)
        for d in (Path(shim) / "tests", Path(shim) / "tests" / "core", pkg):
            (d / "__init__.py").touch()
        (pkg / "eth_consensus_specs").symlink_to(Path(eth_consensus_specs.__file__).parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [shim, env.get("PYTHONPATH")]))
        # A failed spec test is a real error (non-zero exit).
        return subprocess.call(cmd, cwd=test_root, env=env)


def ssz_static(out: Path, cases: int) -> int:
    script = Path(__file__).with_name("gen_mainnet_ssz_static.py")
    return subprocess.call([sys.executable, str(script), str(out), str(cases)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--only", choices=["sanity", "ssz_static"])
    ap.add_argument("--cases-per-suite", type=int, default=3, help="ssz_static cases per random suite")
    ap.add_argument("-k", dest="expr", help="pytest -k expression to generate a subset of sanity")
    args = ap.parse_args()
    out = args.out.resolve()
    repo = Path(__file__).resolve().parent.parent
    if out == repo or repo in out.parents:
        print("OUT_DIR must be outside the repository", file=sys.stderr)
        return 2
    rc = 0
    if args.only in (None, "sanity"):
        rc |= sanity(out, args.expr)
    if args.only in (None, "ssz_static"):
        rc |= ssz_static(out, args.cases_per_suite)
    for runner in ("sanity", "ssz_static"):
        base = out / "tests" / "mainnet" / "fulu" / runner
        if base.is_dir():
            for handler in sorted(p for p in base.iterdir() if p.is_dir()):
                n = sum(1 for s in handler.iterdir() if s.is_dir() for c in s.iterdir() if c.is_dir())
                print(f"{runner}/{handler.name}: {n} cases")
    return rc


if __name__ == "__main__":
    sys.exit(main())
