//! plexus' own export format: network definitions and allocations, JSON or YAML.
//!
//! ```yaml
//! kind: PlexusExport
//! version: 3
//! networks: [ ...network objects (plexus-model): stored ones and those of files... ]
//! allocations: [ {network, container_id, ifname, ip, range_set, owner, created_at, node} ]
//! history: [ {network, seq, at, kind, ip, container_id, ifname, pod_*, node} ]
//! ```
//! Every field of an allocation is kept (the owner's `details` too). Re-importing stores
//! the networks, records each address under the same attachment, owner and range set id,
//! and restores the history as it was (the claims of the import add no events).
//! Times (`created_at`, `at`) are RFC 3339 text since version 3; versions 1 (no history)
//! and 2 (Unix seconds) are still read.

use plexus_store::{Allocation, HistoryEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ImportPlan, ImportRecord, range_set_from_id};
use crate::error::{CtlError, CtlResult};

/// The `kind` of an export document.
pub const EXPORT_KIND: &str = "PlexusExport";
/// The format version written (3: times as RFC 3339 text; 1 and 2 wrote Unix seconds).
pub const EXPORT_VERSION: u32 = 3;
/// The oldest format version read.
pub const OLDEST_VERSION: u32 = 1;

/// A whole export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Always [`EXPORT_KIND`].
    pub kind: String,
    /// Always [`EXPORT_VERSION`].
    pub version: u32,
    /// Network objects (plexus or DANM shape), as found in the definition files.
    #[serde(default)]
    pub networks: Vec<Value>,
    /// Every allocation of the exported networks, ordered by network then address.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// The kept history of the exported networks, oldest first per network.
    #[serde(default)]
    pub history: Vec<HistoryEvent>,
}

impl Export {
    /// An export of these networks and allocations.
    pub fn new(networks: Vec<Value>, allocations: Vec<Allocation>) -> Export {
        Export {
            kind: EXPORT_KIND.to_string(),
            version: EXPORT_VERSION,
            networks,
            allocations,
            history: Vec::new(),
        }
    }
}

/// Whether a document looks like a plexus export.
pub fn is_export(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some(EXPORT_KIND)
}

/// Parses an export document and checks its version. Times may be RFC 3339 text (what
/// version 3 writes) or Unix seconds (versions 1 and 2).
pub fn parse(source: &str, doc: &Value) -> CtlResult<Export> {
    let mut doc = doc.clone();
    crate::timefmt::times_to_seconds(&mut doc);
    let export: Export = serde_json::from_value(doc)
        .map_err(|e| CtlError::invalid(source, format!("not a plexus export: {e}")))?;
    if export.kind != EXPORT_KIND || !(OLDEST_VERSION..=EXPORT_VERSION).contains(&export.version) {
        return Err(CtlError::invalid(
            source,
            format!(
                "kind {:?} version {} is not supported (expected {EXPORT_KIND} version \
                 {EXPORT_VERSION})",
                export.kind, export.version
            ),
        ));
    }
    Ok(export)
}

/// The import plan of an export.
pub fn plan(source: &str, export: &Export) -> CtlResult<ImportPlan> {
    let mut plan = ImportPlan {
        history: export.history.clone(),
        ..ImportPlan::default()
    };
    for (index, object) in export.networks.iter().enumerate() {
        let at = format!("{source}: networks[{index}]");
        let (object, _) = crate::netfile::network_object(&at, object)?;
        let definition = serde_json::to_value(&object)
            .map_err(|e| CtlError::invalid(&at, format!("cannot encode: {e}")))?;
        plan.networks.push((object.qualified_name(), definition));
    }
    for (index, a) in export.allocations.iter().enumerate() {
        let range_set = range_set_from_id(&a.range_set).map_err(|e| {
            CtlError::invalid(format!("{source}: allocations[{index}]"), e.to_string())
        })?;
        plan.records.push(ImportRecord {
            key: a.key(),
            owner: a.owner.clone(),
            ip: a.ip,
            range_set,
            node: a.node.clone(),
            created_at: Some(a.created_at),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_store::Owner;

    fn allocation() -> Allocation {
        Allocation {
            network: "blue".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
            ip: "10.0.0.7".parse().unwrap(),
            range_set: "10.0.0.0/24[10.0.0.1-10.0.0.254]".into(),
            owner: Owner {
                pod_namespace: Some("ns".into()),
                pod_name: Some("p".into()),
                pod_uid: Some("u".into()),
                details: Some(serde_json::json!({"mac": "02:00:00:00:00:07"})),
            },
            created_at: 1_700_000_000,
            node: Some("node-a".into()),
        }
    }

    #[test]
    fn export_round_trips_through_json_and_yaml() {
        let network = serde_json::json!({
            "apiVersion": "plexus.io/v1", "kind": "ClusterNetwork", "metadata": {"name": "blue"},
            "spec": {"NetworkID": "blue", "Options": {"host_device": "eth0", "cidr": "10.0.0.0/24"}}
        });
        let mut export = Export::new(vec![network], vec![allocation()]);
        export.history.push(plexus_store::HistoryEvent::of(
            &allocation(),
            plexus_store::HistoryKind::Claim,
            1_700_000_000,
        ));
        let json = serde_json::to_value(&export).unwrap();
        assert_eq!(parse("j", &json).unwrap(), export);
        let yaml = serde_norway::to_string(&export).unwrap();
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(parse("y", &back).unwrap(), export);
        let plan = plan("j", &export).unwrap();
        assert_eq!(
            plan.records[0].range_set.id(),
            export.allocations[0].range_set
        );
        assert_eq!(plan.records[0].owner, export.allocations[0].owner);
        assert_eq!(plan.networks[0].0, "blue");
        assert_eq!(plan.history, export.history);
        let v1 = serde_json::json!({"kind": EXPORT_KIND, "version": 1, "allocations": []});
        assert!(
            parse("v1", &v1).unwrap().history.is_empty(),
            "version 1 is still read"
        );
    }

    #[test]
    fn wrong_versions_and_ids_are_refused() {
        let mut v = serde_json::to_value(Export::new(Vec::new(), vec![allocation()])).unwrap();
        v["version"] = 9.into();
        assert!(
            parse("x", &v)
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        let mut bad = Export::new(Vec::new(), vec![allocation()]);
        bad.allocations[0].range_set = "garbage".into();
        assert!(
            plan("x", &bad)
                .unwrap_err()
                .to_string()
                .contains("allocations[0]")
        );
    }
}
