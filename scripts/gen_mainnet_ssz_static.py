"""Generate ssz_static vectors for fulu/mainnet in the consensus-spec-tests layout,
with the executable spec (eth-consensus-specs==1.7.0a13), for quasar's runner.

usage: python gen_mainnet_ssz_static.py OUT_DIR [CASES_PER_SUITE]
writes OUT_DIR/tests/mainnet/fulu/ssz_static/<Type>/<suite>/case_<i>/{serialized.ssz_snappy,roots.yaml}
"""
import hashlib
import os
import sys
from inspect import getmembers, isclass
from random import Random

import snappy
from eth_consensus_specs.debug import random_value
from eth_consensus_specs.fulu import mainnet as spec
from eth_consensus_specs.utils.ssz.ssz_impl import hash_tree_root, serialize
from eth_consensus_specs.utils.ssz.ssz_typing import Container

out = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
names = sorted(n for n, v in getmembers(spec, isclass) if issubclass(v, Container) and v is not Container)
for name in names:
    typ = getattr(spec, name)
    for mode in random_value.RandomizationMode:
        for chaos in ([False, True] if mode == random_value.RandomizationMode.mode_random else [False]):
            suite = f"ssz_{mode.to_name()}{'_chaos' if chaos else ''}"
            n = count if mode.is_changing() else 1
            for i in range(n):
                seed = int.from_bytes(hashlib.sha256(f"{name}/{suite}/{i}".encode()).digest()[:8], "little")
                value = random_value.get_random_ssz_object(Random(seed), typ, 1000, 10, mode, chaos)
                d = os.path.join(out, "tests/mainnet/fulu/ssz_static", name, suite, f"case_{i}")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "serialized.ssz_snappy"), "wb") as f:
                    f.write(snappy.compress(serialize(value)))
                with open(os.path.join(d, "roots.yaml"), "w") as f:
                    f.write("{root: '0x" + hash_tree_root(value).hex() + "'}\n")
    print(name, flush=True)
