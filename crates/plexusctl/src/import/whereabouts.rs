//! whereabouts' objects: `IPPool` (one range, allocations keyed by decimal offset from the
//! range's network address) and `OverlappingRangeIPReservation` (one object per address).
//!
//! IPPools carry the allocations. ORIPs only lock an address across overlapping ranges, so
//! they are cross-checked against the pools: an ORIP whose address no pool holds is a
//! whereabouts leak and is reported, not imported.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::RangeSet;
use plexus_ipam_core::addr::{checked_add, net_contains};
use plexus_store::AttachmentKey;
use serde_json::Value;

use super::{ImportPlan, ImportRecord, owner_from_podref, range_set_for};
use crate::error::{CtlError, CtlResult};

/// How whereabouts objects are mapped onto plexus.
#[derive(Debug, Clone)]
pub struct WhereaboutsOptions {
    /// The plexus network the allocations belong to.
    pub network: String,
    /// The range sets the plugin uses for this network (from its CNI config), if known.
    pub range_sets: Vec<RangeSet>,
    /// Interface name for allocations that recorded none (whereabouts before 0.6).
    pub default_ifname: String,
}

/// Builds the import plan from whereabouts documents (already split, as JSON values).
pub fn plan(docs: &[Value], opts: &WhereaboutsOptions) -> CtlResult<ImportPlan> {
    let mut plan = ImportPlan::default();
    let mut missing_ifname = 0usize;
    let mut orips = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let what = format!("document {} ({})", index + 1, object_name(doc));
        match doc.get("kind").and_then(Value::as_str) {
            Some("IPPool") => {
                pool_records(doc, &what, opts, &mut plan, &mut missing_ifname)?;
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
    let held: HashMap<IpAddr, &ImportRecord> = plan.records.iter().map(|r| (r.ip, r)).collect();
    let mut notes = Vec::new();
    for (what, doc) in orips {
        let ip =
            orip_address(doc, &opts.network).map_err(|reason| CtlError::invalid(&what, reason))?;
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

/// The records of one IPPool.
fn pool_records(
    doc: &Value,
    what: &str,
    opts: &WhereaboutsOptions,
    plan: &mut ImportPlan,
    missing_ifname: &mut usize,
) -> CtlResult<()> {
    let range = doc
        .pointer("/spec/range")
        .and_then(Value::as_str)
        .ok_or_else(|| CtlError::invalid(what, "spec.range is missing"))?;
    let cidr = parse_pool_range(range)
        .ok_or_else(|| CtlError::invalid(what, format!("spec.range {range:?} is not a CIDR")))?;
    let Some(allocations) = doc.pointer("/spec/allocations") else {
        return Ok(());
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
            key: AttachmentKey::new(&opts.network, container_id, ifname),
            owner: owner_from_podref(field("podref")),
            ip,
            range_set: range_set_for(&opts.range_sets, ip, &cidr)?,
            node: None,
            created_at: None,
        });
    }
    Ok(())
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
            network: "wb".into(),
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
