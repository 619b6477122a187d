//! DANM's network objects, `danm.k8s.io/v1` `DanmNet`, `ClusterNetwork` and
//! `TenantNetwork`, read as DANM writes them: the spec is `plexus_model::NetworkSpec`, which
//! keeps DANM's keys (`NetworkID`, `Options.allocation_pool.lastIp`, the `alloc` bitmaps)
//! verbatim, so a DANM cluster keeps its objects.
//!
//! Their CRDs ([`crds`]) are written from DANM's documented schema (DANM's
//! `integration/crds`, `shared/reference/danm.md` §2): the same fields and bounds, in the
//! structural `apiextensions.k8s.io/v1` form a 1.16+ API server needs (DANM's own were
//! v1beta1 with `oneOf` alternatives, which are not structural). `danm.k8s.io` lies under
//! `k8s.io`, which a v1 CRD may only use with the `api-approved.kubernetes.io` annotation;
//! it says the group is unapproved (DANM later moved to `danm.io` for that reason, #242).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use plexus_model::validate::{MAX_RT_TABLE, MAX_VLAN, MAX_VXLAN};
use plexus_model::{NetworkKind, NetworkObject, NetworkSpec};
use serde_json::{Value, json};

use crate::foreign::foreign_resource;
use crate::{NetworkResource, crd_from_json, model_meta};

/// DANM's API group (before its rename to `danm.io`).
pub const GROUP: &str = "danm.k8s.io";

foreign_resource! {
    /// DANM's namespaced "lightweight" network.
    DanmNet {
        group: "danm.k8s.io",
        version: "v1",
        kind: "DanmNet",
        plural: "danmnets",
        scope: NamespaceResourceScope,
        spec: NetworkSpec,
    }
}

foreign_resource! {
    /// DANM's cluster-scoped network, with `AllowedTenants`.
    DanmClusterNetwork {
        group: "danm.k8s.io",
        version: "v1",
        kind: "ClusterNetwork",
        plural: "clusternetworks",
        scope: ClusterResourceScope,
        spec: NetworkSpec,
    }
}

foreign_resource! {
    /// DANM's namespaced tenant network (host devices and VNIs assigned from the
    /// TenantConfig).
    DanmTenantNetwork {
        group: "danm.k8s.io",
        version: "v1",
        kind: "TenantNetwork",
        plural: "tenantnetworks",
        scope: NamespaceResourceScope,
        spec: NetworkSpec,
    }
}

/// The model's object for a DANM network of `kind`.
fn to_model(
    kind: NetworkKind,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: &NetworkSpec,
) -> NetworkObject {
    NetworkObject {
        api_version: DanmNet::API_VERSION.to_owned(),
        kind,
        metadata: model_meta(metadata),
        spec: spec.clone(),
    }
}

impl NetworkResource for DanmNet {
    fn to_model(&self) -> NetworkObject {
        to_model(NetworkKind::DanmNet, &self.metadata, &self.spec)
    }
}

impl NetworkResource for DanmClusterNetwork {
    fn to_model(&self) -> NetworkObject {
        to_model(NetworkKind::ClusterNetwork, &self.metadata, &self.spec)
    }
}

impl NetworkResource for DanmTenantNetwork {
    fn to_model(&self) -> NetworkObject {
        to_model(NetworkKind::TenantNetwork, &self.metadata, &self.spec)
    }
}

/// A string property with a description.
fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// An integer property bounded as DANM's schema bounds it.
fn integer(description: &str, min: i64, max: i64) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max,
           "description": description})
}

/// A map of destination CIDR to gateway.
fn routes(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"},
           "description": description})
}

/// The schema of DANM's shared `DanmNetSpec` (all three kinds use one struct).
fn network_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "NetworkID": string("Second identifier: names static delegate configs and host VLAN/VxLAN interfaces."),
                    "NetworkType": string("ipvlan (default), macvlan, sriov, or the CNI binary of a static delegate."),
                    "AllowedTenants": {"type": "array", "items": {"type": "string"},
                                       "description": "ClusterNetwork only: the namespaces allowed to use it; empty means all."},
                    "Options": {
                        "type": "object",
                        "properties": {
                            "host_device": string("The device to which the network is attached."),
                            "device_pool": string("The device-plugin resource of an sriov network."),
                            "cidr": string("IPv4 network address."),
                            "allocation_pool": {
                                "type": "object",
                                "description": "Subset of the IPv4 subnet from which IPs can be allocated.",
                                "properties": {
                                    "start": {"type": "string"},
                                    "end": {"type": "string"},
                                    "lastIp": {"type": "string"},
                                },
                            },
                            "routes": routes("IPv4 routes for this network."),
                            "alloc": string("Bit array tracking IPv4 allocations."),
                            "net6": string("IPv6 network prefix."),
                            "allocation_pool_v6": {
                                "type": "object",
                                "description": "Subset of the IPv6 subnet from which IPs can be allocated.",
                                "properties": {
                                    "cidr": {"type": "string"},
                                    "start": {"type": "string"},
                                    "end": {"type": "string"},
                                    "lastIp": {"type": "string"},
                                },
                            },
                            "routes6": routes("IPv6 routes for this network."),
                            "alloc6": string("Bit array tracking IPv6 allocations."),
                            "container_prefix": string("The name prefix of the interface in the container."),
                            "rt_tables": integer("Routing table number for policy routing.", 0, MAX_RT_TABLE),
                            "vlan": integer("VLAN id of the interface created on the host device.", 1, MAX_VLAN),
                            "vxlan": integer("VxLAN id of the interface created on the host device.", 1, MAX_VXLAN),
                        },
                    },
                },
            },
        },
    })
}

