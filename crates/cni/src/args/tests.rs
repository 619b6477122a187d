//! Unit tests for `CNI_ARGS` parsing.

use std::net::IpAddr;

use super::*;
use crate::codes;

fn parse(s: &str) -> CniArgs {
    CniArgs::parse(s).expect(s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect(s)
}

const KUBERNETES_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=telco;K8S_POD_NAME=upf-0;\
K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e2d3c-aaaa-bbbb-cccc-1234567890ab";

#[test]
fn empty_string_has_no_arguments() {
    let args = parse("");
    assert!(args.is_empty());
    assert_eq!(args.get("IP"), None);
    assert!(!args.ignore_unknown());
    assert_eq!(args.ips(), Ok(vec![]));
}

#[test]
fn reads_the_kubernetes_runtime_arguments() {
    let args = parse(KUBERNETES_ARGS);
    assert!(args.ignore_unknown());
    assert_eq!(args.pod_namespace(), Some("telco"));
    assert_eq!(args.pod_name(), Some("upf-0"));
    assert_eq!(args.infra_container_id(), Some("abc123"));
    assert_eq!(args.pod_uid(), Some("0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"));
    assert!(args.unknown_keys().is_empty());
}

#[test]
fn empty_pod_metadata_reads_as_absent_but_get_sees_it() {
    let args = parse("K8S_POD_NAME=;K8S_POD_NAMESPACE=");
    assert_eq!(args.pod_name(), None);
    assert_eq!(args.pod_namespace(), None);
    assert_eq!(args.get("K8S_POD_NAME"), Some(""));
}

#[test]
fn element_without_equals_is_code_4_naming_it() {
    for bad in ["FOO", "A=1;BAR", "K8S_POD_NAME=x;;junk"] {
        let err = CniArgs::parse(bad).expect_err(bad);
        assert_eq!(err.code, codes::INVALID_ENV, "{bad}");
        assert!(err.msg.contains("CNI_ARGS"), "{}", err.msg);
    }
    let err = CniArgs::parse("A=1;BAR").expect_err("no equals");
    assert!(err.msg.contains("\"BAR\""), "{}", err.msg);
}

#[test]
fn empty_key_is_code_4() {
    let err = CniArgs::parse("=value").expect_err("empty key");
    assert_eq!(err.code, codes::INVALID_ENV);
    assert!(err.msg.contains("\"=value\""), "{}", err.msg);
}

#[test]
fn malformed_is_an_error_even_with_ignore_unknown() {
    let err = CniArgs::parse("IgnoreUnknown=1;garbage").expect_err("malformed");
    assert_eq!(err.code, codes::INVALID_ENV);
}

#[test]
fn empty_elements_are_skipped() {
    let args = parse(";A=1;;B=2;");
    let pairs: Vec<(&str, &str)> = args.pairs().collect();
    assert_eq!(pairs, [("A", "1"), ("B", "2")]);
}

#[test]
fn value_may_contain_equals_and_be_empty() {
    let args = parse("LABEL=a=b;EMPTY=");
    assert_eq!(args.get("LABEL"), Some("a=b"));
    assert_eq!(args.get("EMPTY"), Some(""));
}

#[test]
fn duplicate_key_last_wins() {
    let args = parse("K8S_POD_NAME=first;K8S_POD_NAME=second");
    assert_eq!(args.pod_name(), Some("second"));
    assert_eq!(args.pairs().count(), 2);
}

#[test]
fn keys_are_case_sensitive() {
    let args = parse("k8s_pod_name=x");
    assert_eq!(args.pod_name(), None);
    assert_eq!(args.unknown_keys(), ["k8s_pod_name"]);
}

#[test]
fn ignore_unknown_accepts_1_and_true_in_any_case() {
    for yes in ["1", "true", "TRUE", "True"] {
        assert!(
            parse(&format!("IgnoreUnknown={yes}")).ignore_unknown(),
            "{yes}"
        );
    }
    for no in ["0", "false", "", "yes", "2"] {
        assert!(
            !parse(&format!("IgnoreUnknown={no}")).ignore_unknown(),
            "{no}"
        );
    }
}

#[test]
fn ips_reads_one_or_many_addresses_dropping_prefixes() {
    assert_eq!(parse("IP=10.0.0.5").ips(), Ok(vec![ip("10.0.0.5")]));
    assert_eq!(
        parse("IP=10.0.0.5/24,fd00::5").ips(),
        Ok(vec![ip("10.0.0.5"), ip("fd00::5")])
    );
    assert_eq!(
        parse("IP=10.0.0.5/24, fd00::5/64").ips(),
        Ok(vec![ip("10.0.0.5"), ip("fd00::5")])
    );
}

#[test]
fn bad_ip_is_code_4_naming_the_value() {
    for bad in [
        "IP=10.0.0.300",
        "IP=10.0.0.5/33",
        "IP=fd00::5/129",
        "IP=",
        "IP=10.0.0.5,",
        "IP=host",
    ] {
        let err = parse(bad).ips().expect_err(bad);
        assert_eq!(err.code, codes::INVALID_ENV, "{bad}");
        assert!(err.msg.contains("IP="), "{}", err.msg);
    }
    let err = parse("IP=10.0.0.5,nonsense")
        .ips()
        .expect_err("bad second item");
    assert!(err.msg.contains("\"nonsense\""), "{}", err.msg);
}

#[test]
fn unknown_keys_are_listed_once_in_order() {
    let args = parse("IP=10.0.0.1;FOO=1;GATEWAY=10.0.0.254;BAR=2;FOO=3;K8S_POD_UID=u");
    assert_eq!(args.unknown_keys(), ["FOO", "BAR"]);
}

#[test]
fn reject_unknown_is_code_2_naming_keys_and_values() {
    let err = parse("FOO=1;BAR=x y")
        .reject_unknown()
        .expect_err("unknown keys");
    assert_eq!(err.code, codes::UNSUPPORTED_FIELD);
    assert!(err.msg.contains("FOO=\"1\""), "{}", err.msg);
    assert!(err.msg.contains("BAR=\"x y\""), "{}", err.msg);
}

#[test]
fn reject_unknown_passes_with_ignore_unknown_or_only_known_keys() {
    assert_eq!(parse("FOO=1;IgnoreUnknown=true").reject_unknown(), Ok(()));
    assert_eq!(parse(KUBERNETES_ARGS).reject_unknown(), Ok(()));
    assert_eq!(parse("").reject_unknown(), Ok(()));
}

#[test]
fn display_renders_k_v_pairs() {
    assert_eq!(parse("A=1;B=;C=x=y").to_string(), "A=1;B=;C=x=y");
    assert_eq!(parse("").to_string(), "");
}
