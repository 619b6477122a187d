//! Tests of the resolution rules over fetched objects: lookup order, the default network,
//! AllowedTenants (directly and through a NAD), NAD namespaces and isolation, invalid
//! objects; proptests that the first present candidate wins and that [`wanted`] lists
//! every object [`resolve`] looks at.

use plexus_model::{PodRequest, parse_pod_annotations};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::danm::{DanmClusterNetwork, DanmNet, DanmTenantNetwork};
use crate::nad::NetworkAttachmentDefinition;
use crate::network::{ClusterNetwork, TenantNetwork};

const POD_NS: &str = "team-a";

/// A DANM-shaped spec on `cidr` with `AllowedTenants` when given.
fn spec(cidr: &str, allowed: &[&str]) -> serde_json::Value {
    let mut spec = json!({"NetworkID": "n1", "Options": {"cidr": cidr}});
    if !allowed.is_empty() {
        spec["AllowedTenants"] = json!(allowed);
    }
    spec
}

fn object<T: serde::de::DeserializeOwned>(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    spec: serde_json::Value,
) -> T {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({"kind": kind, "metadata": metadata, "spec": spec})).unwrap()
}

fn plexus_cluster(name: &str, cidr: &str, allowed: &[&str]) -> ClusterNetwork {
    object("ClusterNetwork", None, name, spec(cidr, allowed))
}

fn plexus_tenant(ns: &str, name: &str, cidr: &str) -> TenantNetwork {
    object("TenantNetwork", Some(ns), name, spec(cidr, &[]))
}

fn danm_net(ns: &str, name: &str, cidr: &str) -> DanmNet {
    object("DanmNet", Some(ns), name, spec(cidr, &[]))
}

fn danm_tenant(ns: &str, name: &str, cidr: &str) -> DanmTenantNetwork {
    object("TenantNetwork", Some(ns), name, spec(cidr, &[]))
}

fn danm_cluster(name: &str, cidr: &str, allowed: &[&str]) -> DanmClusterNetwork {
    object("ClusterNetwork", None, name, spec(cidr, allowed))
}

fn nad(ns: &str, name: &str, config: serde_json::Value) -> NetworkAttachmentDefinition {
    let spec = match config {
        serde_json::Value::Null => json!({}),
        config => json!({"config": config.to_string()}),
    };
    object("NetworkAttachmentDefinition", Some(ns), name, spec)
}

fn request(key: &str, value: &str) -> PodRequest {
    parse_pod_annotations([(key, value)]).unwrap().unwrap()
}

fn danm(value: &str) -> PodRequest {
    request("danm.k8s.io/interfaces", value)
}

fn npwg(value: &str) -> PodRequest {
    request("k8s.v1.cni.cncf.io/networks", value)
}

fn keys(attachments: &[ResolvedAttachment]) -> Vec<String> {
    attachments.iter().map(|a| a.status_name()).collect()
}

fn kinds(attachments: &[ResolvedAttachment]) -> Vec<&'static str> {
    attachments
        .iter()
        .map(|a| match &a.target {
            Target::Network(n) => n.key.kind(),
            Target::Nad { key, .. } => key.kind(),
        })
        .collect()
}

#[test]
fn the_default_network_is_looked_up_in_danms_order() {
    let policy = Policy::default();
    let mut catalog = Catalog::new();
    catalog.insert(danm_cluster("default", "10.9.0.0/16", &[]));
    catalog.insert(plexus_cluster("default", "10.8.0.0/16", &[]));
    catalog.insert(danm_tenant(POD_NS, "default", "10.7.0.0/16"));
    catalog.insert(plexus_tenant(POD_NS, "default", "10.6.0.0/16"));
    catalog.insert(danm_net(POD_NS, "default", "10.5.0.0/16"));
    // Another namespace's objects never count.
    catalog.insert(danm_net("other", "default", "10.4.0.0/16"));
    let mut expected = [
        "DanmNet.danm.k8s.io",
        "TenantNetwork.plexus.io",
        "TenantNetwork.danm.k8s.io",
        "ClusterNetwork.plexus.io",
        "ClusterNetwork.danm.k8s.io",
    ]
    .into_iter();
    for key in default_candidates("default", POD_NS) {
        let got = resolve(POD_NS, None, &catalog, &policy).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].default && got[0].request.is_none());
        assert_eq!(kinds(&got), [expected.next().unwrap()]);
        let mut rest = Catalog::new();
        for k in default_candidates("default", POD_NS) {
            if k != key
                && let Some(o) = catalog.get(&k)
            {
                rest.insert(o.clone());
            }
        }
        catalog = rest;
    }
    // None left: the error lists everything looked for.
    let err = resolve(POD_NS, Some(&danm("[]")), &catalog, &policy).unwrap_err();
    let ResolveError::NotFound { what, looked_for } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(what, "default network \"default\"");
    assert_eq!(looked_for.len(), 5);
    assert!(
        err.to_string()
            .contains("DanmNet.danm.k8s.io team-a/default"),
        "{err}"
    );
}