/// The CRD of one DANM network kind.
fn crd(kind: &str, plural: &str, scope: &str, short_names: [&str; 2]) -> CustomResourceDefinition {
    crd_from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{GROUP}"),
            "annotations": {
                "api-approved.kubernetes.io":
                    "unapproved, DANM's API group from before its rename to danm.io (nokia/danm#242)",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "shortNames": short_names,
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": network_schema()},
            }],
        },
    }))
}

/// The CRDs of DANM's three network kinds, with DANM's short names.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd("DanmNet", "danmnets", "Namespaced", ["dn", "dnet"]),
        crd(
            "ClusterNetwork",
            "clusternetworks",
            "Cluster",
            ["cn", "cnet"],
        ),
        crd(
            "TenantNetwork",
            "tenantnetworks",
            "Namespaced",
            ["tn", "tnet"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use plexus_model::{NetworkKind, Operation, Rule};

    use super::*;
    use crate::NetworkResource;

    /// A DanmNet as DANM's webhook leaves it: defaults filled in, bitmap and `lastIp`
    /// written, plus the metadata the API server adds.
    const DANM_NET: &str = r#"{
      "apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
      "metadata": {"name": "internal", "namespace": "prod", "generation": 7,
                   "uid": "5b6f0d2e-0000-4000-8000-000000000001", "resourceVersion": "4711",
                   "creationTimestamp": "2021-05-06T10:00:00Z"},
      "spec": {
        "NetworkID": "internal", "NetworkType": "ipvlan",
        "Options": {
          "host_device": "ens4", "cidr": "10.100.100.0/24",
          "allocation_pool": {"start": "10.100.100.1", "end": "10.100.100.254",
                              "lastIp": "10.100.100.1/24"},
          "routes": {"10.20.0.0/16": "10.100.100.1"},
          "alloc": "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
          "container_prefix": "int", "rt_tables": 200, "vlan": 500
        }
      }
    }"#;

    #[test]
    fn reads_a_danm_net_as_danm_writes_it() -> Result<(), Box<dyn std::error::Error>> {
        let net: DanmNet = serde_json::from_str(DANM_NET)?;
        assert_eq!(net.spec.options.alloc.len(), 44);
        assert_eq!(net.spec.options.allocation_pool.last_ip, "10.100.100.1/24");
        let model = net.to_model();
        assert_eq!(model.api_version, "danm.k8s.io/v1");
        assert_eq!(model.kind, NetworkKind::DanmNet);
        assert_eq!(model.qualified_name(), "prod/internal");
        assert_eq!(model.metadata.resource_version.as_deref(), Some("4711"));
        // An object DANM filled in is valid as an existing network...
        let valid = net.validate(Operation::Update)?;
        assert_eq!(valid.vlan, Some(500));
        // ...but its bitmap could not have been written by a user.
        assert!(
            net.validate(Operation::Create)
                .unwrap_err()
                .has(Rule::AllocOnCreate)
        );
        // Written back with DANM's keys and apiVersion.
        let text = serde_json::to_string(&net)?;
        assert!(text.starts_with(r#"{"apiVersion":"danm.k8s.io/v1","kind":"DanmNet","#));
        for key in ["\"NetworkID\"", "\"lastIp\"", "\"alloc\"", "\"rt_tables\""] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert_eq!(serde_json::from_str::<DanmNet>(&text)?, net);
        Ok(())
    }

    #[test]
    fn the_three_kinds_map_to_the_model_kinds() -> Result<(), Box<dyn std::error::Error>> {
        let spec: NetworkSpec = serde_json::from_value(serde_json::json!({
            "NetworkID": "shared", "AllowedTenants": ["team-a"],
            "Options": {"cidr": "10.1.0.0/16"}}))?;
        let cluster = DanmClusterNetwork::new("shared", spec.clone());
        let valid = cluster.validate(Operation::Create)?;
        assert_eq!(valid.kind, NetworkKind::ClusterNetwork);
        assert_eq!(valid.allowed_tenants, vec!["team-a"]);
        // AllowedTenants belongs to ClusterNetworks only.
        let tenant = DanmTenantNetwork::new("shared", spec);
        assert!(
            tenant
                .validate(Operation::Create)
                .unwrap_err()
                .has(Rule::AllowedTenantsForbidden)
        );
        assert_eq!(DanmClusterNetwork::plural(&()), "clusternetworks");
        assert_eq!(DanmTenantNetwork::api_version(&()), "danm.k8s.io/v1");
        Ok(())
    }

    #[test]
    fn unknown_option_keys_are_refused_as_the_model_refuses_them() {
        let doc = r#"{"apiVersion": "danm.k8s.io/v1", "kind": "ClusterNetwork",
                      "metadata": {"name": "typo"},
                      "spec": {"NetworkID": "typo", "Options": {"cdir": "10.0.0.0/24"}}}"#;
        let err = serde_json::from_str::<DanmClusterNetwork>(doc).unwrap_err();
        assert!(err.to_string().contains("cdir"), "{err}");
    }
}
