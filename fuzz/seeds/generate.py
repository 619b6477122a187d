#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (small, hand-picked inputs taken
from the repository's tests and docs). Re-run after editing; the output is committed."""
import json, os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

def j(v):
    return json.dumps(v, separators=(",", ":")).encode()

IPAMS = [
    {"type": "plexus-ipam", "range": "10.0.0.0/24", "gateway": "10.0.0.1"},
    {"type": "whereabouts", "range": "192.168.2.225-192.168.2.230/28", "exclude": ["192.168.2.229/30"]},
    {"type": "plexus-ipam", "range": "10.0.0.0/24", "range_start": "10.0.0.50", "range_end": "10.0.0.60",
     "ipRanges": [{"range": "fd00:9::/120"}], "network_name": "blue-net"},
    {"type": "whereabouts", "range": "2001::0/116", "gateway": "2001::f:1",
     "addresses": [{"address": "10.9.0.5/24", "gateway": "10.9.0.1"}]},
    {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/16", "rangeStart": "10.1.0.10",
     "rangeEnd": "10.1.0.250", "gateway": "10.1.0.1"}], [{"subnet": "fd00:1::/64"}]],
     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.1"}],
     "dns": {"nameservers": ["10.1.0.53"]}, "dataDir": "/var/lib/cni"},
    {"type": "host-local", "subnet": "10.2.0.0/24", "rangeStart": "10.2.0.5", "rangeEnd": "10.2.0.9"},
    {"type": "plexus-ipam", "range": "10.3.0.0/8", "blocks": {"v4": 26, "v6": 122, "release_after_seconds": 600},
     "store": {"type": "sqlite", "path": "/var/lib/plexus/ipam.db", "busy_timeout_ms": 10000, "synchronous": "full"},
     "node_name": "node-1", "enable_overlapping_ranges": False},
    {"type": "plexus-ipam", "range": "10.4.0.0/24", "blocks": False,
     "store": {"type": "postgres", "host": "db", "port": 5432, "dbname": "plexus", "user": "plexus",
               "password_file": "/etc/plexus/pw", "sslmode": "verify-full", "ca_file": "/etc/ca.pem",
               "timeout_ms": 2000, "history_limit": 100}},
    {"type": "plexus-ipam", "range": "fd00:5::/64", "exclude": ["fd00:5::/120"],
     "store": {"type": "etcd", "endpoints": ["https://127.0.0.1:2379"], "prefix": "/plexus",
               "username": "u", "password": "p", "timeout_ms": 1500}},
    {"type": "plexus-ipam", "ranges": [[{"subnet": "10.5.0.0/30"}]]},
]

NETCONFS = []
for i, ipam in enumerate(IPAMS):
    version = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"][i % 5]
    NETCONFS.append({"cniVersion": version, "name": f"net{i}", "type": "bridge", "ipam": ipam})
NETCONFS[0]["runtimeConfig"] = {"ips": ["10.0.0.5/24"], "ipRanges": [[{"subnet": "10.8.0.0/24"}]]}
NETCONFS[1]["args"] = {"cni": {"ips": ["192.168.2.226"]}}
NETCONFS[2]["prevResult"] = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:05",
    "sandbox": "/var/run/netns/x"}], "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}], "dns": {"nameservers": ["10.0.0.53"], "search": ["x"]}}
NETCONFS[3]["cni.dev/valid-attachments"] = [{"containerID": "c1", "ifname": "eth0"}]
NETCONFS[4]["cni.dev/attachments"] = None

