//! Network definition files: plexus (`plexus.io/v1`) and DANM (`DanmNet`,
//! `ClusterNetwork`, `TenantNetwork`) objects in YAML or JSON, several documents per file,
//! or a `kind: List` of them, read and validated with `plexus-model`.

use ipnet::IpNet;
use plexus_ipam_core::addr::{Family, net_contains};
use plexus_model::{FamilyPool, NetworkObject, Operation, ValidNetwork, to_pool, validate};
use serde_json::Value;

use crate::error::{CtlError, CtlResult};
use crate::netdef::{NetworkDef, NetworkKind, Pool};

/// Every YAML (or JSON) document of `text`, as JSON values; empty documents are skipped.
pub fn documents(source: &str, text: &str) -> CtlResult<Vec<Value>> {
    let mut docs = Vec::new();
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| CtlError::invalid(source, format!("document {}: {e}", index + 1)))?;
        match value {
            Value::Null => {}
            // `kind: List` (kubectl get -o yaml) and `*List` kinds hold their objects in items.
            Value::Object(ref o) if o.get("items").is_some_and(Value::is_array) => {
                if let Some(Value::Array(items)) = o.get("items") {
                    docs.extend(items.iter().cloned());
                }
            }
            other => docs.push(other),
        }
    }
    Ok(docs)
}

/// Whether a document is a network object (DANM or plexus kind).
pub fn is_network_object(doc: &Value) -> bool {
    matches!(
        doc.get("kind").and_then(Value::as_str),
        Some("DanmNet" | "ClusterNetwork" | "TenantNetwork")
    )
}

/// Parses and validates one network object (as an existing network: bitmaps allowed).
pub fn network_object(source: &str, doc: &Value) -> CtlResult<(NetworkObject, ValidNetwork)> {
    let object: NetworkObject = serde_json::from_value(doc.clone())
        .map_err(|e| CtlError::invalid(source, format!("not a network object: {e}")))?;
    let valid = validate(&object, Operation::Update)
        .map_err(|e| CtlError::invalid(source, e.to_string()))?;
    Ok((object, valid))
}

/// The network definitions of one file. Documents that are not network objects are an
/// error, so a wrong file is noticed.
pub fn parse_network_file(source: &str, text: &str) -> CtlResult<Vec<NetworkDef>> {
    let mut defs = Vec::new();
    for doc in documents(source, text)? {
        // DanmEps travel with DANM networks (an import file is also a definition file).
        if doc.get("kind").and_then(Value::as_str) == Some("DanmEp") {
            continue;
        }
        if !is_network_object(&doc) {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("(no kind)");
            return Err(CtlError::invalid(
                source,
                format!("{kind} is not a network object (DanmNet, ClusterNetwork, TenantNetwork)"),
            ));
        }
        let (object, valid) = network_object(source, &doc)?;
        defs.push(network_def(source, &object, &valid)?);
    }
    Ok(defs)
}

/// A validated network as plexusctl's [`NetworkDef`].
pub fn network_def(
    source: &str,
    object: &NetworkObject,
    valid: &ValidNetwork,
) -> CtlResult<NetworkDef> {
    let pool = to_pool(valid).map_err(|e| CtlError::invalid(source, e.to_string()))?;
    let kind = if object.api_version.starts_with("plexus.io/") {
        NetworkKind::Plexus(object.kind.to_string())
    } else {
        NetworkKind::Danm(object.kind.to_string())
    };
    let families: Vec<&FamilyPool> = pool.v4.iter().chain(pool.v6.iter()).collect();
    Ok(NetworkDef {
        name: pool.network.clone(),
        kind,
        source: source.to_string(),
        pools: families.iter().filter_map(|f| pool_of(f)).collect(),
        range_sets: families.iter().map(|f| f.range_set.clone()).collect(),
        object: serde_json::to_value(object).ok(),
        blocks: pool.pool_config().map(|c| c.blocks).unwrap_or_default(),
        owners: Vec::new(),
    })
}

