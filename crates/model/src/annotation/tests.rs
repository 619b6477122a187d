//! DANM and NPWG request annotations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[track_caller]
fn problems(result: Result<Vec<AttachmentRequest>, AnnotationError>) -> Vec<EntryProblem> {
    match result {
        Err(AnnotationError::Invalid { problems, .. }) => problems,
        other => panic!("expected entry problems, got {other:?}"),
    }
}

#[track_caller]
fn has_problem(found: &[EntryProblem], path: &str) {
    assert!(
        found.iter().any(|p| p.path == path),
        "no problem at {path}: {found:#?}"
    );
}

#[test]
fn danm_entries_name_networks_and_request_addresses() {
    let value = r#"[
        {"clusterNetwork":"net-a","ip":"dynamic","proutes":{"10.10.1.0/24":"10.0.0.65"}},
        {"network":"internal","ip":"10.0.0.5/24","ip6":"none"},
        {"tenantNetwork":"t1","ip6":"2001:db8::7"},
        {"network":"l2"}
    ]"#;
    let requests = parse_danm_interfaces(value).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(requests.len(), 4);
    let a = &requests[0];
    assert_eq!(a.format, RequestFormat::Danm);
    assert_eq!(a.network.kind, NetworkRefKind::ClusterNetwork);
    assert_eq!(a.network.name, "net-a");
    assert_eq!(a.ipv4, AddressRequest::Dynamic);
    assert_eq!(a.ipv6, AddressRequest::Absent);
    assert_eq!(a.policy_routes.len(), 1);
    assert_eq!(a.policy_routes[0].gw, ip("10.0.0.65"));
    assert_eq!(a.interface, None);
    let b = &requests[1];
    assert_eq!(b.network.kind, NetworkRefKind::DanmNet);
    assert_eq!(
        b.ipv4,
        AddressRequest::Static {
            address: ip("10.0.0.5"),
            prefix: Some(24)
        }
    );
    assert_eq!(b.ipv6, AddressRequest::None);
    assert_eq!(requests[2].network.kind, NetworkRefKind::TenantNetwork);
    assert_eq!(
        requests[2].ipv6,
        AddressRequest::Static {
            address: ip("2001:db8::7"),
            prefix: None
        }
    );
    assert_eq!(requests[3].ipv4, AddressRequest::Absent);
    assert_eq!(requests[3].index, 3);
}

#[test]
fn danm_empty_list_means_the_default_network() {
    assert_eq!(parse_danm_interfaces("[]"), Ok(Vec::new()));
}

#[test]
fn danm_entries_name_exactly_one_network() {
    let found = problems(parse_danm_interfaces(
        r#"[{"ip":"dynamic"},{"network":"a","clusterNetwork":"b"},{"network":""}]"#,
    ));
    has_problem(&found, "[0]");
    has_problem(&found, "[1]");
    has_problem(&found, "[2].network");
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn danm_unknown_and_duplicate_fields_are_refused() {
    let found = problems(parse_danm_interfaces(
        r#"[{"network":"a","ipv4":"dynamic"}]"#,
    ));
    assert!(found[0].message.contains("ipv4"), "{found:#?}");
    let found = problems(parse_danm_interfaces(r#"[{"network":"a","network":"b"}]"#));
    assert!(found[0].message.contains("duplicate"), "{found:#?}");
}

#[test]
fn danm_addresses_are_checked_by_family() {
    let found = problems(parse_danm_interfaces(
        r#"[{"network":"a","ip":"2001:db8::1","ip6":"Dynamic"},
            {"network":"b","ip":"10.0.0.1/40"},
            {"network":"c","proutes":{"10.0.0.0/8":"fe80::1"},"proutes6":{"bad":"fe80::1"}},
            {"network":"d","ip":"10.0.0.1/+24","ip6":"2001:db8::1/64"}]"#,
    ));
    has_problem(&found, "[3].ip");
    assert!(!found.iter().any(|p| p.path == "[3].ip6"), "{found:#?}");
    has_problem(&found, "[0].ip");
    has_problem(&found, "[0].ip6");
    has_problem(&found, "[1].ip");
    has_problem(&found, "[2].proutes[\"10.0.0.0/8\"]");
    has_problem(&found, "[2].proutes6[\"bad\"]");
    let text = AnnotationError::Invalid {
        key: DANM_INTERFACES.to_owned(),
        problems: found,
    }
    .to_string();
    assert!(
        text.starts_with("annotation danm.k8s.io/interfaces: [0].ip = \"2001:db8::1\": is an IPv6"),
        "{text}"
    );
}

#[test]
fn danm_syntax_errors_are_reported() {
    for bad in ["", "{}", "[1", r#"{"network":"a"}"#, "[1]"] {
        let result = parse_danm_interfaces(bad);
        assert!(
            matches!(
                result,
                Err(AnnotationError::Syntax { .. } | AnnotationError::Invalid { .. })
            ),
            "{bad:?}: {result:?}"
        );
    }
}

#[test]
fn npwg_comma_form() {
    let requests = parse_npwg_networks(" macvlan-conf, other-ns/sriov@net5 ,plain@eth9")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].network.name, "macvlan-conf");
    assert_eq!(requests[0].network.namespace, None);
    assert_eq!(requests[0].network.kind, NetworkRefKind::Attachment);
    assert_eq!(requests[0].ipv4, AddressRequest::NetworkDefault);
    assert_eq!(requests[1].network.namespace.as_deref(), Some("other-ns"));
    assert_eq!(requests[1].network.name, "sriov");
    assert_eq!(requests[1].interface.as_deref(), Some("net5"));
    assert_eq!(requests[2].interface.as_deref(), Some("eth9"));
    assert_eq!(parse_npwg_networks("  "), Ok(Vec::new()));
}

