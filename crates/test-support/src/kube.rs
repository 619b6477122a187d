//! The test cluster of `scripts/with-kube` (feature `kube`): a client from the admin
//! kubeconfig in `PLEXUS_TEST_KUBECONFIG` behind the kube gate, CRDs applied and waited for
//! until Established, a namespace per test, and pods created as API objects with
//! `nodeName` (there is no kubelet).
//!
//! Without the kubeconfig a test is skipped with `SKIPPED <test>: <reason>`, unless
//! `PLEXUS_REQUIRE_KUBE=1` (as in `scripts/test` and CI), where the skip is a failure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::privileged::unique;

/// Environment variable naming the admin kubeconfig of `scripts/with-kube`.
pub const KUBECONFIG_VAR: &str = "PLEXUS_TEST_KUBECONFIG";
/// The variable that turns a skipped cluster test into a failure (`=1`).
pub const REQUIRE_VAR: &str = "PLEXUS_REQUIRE_KUBE";

/// How long the helpers wait for the API server to get somewhere.
const PATIENCE: Duration = Duration::from_secs(30);

/// The admin kubeconfig's path and a client of the test cluster, or `None` after printing
/// why the test is skipped. With `PLEXUS_REQUIRE_KUBE=1` a missing kubeconfig fails instead.
pub async fn client(test: &str) -> Option<(String, Client)> {
    let path = match std::env::var(KUBECONFIG_VAR) {
        Ok(path) if !path.trim().is_empty() => path,
        _ => {
            let reason = format!("{KUBECONFIG_VAR} is not set (run under scripts/with-kube)");
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{test}: {reason}, and {REQUIRE_VAR}=1"
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

/// Applies `crds` (server-side apply as field manager `manager`, forced, so tests running
/// at once agree) and waits until each is Established; the CRDs as the server then has them.
pub async fn apply_crds(
    client: &Client,
    manager: &str,
    crds: Vec<CustomResourceDefinition>,
) -> Vec<CustomResourceDefinition> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(manager).force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    let mut established = Vec::new();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        established.push(wait_established(&api, &name).await);
    }
    established
}

/// The CRD `name` once its Established condition is True (at most 30 s).
async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> CustomResourceDefinition {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let crd = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading CRD {name}: {e}"));
        if condition(&crd, "Established") == Some("True") {
            return crd;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} not Established after 30 s: {:?}",
            crd.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of a CRD's condition `kind`.
pub fn condition<'a>(crd: &'a CustomResourceDefinition, kind: &str) -> Option<&'a str> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// Waits (at most 30 s, polling the API server) until `done` holds.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "not after 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh namespace named [`unique`]`(prefix)`; delete it with [`delete_namespace`].
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

/// A pod `name` on node `node-1` with `annotations`, created through `api` once the
/// namespace's default service account exists (the ServiceAccount admission plugin needs
/// it) and a deleted pod of that name is gone; the pod as created.
pub async fn create_pod(api: &Api<Pod>, name: &str, annotations: &[(&str, &str)]) -> Pod {
    let pod: Pod = serde_json::from_value(serde_json::json!({
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
    .unwrap_or_else(|e| panic!("pod {name}: {e}"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => return created,
            Err(kube::Error::Api(s))
                if s.message.contains("service account") || s.reason == "AlreadyExists" =>
            {
                assert!(Instant::now() < deadline, "cannot create pod {name}: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating pod {name}: {e}"),
        }
    }
}
