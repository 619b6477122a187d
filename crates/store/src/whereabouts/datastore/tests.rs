use serde_json::json;

use super::*;

fn choose(ipam: Value) -> Result<SectionStore, StoreError> {
    store_of_section(ipam.as_object().unwrap())
}

fn etcd(ipam: Value) -> (EtcdConfig, Vec<String>) {
    match choose(ipam).unwrap() {
        SectionStore {
            config: StoreConfig::Etcd(cfg),
            origin: StoreOrigin::WhereaboutsEtcd,
            notes,
        } => (cfg, notes),
        other => panic!("expected whereabouts' etcd, got {other:?}"),
    }
}

fn field(err: StoreError) -> String {
    match err {
        StoreError::Config { field, .. } => field,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn nothing_named_is_the_sqlite_default() {
    let chosen = choose(json!({"range": "10.0.0.0/24"})).unwrap();
    assert_eq!(chosen.origin, StoreOrigin::Default);
    assert_eq!(chosen.config, StoreConfig::default());
}

#[test]
fn an_explicit_store_wins_over_every_whereabouts_key() {
    let chosen = choose(json!({
        "range": "10.0.0.0/24", "datastore": "kubernetes",
        "kubernetes": {"kubeconfig": "/k"}, "etcd_host": "10.0.0.1:2379",
        "store": {"type": "sqlite", "path": "/tmp/x.db"}
    }))
    .unwrap();
    assert_eq!(chosen.origin, StoreOrigin::Explicit);
    assert!(matches!(chosen.config, StoreConfig::Sqlite(_)));
}

#[test]
fn etcd_host_alone_or_with_datastore_etcd_is_the_plexus_etcd_store() {
    for ipam in [
        json!({"range": "10.0.0.0/24", "etcd_host": "10.0.0.1:2379, http://10.0.0.2:2379"}),
        json!({"range": "10.0.0.0/24", "datastore": "etcd",
               "etcd_host": "10.0.0.1:2379,http://10.0.0.2:2379",
               "kubernetes": {"kubeconfig": "/k"}}),
    ] {
        let (cfg, notes) = etcd(ipam);
        assert_eq!(
            cfg.endpoints,
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(cfg.prefix, crate::DEFAULT_ETCD_PREFIX);
        assert_eq!(cfg.require_absent, ["/whereabouts/10.0.0.0/24"]);
        assert!(notes.is_empty(), "{notes:?}");
    }
}

#[test]
fn tls_as_whereabouts_decides_it() {
    let (cfg, notes) = etcd(json!({
        "range": "10.0.0.0/24", "etcd_host": "e1:2379,e2:2379",
        "etcd_cert_file": "/c.pem", "etcd_key_file": "/k.pem", "etcd_ca_cert_file": "/ca.pem"
    }));
    assert_eq!(cfg.endpoints, ["https://e1:2379", "https://e2:2379"]);
    assert_eq!(
        cfg.ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(
        cfg.cert_file.as_deref(),
        Some(std::path::Path::new("/c.pem"))
    );
    assert!(notes.is_empty());
    // A CA alone: whereabouts speaks plain http to a bare host and ignores it.
    let (cfg, notes) = etcd(json!({"etcd_host": "e1:2379", "etcd_ca_cert_file": "/ca.pem"}));
    assert_eq!(cfg.endpoints, ["http://e1:2379"]);
    assert_eq!(cfg.ca_file, None);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("ipam.etcd_ca_cert_file is ignored"),
        "{notes:?}"
    );
    // https:// with a CA and no client certificate.
    let (cfg, _) = etcd(json!({"etcd_host": "https://e1:2379", "etcd_ca_cert_file": "/ca.pem"}));
    assert!(cfg.uses_tls());
}

#[test]
fn bad_etcd_settings_name_the_whereabouts_key() {
    let cases = [
        (json!({"datastore": "etcd"}), "ipam.etcd_host"),
        (json!({"etcd_host": " , "}), "ipam.etcd_host"),
        (
            json!({"etcd_host": "https://e:2379"}),
            "ipam.etcd_ca_cert_file",
        ),
        (
            json!({"etcd_host": "https://e:2379", "etcd_ca_cert_file": "/ca",
                   "etcd_cert_file": "/c"}),
            "ipam.etcd_cert_file",
        ),
        (
            json!({"etcd_host": "e:2379", "etcd_username": "u"}),
            "ipam.etcd_username",
        ),
        (
            json!({"etcd_host": "e:2379", "etcd_password": "p"}),
            "ipam.etcd_username",
        ),
        (json!({"etcd_host": "ftp://e:2379"}), "ipam.etcd_host"),
        (
            json!({"etcd_host": "http://e:2379,https://f:2379"}),
            "ipam.etcd_host",
        ),
        (
            json!({"etcd_host": "e:2379", "etcd_cert_file": "c.pem", "etcd_key_file": "/k"}),
            "ipam.etcd_cert_file",
        ),
        (json!({"etcd_host": 5}), "ipam.etcd_host"),
        (json!({"datastore": "consul"}), "ipam.datastore"),
    ];
    for (ipam, expected) in cases {
        let err = choose(ipam.clone()).unwrap_err();
        assert_eq!(field(err), expected, "{ipam}");
    }
}

#[test]
fn the_password_never_shows() {
    let secret = "s3cret-Pa55";
    let ipam = json!({"etcd_host": "e:2379", "etcd_username": "u", "etcd_password": secret,
                      "range": "10.0.0.0/24"});
    let chosen = choose(ipam).unwrap();
    assert!(!format!("{chosen:?}").contains(secret));
    let StoreConfig::Etcd(cfg) = &chosen.config else {
        panic!("etcd expected")
    };
    assert_eq!(cfg.password.as_ref().map(Secret::expose), Some(secret));
    for ipam in [
        json!({"etcd_host": "https://e:2379", "etcd_username": "u", "etcd_password": secret}),
        json!({"etcd_host": "e:2379", "etcd_password": secret}),
        json!({"etcd_host": "e:2379", "etcd_username": "u", "etcd_password": [secret]}),
        json!({"etcd_host": format!("http://u:{secret}@e:2379"), "etcd_username": "u",
               "etcd_password": secret}),
    ] {
        let err = choose(ipam).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
}

#[test]
fn the_agent_gets_the_same_store_back() {
    let chosen = choose(json!({"etcd_host": "e:2379", "range": "10.0.0.7/24",
                               "etcd_username": "u", "etcd_password": "p"}))
    .unwrap();
    let back = StoreConfig::from_json(Some(&chosen.config.to_json())).unwrap();
    assert_eq!(back, chosen.config);
}

#[test]
fn the_kubernetes_datastore_is_refused_naming_the_store_key() {
    for (ipam, expected) in [
        (json!({"datastore": "kubernetes"}), "ipam.datastore"),
        (
            json!({"datastore": "kubernetes", "kubernetes": {"kubeconfig": "/k"},
                   "etcd_host": "e:2379"}),
            "ipam.datastore",
        ),
        (
            json!({"kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"}}),
            "ipam.kubernetes.kubeconfig",
        ),
    ] {
        let err = choose(ipam.clone()).unwrap_err();
        assert!(err.to_string().contains("ipam.store"), "{err}");
        assert!(err.to_string().contains("no Kubernetes store"), "{err}");
        assert_eq!(field(err), expected, "{ipam}");
    }
    // An empty kubeconfig names nothing (whereabouts refuses it as unconfigured).
    let chosen = choose(json!({"kubernetes": {"kubeconfig": ""}})).unwrap();
    assert_eq!(chosen.origin, StoreOrigin::Default);
}

#[test]
fn etcd_of_section_ignores_the_store_key() {
    let ipam = json!({"etcd_host": "e:2379", "store": {"type": "sqlite"}, "range": "10.0.0.0/24"});
    let (cfg, _) = etcd_of_section(ipam.as_object().unwrap()).unwrap().unwrap();
    assert_eq!(cfg.endpoints, ["http://e:2379"]);
    assert!(cfg.require_absent.is_empty());
    assert!(
        etcd_of_section(json!({}).as_object().unwrap())
            .unwrap()
            .is_none()
    );
}
