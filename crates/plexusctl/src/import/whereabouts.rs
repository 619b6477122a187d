//! whereabouts' objects: `IPPool` (one range, allocations keyed by decimal offset from the
//! range's network address) and `OverlappingRangeIPReservation` (one object per address).
//!
//! IPPools carry the allocations. ORIPs only lock an address across overlapping ranges, so
//! they are cross-checked against the pools: an ORIP whose address no pool holds is a
//! whereabouts leak and is reported, not imported.
//!
//! Each network's pools also become a stored network definition (a `ClusterNetwork`, or a
//! `DanmNet` for a `namespace/name`): `cidr` / `net6` from the pool's range, the allocation
//! pool from the CNI configuration's range when one is given, so `network show`,
//! `showalloc` and `usage` work after the import. A network already in the store keeps
//! its definition. The network whereabouts configurations share (overlapping-range
//! protection, [`plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK`]) gets none: the
//! configurations sharing it define it.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::RangeSet;
use plexus_ipam_core::addr::{checked_add, net_contains};
use plexus_store::AttachmentKey;
use serde_json::{Value, json};

use super::{ImportPlan, ImportRecord, owner_from_podref, range_set_for};
use crate::error::{CtlError, CtlResult};
use crate::netfile::network_object;

/// How whereabouts objects are mapped onto plexus.
#[derive(Debug, Clone)]
pub struct WhereaboutsOptions {
    /// The plexus network the allocations belong to; `None`: each IPPool is its own
    /// network, named after the pool (`metadata.name`).
    pub network: Option<String>,
    /// The range sets the plugin uses for this network (from its CNI config), if known.
    pub range_sets: Vec<RangeSet>,
    /// Interface name for allocations that recorded none (whereabouts before 0.6).
    pub default_ifname: String,
}

/// Builds the import plan from whereabouts documents (already split, as JSON values).
pub fn plan(docs: &[Value], opts: &WhereaboutsOptions) -> CtlResult<ImportPlan> {
    let mut plan = ImportPlan {
        keep_stored_networks: true,
        ..ImportPlan::default()
    };
    let mut missing_ifname = 0usize;
    let mut orips = Vec::new();
    let mut pools = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let what = format!("document {} ({})", index + 1, object_name(doc));
        match doc.get("kind").and_then(Value::as_str) {
            Some("IPPool") => {
                let network = match &opts.network {
                    Some(network) => network.clone(),
                    None => object_name(doc),
                };
                let cidr =
                    pool_records(doc, &what, &network, opts, &mut plan, &mut missing_ifname)?;
                pools.push(PoolRange {
                    what,
                    network,
                    cidr,
                });
            }
            Some("OverlappingRangeIPReservation") => orips.push((what, doc)),
            Some("NodeSlicePool") => plan.notes.push(format!(
                "{what}: NodeSlicePool skipped (plexus assigns per-node blocks itself)"
            )),
            other => {
                return Err(CtlError::invalid(
                    what,
                    format!(
                        "kind {} is not a whereabouts IPPool or OverlappingRangeIPReservation",
                        other.unwrap_or("(none)")
                    ),
                ));
            }
        }
    }
    if missing_ifname > 0 {
        plan.notes.push(format!(
            "{missing_ifname} allocation(s) recorded no ifname; imported as {:?}",
            opts.default_ifname
        ));
    }
    network_definitions(&pools, opts, &mut plan)?;
    let held: HashMap<IpAddr, &ImportRecord> = plan.records.iter().map(|r| (r.ip, r)).collect();
    let mut notes = Vec::new();
    for (what, doc) in orips {
        let network = opts.network.as_deref().unwrap_or_default();
        let ip = orip_address(doc, network).map_err(|reason| CtlError::invalid(&what, reason))?;
        let podref = doc
            .pointer("/spec/podref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match held.get(&ip) {
            None => notes.push(format!(
                "{what}: reservation of {ip} for pod {podref:?} has no IPPool allocation \
                 (a whereabouts leak); not imported"
            )),
            Some(record) => {
                let pool_pod = pod_text(record);
                if !podref.is_empty() && pool_pod != podref {
                    notes.push(format!(
                        "{what}: {ip} is reserved for pod {podref:?} but the IPPool gives it to \
                         {pool_pod:?}; the IPPool wins"
                    ));
                }
            }
        }
    }
    plan.notes.extend(notes);
    Ok(plan)
}

fn pod_text(record: &ImportRecord) -> String {
    match (&record.owner.pod_namespace, &record.owner.pod_name) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.clone(),
        _ => String::new(),
    }
}

