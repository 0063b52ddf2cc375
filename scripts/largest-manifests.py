#!/usr/bin/env python3
"""Writes the largest manifests Custom::KedaInstall accepts, for `make bench`:
  <dir>/bytes.yaml  KEDA's release manifest plus ConfigMaps of 1,000,000 bytes in its
                    namespace, just under the 16 MiB download limit;
  <dir>/nodes.yaml  KEDA's release manifest plus ConfigMaps of many short keys, just under the
                    1,000,000-node limit (what alias-free YAML of many nodes costs to parse).
usage: largest-manifests.py KEDA_MANIFEST DIR"""
import sys

LIMIT_BYTES = 16 * 1024 * 1024
LIMIT_NODES = 1_000_000

keda = open(sys.argv[1]).read().rstrip("\n") + "\n"
out = sys.argv[2]

with open(f"{out}/bytes.yaml", "w") as f:
    f.write(keda)
    size, n = len(keda.encode()), 0
    while True:
        doc = f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: padding-{n}\n  namespace: keda\ndata:\n  blob: {'x' * 1_000_000}\n"
        if size + len(doc) > LIMIT_BYTES:
            break
        f.write(doc)
        size += len(doc)
        n += 1

# KEDA's manifest is about 15,000 nodes; each padding key and value adds 2.
with open(f"{out}/nodes.yaml", "w") as f:
    f.write(keda)
    keys_per_map, maps = 10_000, (LIMIT_NODES - 20_000) // 20_000
    for m in range(maps):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys-{m}\n  namespace: keda\ndata:\n")
        f.write("".join(f"  k{i}: v\n" for i in range(keys_per_map)))
