//! The test cluster of `scripts/with-kube` as the meta-plugin's tests use it: a client
//! from `PLEXUS_TEST_KUBECONFIG` (or a printed skip; a failure under
//! `PLEXUS_REQUIRE_KUBE=1`), the CRDs applied and Established, a namespace per test, pods
//! created as API objects with `nodeName` (no kubelet), and their network-status read back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use plexus_k8s::pod::{PodKey, network_status};
use plexus_k8s::status::NetworkStatusEntry;
use serde_json::json;

/// Environment variable naming the admin kubeconfig of `scripts/with-kube`.
pub const KUBECONFIG_VAR: &str = "PLEXUS_TEST_KUBECONFIG";

/// The admin kubeconfig and a client of the test cluster, or `None` after printing why
/// the test is skipped. With `PLEXUS_REQUIRE_KUBE=1` a missing kubeconfig fails instead.
pub async fn client(test: &str) -> Option<(String, Client)> {
    let path = match std::env::var(KUBECONFIG_VAR) {
        Ok(path) if !path.trim().is_empty() => path,
        _ => {
            let reason = format!("{KUBECONFIG_VAR} is not set (run under scripts/with-kube)");
            assert!(
                std::env::var("PLEXUS_REQUIRE_KUBE").as_deref() != Ok("1"),
                "{test}: {reason}, and PLEXUS_REQUIRE_KUBE=1"
            );
            eprintln!("SKIPPED {test}: {reason}");
            return None;
        }
    };
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let client = Client::try_from(config).unwrap_or_else(|e| panic!("client for {path}: {e}"));
    Some((path, client))
}

/// Applies every CRD of plexus-k8s (server-side apply, so tests running at once agree) and
/// waits until each is Established.
pub async fn apply_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("plexus-tests").force();
    for crd in plexus_k8s::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    for crd in plexus_k8s::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = |crd: &CustomResourceDefinition| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        };
        eventually(&format!("CRD {name} Established"), || async {
            established(&api.get(&name).await.unwrap())
        })
        .await;
    }
}

/// Waits (at most 30 s, polling the API server) until `done` holds.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "not after 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A name no other test (or run) uses: `prefix<pid><n>`, short enough for NetworkIDs.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{:x}{}",
        std::process::id() % 0xffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh namespace; delete it with [`delete_namespace`].
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Deletes a test's namespace (the namespace controller removes what is in it).
pub async fn delete_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting namespace {name}: {e}"));
}

/// Creates the object `value` through `api`.
pub async fn create<K>(api: Api<K>, value: serde_json::Value)
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {object:?}: {e}"));
}

/// A pod on `node-1` with `annotations`, created once the namespace's default service
/// account exists (the ServiceAccount admission plugin needs it); its key with its UID.
pub async fn create_pod(
    client: &Client,
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
) -> PodKey {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": annotations.iter().copied().collect::<BTreeMap<_, _>>(),
        },
        "spec": {
            "nodeName": "node-1",
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "registry.invalid/none"}],
        },
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => break created,
            Err(kube::Error::Api(s))
                if s.message.contains("service account") || s.reason == "AlreadyExists" =>
            {
                assert!(Instant::now() < deadline, "cannot create pod {name}: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating pod {name}: {e}"),
        }
    };
    PodKey {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: created.metadata.uid,
    }
}

/// Deletes the pod at once (no kubelet confirms a graceful deletion) and waits until it is
/// gone.
pub async fn delete_pod(client: &Client, key: &PodKey) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    api.delete(&key.name, &params).await.unwrap();
    eventually(&format!("pod {key} gone"), || async {
        api.get_opt(&key.name).await.unwrap().is_none()
    })
    .await;
}

/// The pod's network-status (`None`: no annotation); panics when the pod is gone.
pub async fn status(client: &Client, key: &PodKey) -> Option<Vec<NetworkStatusEntry>> {
    let pod = Api::<Pod>::namespaced(client.clone(), &key.namespace)
        .get(&key.name)
        .await
        .unwrap_or_else(|e| panic!("reading pod {key}: {e}"));
    network_status(&pod, key).unwrap()
}

/// `CNI_ARGS` naming the pod `key` (with its UID, when it has one).
pub fn cni_args(key: &PodKey) -> String {
    let mut args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={}",
        key.namespace, key.name
    );
    if let Some(uid) = &key.uid {
        args.push_str(&format!(";K8S_POD_UID={uid}"));
    }
    args
}
