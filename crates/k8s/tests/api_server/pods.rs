//! Pods asking for networks, on the real server, through `plexus_k8s::api`: Pods created as
//! API objects (with `nodeName`, no kubelet) carrying a DANM and an NPWG annotation; their
//! networks fetched and resolved (plexus' and DANM's objects, NADs, a NAD naming a plexus
//! network); a forbidden namespace and a missing network refused; network-status patched
//! and read back; a pod re-created under the same name detected by its new UID, and a
//! status write for the old incarnation refused without touching the new one.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use plexus_k8s::api::{ApiError, KubeApi};
use plexus_k8s::nad::NadSpec;
use plexus_k8s::pod::{PodError, PodKey, network_status};
use plexus_k8s::resolve::{Policy, ResolveError, Target};
use plexus_k8s::status::{NETWORK_STATUS, entry_from_result};
use plexus_k8s::{ClusterNetwork, DanmNet, NetworkAttachmentDefinition, TenantNetwork};
use serde_json::json;

use crate::support::{
    KUBECONFIG_VAR, apply_crds, client, create_pod, delete_namespace, namespace, unique,
};

/// A DANM-shaped network spec on `cidr`.
fn spec<T: serde::de::DeserializeOwned>(cidr: &str, allowed: &[&str]) -> T {
    let mut spec = json!({"NetworkID": "pods", "Options": {"cidr": cidr}});
    if !allowed.is_empty() {
        spec["AllowedTenants"] = json!(allowed);
    }
    serde_json::from_value(spec).unwrap()
}

fn key(ns: &str, name: &str, uid: Option<&str>) -> PodKey {
    PodKey {
        namespace: ns.into(),
        name: name.into(),
        uid: uid.map(Into::into),
    }
}