fn object_name(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("unnamed")
        .to_string()
}

/// One IPPool's range and the network it is imported into.
struct PoolRange {
    /// The document, for messages.
    what: String,
    /// The plexus network.
    network: String,
    /// `spec.range`.
    cidr: IpNet,
}

/// The network definition of each network the pools fill: at most one IPv4 and one IPv6
/// range each (a DANM object has one of each); a network with more gets no definition and
/// a note saying so, its allocations are imported all the same.
fn network_definitions(
    pools: &[PoolRange],
    opts: &WhereaboutsOptions,
    plan: &mut ImportPlan,
) -> CtlResult<()> {
    let mut networks: Vec<&str> = pools.iter().map(|p| p.network.as_str()).collect();
    networks.sort_unstable();
    networks.dedup();
    for network in networks {
        if network == plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK {
            // Defined by every whereabouts configuration sharing it (each owns its range
            // sets); a stored definition would hide all but one of them.
            plan.notes.push(format!(
                "network {network} is shared by whereabouts configurations: defined by them, \
                 not stored"
            ));
            continue;
        }
        let mine: Vec<&PoolRange> = pools.iter().filter(|p| p.network == network).collect();
        let v4: Vec<&PoolRange> = mine
            .iter()
            .copied()
            .filter(|p| p.cidr.addr().is_ipv4())
            .collect();
        let v6: Vec<&PoolRange> = mine
            .iter()
            .copied()
            .filter(|p| p.cidr.addr().is_ipv6())
            .collect();
        if v4.len() > 1 || v6.len() > 1 {
            let ranges: Vec<String> = mine.iter().map(|p| p.cidr.to_string()).collect();
            plan.notes.push(format!(
                "network {network}: {} ranges ({}) do not fit one network definition (one \
                 IPv4 and one IPv6 range); define it with `plexusctl network create`",
                ranges.len(),
                ranges.join(", ")
            ));
            continue;
        }
        let doc = network_document(
            network,
            v4.first().map(|p| p.cidr),
            v6.first().map(|p| p.cidr),
            &opts.range_sets,
        );
        let what = mine.first().map_or(network, |p| p.what.as_str());
        match network_object(what, &doc) {
            Ok((object, _)) => {
                let definition = serde_json::to_value(&object).map_err(|e| {
                    CtlError::invalid(what, format!("cannot encode a network: {e}"))
                })?;
                plan.networks.push((object.qualified_name(), definition));
            }
            Err(e) => plan.notes.push(format!(
                "network {network} not defined in the store ({e}); allocations imported"
            )),
        }
    }
    Ok(())
}

/// A network object over `v4` / `v6` whose allocation pools are the configured ranges
/// on those subnets (if any), else DANM's defaults (the whole subnet).
fn network_document(
    network: &str,
    v4: Option<IpNet>,
    v6: Option<IpNet>,
    range_sets: &[RangeSet],
) -> Value {
    let configured = |cidr: IpNet| {
        range_sets
            .iter()
            .flat_map(|set| set.ranges.iter())
            .find(|r| r.subnet.trunc() == cidr)
            .map(|r| (r.start.to_string(), r.end.to_string()))
    };
    let mut options = serde_json::Map::new();
    if let Some(cidr) = v4 {
        options.insert("cidr".into(), Value::from(cidr.to_string()));
        if let Some((start, end)) = configured(cidr) {
            options.insert(
                "allocation_pool".into(),
                json!({"start": start, "end": end}),
            );
        }
    }
    if let Some(cidr) = v6 {
        options.insert("net6".into(), Value::from(cidr.to_string()));
        let mut pool = json!({"cidr": cidr.to_string()});
        if let Some((start, end)) = configured(cidr) {
            pool["start"] = Value::from(start);
            pool["end"] = Value::from(end);
        }
        options.insert("allocation_pool_v6".into(), pool);
    }
    let (api_version, kind, metadata, id) = match network.split_once('/') {
        Some((namespace, name)) => (
            "danm.k8s.io/v1",
            "DanmNet",
            json!({"name": name, "namespace": namespace}),
            name,
        ),
        None => (
            "plexus.io/v1",
            "ClusterNetwork",
            json!({"name": network}),
            network,
        ),
    };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "spec": {"NetworkID": id, "Options": options},
    })
}

