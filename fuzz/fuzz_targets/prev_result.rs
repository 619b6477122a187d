//! Fuzz target: a CNI result (`prevResult`, or a delegate plugin's stdout) read by
//! `SuccessResult::from_json`.
//!
//! Invariants: errors render as CNI JSON; a parsed result written in any supported
//! version's shape reads back, and the 1.1.0 shape (which keeps every field) reads back
//! equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_cni::{CniVersion, SuccessResult};
use plexus_fuzz::check_cni_error;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let result = match SuccessResult::from_json(&value) {
        Ok(result) => result,
        Err(err) => return check_cni_error(&err, data.len()),
    };
    for version in CniVersion::supported() {
        let written = result.to_json(&version);
        assert_eq!(
            written.get("cniVersion").and_then(Value::as_str),
            Some(version.to_string().as_str())
        );
        let reread = SuccessResult::from_json(&written)
            .unwrap_or_else(|e| panic!("{version} result does not read back: {e:?}"));
        if version == CniVersion::V1_1_0 {
            assert_eq!(reread, result);
        } else {
            assert_eq!(reread.ips, result.ips);
            assert_eq!(reread.dns, result.dns);
            assert_eq!(reread.interfaces.len(), result.interfaces.len());
            assert_eq!(reread.routes.len(), result.routes.len());
        }
    }
});
