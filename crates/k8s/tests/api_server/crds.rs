//! The CRDs on the server: applied, Established, and kept as generated.

use crate::support::{apply_crds, client, condition};

#[tokio::test]
async fn every_crd_applies_and_becomes_established() {
    let Some(client) = client("every_crd_applies_and_becomes_established").await else {
        return;
    };
    let on_server = apply_crds(&client).await;
    let generated = plexus_k8s::crds::all();
    assert_eq!(on_server.len(), generated.len());
    for (server, mine) in on_server.iter().zip(&generated) {
        let name = mine.metadata.name.as_deref().unwrap_or_default();
        assert_eq!(server.metadata.name.as_deref(), Some(name));
        assert_eq!(condition(server, "NamesAccepted"), Some("True"), "{name}");
        let accepted = &server
            .status
            .as_ref()
            .and_then(|s| s.accepted_names.clone());
        let accepted = accepted
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no names"));
        assert_eq!(accepted.kind, mine.spec.names.kind, "{name}");
        assert_eq!(accepted.short_names, mine.spec.names.short_names, "{name}");
        let columns = |crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
            crd.spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(columns(server), columns(mine), "{name}");
    }
    // DANM's group lies under k8s.io: the server takes the CRD with its "unapproved"
    // annotation and says so in a condition.
    let danm = on_server
        .iter()
        .find(|c| c.spec.group == "danm.k8s.io")
        .expect("a DANM CRD");
    assert_eq!(
        condition(danm, "KubernetesAPIApprovalPolicyConformant"),
        Some("False")
    );
    eprintln!(
        "tested against Kubernetes {}",
        std::env::var("PLEXUS_TEST_KUBE_VERSION").unwrap_or_else(|_| "(version not given)".into())
    );
}