#[test]
fn npwg_comma_form_problems() {
    let found = problems(parse_npwg_networks(
        "a,,B,ns/x/y,c@,d@this-name-is-too-long",
    ));
    has_problem(&found, "[1]");
    has_problem(&found, "[2].name");
    has_problem(&found, "[3].name");
    has_problem(&found, "[4]");
    has_problem(&found, "[5]");
}

#[test]
fn npwg_json_form() {
    let value = r#"[
      {"name":"net-a","namespace":"infra","interface":"net1","ips":["10.1.0.5/24","2001:db8::5"],
       "mac":"0A-58-0A-01-00-05","default-route":["10.1.0.1"],"cni-args":{"foo":1},
       "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP"}],
       "bandwidth":{"ingressRate":1000},"deviceID":"0000:00:1f.0","example.com/flavour":"x"},
      {"name":"net-b","interfaceRequest":"net2","ipam-claim-reference":"vm-1"}
    ]"#;
    let requests = parse_npwg_networks(value).unwrap_or_else(|e| panic!("{e}"));
    let a = &requests[0];
    assert_eq!(a.network.namespace.as_deref(), Some("infra"));
    assert_eq!(a.interface.as_deref(), Some("net1"));
    assert_eq!(
        a.ipv4,
        AddressRequest::Static {
            address: ip("10.1.0.5"),
            prefix: Some(24)
        }
    );
    assert!(matches!(a.ipv6, AddressRequest::Static { .. }));
    assert_eq!(a.mac.as_deref(), Some("0a:58:0a:01:00:05"));
    assert_eq!(a.default_route, vec![ip("10.1.0.1")]);
    assert_eq!(a.cni_args.get("foo"), Some(&serde_json::json!(1)));
    assert_eq!(a.port_mappings[0].container_port, 80);
    assert_eq!(a.bandwidth.and_then(|b| b.ingress_rate), Some(1000));
    assert_eq!(a.device_id.as_deref(), Some("0000:00:1f.0"));
    assert!(a.extensions.contains_key("example.com/flavour"));
    let b = &requests[1];
    assert_eq!(b.interface.as_deref(), Some("net2"));
    assert_eq!(b.ipam_claim.as_deref(), Some("vm-1"));
    assert_eq!(b.ipv4, AddressRequest::NetworkDefault);
}

#[test]
fn npwg_json_problems() {
    let value = r#"[
      {"name":"a","interfce":"net1"},
      {"name":"b","ips":["10.0.0.1","10.0.0.2"],"ipam-claim-reference":"c"},
      {"name":"c","mac":"zz:00:00:00:00:00","default-route":["10.0.0.1","10.0.0.2","x"]},
      {"name":"d","interface":"net1","interfaceRequest":"net2"},
      {"name":"e","portMappings":[{"hostPort":0,"containerPort":80,"protocol":"icmp"}]},
      {"namespace":"x"},
      {"name":"f","default-route":["10.0.0.1"],"default-route":["10.0.0.2"]}
    ]"#;
    let found = problems(parse_npwg_networks(value));
    for path in [
        "[0].interfce",
        "[1].ips",
        "[1].ips[1]",
        "[2].mac",
        "[2].default-route[1]",
        "[2].default-route[2]",
        "[3].interfaceRequest",
        "[4].portMappings[0].protocol",
        "[4].portMappings[0]",
        "[5].name",
        "[6]",
    ] {
        has_problem(&found, path);
    }
}