/// The records of one IPPool, recorded under `network`; returns the pool's range.
fn pool_records(
    doc: &Value,
    what: &str,
    network: &str,
    opts: &WhereaboutsOptions,
    plan: &mut ImportPlan,
    missing_ifname: &mut usize,
) -> CtlResult<IpNet> {
    let range = doc
        .pointer("/spec/range")
        .and_then(Value::as_str)
        .ok_or_else(|| CtlError::invalid(what, "spec.range is missing"))?;
    let cidr = parse_pool_range(range)
        .ok_or_else(|| CtlError::invalid(what, format!("spec.range {range:?} is not a CIDR")))?;
    let Some(allocations) = doc.pointer("/spec/allocations") else {
        return Ok(cidr);
    };
    let allocations = allocations
        .as_object()
        .ok_or_else(|| CtlError::invalid(what, "spec.allocations must be a map"))?;
    // Offsets in numeric order, so the records (and the store's writes) are ascending.
    let mut entries: Vec<(u128, &Value)> = Vec::with_capacity(allocations.len());
    for (offset, entry) in allocations {
        // whereabouts itself skips keys that are not integers; plexus says so.
        match offset.parse::<u128>() {
            Ok(n) => entries.push((n, entry)),
            Err(_) => plan.notes.push(format!(
                "{what}: allocation key {offset:?} is not a decimal offset; skipped"
            )),
        }
    }
    entries.sort_by_key(|(n, _)| *n);
    for (offset, entry) in entries {
        let at = format!("{what}: spec.allocations[\"{offset}\"]");
        let ip = checked_add(cidr.network(), offset)
            .filter(|ip| net_contains(&cidr, *ip))
            .ok_or_else(|| CtlError::invalid(&at, format!("offset {offset} is outside {cidr}")))?;
        let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let container_id = field("id");
        if container_id.is_empty() {
            return Err(CtlError::invalid(&at, "has no container id (\"id\")"));
        }
        let ifname = match field("ifname") {
            "" => {
                *missing_ifname += 1;
                opts.default_ifname.clone()
            }
            name => name.to_string(),
        };
        plan.records.push(ImportRecord {
            key: AttachmentKey::new(network, container_id, ifname),
            owner: owner_from_podref(field("podref")),
            ip,
            range_set: range_set_for(&opts.range_sets, ip, &cidr)?,
            node: None,
            created_at: None,
        });
    }
    Ok(cidr)
}

