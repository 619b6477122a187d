//! The real API server of `scripts/with-kube` through `plexus_test_support::kube`: a client
//! from `PLEXUS_TEST_KUBECONFIG` (or a printed skip; a failure under `PLEXUS_REQUIRE_KUBE=1`),
//! plexus-k8s' CRDs applied and Established, a namespace per test, pods, and API-error
//! matching.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;

pub use plexus_test_support::kube::{
    KUBECONFIG_VAR, condition, create_pod, delete_namespace, namespace,
};
pub use plexus_test_support::privileged::unique;

/// Field manager of the tests' server-side applies.
const MANAGER: &str = "plexus-k8s-tests";

/// A client of the test cluster, or `None` after printing why the test is skipped. With
/// `PLEXUS_REQUIRE_KUBE=1` a missing kubeconfig fails the test instead.
pub async fn client(test: &str) -> Option<Client> {
    plexus_test_support::kube::client(test)
        .await
        .map(|(_, client)| client)
}

/// Apply every CRD of `plexus_k8s::crds::all` (server-side apply, so tests running at
/// once agree) and wait until each is Established.
pub async fn apply_crds(client: &Client) -> Vec<CustomResourceDefinition> {
    plexus_test_support::kube::apply_crds(client, MANAGER, plexus_k8s::crds::all()).await
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
