//! Fuzz target: CNI configuration files as plexusctl reads them: a `.conflist` or a
//! single-plugin `.conf` (`runner::conf::parse`, version selection), the configuration
//! each plugin of the list receives (`plugin_config`, then `NetConf::parse` as the plugin
//! reads it) and the plexus-ipam networks a file defines (`netdef::networks_of_cni_config`).
//!
//! Invariants: errors have a non-empty, bounded message (plugin-side errors render as CNI
//! JSON); a plugin's configuration carries the list's name and chosen version; every
//! network's pools lie in their CIDR.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use plexus_cni::NetConf;
use plexus_fuzz::{check_cni_error, check_message};
use plexusctl::netdef::networks_of_cni_config;
use plexusctl::runner::conf::{parse, plugin_config};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match networks_of_cni_config("fuzz.conflist", text) {
        Ok(defs) => {
            for def in &defs {
                for pool in &def.pools {
                    assert!(pool.start <= pool.end, "{pool:?}");
                    assert!(pool.cidr.contains(&pool.start) && pool.cidr.contains(&pool.end));
                }
            }
        }
        Err(err) => check_message(&err.to_string(), data.len()),
    }

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let list = match parse(Path::new("fuzz.conflist"), data.to_vec(), value) {
        Ok(list) => list,
        Err(err) => return check_message(&err.to_string(), data.len()),
    };
    assert!(!list.plugins.is_empty() && !list.name.is_empty());
    let runtime = json!({"ips": ["10.0.0.5/24"], "portMappings": []});
    let prev = json!({"cniVersion": list.version.to_string(), "ips": [{"address": "10.0.0.5/24"}]});
    for (i, plugin) in list.plugins.iter().enumerate() {
        let prev = (i > 0).then_some(&prev);
        let conf = plugin_config(plugin, &list.name, list.version, &runtime, prev);
        let bytes = serde_json::to_vec(&conf).expect("a JSON value serialises");
        match NetConf::parse(&bytes) {
            Ok(parsed) => {
                assert_eq!(parsed.name, list.name);
                assert_eq!(parsed.cni_version, list.version);
                assert_eq!(parsed.prev_result.is_some(), prev.is_some());
            }
            Err(err) => check_cni_error(&err, bytes.len()),
        }
    }
});
