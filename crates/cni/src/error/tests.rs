//! Unit tests for the error type and its rendering.

use serde_json::{Value, json};

use super::*;

fn parsed(rendered: &str) -> Value {
    serde_json::from_str(rendered).expect("render_error must produce JSON")
}

#[test]
fn renders_all_fields_with_the_config_version() {
    let err = Error::new(
        codes::INVALID_CONFIG,
        "bad range",
        "rangeStart after rangeEnd",
    );
    let (text, exit) = render_error(&err, Some(&CniVersion::V0_3_1));
    assert_eq!(exit, 1);
    assert_eq!(
        parsed(&text),
        json!({"cniVersion": "0.3.1", "code": 7, "msg": "bad range",
               "details": "rangeStart after rangeEnd"})
    );
}

#[test]
fn omits_empty_details() {
    let (text, _) = render_error(
        &Error::try_again_later("store busy"),
        Some(&CniVersion::V1_0_0),
    );
    assert_eq!(
        parsed(&text),
        json!({"cniVersion": "1.0.0", "code": 11, "msg": "store busy"})
    );
    assert!(!text.contains("details"));
}

#[test]
fn unknown_version_renders_as_1_1_0() {
    let (text, exit) = render_error(&Error::invalid_env("CNI_IFNAME is not set"), None);
    assert_eq!(exit, ERROR_EXIT_CODE);
    assert_eq!(parsed(&text)["cniVersion"], "1.1.0");
}

#[test]
fn rendering_is_one_line_and_escapes_hostile_text() {
    let err = Error::new(999, "quote \" and\nnewline", "tab\tand \\ backslash");
    let (text, _) = render_error(&err, None);
    assert!(!text.contains('\n'), "must be a single line: {text}");
    let value = parsed(&text);
    assert_eq!(value["msg"], "quote \" and\nnewline");
    assert_eq!(value["details"], "tab\tand \\ backslash");
}

#[test]
fn every_constructor_uses_its_spec_code() {
    type Constructor = fn(&'static str) -> Error;
    let cases: [(Constructor, u32); 11] = [
        (|m| Error::incompatible_version(m), 1),
        (|m| Error::unsupported_field(m), 2),
        (|m| Error::unknown_container(m), 3),
        (|m| Error::invalid_env(m), 4),
        (|m| Error::io_failure(m), 5),
        (|m| Error::decode_failure(m), 6),
        (|m| Error::invalid_config(m), 7),
        (|m| Error::try_again_later(m), 11),
        (|m| Error::not_available(m), 50),
        (|m| Error::not_available_limited(m), 51),
        (|m| Error::internal(m), 999),
    ];
    for (make, code) in cases {
        let err = make("message");
        assert_eq!(err.code, code);
        assert_eq!(err.msg, "message");
        assert_eq!(err.details, "");
    }
}

#[test]
fn code_constants_match_the_spec_table() {
    assert_eq!(
        [
            codes::INCOMPATIBLE_VERSION,
            codes::UNSUPPORTED_FIELD,
            codes::UNKNOWN_CONTAINER,
            codes::INVALID_ENV,
            codes::IO_FAILURE,
            codes::DECODE_FAILURE,
            codes::INVALID_CONFIG,
            codes::TRY_AGAIN_LATER,
            codes::NOT_AVAILABLE,
            codes::NOT_AVAILABLE_LIMITED,
            codes::INTERNAL,
        ],
        [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999]
    );
}

#[test]
fn display_names_message_details_and_code() {
    let err = Error::invalid_config("no ranges").with_details("ipam.range is empty");
    assert_eq!(
        err.to_string(),
        "no ranges: ipam.range is empty (CNI error code 7)"
    );
    assert_eq!(
        Error::not_available("store down").to_string(),
        "store down (CNI error code 50)"
    );
}

#[test]
fn plugin_specific_codes_pass_through() {
    let (text, _) = render_error(&Error::new(142, "pool exhausted", ""), None);
    assert_eq!(parsed(&text)["code"], 142);
}
