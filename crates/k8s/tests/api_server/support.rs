//! The real API server of `scripts/with-kube`: a client from `PLEXUS_TEST_KUBECONFIG` (or
//! a printed skip; a failure under `PLEXUS_REQUIRE_KUBE=1`), the CRDs applied and
//! Established, a namespace per test, and API-error matching.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Environment variable naming the admin kubeconfig of `scripts/with-kube`.
pub const KUBECONFIG_VAR: &str = "PLEXUS_TEST_KUBECONFIG";
/// Field manager of the tests' server-side applies.
const MANAGER: &str = "plexus-k8s-tests";

/// A client of the test cluster, or `None` after printing why the test is skipped. With
/// `PLEXUS_REQUIRE_KUBE=1` a missing kubeconfig fails the test instead.
pub async fn client(test: &str) -> Option<Client> {
    let path = match std::env::var(KUBECONFIG_VAR) {
        Ok(path) if !path.trim().is_empty() => path,
        _ => {
            let reason = format!("{KUBECONFIG_VAR} is not set (run under scripts/with-kube)");
            if std::env::var("PLEXUS_REQUIRE_KUBE").is_ok_and(|v| v == "1") {
                panic!("{test}: {reason}, and PLEXUS_REQUIRE_KUBE=1");
            }
            eprintln!("SKIPPED {test}: {reason}");
            return None;
        }
    };
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    Some(Client::try_from(config).unwrap_or_else(|e| panic!("client for {path}: {e}")))
}

/// Apply every CRD of `plexus_k8s::crds::all` (server-side apply, so tests running at
/// once agree) and wait until each is Established.
pub async fn apply_crds(client: &Client) -> Vec<CustomResourceDefinition> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    for crd in plexus_k8s::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    let mut established = Vec::new();
    for crd in plexus_k8s::crds::all() {
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
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// A name no other test (or run of this test) uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh namespace for one test; deleted by [`delete_namespace`].
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Delete a test's namespace (the namespace controller removes what is in it).
pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting namespace {name}: {e}"));
}

/// The API server's refusal in `result`: its HTTP code and message. Panics when the call
/// succeeded or failed otherwise.
#[track_caller]
pub fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}