/// Where a stored network comes from, in [`NetworkDef::source`].
pub const STORED_SOURCE: &str = "store";

/// A network kept in the store as plexusctl's [`NetworkDef`] (source [`STORED_SOURCE`]).
pub fn stored_def(record: &plexus_store::NetworkRecord) -> CtlResult<NetworkDef> {
    let at = format!("store network {}", record.name);
    let (object, valid) = network_object(&at, &record.definition)?;
    let mut def = network_def(&at, &object, &valid)?;
    // Allocations are stored under the record's name (the name `ipam.network` uses).
    def.name = record.name.clone();
    def.kind = NetworkKind::Stored(object.kind.to_string());
    def.source = STORED_SOURCE.to_string();
    Ok(def)
}

/// The showalloc view of one family: the allocation CIDR, the range's start..end, every
/// route gateway inside it, exclusions and plexus' reserved addresses.
fn pool_of(f: &FamilyPool) -> Option<Pool> {
    let range = f.range()?;
    let cidr = f.allocation_cidr;
    let bits = Family::of_net(&cidr).bits();
    let mut exclude = f.exclude.clone();
    exclude.extend(
        f.reserved
            .iter()
            .filter_map(|ip| IpNet::new(*ip, bits).ok()),
    );
    Some(Pool {
        cidr,
        start: range.start,
        end: range.end,
        gateways: f
            .gateways
            .iter()
            .copied()
            .filter(|gw| net_contains(&cidr, *gw))
            .collect(),
        exclude,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DANMNET: &str = "\
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: internal
  namespace: prod
spec:
  NetworkID: internal
  NetworkType: ipvlan
  Options:
    host_device: eth1
    cidr: 10.100.100.0/24
    allocation_pool:
      start: 10.100.100.10
      end: 10.100.100.200
    routes:
      10.20.0.0/16: 10.100.100.1
---
apiVersion: danm.k8s.io/v1
kind: ClusterNetwork
metadata: {name: v6only}
spec:
  NetworkID: v6only
  Options:
    host_device: eth2
    net6: fd00:1::/64
    allocation_pool_v6: {cidr: 'fd00:1::/120'}
";

    #[test]
    fn danm_objects_become_definitions() {
        let defs = parse_network_file("nets.yaml", DANMNET).unwrap();
        assert_eq!(defs.len(), 2);
        let internal = &defs[0];
        assert_eq!(internal.name, "prod/internal");
        assert_eq!(internal.kind, NetworkKind::Danm("DanmNet".into()));
        let pool = &internal.pools[0];
        assert_eq!(pool.cidr.to_string(), "10.100.100.0/24");
        assert_eq!(pool.start.to_string(), "10.100.100.10");
        assert_eq!(pool.end.to_string(), "10.100.100.200");
        assert_eq!(
            pool.gateways,
            vec!["10.100.100.1".parse::<std::net::IpAddr>().unwrap()]
        );
        let v6 = &defs[1];
        assert_eq!(v6.name, "v6only");
        assert_eq!(v6.pools[0].cidr.to_string(), "fd00:1::/120");
        assert_eq!(v6.range_sets.len(), 1);
    }

    #[test]
    fn lists_and_wrong_documents() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: danm.k8s.io/v1\n  kind: ClusterNetwork\n  metadata: {name: a}\n  spec: {NetworkID: a, Options: {host_device: eth0, cidr: 10.0.0.0/24}}\n";
        assert_eq!(parse_network_file("l.yaml", list).unwrap()[0].name, "a");
        let err = parse_network_file("p.yaml", "kind: Pod\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Pod is not a network object"), "{err}");
        let bad = "apiVersion: danm.k8s.io/v1\nkind: ClusterNetwork\nmetadata: {name: a}\nspec: {NetworkID: '', Options: {cidr: 10.0.0.0/24}}\n";
        let err = parse_network_file("b.yaml", bad).unwrap_err().to_string();
        assert!(err.contains("NetworkID"), "{err}");
        assert!(documents("x", "a: [").is_err());
    }
}
