#!/usr/bin/env python3
"""Writes hostile inputs of about 1 MB (the netconf size limit) into DIR/<target>/<name>;
scripts/fuzz runs each through its fuzz target under the same memory limits as fuzzing: a
1 MB config must be refused or parsed without allocating gigabytes. Usage:
big_inputs.py DIR"""
import base64, json, os, sys

MB = 1 << 20
out = sys.argv[1]

def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def netconf(ipam, **extra):
    conf = {"cniVersion": "1.1.0", "name": "big", "type": "bridge", "ipam": ipam}
    conf.update(extra)
    return json.dumps(conf, separators=(",", ":"))

def fill(make, limit=MB - 64):
    """The largest list of make(i) whose netconf stays under limit bytes."""
    items, size, i = [], 0, 0
    while True:
        item = make(i)
        size += len(json.dumps(item)) + 1
        if size > limit - 300:
            return items
        items.append(item)
        i += 1

v4 = lambda i: f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
# ~60k exclusions in a /8.
excl = fill(lambda i: v4(i) + "/32")
put("ipam_request", "exclude-60k.json", netconf({"type": "plexus-ipam", "range": "10.0.0.0/8", "exclude": excl}))
put("ipam_config", "exclude-60k.json", json.dumps({"range": "10.0.0.0/8", "exclude": excl}))
# ~18k disjoint range sets (host-local ranges), pairwise overlap checks.
sets = fill(lambda i: [{"subnet": f"10.{(i >> 8) & 255}.{i & 255}.0/24"}])
put("ipam_config", "ranges-18k.json", json.dumps({"ranges": sets}))
put("ipam_request", "ranges-18k.json", netconf({"type": "plexus-ipam", "ranges": sets}))
# ~25k whereabouts ipRanges.
ipr = fill(lambda i: {"range": f"10.{(i >> 8) & 255}.{i & 255}.0/24"})
put("ipam_config", "ipranges-25k.json", json.dumps({"ipRanges": ipr}))
# ~40k static addresses requested.
ips = fill(lambda i: v4(i) + "/8")
put("ipam_request", "static-ips-40k.json", netconf({"type": "plexus-ipam", "range": "10.0.0.0/8"},
    runtimeConfig={"ips": ips}))
put("netconf", "static-ips-40k.json", netconf({"type": "x"}, runtimeConfig={"ips": ips}))
# Deep nesting, long strings, a prevResult with ~20k addresses and routes.
put("netconf", "nested.json", '{"cniVersion":"1.1.0","name":"a","type":"b","args":' + "[" * (MB // 2) + "]" * (MB // 2) + "}")
put("netconf", "long-name.json", netconf({}, x="a" * (MB - 200)))
put("netconf", "over-limit.json", netconf({}, x="a" * MB))
prev = {"ips": fill(lambda i: {"address": v4(i) + "/8", "gateway": "10.0.0.1"}, MB // 2),
        "routes": fill(lambda i: {"dst": v4(i) + "/32"}, MB // 2)}
put("netconf", "prev-result-20k.json", netconf({}, prevResult=prev))
put("prev_result", "prev-result-20k.json", json.dumps(prev))
# CNI_ARGS with ~100k pairs; the environment with it.
pairs = ";".join(f"K{i}=V{i}" for i in range(90000))[: MB - 100]
put("cni_env", "args-90k.txt", pairs)
put("cni_env", "env-args-90k.txt", "ADD\0c\0/n\0eth0\0IgnoreUnknown=1;" + pairs + "\0/opt/cni/bin")
# A conflist with ~15k plugins.
plugins = fill(lambda i: {"type": "bridge", "ipam": {"type": "plexus-ipam", "range": "10.0.0.0/24"}})
put("conflist", "plugins-15k.json", json.dumps({"cniVersion": "1.1.0", "name": "big", "plugins": plugins}))
# Annotations: over the 256 KiB limit, and 240 KiB of entries.
entries = fill(lambda i: {"network": f"n{i}", "ip": "dynamic"}, 240 * 1024)
put("annotations", "danm-entries.txt", json.dumps(entries))
put("annotations", "over-limit.txt", json.dumps(fill(lambda i: {"network": f"n{i}"})))
# YAML: an alias bomb, 1 MB of documents, and a DanmNet /10 with every alloc bit set.
bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
for n in range(1, 10):
    bomb += f"{chr(97 + n)}: &{chr(97 + n)} [" + ", ".join([f"*{chr(96 + n)}"] * 10) + "]\n"
put("network_yaml", "alias-bomb.yaml", bomb)
put("import", "alias-bomb.yaml", bomb)
doc = "apiVersion: danm.k8s.io/v1\nkind: ClusterNetwork\nmetadata: {name: n%d}\nspec: {NetworkID: n%d, Options: {host_device: eth0, cidr: 10.%d.%d.0/24}}\n---\n"
docs = "".join(doc % (i, i, (i >> 8) & 255, i & 255) for i in range(MB // len(doc % (0, 0, 0, 0))))
put("network_yaml", "networks-6k.yaml", docs)
# /10: 2^22 bits = 512 KiB of bitmap, ~700 KB of base64, 4 million addresses held.
full = base64.b64encode(b"\xff" * ((1 << 22) // 8)).decode()
danm = ("apiVersion: danm.k8s.io/v1\nkind: ClusterNetwork\nmetadata: {name: full}\nspec:\n  NetworkID: full\n"
        "  Options:\n    host_device: eth0\n    cidr: 10.0.0.0/10\n    alloc: " + full + "\n")
# Was known finding 3 (docs/reliability.md): the DANM importer materialised one record per
# held address (> 2 GiB for this file); it now streams them from the bitmap.
put("import", "danm-full-10.yaml", danm)
put("network_yaml", "danm-full-10.yaml", danm)
put("danm_bitmap", "full-10.txt", bytes([22]) + full.encode())
# whereabouts: an IPPool with ~25k allocations, offsets far outside the range too.
allocs = "".join(f'    "{i * 7}": {{id: c{i}, podref: ns/p{i}}}\n' for i in range(25000))
put("import", "ippool-25k.yaml", "kind: IPPool\nmetadata: {name: big}\nspec:\n  range: 10.0.0.0/8\n  allocations:\n" + allocs)
put("import", "ippool-offsets.yaml", "kind: IPPool\nmetadata: {name: big}\nspec:\n  range: 10.0.0.0/30\n  allocations:\n"
    + "".join(f'    "{(1 << 64) + i}": {{id: c{i}, podref: ns/p{i}}}\n' for i in range(20000)))