#[tokio::test]
async fn pods_are_read_resolved_and_get_their_network_status() {
    let test = "pods_are_read_resolved_and_get_their_network_status";
    let Some(client) = client(test).await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "pods").await;
    let shared = namespace(&client, "pods-shared").await;
    let kube = KubeApi::from_kubeconfig(Some(std::env::var(KUBECONFIG_VAR).unwrap().as_ref()))
        .await
        .unwrap();

    // Cluster-scoped names are unique per run; the default network is one of them.
    let default = unique("dflt");
    let private = unique("private");
    let cluster: Api<ClusterNetwork> = Api::all(client.clone());
    let pp = PostParams::default();
    cluster
        .create(
            &pp,
            &ClusterNetwork::new(&default, spec("10.50.0.0/16", &[])),
        )
        .await
        .unwrap();
    cluster
        .create(
            &pp,
            &ClusterNetwork::new(&private, spec("10.51.0.0/24", &["ops"])),
        )
        .await
        .unwrap();
    Api::<TenantNetwork>::namespaced(client.clone(), &ns)
        .create(&pp, &TenantNetwork::new("red", spec("10.52.0.0/24", &[])))
        .await
        .unwrap();
    Api::<DanmNet>::namespaced(client.clone(), &ns)
        .create(&pp, &DanmNet::new("green", spec("10.53.0.0/24", &[])))
        .await
        .unwrap();
    let nad = |name: &str, config: serde_json::Value| {
        NetworkAttachmentDefinition::new(
            name,
            NadSpec {
                config: config.to_string(),
            },
        )
    };
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), &ns)
        .create(
            &pp,
            &nad("macvlan", json!({"cniVersion": "1.0.0", "type": "macvlan"})),
        )
        .await
        .unwrap();
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), &shared)
        .create(
            &pp,
            &nad(
                "red-nad",
                json!({"type": "plexus", "tenantNetwork": "red2"}),
            ),
        )
        .await
        .unwrap();
    Api::<TenantNetwork>::namespaced(client.clone(), &shared)
        .create(&pp, &TenantNetwork::new("red2", spec("10.54.0.0/24", &[])))
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let danm_pod = create_pod(
        &pods,
        "danm",
        &[(
            "danm.k8s.io/interfaces",
            r#"[{"network":"green","ip":"dynamic"},{"tenantNetwork":"red","ip":"10.52.0.9/24"}]"#,
        )],
    )
    .await;
    let npwg_value = format!(
        r#"[{{"name":"macvlan","interface":"net1"}},{{"name":"red-nad","namespace":"{shared}","default-route":["10.54.0.1"]}}]"#
    );
    let npwg_pod = create_pod(
        &pods,
        "npwg",
        &[("k8s.v1.cni.cncf.io/networks", &npwg_value)],
    )
    .await;
    let private_pod = create_pod(
        &pods,
        "private",
        &[(
            "plexus.io/interfaces",
            &format!(r#"[{{"clusterNetwork":"{private}"}}]"#),
        )],
    )
    .await;
    create_pod(&pods, "missing", &[("k8s.v1.cni.cncf.io/networks", "nope")]).await;
    let plain = create_pod(&pods, "plain", &[]).await;

    let policy = Policy {
        default_network: default.clone(),
        ..Policy::default()
    };

    // DANM: the pod's DanmNet and the plexus TenantNetwork.
    let uid = danm_pod.metadata.uid.clone().unwrap();
    let (pod, got) = kube
        .pod_networks(&key(&ns, "danm", Some(&uid)), &policy)
        .await
        .unwrap();
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let names: Vec<_> = got.iter().map(|a| a.status_name()).collect();
    assert_eq!(names, [format!("{ns}/green"), format!("{ns}/red")]);
    assert_eq!(got[0].network().unwrap().key.kind(), "DanmNet.danm.k8s.io");
    assert_eq!(
        got[1].network().unwrap().key.kind(),
        "TenantNetwork.plexus.io"
    );

    // NPWG: the default network first, then the NADs; the shared NAD names a network of
    // its own namespace.
    let npwg_key = key(&ns, "npwg", npwg_pod.metadata.uid.as_deref());
    let (_, got) = kube.pod_networks(&npwg_key, &policy).await.unwrap();
    let names: Vec<_> = got.iter().map(|a| a.status_name()).collect();
    assert_eq!(
        names,
        [
            default.clone(),
            format!("{ns}/macvlan"),
            format!("{shared}/red-nad")
        ]
    );
    assert!(got[0].default);
    let Target::Nad {
        network: Some(red2),
        ..
    } = &got[2].target
    else {
        panic!("{:?}", got[2].target)
    };
    assert_eq!(red2.key.qualified_name(), format!("{shared}/red2"));

    // No annotation: the default network only.
    let (_, got) = kube
        .pod_networks(&key(&ns, "plain", plain.metadata.uid.as_deref()), &policy)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status_name(), default);

    // A forbidden namespace and a missing network are clear errors.
    let err = kube
        .pod_networks(
            &key(&ns, "private", private_pod.metadata.uid.as_deref()),
            &policy,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Resolve(ResolveError::Forbidden { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("AllowedTenants: ops"), "{err}");
    let err = kube
        .pod_networks(&key(&ns, "missing", None), &policy)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Resolve(ResolveError::NotFound { .. })),
        "{err:?}"
    );
    let err = kube
        .pod_networks(&key(&ns, "ghost", None), &policy)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Pod(PodError::NotFound {
            pod: format!("{ns}/ghost")
        })
    );

    // network-status written and read back.
    let npwg_uid = npwg_pod.metadata.uid.clone().unwrap();
    let result = plexus_cni::SuccessResult {
        interfaces: vec![plexus_cni::Interface {
            name: "net1".into(),
            mac: Some("02:00:00:00:00:01".into()),
            sandbox: Some("/var/run/netns/x".into()),
            ..Default::default()
        }],
        ips: vec![plexus_cni::IpConfig {
            address: "10.54.0.7/24".parse().unwrap(),
            gateway: None,
            interface: Some(0),
        }],
        ..Default::default()
    };
    let entries = vec![
        entry_from_result(&default, true, &[], &plexus_cni::SuccessResult::default()),
        entry_from_result(
            &format!("{shared}/red-nad"),
            false,
            &["10.54.0.1".parse().unwrap()],
            &result,
        ),
    ];
    kube.write_network_status(&npwg_key, &npwg_uid, Some(&entries))
        .await
        .unwrap();
    let read = kube.pod(&npwg_key).await.unwrap();
    assert_eq!(network_status(&read, &npwg_key).unwrap().unwrap(), entries);
    let raw = read.metadata.annotations.unwrap()[NETWORK_STATUS].clone();
    assert!(
        raw.contains(r#""gateway":["10.54.0.1"],"default-route":["10.54.0.1"]"#),
        "{raw}"
    );

    // The pod re-created under the same name: a new UID. The old incarnation's key is
    // refused, and a status write for it leaves the new pod untouched.
    pods.delete(
        "npwg",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pods.get_opt("npwg").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "pod npwg not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = create_pod(
        &pods,
        "npwg",
        &[("k8s.v1.cni.cncf.io/networks", &npwg_value)],
    )
    .await;
    let new_uid = again.metadata.uid.clone().unwrap();
    assert_ne!(new_uid, npwg_uid);
    let err = kube.pod_networks(&npwg_key, &policy).await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Pod(PodError::UidMismatch {
            pod: format!("{ns}/npwg"),
            expected: npwg_uid.clone(),
            found: Some(new_uid.clone()),
        })
    );
    let err = kube
        .write_network_status(&npwg_key, &npwg_uid, Some(&entries))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Pod(PodError::UidMismatch { .. })),
        "{err:?}"
    );
    let new_key = key(&ns, "npwg", Some(&new_uid));
    assert_eq!(
        network_status(&kube.pod(&new_key).await.unwrap(), &new_key),
        Ok(None)
    );

    // Removing the status: on the right incarnation, and a no-op for a pod that is gone.
    kube.write_network_status(&new_key, &new_uid, Some(&entries))
        .await
        .unwrap();
    kube.write_network_status(&new_key, &new_uid, None)
        .await
        .unwrap();
    assert_eq!(
        network_status(&kube.pod(&new_key).await.unwrap(), &new_key),
        Ok(None)
    );
    kube.write_network_status(&key(&ns, "ghost", None), "u", None)
        .await
        .unwrap();

    for name in [default, private] {
        cluster
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
    }
    delete_namespace(&client, &ns).await;
    delete_namespace(&client, &shared).await;
}
