//! Helpers shared by the plexus fuzz targets (`fuzz_targets/*.rs`).
//!
//! Every target feeds untrusted bytes to one parser family and checks, besides "no panic"
//! (libFuzzer reports panics, timeouts, and allocations past `-malloc_limit_mb`), a cheap
//! invariant of what was parsed. The checks here are the ones several targets share:
//! errors must render as a CNI error object through [`plexus_cni::render_error`] (the one
//! function that does), with a non-empty message and no amplification of the input.

use plexus_cni::{CniVersion, Error as CniError, render_error};
use serde_json::Value;

/// Longest error text accepted for an input of `input_len` bytes: errors quote their input
/// only in shortened form, so a message never grows much beyond the input that caused it.
pub fn message_budget(input_len: usize) -> usize {
    4 * input_len + 16 * 1024
}

/// Renders `err` as the plugins do (with and without a known version) and checks the
/// output: a JSON object with the same code, a non-empty `msg`, exit code 1, bounded size.
///
/// Panics (a fuzzing finding) when any of that does not hold.
pub fn check_cni_error(err: &CniError, input_len: usize) {
    assert!(
        !err.msg.trim().is_empty(),
        "empty CNI error message: {err:?}"
    );
    for version in [None, Some(CniVersion::V1_1_0), Some(CniVersion::V0_3_0)] {
        let (json, exit) = render_error(err, version.as_ref());
        assert_eq!(exit, 1, "exit code of a rendered error");
        assert!(
            json.len() <= message_budget(input_len),
            "{}-byte error for a {input_len}-byte input",
            json.len()
        );
        let value: Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("render_error produced invalid JSON ({e}): {json}"));
        assert_eq!(
            value.get("code").and_then(Value::as_u64),
            Some(u64::from(err.code)),
            "{json}"
        );
        assert_eq!(
            value.get("msg").and_then(Value::as_str),
            Some(err.msg.as_str()),
            "{json}"
        );
        assert!(
            value.get("cniVersion").is_some_and(Value::is_string),
            "{json}"
        );
    }
}

/// Checks a library error's text the way an operator sees it: non-empty and bounded.
pub fn check_message(message: &str, input_len: usize) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(
        message.len() <= message_budget(input_len),
        "{}-byte error for a {input_len}-byte input",
        message.len()
    );
}

/// Splits `data` at NUL bytes into at most `n` fields; a field that is not UTF-8 is `None`
/// (as `std::env::var` returns for a non-UTF-8 variable).
pub fn nul_fields(data: &[u8], n: usize) -> Vec<Option<&str>> {
    data.splitn(n, |b| *b == 0)
        .map(|field| std::str::from_utf8(field).ok())
        .collect()
}
