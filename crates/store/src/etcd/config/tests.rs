//! Parsing and validation of the etcd store object.

use super::*;
use serde_json::json;

fn parse_json(v: Value) -> Result<EtcdConfig, StoreError> {
    match v {
        Value::Object(object) => parse(&object),
        other => panic!("test input must be an object, got {other}"),
    }
}

fn field_of(err: StoreError) -> String {
    match err {
        StoreError::Config { field, .. } => field,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn minimal_object_takes_defaults() {
    let cfg = parse_json(json!({"type": "etcd", "endpoints": ["http://127.0.0.1:2379"]})).unwrap();
    assert_eq!(cfg, EtcdConfig::new(vec!["http://127.0.0.1:2379".into()]));
    assert_eq!(cfg.prefix, "/plexus/v1");
    assert_eq!(cfg.timeout, Duration::from_secs(10));
    assert!(!cfg.uses_tls());
}

#[test]
fn full_object() {
    let cfg = parse_json(json!({
        "type": "etcd",
        "endpoints": ["https://10.0.0.1:2379", "https://etcd-2.example:2379/"],
        "ca_file": "/etc/plexus/ca.pem",
        "cert_file": "/etc/plexus/cert.pem",
        "key_file": "/etc/plexus/key.pem",
        "username": "plexus",
        "password_file": "/etc/plexus/password",
        "prefix": "/ipam/plexus/",
        "timeout_ms": 2500
    }))
    .unwrap();
    assert!(cfg.uses_tls());
    assert_eq!(cfg.ca_file, Some(PathBuf::from("/etc/plexus/ca.pem")));
    assert_eq!(cfg.cert_file, Some(PathBuf::from("/etc/plexus/cert.pem")));
    assert_eq!(cfg.key_file, Some(PathBuf::from("/etc/plexus/key.pem")));
    assert_eq!(cfg.username.as_deref(), Some("plexus"));
    assert_eq!(
        cfg.password_file,
        Some(PathBuf::from("/etc/plexus/password"))
    );
    assert_eq!(cfg.prefix, "/ipam/plexus", "trailing slash dropped");
    assert_eq!(cfg.timeout, Duration::from_millis(2500));
}

#[test]
fn bad_objects_name_the_field() {
    let http = json!(["http://127.0.0.1:2379"]);
    let https = json!(["https://127.0.0.1:2379"]);
    let cases = [
        (json!({}), "ipam.store.endpoints"),
        (json!({"endpoints": []}), "ipam.store.endpoints"),
        (json!({"endpoints": "http://a:1"}), "ipam.store.endpoints"),
        (json!({"endpoints": [5]}), "ipam.store.endpoints[0]"),
        (
            json!({"endpoints": ["127.0.0.1:2379"]}),
            "ipam.store.endpoints[0]",
        ),
        (
            json!({"endpoints": ["http://a:1", "http://a b:2"]}),
            "ipam.store.endpoints[1]",
        ),
        (
            json!({"endpoints": ["http://a:1/some/path"]}),
            "ipam.store.endpoints[0]",
        ),
        (
            json!({"endpoints": ["http://a:1", "https://b:1"], "ca_file": "/ca"}),
            "ipam.store.endpoints",
        ),
        (json!({"endpoints": https}), "ipam.store.ca_file"),
        (
            json!({"endpoints": http, "ca_file": "/ca"}),
            "ipam.store.ca_file",
        ),
        (
            json!({"endpoints": http, "key_file": "/k"}),
            "ipam.store.key_file",
        ),
        (
            json!({"endpoints": https, "ca_file": "/ca", "cert_file": "/c"}),
            "ipam.store.cert_file",
        ),
        (
            json!({"endpoints": https, "ca_file": "ca.pem"}),
            "ipam.store.ca_file",
        ),
        (
            json!({"endpoints": http, "username": "u"}),
            "ipam.store.username",
        ),
        (
            json!({"endpoints": http, "password_file": "/p"}),
            "ipam.store.username",
        ),
        (
            json!({"endpoints": http, "username": "u", "password_file": "/p", "password": "x"}),
            "ipam.store.password",
        ),
        (
            json!({"endpoints": http, "prefix": "plexus"}),
            "ipam.store.prefix",
        ),
        (
            json!({"endpoints": http, "prefix": "/"}),
            "ipam.store.prefix",
        ),
        (
            json!({"endpoints": http, "prefix": "/a\nb"}),
            "ipam.store.prefix",
        ),
        (
            json!({"endpoints": http, "timeout_ms": 0}),
            "ipam.store.timeout_ms",
        ),
        (
            json!({"endpoints": http, "timeout_ms": 600_001}),
            "ipam.store.timeout_ms",
        ),
        (
            json!({"endpoints": http, "timeout_ms": "10"}),
            "ipam.store.timeout_ms",
        ),
        (json!({"endpoints": http, "path": "/x"}), "ipam.store.path"),
    ];
    for (value, field) in cases {
        let err = parse_json(value.clone()).unwrap_err();
        assert_eq!(field_of(err), field, "for {value}");
    }
}

#[test]
fn endpoint_credentials_are_refused_without_echo() {
    let v = json!({"endpoints": ["https://admin:hunter2@10.0.0.1:2379"], "ca_file": "/ca"});
    let err = parse_json(v).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(field_of(err), "ipam.store.endpoints[0]");
}

#[test]
fn inline_password_never_shows() {
    let secret = "s3cr3t-Pa55";
    let v = json!({"endpoints": ["http://127.0.0.1:2379"], "username": "plexus",
                   "password": secret});
    let cfg = parse_json(v).unwrap();
    assert_eq!(cfg.password.as_ref().map(Secret::expose), Some(secret));
    let shown = format!("{cfg:?} {cfg:#?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");

    // A password of the wrong type is not echoed either.
    let v = json!({"endpoints": ["http://127.0.0.1:2379"], "username": "plexus",
                   "password": [secret]});
    let err = parse_json(v).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret));
}

#[test]
fn configs_built_in_code_are_validated_too() {
    let mut cfg = EtcdConfig::new(vec!["http://127.0.0.1:2379".into()]);
    assert_eq!(cfg.validate(), Ok(()));
    cfg.prefix = "/plexus/".into();
    assert_eq!(field_of(cfg.validate().unwrap_err()), "ipam.store.prefix");
    cfg.prefix = "/plexus".into();
    cfg.timeout = Duration::ZERO;
    assert_eq!(
        field_of(cfg.validate().unwrap_err()),
        "ipam.store.timeout_ms"
    );
}
