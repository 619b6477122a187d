//! Unit tests for CNI versions.

use super::*;
use crate::codes;

#[test]
fn parses_and_displays_every_supported_version() {
    for text in SUPPORTED_VERSIONS {
        let version: CniVersion = text.parse().expect(text);
        assert_eq!(version.to_string(), *text);
        assert!(version.is_supported(), "{text}");
    }
    let listed: Vec<String> = CniVersion::supported()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, SUPPORTED_VERSIONS);
}

#[test]
fn components_are_exposed() {
    let version = CniVersion::new(1, 2, 3);
    assert_eq!(
        (version.major(), version.minor(), version.patch()),
        (1, 2, 3)
    );
    assert_eq!(version.to_string(), "1.2.3");
}

#[test]
fn rejects_malformed_versions_with_code_6() {
    for bad in [
        "",
        "1",
        "1.1",
        "1.1.0.0",
        "1..0",
        "v1.1.0",
        " 1.1.0",
        "1.1.0 ",
        "1.-1.0",
        "+1.1.0",
        "01.1.0",
        "1.01.0",
        "1.1.00",
        "1.1.x",
        "70000.0.0",
        "1.1.0\n",
        "１.1.0",
    ] {
        let err = bad.parse::<CniVersion>().expect_err(bad);
        assert_eq!(err.code, codes::DECODE_FAILURE, "{bad:?}");
        assert!(err.msg.contains(&format!("{bad:?}")), "{}", err.msg);
    }
}

#[test]
fn parses_unsupported_but_well_formed_versions() {
    let old: CniVersion = "0.2.0".parse().expect("well formed");
    assert!(!old.is_supported());
    let future: CniVersion = "2.0.0".parse().expect("well formed");
    assert!(!future.is_supported());
    let zero: CniVersion = "0.0.0".parse().expect("well formed");
    assert_eq!(zero, CniVersion::new(0, 0, 0));
}

#[test]
fn ordering_is_numeric_not_lexical() {
    assert!(CniVersion::new(0, 10, 0) > CniVersion::V0_4_0);
    assert!(CniVersion::V1_0_0 > CniVersion::V0_4_0);
    assert!(CniVersion::V0_3_1 > CniVersion::V0_3_0);
    assert!(CniVersion::new(1, 0, 10) > CniVersion::new(1, 0, 9));
}

#[test]
fn check_needs_0_4_0() {
    assert!(!CniVersion::V0_3_0.supports_check());
    assert!(!CniVersion::V0_3_1.supports_check());
    assert!(CniVersion::V0_4_0.supports_check());
    assert!(CniVersion::V1_0_0.supports_check());
    assert!(CniVersion::V1_1_0.supports_check());
}

#[test]
fn status_and_gc_need_1_1_0() {
    assert!(!CniVersion::V0_4_0.supports_status_gc());
    assert!(!CniVersion::V1_0_0.supports_status_gc());
    assert!(CniVersion::V1_1_0.supports_status_gc());
    assert!(CniVersion::new(1, 2, 0).supports_status_gc());
}

#[test]
fn latest_is_1_1_0() {
    assert_eq!(CniVersion::LATEST.to_string(), "1.1.0");
}

#[test]
fn serde_uses_the_string_form() {
    let json = serde_json::to_string(&CniVersion::V0_4_0).expect("serialise");
    assert_eq!(json, "\"0.4.0\"");
    let back: CniVersion = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, CniVersion::V0_4_0);
    assert!(serde_json::from_str::<CniVersion>("\"1.1\"").is_err());
    assert!(serde_json::from_str::<CniVersion>("110").is_err());
}
