//! `deploy/crds/` holds exactly what the types generate: a change to a CRD type (or to
//! the model bounds its schema uses) without `cargo run -p plexus-k8s --bin crdgen` fails
//! here, naming each stale file.

use std::path::PathBuf;

#[test]
fn deploy_crds_are_up_to_date() -> Result<(), plexus_k8s::crds::CrdError> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let stale = plexus_k8s::crds::stale(&dir)?;
    let listed: Vec<String> = stale.iter().map(ToString::to_string).collect();
    assert!(
        stale.is_empty(),
        "deploy/crds is stale: {}; run `cargo run -p plexus-k8s --bin crdgen` and commit it",
        listed.join("; ")
    );
    Ok(())
}