PREV = [
    {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.5/24", "gateway": "10.0.0.1"}]},
    NETCONFS[2]["prevResult"],
    {"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "mtu": 1500, "socketPath": "/s", "pciID": "0000:00:1f.0"}],
     "ips": [{"address": "fd00::5/64", "gateway": ""}],
     "routes": [{"dst": "::/0", "gw": "fd00::1", "mtu": 1400, "advmss": 1360, "priority": 10, "table": 100, "scope": 0}],
     "dns": {"domain": "cluster.local", "options": ["ndots:5"]}},
    {"ips": None, "routes": None, "interfaces": None},
]

CNI_ENV = [
    b"ADD\x00c1\x00/var/run/netns/x\x00eth0\x00K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.0.0.5\x00/opt/cni/bin:/usr/lib/cni",
    b"DEL\x00abc.def-1\x00\x00net1\x00IgnoreUnknown=1;FOO=bar",
    b"CHECK\x00c2\x00/proc/1/ns/net\x00eth0\x00K8S_POD_UID=1234;K8S_POD_INFRA_CONTAINER_ID=c2\x00",
    b"STATUS\x00\x00\x00\x00\x00/opt/cni/bin",
    b"GC\x00\x00\x00\x00IP=10.0.0.5/24,fd00::5;GATEWAY=10.0.0.1",
    b"VERSION",
    b"IgnoreUnknown=true;K8S_POD_NAME=a=b;;IP=fd00::1",
]

ANNOTATIONS = [
    b'[{"clusterNetwork":"net-a","ip":"dynamic","proutes":{"10.10.1.0/24":"10.0.0.65"}},'
    b'{"network":"internal","ip":"10.0.0.5/24","ip6":"none"},{"tenantNetwork":"t1","ip6":"2001:db8::7"},{"network":"l2"}]',
    b'[{"name":"net-a","namespace":"infra","interface":"net1","ips":["10.1.0.5/24","2001:db8::5"],'
    b'"mac":"0A-58-0A-01-00-05","default-route":["10.1.0.1"],"cni-args":{"foo":1},'
    b'"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP"}],"bandwidth":{"ingressRate":1000},'
    b'"deviceID":"0000:00:1f.0","example.com/flavour":"x"},{"name":"net-b","interfaceRequest":"net2","ipam-claim-reference":"vm-1"}]',
    b"infra/net-a@net1, net-b, other/net-c",
    b"[]",
    b"danm.k8s.io/interfaces\x00[{\"network\":\"a\",\"ip\":\"dynamic\"}]",
    b"k8s.v1.cni.cncf.io/networks\x00ns/net@if1\x00plexus.io/interfaces\x00[]",
    b"danm.io/interfaces\x00[{\"network\":\"a\",\"ipv4\":\"dynamic\"}]",
]

POD_NETWORKS = [
    b'[{"name":"cbr0","interface":"eth0","ips":["10.244.1.7"],"mac":"0a:58:0a:f4:01:07","default":true,"dns":{}},'
    b'{"name":"ns/net-b","interface":"net1","ips":["192.168.1.200","fd00::7"],"mac":"c2:4a:1f:2e:7d:11","mtu":1450,'
    b'"dns":{"nameservers":["10.0.0.53"],"search":["svc"]},"gateway":["192.168.1.1"],"default-route":["192.168.1.1"],'
    b'"device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:00:1f.0"}},"example.com/x":1}]',
    b"ns\x00danm.k8s.io/interfaces\x00[{\"network\":\"a\",\"ip\":\"dynamic\"},{\"tenantNetwork\":\"t1\"},{\"clusterNetwork\":\"net-d\"}]",
    b"infra\x00plexus.io/interfaces\x00[{\"clusterNetwork\":\"net-a\",\"ip6\":\"none\"},{\"network\":\"internal\"}]",
    b"ns\x00plexus.io/interfaces\x00[{\"clusterNetwork\":\"net-a\"}]",
    b"ns\x00k8s.v1.cni.cncf.io/networks\x00infra/net-a@net1, net-b, other/net-c, net-t",
    b"ns\x00k8s.v1.cni.cncf.io/networks\x00[{\"name\":\"bad\"},{\"name\":\"missing\",\"namespace\":\"x\"}]",
    b"ns\x00danm.io/interfaces\x00[]",
    b"ns",
]

DANMNET = b"""apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: internal
  namespace: default
spec:
  NetworkID: internal
  NetworkType: ipvlan
  Options:
    host_device: ens4
    vlan: 500
    container_prefix: int
    rt_tables: 10
    cidr: 10.100.100.0/24
    allocation_pool:
      start: 10.100.100.1
      end: 10.100.100.254
      lastIp: 10.100.100.200/24
    routes:
      10.20.0.0/16: 10.100.100.1
    alloc: 8CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIAAAAAAAAE=
    net6: 2001:db8::/64
    allocation_pool_v6:
      cidr: 2001:db8::/120
      start: 2001:db8::1
      end: 2001:db8::fe
    routes6:
      2001:db8:99::/48: 2001:db8::1
    alloc6: xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=
"""
MULTI = b"""apiVersion: danm.io/v1
kind: ClusterNetwork
metadata:
  name: external
spec:
  NetworkID: external
  AllowedTenants: [team-a, team-b]
  Options:
    host_device: ens5
    cidr: 192.0.2.0/24
---
apiVersion: danm.k8s.io/v1
kind: TenantNetwork
metadata:
  name: tenant-net
  namespace: team-a
spec:
  NetworkID: tnet
  Options:
    cidr: 198.51.100.0/26
---
apiVersion: plexus.io/v1
kind: ClusterNetwork
metadata:
  name: big
spec:
  NetworkID: big
  NetworkType: macvlan
  Options:
    host_device: bond0
    cidr: 10.0.0.0/8
"""
LIST = b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: danm.k8s.io/v1\n  kind: ClusterNetwork\n  metadata: {name: a}\n  spec: {NetworkID: a, Options: {host_device: eth0, cidr: 10.0.0.0/24}}\n"
V6ONLY = b"apiVersion: danm.k8s.io/v1\nkind: ClusterNetwork\nmetadata: {name: v6only}\nspec:\n  NetworkID: v6only\n  Options:\n    host_device: eth2\n    net6: fd00:1::/64\n    allocation_pool_v6: {cidr: 'fd00:1::/120'}\n"
JSONNET = j({"apiVersion": "danm.k8s.io/v1", "kind": "ClusterNetwork", "metadata": {"name": "blue"},
  "spec": {"NetworkID": "blue", "Options": {"cidr": "10.0.0.0/8", "routes": {"192.168.0.0/16": "10.0.0.1"}}}})
L2 = b"apiVersion: danm.k8s.io/v1\nkind: DanmNet\nmetadata: {name: l2, namespace: x}\nspec: {NetworkID: l2, NetworkType: sriov, Options: {device_pool: intel.com/sriov}}\n"
ALIAS = b"a: &a [x, y]\nb: *a\nkind: ClusterNetwork\n"

WHEREABOUTS = b"""apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata: {name: wb-10.10.0.0-16, namespace: kube-system}
spec:
  range: 10.10.0.0/16
  allocations:
    "300": {id: c300, podref: default/web-2, ifname: net1}
    "5": {id: c5, podref: default/web-1}
    "junk": {id: x, podref: a/b}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: wb-10.10.0.5}
spec: {podref: default/web-1, ifname: eth0}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: wb-10.10.9.9}
spec: {podref: default/gone}
"""
WB6 = b"apiVersion: whereabouts.cni.cncf.io/v1alpha1\nkind: IPPool\nmetadata: {name: fd00-1--64}\nspec:\n  range: fd00:1::/64\n  allocations:\n    \"1\": {id: c1, podref: ns/p}\n---\nkind: NodeSlicePool\nmetadata: {name: s}\n"
DANMEP = b"""---
apiVersion: danm.k8s.io/v1
kind: DanmEp
metadata: {name: ep1, namespace: default}
spec:
  NetworkName: internal
  CID: c0ffee
  Pod: web-0
  Interface: {Name: eth0, Address: 10.100.100.2/24, AddressIPv6: 2001:db8::5/64}
"""
EXPORT = j({"kind": "PlexusExport", "version": 1, "networks": [json.loads(JSONNET)],
   "allocations": [{"network": "blue", "container_id": "c1", "ifname": "eth0", "ip": "10.0.0.5",
                    "range_set": "10.0.0.0/8[10.0.0.1-10.255.255.254]"}]})

CONFLISTS = [
    j({"cniVersion": "1.1.0", "name": "blue", "plugins": [
        {"type": "bridge", "ipam": {"type": "plexus-ipam", "range": "10.9.0.0/24", "gateway": "10.9.0.1",
         "network_name": "blue-net", "ipRanges": [{"range": "fd00:9::/120"}],
         "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}),
    j({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "9.9.9"], "name": "red", "disableCheck": "true",
       "disableGC": True, "plugins": [{"type": "macvlan", "master": "eth0",
       "ipam": {"type": "plexus-ipam", "ranges": [[{"subnet": "10.7.0.0/24"}]]}}]}),
    j({"cniVersion": "0.3.1", "name": "single", "type": "bridge",
       "ipam": {"type": "plexus-ipam", "subnet": "10.6.0.0/24", "capabilities": {"ips": True}}}),
    j({"cniVersion": "1.0.0", "name": "x", "plugins": []}),
]

def bitmap(selector, text):
    return bytes([selector]) + text

BITMAPS = [
    bitmap(8, b"8CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIAAAAAAAAE="),
    bitmap(0x80 | 8, b"xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="),
    bitmap(2, b"gA=="),
    bitmap(4, b"//8="),
    bitmap(10, b"gAAAAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="),
    bitmap(25, b"AA"),
    bitmap(0, b"AQ=="),
]

TARGETS = {
    "netconf": [j(n) for n in NETCONFS] + [b"{}", b"[]", b'{"cniVersion":"0.2.0","name":"a","type":"b"}'],
    "ipam_request": [j(n) for n in NETCONFS] + [
        j(NETCONFS[0]) + b"\x00IP=10.0.0.7;IgnoreUnknown=1",
        j(NETCONFS[4]) + b"\x00IP=10.1.0.20,fd00:1::20;K8S_POD_NAME=p",
        j(NETCONFS[3]) + b"\x00UNKNOWN=1"],
    "ipam_config": [j(i) for i in IPAMS] + [j({"name": "rt", "ipam": IPAMS[0],
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.8.0.0/24", "rangeStart": "10.8.0.9"}]]}})],
    "prev_result": [j(p) for p in PREV],
    "cni_env": CNI_ENV,
    "annotations": ANNOTATIONS,
    "pod_networks": POD_NETWORKS,
    "network_yaml": [DANMNET, MULTI, LIST, V6ONLY, JSONNET, L2, ALIAS],
    "danm_bitmap": BITMAPS,
    "import": [WHEREABOUTS, WB6, DANMNET + DANMEP, EXPORT, MULTI],
    "conflist": CONFLISTS + [j(NETCONFS[5])],
}

for target, seeds in TARGETS.items():
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i, seed in enumerate(seeds):
        with open(os.path.join(d, f"seed-{i:02}"), "wb") as f:
            f.write(seed)