#[test]
fn npwg_interface_names_are_unique_per_pod() {
    let found = problems(parse_npwg_networks("a@net1,b@net1"));
    has_problem(&found, "[1].interface");
    let found = problems(parse_npwg_networks(
        r#"[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]"#,
    ));
    has_problem(&found, "[1].interface");
}

#[test]
fn input_is_bounded() {
    let huge = format!("[{}]", " ".repeat(MAX_ANNOTATION_BYTES));
    assert!(matches!(
        parse_danm_interfaces(&huge),
        Err(AnnotationError::TooLarge { .. })
    ));
    assert!(matches!(
        parse_npwg_networks(&huge),
        Err(AnnotationError::TooLarge { .. })
    ));
    let many = vec![r#"{"network":"a"}"#; MAX_ATTACHMENTS + 1].join(",");
    assert!(matches!(
        parse_danm_interfaces(&format!("[{many}]")),
        Err(AnnotationError::TooManyEntries { count: 65, .. })
    ));
    let many = vec!["a"; MAX_ATTACHMENTS + 1].join(",");
    assert!(matches!(
        parse_npwg_networks(&many),
        Err(AnnotationError::TooManyEntries { .. })
    ));
    let exactly = vec![r#"{"network":"a"}"#; MAX_ATTACHMENTS].join(",");
    assert_eq!(
        parse_danm_interfaces(&format!("[{exactly}]")).map(|r| r.len()),
        Ok(MAX_ATTACHMENTS)
    );
}

#[test]
fn pod_annotations_pick_the_one_request_key() {
    let mut annotations = BTreeMap::new();
    annotations.insert("unrelated".to_owned(), "x".to_owned());
    assert_eq!(parse_pod_annotations(&annotations), Ok(None));
    for key in [PLEXUS_INTERFACES, DANM_INTERFACES, DANM_IO_INTERFACES] {
        let single = BTreeMap::from([(key.to_owned(), r#"[{"network":"a"}]"#.to_owned())]);
        let request = parse_pod_annotations(&single)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no request"));
        assert_eq!(request.key, key);
        assert_eq!(request.format, RequestFormat::Danm);
        assert_eq!(request.attachments.len(), 1);
    }
    annotations.insert(NPWG_NETWORKS.to_owned(), "net-a".to_owned());
    let request = parse_pod_annotations(&annotations)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no request"));
    assert_eq!(request.format, RequestFormat::Npwg);
    annotations.insert(DANM_IO_INTERFACES.to_owned(), "[]".to_owned());
    assert_eq!(
        parse_pod_annotations(&annotations),
        Err(AnnotationError::Conflict {
            first: DANM_IO_INTERFACES,
            second: NPWG_NETWORKS
        })
    );
}

#[test]
fn pod_annotation_errors_name_the_key() {
    let annotations = [(DANM_IO_INTERFACES, r#"[{"network":"a","ip":"x"}]"#)];
    let err = parse_pod_annotations(annotations).map(|_| ()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("annotation danm.io/interfaces: [0].ip"),
        "{err}"
    );
}

#[test]
fn error_text_spells_out_ten_problems_and_counts_the_rest() {
    // Found by fuzzing: 64 bad entries of control characters (each escaped as `\u{f}` in the
    // text, six bytes per byte) made a 28 KB error out of a 2.6 KB annotation.
    let entry = "\u{f}".repeat(40);
    let value = vec![entry.as_str(); MAX_ATTACHMENTS].join(",");
    let err = parse_npwg_networks(&value).unwrap_err();
    let AnnotationError::Invalid { problems, .. } = &err else {
        panic!("expected entry problems, got {err:?}");
    };
    assert!(problems.len() >= MAX_ATTACHMENTS, "{}", problems.len());
    let text = err.to_string();
    let more = problems.len() - MAX_SHOWN_PROBLEMS;
    assert!(text.ends_with(&format!("; and {more} more")), "{text}");
    assert_eq!(text.matches("[").count(), MAX_SHOWN_PROBLEMS, "{text}");
    assert!(
        text.len() < 4 * value.len() + 16 * 1024,
        "{} bytes",
        text.len()
    );
}

#[test]
fn up_to_ten_problems_are_all_spelled_out() {
    let value = ["B"; MAX_SHOWN_PROBLEMS].join(",");
    let text = parse_npwg_networks(&value).unwrap_err().to_string();
    assert!(!text.contains("more"), "{text}");
    assert_eq!(text.matches("].name").count(), MAX_SHOWN_PROBLEMS, "{text}");
}
