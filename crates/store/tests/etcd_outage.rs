//! The etcd backend when things go wrong, on private servers the tests may stop, freeze and
//! restart (never the shared one): a closed port, a server stopped and restarted mid-run, a
//! frozen server, wrong credentials, TLS with client certificates. Without the `etcd` binary
//! these tests print `SKIPPED` and pass, unless `PLEXUS_REQUIRE_SERVERS=1`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, EtcdConfig, EtcdStore, Owner, Store,
    StoreConfig, StoreError,
};
use plexus_test_support::servers::etcd::{PrivateEtcd, TlsFiles, unique_prefix};
use plexus_test_support::servers::free_port;

fn range_set(cidr: &str) -> RangeSet {
    let range = Range::new(cidr.parse().unwrap(), None, None, None, Vec::new()).unwrap();
    RangeSet::new(vec![range]).unwrap()
}

fn ctx() -> ClaimContext {
    ClaimContext::new("node-a", BlockPolicy::default())
}

fn config(endpoint: String, test: &str, timeout: Duration) -> EtcdConfig {
    let mut cfg = EtcdConfig::new(vec![endpoint]);
    cfg.prefix = unique_prefix(test);
    cfg.timeout = timeout;
    cfg
}

async fn claim(
    store: &dyn Store,
    key: &AttachmentKey,
    set: &RangeSet,
) -> Result<IpAddr, StoreError> {
    let got = store
        .claim(key, &Owner::default(), &[Claim::Dynamic(set)], &ctx())
        .await?;
    Ok(got[0].ip)
}

