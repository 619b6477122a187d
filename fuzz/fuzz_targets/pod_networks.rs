//! Fuzz target: a pod's networks through `plexus-k8s`, the untrusted annotations a CNI call
//! reads and writes on Kubernetes.
//!
//! - The whole input as a `k8s.v1.cni.cncf.io/network-status` value
//!   (`plexus_k8s::status::parse`): within the entry cap, at most one default, and what
//!   parses renders and parses back to the same entries (device-info aside: JSON floats
//!   need not round-trip bit for bit).
//! - The input split at NUL bytes into the pod's namespace, then alternating annotation
//!   keys and values: the request parsed (`plexus_model::parse_pod_annotations`) and
//!   resolved (`plexus_k8s::resolve::resolve`) against a fixed catalog of plexus and DANM
//!   networks and NADs (one naming a plexus network, one without config, one broken).
//!
//! Invariants of a resolution: exactly one default attachment, the first; DANM requests
//! keep their count (the default network alone for none), NPWG ones get the default
//! network first; every object used is one `wanted` lists; a ClusterNetwork with
//! AllowedTenants serves only those namespaces. Errors have a non-empty, bounded message.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use plexus_fuzz::{check_message, nul_fields};
use plexus_k8s::catalog::Catalog;
use plexus_k8s::resolve::{Policy, resolve, wanted};
use plexus_k8s::status::{MAX_STATUS_ENTRIES, StatusError, parse, render};
use plexus_model::{NetworkKind, RequestFormat, parse_pod_annotations};
use serde_json::json;

/// `{kind, metadata, spec}` read as `T`.
fn object<T: serde::de::DeserializeOwned>(
    ns: Option<&str>,
    name: &str,
    spec: serde_json::Value,
) -> T {
    let mut metadata = json!({"name": name});
    if let Some(ns) = ns {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({"metadata": metadata, "spec": spec}))
        .expect("the fuzz catalog's objects read")
}

fn net(cidr: &str, allowed: &[&str]) -> serde_json::Value {
    json!({"NetworkID": "f", "Options": {"cidr": cidr}, "AllowedTenants": allowed})
}

fn nad(config: serde_json::Value) -> serde_json::Value {
    json!({"config": config.to_string()})
}

/// The objects every input is resolved against.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog::new();
        c.insert(object::<plexus_k8s::ClusterNetwork>(
            None,
            "default",
            net("10.0.0.0/16", &[]),
        ));
        c.insert(object::<plexus_k8s::ClusterNetwork>(
            None,
            "net-a",
            net("10.1.0.0/24", &["infra"]),
        ));
        c.insert(object::<plexus_k8s::DanmClusterNetwork>(
            None,
            "net-d",
            net("10.2.0.0/24", &[]),
        ));
        let tenant = json!({"NetworkID": "t", "Options": {"cidr": "10.3.0.0/24"}});
        c.insert(object::<plexus_k8s::TenantNetwork>(
            Some("ns"),
            "t1",
            tenant.clone(),
        ));
        c.insert(object::<plexus_k8s::DanmTenantNetwork>(
            Some("infra"),
            "t1",
            tenant.clone(),
        ));
        c.insert(object::<plexus_k8s::DanmNet>(
            Some("ns"),
            "a",
            tenant.clone(),
        ));
        c.insert(object::<plexus_k8s::DanmNet>(
            Some("infra"),
            "internal",
            tenant,
        ));
        let nads = [
            (
                "ns",
                "net-b",
                nad(json!({"cniVersion": "1.0.0", "type": "macvlan"})),
            ),
            (
                "infra",
                "net-a",
                nad(json!({"type": "plexus", "clusterNetwork": "net-a"})),
            ),
            (
                "ns",
                "net-t",
                nad(json!({"type": "plexus", "tenantNetwork": "t1"})),
            ),
            ("other", "net-c", json!({})),
            ("ns", "bad", nad(json!({"plugins": [{"ipam": {}}]}))),
        ];
        for (ns, name, spec) in nads {
            c.insert(object::<plexus_k8s::NetworkAttachmentDefinition>(
                Some(ns),
                name,
                spec,
            ));
        }
        c
    })
}

fn status(text: &str, input_len: usize) {
    match parse(text) {
        Ok(entries) => {
            assert!(entries.len() <= MAX_STATUS_ENTRIES);
            assert!(entries.iter().filter(|e| e.default).count() <= 1);
            let strip = |mut entries: Vec<plexus_k8s::status::NetworkStatusEntry>| {
                entries.iter_mut().for_each(|e| e.device_info = None);
                entries
            };
            match render(&entries) {
                Ok(again) => assert_eq!(
                    strip(parse(&again).expect("rendered status parses")),
                    strip(entries)
                ),
                Err(StatusError::TooLarge { .. }) => {}
                Err(other) => panic!("parsed entries do not render: {other}"),
            }
        }
        Err(err) => check_message(&err.to_string(), input_len),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        status(text, data.len());
    }
    let fields: Vec<&str> = nul_fields(data, 17).into_iter().flatten().collect();
    let Some((namespace, rest)) = fields.split_first() else {
        return;
    };
    let pairs = rest.chunks_exact(2).map(|kv| (kv[0], kv[1]));
    let request = match parse_pod_annotations(pairs) {
        Ok(request) => request,
        Err(err) => return check_message(&err.to_string(), data.len()),
    };
    let policy = Policy::default();
    match resolve(namespace, request.as_ref(), catalog(), &policy) {
        Ok(attachments) => {
            let requested = request.as_ref().map_or(0, |r| r.attachments.len());
            let npwg = request
                .as_ref()
                .is_some_and(|r| r.format == RequestFormat::Npwg);
            let expected = if npwg {
                requested + 1
            } else {
                requested.max(1)
            };
            assert_eq!(attachments.len(), expected);
            assert!(attachments[0].default);
            assert_eq!(attachments.iter().filter(|a| a.default).count(), 1);
            let wanted = wanted(namespace, request.as_ref(), &policy);
            for attachment in &attachments {
                if let plexus_k8s::resolve::Target::Network(n) = &attachment.target {
                    assert!(wanted.contains(&n.key), "{} not wanted", n.key);
                }
                if let Some(n) = attachment.network() {
                    let allowed = &n.valid.allowed_tenants;
                    assert!(
                        n.valid.kind != NetworkKind::ClusterNetwork
                            || allowed.is_empty()
                            || allowed.iter().any(|t| t == namespace),
                        "{} served namespace {namespace:?}",
                        n.key
                    );
                }
            }
        }
        Err(err) => check_message(&err.to_string(), data.len()),
    }
});
