//! TLS to a private PostgreSQL with a certificate from a fresh test CA: verification is on
//! whenever TLS is used, `verify-ca` skips only the name check.

#[path = "support/postgres.rs"]
mod pg_support;

use std::path::PathBuf;

use pg_support::PrivateConfig;
use plexus_store::{PostgresStore, SslMode, Store, StoreError};
use plexus_test_support::servers::postgres::PrivatePg;

async fn probe(pg: &PrivatePg, mode: SslMode, ca: Option<PathBuf>) -> Result<(), StoreError> {
    let mut cfg = pg.config();
    cfg.sslmode = mode;
    cfg.ca_file = ca;
    PostgresStore::open(&cfg)?.probe().await
}

fn assert_refused(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(StoreError::Unavailable { reason }) => {
            assert!(
                reason.to_lowercase().contains("certificate"),
                "{what}: {reason}"
            );
        }
        // No system roots at all on a minimal machine: a configuration error, also a refusal.
        Err(StoreError::Config { field, .. }) => assert_eq!(field, "ipam.store.ca_file"),
        other => panic!("{what}: expected a refused certificate, got {other:?}"),
    }
}

#[tokio::test]
async fn certificates_are_verified_whenever_tls_is_used() {
    let Some(pg) = PrivatePg::start("certificates_are_verified") else {
        return;
    };
    let ca = pg.enable_tls("IP:127.0.0.1");
    probe(&pg, SslMode::VerifyFull, Some(ca.clone()))
        .await
        .unwrap();
    probe(&pg, SslMode::Require, Some(ca.clone()))
        .await
        .unwrap();
    probe(&pg, SslMode::Prefer, Some(ca.clone())).await.unwrap();
    probe(&pg, SslMode::Disable, None).await.unwrap();
    // Without the test CA the certificate is not trusted, even for `require` and `prefer`.
    assert_refused(
        probe(&pg, SslMode::Require, None).await,
        "require, system roots",
    );
    assert_refused(
        probe(&pg, SslMode::Prefer, None).await,
        "prefer, system roots",
    );
}

#[tokio::test]
async fn verify_ca_skips_only_the_name_check() {
    let Some(pg) = PrivatePg::start("verify_ca_skips_only_the_name") else {
        return;
    };
    let ca = pg.enable_tls("DNS:db.elsewhere.example");
    probe(&pg, SslMode::VerifyCa, Some(ca.clone()))
        .await
        .unwrap();
    assert_refused(
        probe(&pg, SslMode::VerifyFull, Some(ca)).await,
        "verify-full, wrong name",
    );
    // Another CA's file: the chain does not verify, whatever the mode.
    let Some(other) = PrivatePg::start("verify_ca_other_ca") else {
        return;
    };
    let other_ca = other.enable_tls("IP:127.0.0.1");
    assert_refused(
        probe(&pg, SslMode::VerifyCa, Some(other_ca)).await,
        "verify-ca, foreign CA",
    );
}
