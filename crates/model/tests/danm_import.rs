//! Golden tests: DANM network YAML as DANM stores it, with allocation bitmaps built by hand
//! from the documented format, parsed, validated, converted and listed the way DANM's
//! showalloc lists them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use plexus_model::bitmap::AllocBitmap;
use plexus_model::{
    FamilyPool, NetworkKind, NetworkList, NetworkObject, Operation, Rule, to_pool, validate,
};
use serde::Deserialize;

/// A DanmNet after DANM's webhook and CNI worked on it. `alloc` was built by hand:
/// bits 0 (.0), 1 (gateway .1), 2, 3, 10, 200 (pods) and 255 (broadcast), MSB first:
/// byte 0 = 0xF0, byte 1 = 0x20, byte 25 = 0x80, byte 31 = 0x01.
/// `alloc6` over 2001:db8::/120: bits 0, 1 (gateway), 5 (a pod), 255: byte 0 = 0xC4.
const DANMNET_YAML: &str = r#"
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: internal
  namespace: default
  generation: 3932
  resourceVersion: "81234"
  uid: 5a4e3f1c-0000-4000-8000-000000000001
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
"#;

/// DanmEps of the namespace: address → pod, as showalloc looks them up.
fn endpoints() -> BTreeMap<IpAddr, &'static str> {
    [
        ("10.100.100.2", "web-0"),
        ("10.100.100.3", "web-1"),
        ("10.100.100.200", "db-0"),
        ("2001:db8::5", "web-0"),
    ]
    .into_iter()
    .map(|(ip, pod)| (ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")), pod))
    .collect()
}

/// showalloc's listing without `-a`: reserved addresses and set bits, `%15s : status`.
fn showalloc(family: &FamilyPool, bitmap: &AllocBitmap) -> String {
    let eps = endpoints();
    let cidr = family.allocation_cidr;
    let mut out = String::new();
    let mut shown: Vec<IpAddr> = bitmap.addresses(&cidr).collect();
    shown.push(cidr.network());
    shown.push(cidr.broadcast());
    shown.sort_unstable();
    shown.dedup();
    for ip in shown {
        let status = match (family.reservation(ip), eps.get(&ip)) {
            (Some(reserved), _) => reserved.to_string(),
            (None, Some(pod)) => format!("allocated (Pod: {pod})"),
            (None, None) => "allocated (unknown Pod)".to_owned(),
        };
        let _ = writeln!(out, "{ip:>15} : {status}");
    }
    out
}

fn parse(yaml: &str) -> NetworkObject {
    serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_danm_network_with_a_real_bitmap_imports_and_lists_like_showalloc() {
    let object = parse(DANMNET_YAML);
    assert_eq!(object.kind, NetworkKind::DanmNet);
    assert_eq!(object.metadata.resource_version.as_deref(), Some("81234"));
    // On create the bitmaps would be refused; an existing network keeps them.
    let create = validate(&object, Operation::Create);
    assert!(
        create.as_ref().is_err_and(|e| e.has(Rule::AllocOnCreate)),
        "{create:?}"
    );
    let valid = validate(&object, Operation::Update).unwrap_or_else(|e| panic!("{e}"));
    let pool = to_pool(&valid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool.network, "default/internal");

    let v4 = pool.v4.as_ref().unwrap_or_else(|| panic!("no v4"));
    let alloc = AllocBitmap::decode_for(&object.spec.options.alloc, &v4.allocation_cidr)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        showalloc(v4, &alloc),
        "   10.100.100.0 : reserved (network base address)\n\
         \x20  10.100.100.1 : reserved (gateway)\n\
         \x20  10.100.100.2 : allocated (Pod: web-0)\n\
         \x20  10.100.100.3 : allocated (Pod: web-1)\n\
         \x20 10.100.100.10 : allocated (unknown Pod)\n\
         \x2010.100.100.200 : allocated (Pod: db-0)\n\
         \x2010.100.100.255 : reserved (broadcast address)\n"
    );

    let v6 = pool.v6.as_ref().unwrap_or_else(|| panic!("no v6"));
    let alloc6 = AllocBitmap::decode_for(&object.spec.options.alloc6, &v6.allocation_cidr)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        showalloc(v6, &alloc6),
        "     2001:db8:: : reserved (network base address)\n\
         \x20   2001:db8::1 : reserved (gateway)\n\
         \x20   2001:db8::5 : allocated (Pod: web-0)\n\
         \x20  2001:db8::ff : reserved (broadcast address)\n"
    );
}

