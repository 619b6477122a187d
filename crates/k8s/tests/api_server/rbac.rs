//! The plugin's rights, on the real server with RBAC on: `deploy/rbac/plexus-cni.yaml`
//! bound to a service account is enough to read and resolve a pod's networks and write its
//! network-status; an identity without it is refused with a 403 that maps to CNI code 7;
//! and without the DANM rules a default-network lookup fails even where DANM is not
//! installed (why the role lists DANM's kinds). `deploy/rbac/plexus-node.yaml` lets the
//! node agent's watch cache become ready; the plugin's role alone does not.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::Kubeconfig;
use plexus_k8s::api::{ApiError, KubeApi};
use plexus_k8s::cache::NodeCache;
use plexus_k8s::pod::PodKey;
use plexus_k8s::resolve::Policy;
use plexus_k8s::status::NetworkStatusEntry;
use plexus_k8s::{ClusterNetwork, NetworkAttachmentDefinition};
use serde_json::json;

use crate::support::{KUBECONFIG_VAR, apply_crds, client, delete_namespace, namespace, unique};

const ROLE: &str = include_str!("../../../../deploy/rbac/plexus-cni.yaml");
const NODE_ROLE: &str = include_str!("../../../../deploy/rbac/plexus-node.yaml");

/// A kubeconfig file for service account `ns/name` (its token), on the test cluster.
async fn service_account_kubeconfig(client: &Client, ns: &str, name: &str) -> std::path::PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(name.into());
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    // The token controller adds a token secret.
    let deadline = Instant::now() + Duration::from_secs(30);
    let secret = loop {
        let found = accounts
            .get(name)
            .await
            .unwrap()
            .secrets
            .unwrap_or_default();
        if let Some(secret) = found.first().and_then(|s| s.name.clone()) {
            break secret;
        }
        assert!(
            Instant::now() < deadline,
            "no token for service account {name}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&secret)
        .await
        .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let admin = Kubeconfig::read_from(std::env::var(KUBECONFIG_VAR).unwrap()).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.server.unwrap(),
            "certificate-authority-data": cluster.certificate_authority_data.unwrap(),
        }}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    });
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("plexus-rbac")));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

