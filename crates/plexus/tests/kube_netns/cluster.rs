//! The test cluster of `scripts/with-kube` as the meta-plugin's tests use it (the helpers
//! of `plexus_test_support::kube`): a client from `PLEXUS_TEST_KUBECONFIG` (or a printed
//! skip; a failure under `PLEXUS_REQUIRE_KUBE=1`), the CRDs applied and Established, a
//! namespace per test, pods created as API objects with `nodeName` (no kubelet), and their
//! network-status read back.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use plexus_k8s::pod::{PodKey, network_status};
use plexus_k8s::status::NetworkStatusEntry;

pub use plexus_test_support::kube::{client, delete_namespace, eventually, namespace};
pub use plexus_test_support::privileged::unique;

/// Applies every CRD of plexus-k8s and waits until each is Established.
pub async fn apply_crds(client: &Client) {
    plexus_test_support::kube::apply_crds(client, "plexus-tests", plexus_k8s::crds::all()).await;
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

/// A pod on `node-1` with `annotations` (see [`plexus_test_support::kube::create_pod`]);
/// its key with its UID.
pub async fn create_pod(
    client: &Client,
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
) -> PodKey {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = plexus_test_support::kube::create_pod(&api, name, annotations).await;
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