#[test]
fn danm_requests_name_their_kind_and_plexus_objects_come_first() {
    let mut catalog = Catalog::new();
    catalog.insert(danm_net(POD_NS, "green", "10.1.0.0/24"));
    catalog.insert(plexus_tenant(POD_NS, "red", "10.2.0.0/24"));
    catalog.insert(danm_tenant(POD_NS, "red", "10.3.0.0/24"));
    catalog.insert(danm_cluster("blue", "10.4.0.0/24", &[]));
    let request = danm(
        r#"[{"network":"green","ip":"dynamic"},{"tenantNetwork":"red"},{"clusterNetwork":"blue","ip6":"none"}]"#,
    );
    let got = resolve(POD_NS, Some(&request), &catalog, &Policy::default()).unwrap();
    assert_eq!(keys(&got), ["team-a/green", "team-a/red", "blue"]);
    assert_eq!(
        kinds(&got),
        [
            "DanmNet.danm.k8s.io",
            "TenantNetwork.plexus.io",
            "ClusterNetwork.danm.k8s.io"
        ]
    );
    // DANM: the first entry owns eth0, the cluster network.
    assert_eq!(
        got.iter().map(|a| a.default).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(got[2].request.as_ref().unwrap().index, 2);
    assert_eq!(got[1].network().unwrap().valid.name, "red");

    // A `network` is a DanmNet only: a TenantNetwork of that name does not serve it.
    let err = resolve(
        POD_NS,
        Some(&danm(r#"[{"network":"red"}]"#)),
        &catalog,
        &Policy::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "[0] network \"red\": not found (looked for DanmNet.danm.k8s.io team-a/red)"
    );
}

#[test]
fn allowed_tenants_are_enforced_for_cluster_networks_of_both_apis() {
    for plexus in [true, false] {
        let mut catalog = Catalog::new();
        if plexus {
            catalog.insert(plexus_cluster("private", "10.4.0.0/24", &["ops", "infra"]));
        } else {
            catalog.insert(danm_cluster("private", "10.4.0.0/24", &["ops", "infra"]));
        }
        let request = danm(r#"[{"clusterNetwork":"private"}]"#);
        let err = resolve(POD_NS, Some(&request), &catalog, &Policy::default()).unwrap_err();
        let ResolveError::Forbidden {
            namespace, allowed, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(namespace, POD_NS);
        assert_eq!(allowed, &["ops", "infra"]);
        assert!(
            err.to_string().contains("AllowedTenants: ops, infra"),
            "{err}"
        );
        assert!(resolve("ops", Some(&request), &catalog, &Policy::default()).is_ok());
    }
}

#[test]
fn npwg_pods_get_the_default_network_first_then_their_nads() {
    let mut catalog = Catalog::new();
    catalog.insert(plexus_cluster("default", "10.0.0.0/16", &[]));
    catalog.insert(nad(
        POD_NS,
        "macvlan",
        json!({"cniVersion": "1.0.0", "type": "macvlan"}),
    ));
    catalog.insert(nad("shared", "sriov", serde_json::Value::Null));
    let request = npwg("macvlan@net5, shared/sriov");
    let got = resolve(POD_NS, Some(&request), &catalog, &Policy::default()).unwrap();
    assert_eq!(keys(&got), ["default", "team-a/macvlan", "shared/sriov"]);
    assert_eq!(
        got.iter().map(|a| a.default).collect::<Vec<_>>(),
        [true, false, false]
    );
    let Target::Nad {
        config, network, ..
    } = &got[1].target
    else {
        panic!()
    };
    assert_eq!(config.as_ref().unwrap().plugins[0]["type"], "macvlan");
    assert!(network.is_none());
    // A NAD without spec: its configuration is on disk.
    assert!(matches!(&got[2].target, Target::Nad { config: None, .. }));
    assert_eq!(
        wanted(POD_NS, Some(&request), &Policy::default())[5..],
        [
            ObjectKey::Nad {
                namespace: POD_NS.into(),
                name: "macvlan".into()
            },
            ObjectKey::Nad {
                namespace: "shared".into(),
                name: "sriov".into()
            },
        ]
    );

    // A missing NAD names where it was looked for.
    let err = resolve(POD_NS, Some(&npwg("nope")), &catalog, &Policy::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[0] NetworkAttachmentDefinition \"nope\": not found (looked for \
         NetworkAttachmentDefinition.k8s.cni.cncf.io team-a/nope)"
    );
}

#[test]
fn namespace_isolation_allows_the_pods_namespace_and_global_ones() {
    let mut catalog = Catalog::new();
    catalog.insert(plexus_cluster("default", "10.0.0.0/16", &[]));
    for ns in [POD_NS, "shared", "other"] {
        catalog.insert(nad(ns, "n", json!({"type": "bridge"})));
    }
    let policy = Policy {
        namespace_isolation: true,
        global_namespaces: vec!["shared".into()],
        ..Policy::default()
    };
    for (value, ok) in [
        ("n", true),
        ("team-a/n", true),
        ("shared/n", true),
        ("other/n", false),
    ] {
        let result = resolve(POD_NS, Some(&npwg(value)), &catalog, &policy);
        assert_eq!(result.is_ok(), ok, "{value}: {result:?}");
    }
    let err = resolve(POD_NS, Some(&npwg("other/n")), &catalog, &policy).unwrap_err();
    assert!(matches!(err, ResolveError::Isolated { .. }));
    assert!(
        err.to_string().contains("allows only it and shared"),
        "{err}"
    );
    // Without isolation any namespace is fine.
    assert!(resolve(POD_NS, Some(&npwg("other/n")), &catalog, &Policy::default()).is_ok());
}

#[test]
fn a_nad_naming_a_plexus_network_resolves_it_with_the_same_rules() {
    let mut catalog = Catalog::new();
    catalog.insert(plexus_cluster("default", "10.0.0.0/16", &[]));
    catalog.insert(plexus_cluster("private", "10.4.0.0/24", &["ops"]));
    catalog.insert(plexus_tenant("shared", "red", "10.2.0.0/24"));
    catalog.insert(nad(
        "shared",
        "red",
        json!({"type": "plexus", "tenantNetwork": "red"}),
    ));
    catalog.insert(nad(
        POD_NS,
        "priv",
        json!({"type": "plexus", "clusterNetwork": "private"}),
    ));
    catalog.insert(nad(
        POD_NS,
        "ghost",
        json!({"type": "plexus", "clusterNetwork": "ghost"}),
    ));
    catalog.insert(nad(POD_NS, "broken", json!({"plugins": [{"ipam": {}}]})));

    // Namespaced kinds in the NAD's namespace, not the pod's.
    let got = resolve(
        POD_NS,
        Some(&npwg("shared/red")),
        &catalog,
        &Policy::default(),
    )
    .unwrap();
    let network = got[1].network().unwrap();
    assert_eq!(network.key.qualified_name(), "shared/red");
    assert_eq!(got[1].status_name(), "shared/red");

    // AllowedTenants holds through a NAD.
    let err = resolve(POD_NS, Some(&npwg("priv")), &catalog, &Policy::default()).unwrap_err();
    assert!(matches!(err, ResolveError::Forbidden { .. }), "{err:?}");
    assert!(
        resolve(
            "ops",
            Some(&npwg("team-a/priv")),
            &catalog,
            &Policy::default()
        )
        .is_ok()
    );

    let err = resolve(POD_NS, Some(&npwg("ghost")), &catalog, &Policy::default()).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "[0] NetworkAttachmentDefinition \"ghost\" (NetworkAttachmentDefinition.k8s.cni.cncf.io \
             team-a/ghost names clusterNetwork \"ghost\"): not found"
        ),
        "{err}"
    );
    let err = resolve(POD_NS, Some(&npwg("broken")), &catalog, &Policy::default()).unwrap_err();
    assert!(matches!(err, ResolveError::Nad { .. }), "{err:?}");
    assert!(err.to_string().contains("team-a/broken"), "{err}");

    // The second fetch round: what the NADs name.
    let second = wanted_for_nads(&catalog);
    assert!(second.contains(&ObjectKey::TenantNetwork {
        namespace: "shared".into(),
        name: "red".into()
    }));
    assert!(second.contains(&ObjectKey::DanmClusterNetwork("ghost".into())));
}

#[test]
fn an_invalid_object_is_refused_with_its_broken_rules() {
    let mut catalog = Catalog::new();
    let mut bad = spec("10.1.0.0/24", &[]);
    bad["Options"]["allocation_pool"] = json!({"start": "10.2.0.1", "end": "10.2.0.9"});
    catalog.insert(object::<DanmNet>("DanmNet", Some(POD_NS), "bad", bad));
    let err = resolve(
        POD_NS,
        Some(&danm(r#"[{"network":"bad"}]"#)),
        &catalog,
        &Policy::default(),
    )
    .unwrap_err();
    let ResolveError::Invalid {
        network, detail, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(network.qualified_name(), "team-a/bad");
    assert!(detail.contains("allocation_pool"), "{detail}");
}

/// A request over a small universe of names and kinds, and which of all their candidates
/// exist.
fn arb_case() -> impl Strategy<Value = (Vec<(u8, u8)>, Vec<bool>)> {
    (
        proptest::collection::vec((0u8..3, 0u8..3), 0..5),
        proptest::collection::vec(any::<bool>(), 40),
    )
}

fn build(entries: &[(u8, u8)], present: &[bool]) -> (Option<PodRequest>, Catalog) {
    let names = ["default", "a", "b"];
    let fields = ["network", "tenantNetwork", "clusterNetwork"];
    let list: Vec<String> = entries
        .iter()
        .map(|(f, n)| format!(r#"{{"{}":"{}"}}"#, fields[*f as usize], names[*n as usize]))
        .collect();
    let request = (!entries.is_empty()).then(|| danm(&format!("[{}]", list.join(","))));
    let mut catalog = Catalog::new();
    let mut bits = present.iter();
    for name in names {
        for key in default_candidates(name, POD_NS) {
            if *bits.next().unwrap() {
                match key {
                    ObjectKey::DanmNet { .. } => {
                        catalog.insert(danm_net(POD_NS, name, "10.1.0.0/24"))
                    }
                    ObjectKey::TenantNetwork { .. } => {
                        catalog.insert(plexus_tenant(POD_NS, name, "10.2.0.0/24"))
                    }
                    ObjectKey::DanmTenantNetwork { .. } => {
                        catalog.insert(danm_tenant(POD_NS, name, "10.3.0.0/24"))
                    }
                    ObjectKey::ClusterNetwork(_) => {
                        catalog.insert(plexus_cluster(name, "10.4.0.0/24", &[]))
                    }
                    ObjectKey::DanmClusterNetwork(_) => {
                        catalog.insert(danm_cluster(name, "10.5.0.0/24", &[]))
                    }
                    ObjectKey::Nad { .. } => unreachable!(),
                }
            }
        }
    }
    (request, catalog)
}

proptest! {
    #[test]
    fn the_first_present_candidate_serves_and_wanted_covers_it((entries, present) in arb_case()) {
        let (request, catalog) = build(&entries, &present);
        let policy = Policy::default();
        let wanted = wanted(POD_NS, request.as_ref(), &policy);
        match resolve(POD_NS, request.as_ref(), &catalog, &policy) {
            Ok(got) => {
                prop_assert_eq!(got.len(), entries.len().max(1));
                prop_assert_eq!(got.iter().filter(|a| a.default).count(), 1);
                for attachment in &got {
                    let key = &attachment.network().unwrap().key;
                    prop_assert!(wanted.contains(key));
                    let keys = match &attachment.request {
                        None => default_candidates("default", POD_NS),
                        Some(r) => candidates(&r.network, POD_NS),
                    };
                    let first = keys.iter().find(|k| catalog.get(k).is_some());
                    prop_assert_eq!(Some(key), first);
                }
            }
            Err(ResolveError::NotFound { looked_for, .. }) => {
                prop_assert!(looked_for.iter().all(|k| catalog.get(k).is_none()));
                prop_assert!(looked_for.iter().all(|k| wanted.contains(k)));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