/// Bind a copy of the ClusterRole of `yaml` (named `role`, with the rules of the API groups
/// `keep` accepts) to the service account `ns/account`.
async fn bind(
    client: &Client,
    yaml: &str,
    role: &str,
    keep: impl Fn(&str) -> bool,
    ns: &str,
    account: &str,
) {
    let mut cluster_role: ClusterRole = serde_norway::from_str(yaml).unwrap();
    cluster_role.metadata.name = Some(role.into());
    if let Some(rules) = cluster_role.rules.as_mut() {
        rules.retain(|r| r.api_groups.iter().flatten().all(|g| keep(g)));
    }
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &cluster_role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_plugin_role_is_enough_and_needed() {
    let test = "the_plugin_role_is_enough_and_needed";
    let Some(client) = client(test).await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "rbac").await;
    let default = unique("rbac-dflt");
    let pp = PostParams::default();
    let spec =
        serde_json::from_value(json!({"NetworkID": "r", "Options": {"cidr": "10.60.0.0/16"}}))
            .unwrap();
    Api::<ClusterNetwork>::all(client.clone())
        .create(&pp, &ClusterNetwork::new(&default, spec))
        .await
        .unwrap();
    let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
        "metadata": {"name": "macvlan"},
        "spec": {"config": r#"{"cniVersion":"1.0.0","type":"macvlan"}"#},
    }))
    .unwrap();
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), &ns)
        .create(&pp, &nad)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan"}},
        "spec": {"nodeName": "node-1", "serviceAccountName": "plexus",
                 "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "registry.invalid/none"}]},
    }))
    .unwrap();

    let full = unique("plexus-cni");
    let partial = unique("plexus-cni-no-danm");
    let plexus = service_account_kubeconfig(&client, &ns, "plexus").await;
    let nobody = service_account_kubeconfig(&client, &ns, "nobody").await;
    let no_danm = service_account_kubeconfig(&client, &ns, "no-danm").await;
    let node_role = unique("plexus-node");
    let agent = service_account_kubeconfig(&client, &ns, "agent").await;
    bind(&client, ROLE, &full, |_| true, &ns, "plexus").await;
    bind(
        &client,
        ROLE,
        &partial,
        |g| g != "danm.k8s.io",
        &ns,
        "no-danm",
    )
    .await;
    bind(&client, NODE_ROLE, &node_role, |_| true, &ns, "agent").await;
    let pod = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&pp, &pod)
        .await
        .unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let key = PodKey {
        namespace: ns.clone(),
        name: "p".into(),
        uid: Some(uid.clone()),
    };
    let policy = Policy {
        default_network: default.clone(),
        ..Policy::default()
    };

    // The role: read, resolve, write the status. RBAC changes take effect at once on
    // 1.20, but allow the authorizer's cache a moment.
    let api = KubeApi::from_kubeconfig(Some(&plexus)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, got) = loop {
        match api.pod_networks(&key, &policy).await {
            Ok(found) => break found,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{test}: waiting for RBAC: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("with the plexus-cni role: {e}"),
        }
    };
    assert_eq!(got.len(), 2);
    let entries = [NetworkStatusEntry {
        name: got[1].status_name(),
        interface: Some("net1".into()),
        ..Default::default()
    }];
    api.write_network_status(&key, &uid, Some(&entries))
        .await
        .unwrap();

    // No role: 403, code 7, and the details say which rights are missing.
    let err = KubeApi::from_kubeconfig(Some(&nobody))
        .await
        .unwrap()
        .pod_networks(&key, &policy)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Refused { code: 403, .. }),
        "{err:?}"
    );
    let cni = err.to_cni_error();
    assert_eq!(cni.code, 7);
    assert!(cni.msg.contains(&format!("get pod {ns}/p")), "{}", cni.msg);
    assert!(cni.details.contains("patch on pods"), "{}", cni.details);

    // Without DANM's kinds in the role the default network's lookup is refused at its
    // DANM candidates: authorization answers 403 before the server looks for the object
    // or its kind, so the role needs them even where DANM is not installed.
    let err = KubeApi::from_kubeconfig(Some(&no_danm))
        .await
        .unwrap()
        .pod_networks(&key, &policy)
        .await
        .unwrap_err();
    let ApiError::Refused {
        code: 403, what, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(what.contains("danm.k8s.io"), "{what}");

    // The node agent's role: its watch cache becomes ready and answers for the pod; with
    // the plugin's role alone (no list, no watch) it never becomes ready.
    let agent_api = KubeApi::from_kubeconfig(Some(&agent)).await.unwrap();
    let cache = NodeCache::start(&agent_api, "node-1").await.unwrap();
    cache.wait_ready(Duration::from_secs(30)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cache.pod_networks(&key, &policy).is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent's cache never answered for the pod"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(cache);
    let cache = NodeCache::start(&api, "node-1").await.unwrap();
    let not_ready = cache.wait_ready(Duration::from_secs(3)).await.unwrap_err();
    assert!(not_ready.kinds.contains(&"Pod"), "{not_ready}");
    drop(cache);

    for path in [plexus, nobody, no_danm, agent] {
        std::fs::remove_file(path).unwrap();
    }
    for role in [&full, &partial, &node_role] {
        Api::<ClusterRoleBinding>::all(client.clone())
            .delete(role, &DeleteParams::default())
            .await
            .unwrap();
        Api::<ClusterRole>::all(client.clone())
            .delete(role, &DeleteParams::default())
            .await
            .unwrap();
    }
    Api::<ClusterNetwork>::all(client.clone())
        .delete(&default, &DeleteParams::default())
        .await
        .unwrap();
    delete_namespace(&client, &ns).await;
}