fn assert_unavailable_within(err: &StoreError, started: Instant, deadline: Duration) {
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let took = started.elapsed();
    // The deadline plus scheduling slack; never the 10 s default or a hang.
    assert!(
        took < deadline + Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn closed_port_is_unavailable_within_the_deadline() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let deadline = Duration::from_millis(800);
    let store = EtcdStore::open(&config(endpoint.clone(), "closed", deadline)).unwrap();
    let key = AttachmentKey::new("n", "c", "eth0");
    let started = Instant::now();
    let err = claim(&store, &key, &range_set("10.50.0.0/29"))
        .await
        .unwrap_err();
    assert_unavailable_within(&err, started, deadline);
    assert!(
        err.to_string().contains(&endpoint),
        "names the endpoint: {err}"
    );
    let started = Instant::now();
    let err = store.probe().await.unwrap_err();
    assert_unavailable_within(&err, started, deadline);

    // STATUS caps the configured 10 s at 1.5 s.
    let json = serde_json::json!({"type": "etcd", "endpoints": [endpoint]});
    let capped = StoreConfig::from_json(Some(&json))
        .unwrap()
        .with_timeout(Duration::from_millis(1500));
    let store = plexus_store::open(&capped).await.unwrap();
    let started = Instant::now();
    let err = store.probe().await.unwrap_err();
    assert_unavailable_within(&err, started, Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_then_restarted_loses_and_duplicates_nothing() {
    let Some(mut server) = PrivateEtcd::start("stopped_server_then_restarted") else {
        return;
    };
    let deadline = Duration::from_millis(1000);
    let cfg = config(server.endpoint(), "restart", deadline);
    let store = EtcdStore::open(&cfg).unwrap();
    let set = range_set("10.51.0.0/24");
    let key = |i: usize| AttachmentKey::new("outage-net", format!("c{i}"), "eth0");
    let mut outcome: BTreeMap<usize, Result<IpAddr, StoreError>> = BTreeMap::new();
    for i in 0..10 {
        outcome.insert(i, claim(&store, &key(i), &set).await);
    }
    assert!(outcome.values().all(Result::is_ok), "{outcome:?}");
    // Stop the server while a writer keeps claiming; restart it once the writer has seen
    // the outage. The writer reports each claim's success, and stops at its first success
    // after a failure (or after 190 claims).
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let writer = {
        let cfg = cfg.clone();
        let set = set.clone();
        tokio::spawn(async move {
            let store = EtcdStore::open(&cfg).unwrap();
            let mut results = BTreeMap::new();
            let mut saw_failure = false;
            for i in 10..200 {
                let result = claim(&store, &key(i), &set).await;
                let ok = result.is_ok();
                results.insert(i, result);
                let _ = report.send(ok);
                if ok && saw_failure {
                    break;
                }
                saw_failure |= !ok;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            results
        })
    };
    assert_eq!(reports.recv().await, Some(true), "the writer claims");
    server.stop();
    let started = Instant::now();
    let err = claim(&store, &key(99), &set).await.unwrap_err();
    assert_unavailable_within(&err, started, deadline);
    while reports.recv().await == Some(true) {}
    server.restart();
    outcome.extend(writer.await.unwrap());
    let failed: Vec<usize> = outcome
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| *i)
        .collect();
    assert!(!failed.is_empty(), "the outage was noticed");
    for (i, result) in &outcome {
        if let Err(err) = result {
            assert!(
                matches!(err, StoreError::Unavailable { .. }),
                "claim {i}: {err:?}"
            );
        }
    }
    // The runtime retries a failed ADD: it gets an address (the same one if the lost
    // answer had in fact committed), on the same store object, without reopening it.
    for i in failed.iter().copied().chain([99]) {
        let got = claim(&store, &key(i), &set).await;
        assert!(got.is_ok(), "retry of claim {i} after the restart: {got:?}");
        outcome.insert(i, got);
    }
    let listed = store.list("outage-net").await.unwrap();
    let held: BTreeMap<String, IpAddr> = listed
        .iter()
        .map(|a| (a.container_id.clone(), a.ip))
        .collect();
    assert_eq!(held.len(), listed.len(), "one address per attachment");
    let mut ips: Vec<IpAddr> = listed.iter().map(|a| a.ip).collect();
    ips.dedup();
    assert_eq!(ips.len(), listed.len(), "no address held twice");
    let expected: BTreeMap<String, IpAddr> = outcome
        .iter()
        .map(|(i, r)| (format!("c{i}"), *r.as_ref().unwrap()))
        .collect();
    assert_eq!(held, expected, "nothing lost, nothing extra");
}

#[tokio::test]
async fn frozen_server_times_out_then_recovers() {
    let Some(mut server) = PrivateEtcd::start("frozen_server_times_out") else {
        return;
    };
    let deadline = Duration::from_millis(800);
    let store = EtcdStore::open(&config(server.endpoint(), "frozen", deadline)).unwrap();
    let set = range_set("10.52.0.0/29");
    let first = claim(&store, &AttachmentKey::new("n", "c1", "eth0"), &set).await;
    assert!(first.is_ok(), "{first:?}");
    server.pause();
    let started = Instant::now();
    let err = claim(&store, &AttachmentKey::new("n", "c2", "eth0"), &set)
        .await
        .unwrap_err();
    assert_unavailable_within(&err, started, deadline);
    server.resume();
    let again = claim(&store, &AttachmentKey::new("n", "c2", "eth0"), &set).await;
    assert!(again.is_ok(), "recovers on the same store: {again:?}");
    assert_eq!(store.list("n").await.unwrap().len(), 2);
}

#[tokio::test]
async fn credentials_work_and_never_show() {
    let Some(server) = PrivateEtcd::start("credentials_work_and_never_show") else {
        return;
    };
    let password = "Sup3r-s3cret-etcd-pw";
    server.enable_auth(password);
    let password_file = server.scratch_dir().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let mut cfg = config(server.endpoint(), "auth", Duration::from_secs(5));
    cfg.username = Some("root".into());
    cfg.password_file = Some(password_file);
    let store = EtcdStore::open(&cfg).unwrap();
    let set = range_set("10.53.0.0/29");
    let key = AttachmentKey::new("n", "c1", "eth0");
    assert!(claim(&store, &key, &set).await.is_ok());
    store.probe().await.unwrap();

    let wrong_file = server.scratch_dir().join("wrong");
    let wrong = "Not-the-r1ght-pw";
    std::fs::write(&wrong_file, wrong).unwrap();
    let mut bad = cfg.clone();
    bad.password_file = Some(wrong_file);
    let json = serde_json::json!({"type": "etcd", "endpoints": [server.endpoint()],
        "username": "root", "password": wrong, "timeout_ms": 5000});
    let inline = StoreConfig::from_json(Some(&json)).unwrap();
    let inline_store = plexus_store::open(&inline).await.unwrap();
    let mut shown = vec![
        format!("{cfg:?}"),
        format!("{bad:?}"),
        format!("{inline:?}"),
    ];
    let bad_store = EtcdStore::open(&bad).unwrap();
    shown.push(format!("{bad_store:?}"));
    for store in [&bad_store as &dyn Store, &*inline_store] {
        let started = Instant::now();
        let errors = [
            claim(store, &key, &set).await.unwrap_err(),
            store.probe().await.unwrap_err(),
            store.list("n").await.unwrap_err(),
            store.release(&key).await.unwrap_err(),
        ];
        assert!(
            // Each call would take the full 5 s deadline if it were retried.
            started.elapsed() < Duration::from_secs(5),
            "refused at once, not retried"
        );
        for err in errors {
            let StoreError::Unavailable { reason } = &err else {
                panic!("{err:?}")
            };
            assert!(reason.contains("credentials of user root"), "{reason}");
            shown.push(format!("{err} {err:?}"));
        }
    }
    let no_user =
        EtcdStore::open(&config(server.endpoint(), "auth", Duration::from_secs(3))).unwrap();
    let err = no_user.probe().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    shown.push(format!("{err} {err:?}"));
    for text in shown {
        assert!(
            !text.contains(password) && !text.contains(wrong),
            "secret shown: {text}"
        );
    }
}

#[tokio::test]
async fn tls_with_client_certificates_is_verified() {
    let certs = tempfile::tempdir().unwrap();
    let test = "tls_with_client_certificates_is_verified";
    let Some(tls) = TlsFiles::make(test, certs.path(), "good") else {
        return;
    };
    let Some(other_ca) = TlsFiles::make(test, certs.path(), "other") else {
        return;
    };
    let Some(server) = PrivateEtcd::start_tls(test, tls.clone()) else {
        return;
    };
    let mut cfg = config(server.endpoint(), "tls", Duration::from_secs(5));
    cfg.ca_file = Some(tls.ca.clone());
    cfg.cert_file = Some(tls.client_cert.clone());
    cfg.key_file = Some(tls.client_key.clone());
    let store = EtcdStore::open(&cfg).unwrap();
    let set = range_set("10.54.0.0/29");
    let key = AttachmentKey::new("n", "c1", "eth0");
    let got = claim(&store, &key, &set).await;
    assert_eq!(got, Ok("10.54.0.1".parse().unwrap()));
    store.probe().await.unwrap();

    // A server whose certificate another CA signed is refused: verification is on.
    let mut untrusted = cfg.clone();
    untrusted.ca_file = Some(other_ca.ca.clone());
    let store = EtcdStore::open(&untrusted).unwrap();
    let started = Instant::now();
    let err = store.probe().await.unwrap_err();
    let StoreError::Unavailable { reason } = &err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("TLS verification"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "refused at once, not retried"
    );
    // Without a client certificate the server refuses the connection.
    let mut anonymous = cfg.clone();
    anonymous.cert_file = None;
    anonymous.key_file = None;
    let store = EtcdStore::open(&anonymous).unwrap();
    let err = store.probe().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}
