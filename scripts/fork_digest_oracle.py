#!/usr/bin/env python3
"""Oracle for src/net/fork_digest.rs: fork digests from the consensus-specs executable spec.

    python3 -m venv /tmp/specvenv
    /tmp/specvenv/bin/pip install eth-consensus-specs==1.7.0a13 ckzg
    /tmp/specvenv/bin/python scripts/fork_digest_oracle.py

Prints one `(case, epoch, digest)` line per value; the unit tests in
src/net/fork_digest.rs hard-code this output.
"""
from eth_consensus_specs.fulu import mainnet, minimal

FAR = 2**64 - 1
MAINNET_GVR = bytes.fromhex("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")
TEST_GVR = bytes(range(32))


def with_config(spec, **overrides):
    spec.config = spec.Configuration(**{**spec.config._asdict(), **overrides})
    return spec


def run(case, spec, gvr, epochs):
    for e in epochs:
        d = spec.compute_fork_digest(spec.Root(gvr), spec.Epoch(e))
        print(f'("{case}", {e}, "{bytes(d).hex()}"),')


run("mainnet", mainnet, MAINNET_GVR,
    [0, 74239, 74240, 144895, 144896, 194048, 269568, 364031, 364032, 411391, 411392,
     412671, 412672, 419071, 419072, FAR])
run("mainnet_zero_root", mainnet, bytes(32), [0, 411392, FAR])
run("minimal", minimal, TEST_GVR, [0, 1000, FAR - 1, FAR])

# Minimal with every fork scheduled, and blob-parameter-only forks before, at and after Fulu.
with_config(
    minimal,
    ALTAIR_FORK_EPOCH=1, BELLATRIX_FORK_EPOCH=2, CAPELLA_FORK_EPOCH=3, DENEB_FORK_EPOCH=4,
    ELECTRA_FORK_EPOCH=5, FULU_FORK_EPOCH=6,
    BLOB_SCHEDULE=({"EPOCH": 5, "MAX_BLOBS_PER_BLOCK": 10}, {"EPOCH": 8, "MAX_BLOBS_PER_BLOCK": 12},
                   {"EPOCH": 10, "MAX_BLOBS_PER_BLOCK": 14}),
)
run("minimal_scheduled", minimal, TEST_GVR, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, FAR])

# Every fork at genesis; a BPO fork at genesis and one at epoch 3 (unsorted in the config).
with_config(
    minimal,
    ALTAIR_FORK_EPOCH=0, BELLATRIX_FORK_EPOCH=0, CAPELLA_FORK_EPOCH=0, DENEB_FORK_EPOCH=0,
    ELECTRA_FORK_EPOCH=0, FULU_FORK_EPOCH=0,
    BLOB_SCHEDULE=({"EPOCH": 3, "MAX_BLOBS_PER_BLOCK": 21}, {"EPOCH": 0, "MAX_BLOBS_PER_BLOCK": 9}),
)
run("minimal_genesis", minimal, TEST_GVR, [0, 2, 3, FAR])

# Fulu at genesis with no blob schedule: Electra's parameters are mixed in.
with_config(minimal, ELECTRA_FORK_EPOCH=0, FULU_FORK_EPOCH=0, BLOB_SCHEDULE=())
run("minimal_no_schedule", minimal, TEST_GVR, [0, 5])