/// `10.0.0.0/24`, or whereabouts' `10.0.0.5-10.0.0.50/24` form (the CIDR of the end).
fn parse_pool_range(range: &str) -> Option<IpNet> {
    if let Ok(net) = range.parse::<IpNet>() {
        return Some(net.trunc());
    }
    let (_, end) = range.split_once('-')?;
    end.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// The address an ORIP locks, from its name: the address with `:` written as `-`,
/// optionally prefixed with `<network_name>-`.
fn orip_address(doc: &Value, network: &str) -> Result<IpAddr, String> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or("metadata.name is missing")?;
    let candidates = [
        name.strip_prefix(&format!("{network}-")),
        Some(name),
        // An unknown network prefix before an IPv4 address.
        name.rsplit_once('-').map(|(_, tail)| tail),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|text| {
            text.parse::<IpAddr>()
                .ok()
                .or_else(|| text.replace('-', ":").parse::<IpAddr>().ok())
        })
        .ok_or_else(|| format!("name {name:?} does not name an address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfile::documents;

    fn opts() -> WhereaboutsOptions {
        WhereaboutsOptions {
            network: Some("wb".into()),
            range_sets: Vec::new(),
            default_ifname: "eth0".into(),
        }
    }

    const POOL: &str = r#"
apiVersion: whereabouts.cni.cncf.io/v1alpha1
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
"#;

    #[test]
    fn ippool_offsets_become_addresses() {
        let docs = documents("wb.yaml", POOL).unwrap();
        let plan = plan(&docs, &opts()).unwrap();
        let got: Vec<(String, String, String)> = plan
            .records
            .iter()
            .map(|r| {
                (
                    r.ip.to_string(),
                    r.key.container_id.clone(),
                    r.key.ifname.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10.10.0.5".into(), "c5".into(), "eth0".into()),
                ("10.10.1.44".into(), "c300".into(), "net1".into())
            ]
        );
        assert_eq!(plan.records[1].owner.pod_name.as_deref(), Some("web-2"));
        assert_eq!(
            plan.records[0].range_set.id(),
            "10.10.0.0/16[10.10.0.1-10.10.255.254]"
        );
        let notes = plan.notes.join("\n");
        assert!(
            notes.contains("\"junk\" is not a decimal offset"),
            "{notes}"
        );
        assert!(
            notes.contains("1 allocation(s) recorded no ifname"),
            "{notes}"
        );
        assert!(
            notes.contains("10.10.9.9 for pod \"default/gone\" has no IPPool allocation"),
            "{notes}"
        );
        assert!(!notes.contains("10.10.0.5 for pod"), "{notes}");
    }

    #[test]
    fn pools_become_network_definitions() {
        let docs = documents("wb.yaml", POOL).unwrap();
        let single = plan(&docs, &opts()).unwrap();
        assert!(
            single.keep_stored_networks,
            "derived definitions never replace stored ones"
        );
        assert_eq!(single.networks.len(), 1);
        let (name, definition) = &single.networks[0];
        assert_eq!(name, "wb");
        assert_eq!(definition["kind"], "ClusterNetwork");
        assert_eq!(definition["spec"]["NetworkID"], "wb");
        assert_eq!(definition["spec"]["Options"]["cidr"], "10.10.0.0/16");

        // Without a network name each pool is its own network; a dual-stack pair named
        // alike is one network; the configured range becomes the allocation pool.
        let text = "kind: IPPool\nmetadata: {name: p4}\nspec: {range: 10.7.0.0/24, allocations: {'5': {id: a, podref: n/a}}}\n\
                    ---\nkind: IPPool\nmetadata: {name: p6}\nspec: {range: 'fd00:7::/120', allocations: {'5': {id: b, podref: n/b}}}\n";
        let docs = documents("x", text).unwrap();
        let per_pool = WhereaboutsOptions {
            network: None,
            ..opts()
        };
        let plan_per_pool = plan(&docs, &per_pool).unwrap();
        let names: Vec<&str> = plan_per_pool
            .networks
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["p4", "p6"]);
        assert_eq!(plan_per_pool.records[0].key.network, "p4");
        assert_eq!(plan_per_pool.records[1].key.network, "p6");
        assert_eq!(
            plan_per_pool.networks[1].1["spec"]["Options"]["allocation_pool_v6"]["cidr"],
            "fd00:7::/120"
        );
        let configured = WhereaboutsOptions {
            range_sets: vec![
                super::super::range_set_from_id("10.7.0.0/24[10.7.0.5-10.7.0.50]").unwrap(),
            ],
            ..opts()
        };
        let dual = plan(&docs, &configured).unwrap();
        assert_eq!(dual.networks.len(), 1);
        let options = &dual.networks[0].1["spec"]["Options"];
        assert_eq!(options["net6"], "fd00:7::/120");
        assert_eq!(options["allocation_pool"]["start"], "10.7.0.5");
        assert_eq!(options["allocation_pool"]["end"], "10.7.0.50");
    }

    #[test]
    fn two_pools_of_one_family_get_no_definition_but_keep_their_allocations() {
        let text = "kind: IPPool\nmetadata: {name: a}\nspec: {range: 10.8.0.0/24, allocations: {'5': {id: a, podref: n/a}}}\n\
                    ---\nkind: IPPool\nmetadata: {name: b}\nspec: {range: 10.9.0.0/24, allocations: {'5': {id: b, podref: n/b}}}\n";
        let docs = documents("x", text).unwrap();
        let two = plan(&docs, &opts()).unwrap();
        assert!(two.networks.is_empty());
        assert_eq!(two.records.len(), 2);
        assert!(
            two.notes
                .iter()
                .any(|n| n.contains("2 ranges (10.8.0.0/24, 10.9.0.0/24)")),
            "{:?}",
            two.notes
        );
    }

    #[test]
    fn orip_names() {
        let doc = |name: &str| serde_json::json!({"metadata": {"name": name}});
        assert_eq!(
            orip_address(&doc("2001--0"), "x").unwrap(),
            "2001::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            orip_address(&doc("wb-fd00-10--5"), "wb").unwrap(),
            "fd00:10::5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            orip_address(&doc("other-10.0.0.1"), "wb").unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert!(orip_address(&doc("nothing"), "wb").is_err());
    }

    #[test]
    fn bad_pools_are_refused_with_their_place() {
        let docs = documents("x", "kind: IPPool\nmetadata: {name: p}\nspec: {range: 10.0.0.0/30, allocations: {'9': {id: c, podref: a/b}}}\n").unwrap();
        let err = plan(&docs, &opts()).unwrap_err().to_string();
        assert!(err.contains("offset 9 is outside 10.0.0.0/30"), "{err}");
        let docs = documents("x", "kind: Pod\n").unwrap();
        assert!(plan(&docs, &opts()).is_err());
        assert_eq!(
            parse_pool_range("10.0.0.5-10.0.0.50/24")
                .unwrap()
                .to_string(),
            "10.0.0.0/24"
        );
    }
}
