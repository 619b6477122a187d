//! Fuzz target: a plugin's stdin, `NetConf::parse`, then everything a plugin reads from it
//! (`runtimeConfig.ips` / `args.cni.ips`, `runtimeConfig.ipRanges`, `prevResult`).
//!
//! Invariants: errors render as CNI JSON; a parsed config re-parses from its own `raw`
//! value to the same name, type, version and attachments; the requested addresses are
//! unique; a parsed `prevResult` re-reads from the JSON plexus writes for it.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use plexus_cni::{CniVersion, NetConf, SuccessResult};
use plexus_fuzz::check_cni_error;

fuzz_target!(|data: &[u8]| {
    let conf = match NetConf::parse(data) {
        Ok(conf) => conf,
        Err(err) => return check_cni_error(&err, data.len()),
    };
    let again = serde_json::to_vec(&conf.raw).expect("a JSON value serialises");
    let again = NetConf::parse(&again).expect("a parsed netconf re-parses from its raw value");
    assert_eq!(again.name, conf.name);
    assert_eq!(again.plugin_type, conf.plugin_type);
    assert_eq!(again.cni_version, conf.cni_version);
    assert_eq!(again.valid_attachments, conf.valid_attachments);
    assert!(conf.cni_version.is_supported());

    match conf.requested_ips() {
        Ok(ips) => {
            let mut seen = HashSet::new();
            for ip in &ips {
                assert!(seen.insert(ip), "duplicate requested address {ip}");
            }
        }
        Err(err) => check_cni_error(&err, data.len()),
    }
    let _ = conf.runtime_ip_ranges();
    match conf.parsed_prev_result() {
        Ok(Some(prev)) => {
            let written = prev.to_json(&CniVersion::V1_1_0);
            let reread = SuccessResult::from_json(&written).expect("plexus reads what it writes");
            assert_eq!(reread, prev);
        }
        Ok(None) => {}
        Err(err) => check_cni_error(&err, data.len()),
    }
});