#[test]
fn the_allocations_to_import_are_the_set_bits_that_are_not_reserved() {
    let object = parse(DANMNET_YAML);
    let valid = validate(&object, Operation::Update).unwrap_or_else(|e| panic!("{e}"));
    let pool = to_pool(&valid).unwrap_or_else(|e| panic!("{e}"));
    let v4 = pool.v4.as_ref().unwrap_or_else(|| panic!("no v4"));
    let alloc = AllocBitmap::decode(&object.spec.options.alloc).unwrap_or_else(|e| panic!("{e}"));
    let held: Vec<String> = alloc
        .addresses(&v4.allocation_cidr)
        .filter(|ip| v4.reservation(*ip).is_none())
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(
        held,
        [
            "10.100.100.2",
            "10.100.100.3",
            "10.100.100.10",
            "10.100.100.200"
        ]
    );
    // Every one of them is a valid static address of the converted pool.
    let config = pool.pool_config().unwrap_or_else(|e| panic!("{e}"));
    for ip in held {
        let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plexus_model_place(&config.range_sets, ip), Some(0), "{ip}");
    }
}

/// The range set a static address goes to.
fn plexus_model_place(sets: &[plexus_ipam_core::RangeSet], ip: IpAddr) -> Option<usize> {
    plexus_ipam_core::place_static(sets, ip).ok()
}

#[test]
fn cluster_and_tenant_networks_and_multi_document_yaml_parse() {
    let docs = r#"
apiVersion: danm.io/v1
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
  plexus:
    exclude: [10.0.0.0/24]
    reserved: [10.1.0.1]
    block_size: 24
"#;
    let objects: Vec<NetworkObject> = serde_norway::Deserializer::from_str(docs)
        .map(|doc| NetworkObject::deserialize(doc).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(objects.len(), 3);
    let names: Vec<String> = objects.iter().map(NetworkObject::qualified_name).collect();
    assert_eq!(names, ["external", "team-a/tenant-net", "big"]);
    for object in &objects {
        let valid = validate(object, Operation::Create).unwrap_or_else(|e| panic!("{e}"));
        let pool = to_pool(&valid).unwrap_or_else(|e| panic!("{e}"));
        assert!(pool.pool_config().is_ok());
    }
    let big = validate(&objects[2], Operation::Create).unwrap_or_else(|e| panic!("{e}"));
    let capacity = to_pool(&big)
        .ok()
        .and_then(|p| p.v4)
        .and_then(|f| f.range().map(|r| r.capacity()));
    // .1 to .255.255.254, minus the excluded 10.0.0.1-10.0.0.255 and the reserved 10.1.0.1.
    assert_eq!(capacity, Some((1 << 24) - 2 - 255 - 1));
}

#[test]
fn kubectl_list_output_parses() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        DANMNET_YAML
            .trim_start_matches('\n')
            .lines()
            .enumerate()
            .map(|(i, line)| if i == 0 {
                format!("- {line}\n")
            } else {
                format!("  {line}\n")
            })
            .collect::<String>()
    );
    let list: NetworkList = serde_norway::from_str(&list).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].spec.options.vlan, Some(500));
}

#[test]
fn a_misspelt_option_is_refused_with_its_name() {
    let typo = DANMNET_YAML.replace("host_device", "hostDevice");
    let err = serde_norway::from_str::<NetworkObject>(&typo)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hostDevice"), "{err}");
}
