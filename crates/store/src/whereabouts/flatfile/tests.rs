use serde_json::json;
use tempfile::TempDir;

use super::*;

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn the_network_wins_and_only_empty_fields_are_filled() {
    let mut ipam = object(json!({
        "type": "plexus-ipam", "range": "10.0.0.0/24", "gateway": "",
        "kubernetes": {"kubeconfig": ""}, "enable_overlapping_ranges": false,
        "etcd_host": "10.9.9.9:2379"
    }));
    let flat = object(json!({
        "range": "10.1.0.0/16", "gateway": "10.0.0.1", "datastore": "kubernetes",
        "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
        "enable_overlapping_ranges": true, "etcd_host": "10.1.1.1:2379",
        "reconciler_cron_expression": "30 4 * * *", "configuration_path": "/x",
        "type": "whereabouts", "store": {"type": "sqlite"}
    }));
    let taken = merge_flat_file(&mut ipam, &flat);
    assert_eq!(taken, ["gateway", "datastore", "kubernetes"]);
    assert_eq!(
        Value::Object(ipam),
        json!({
            "type": "plexus-ipam", "range": "10.0.0.0/24", "gateway": "10.0.0.1",
            "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
            "enable_overlapping_ranges": false, "etcd_host": "10.9.9.9:2379",
            "datastore": "kubernetes"
        })
    );
}

#[test]
fn configuration_path_first_then_the_directories_in_order() {
    let dir = TempDir::new().unwrap();
    let mk = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (first, second, own) = (mk("first"), mk("second"), mk("own"));
    let dirs = vec![first.clone(), second.clone()];
    let none = object(json!({"range": "10.0.0.0/24"}));
    assert_eq!(
        find_flat_file(&none, &dirs).unwrap(),
        None,
        "no file anywhere is fine"
    );

    std::fs::write(second.join(FLAT_FILE_NAME), "{}").unwrap();
    assert_eq!(
        find_flat_file(&none, &dirs).unwrap(),
        Some(second.join(FLAT_FILE_NAME))
    );
    std::fs::write(first.join(FLAT_FILE_NAME), "{}").unwrap();
    assert_eq!(
        find_flat_file(&none, &dirs).unwrap(),
        Some(first.join(FLAT_FILE_NAME))
    );

    // configuration_path: a file of any name, or a directory holding whereabouts.conf.
    let file = own.join("custom.json");
    std::fs::write(&file, "{}").unwrap();
    let by_file = object(json!({"configuration_path": file}));
    assert_eq!(find_flat_file(&by_file, &dirs).unwrap(), Some(file.clone()));
    let by_dir = object(json!({"configuration_path": own}));
    assert_eq!(
        find_flat_file(&by_dir, &dirs).unwrap(),
        Some(first.join(FLAT_FILE_NAME))
    );
    std::fs::write(own.join(FLAT_FILE_NAME), "{}").unwrap();
    assert_eq!(
        find_flat_file(&by_dir, &dirs).unwrap(),
        Some(own.join(FLAT_FILE_NAME))
    );
    // A configuration_path that does not exist falls through, as in whereabouts.
    let missing = object(json!({"configuration_path": dir.path().join("nope.conf")}));
    assert_eq!(
        find_flat_file(&missing, &dirs).unwrap(),
        Some(first.join(FLAT_FILE_NAME))
    );
    assert_eq!(find_flat_file(&missing, &[]).unwrap(), None);

    let traversal = object(json!({"configuration_path": "/etc/../etc/whereabouts.conf"}));
    assert!(find_flat_file(&traversal, &dirs).is_err());
    assert!(find_flat_file(&object(json!({"configuration_path": 5})), &dirs).is_err());
}

#[test]
fn unreadable_files_are_refused_without_quoting_them() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(FLAT_FILE_NAME);
    std::fs::write(&path, r#"{"etcd_password": "s3cret", oops}"#).unwrap();
    let err = read_flat_file(&path).unwrap_err();
    let StoreError::Config { field, reason } = &err else {
        panic!("a Config error expected: {err:?}")
    };
    assert_eq!(field, "ipam.configuration_path");
    assert!(reason.contains(&path.display().to_string()), "{reason}");
    assert!(!format!("{err:?}").contains("s3cret"));
    std::fs::write(&path, "[1]").unwrap();
    assert!(read_flat_file(&path).is_err());
}

#[test]
fn only_whereabouts_style_sections_read_it() {
    for ipam in [
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}]]}),
        json!({"subnet": "10.0.0.0/24"}),
        json!({"network": "blue"}),
        json!({"static": []}),
    ] {
        assert!(!is_whereabouts_style(&object(ipam.clone())), "{ipam}");
        assert_eq!(with_flat_file(&object(ipam)).unwrap(), None);
    }
    assert!(is_whereabouts_style(&object(
        json!({"range": "10.0.0.0/24", "network": null})
    )));
}
