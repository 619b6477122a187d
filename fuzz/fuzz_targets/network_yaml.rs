//! Fuzz target: network definition files, YAML or JSON, one or more documents or a
//! `kind: List` (plexusctl's `netfile`), read into DANM / plexus network objects
//! (`plexus_model::NetworkObject`), validated by every webhook rule and converted to the
//! allocator's pool.
//!
//! Invariants: errors have a non-empty, bounded message; a network object survives a
//! serialise → parse round trip unchanged; every validated family's range lies in its
//! allocation CIDR, which lies in the network; each definition's pools lie in their CIDR.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_fuzz::check_message;
use plexus_model::{NetworkObject, Operation, to_pool, validate, violations};
use plexusctl::netfile::{documents, is_network_object, parse_network_file};

fn check_object(doc: &serde_json::Value, input_len: usize) {
    let Ok(object) = serde_json::from_value::<NetworkObject>(doc.clone()) else {
        return;
    };
    let written = serde_json::to_value(&object).expect("a network object serialises");
    let reread: NetworkObject =
        serde_json::from_value(written).expect("a written network object re-parses");
    assert_eq!(reread, object);
    for op in [Operation::Create, Operation::Update] {
        let found = violations(&object, op);
        match validate(&object, op) {
            Ok(valid) => {
                assert!(
                    found.is_empty(),
                    "validate accepted what violations refuses"
                );
                for family in valid.v4.iter().chain(valid.v6.iter()) {
                    let cidr = family.allocation_cidr;
                    assert!(cidr.contains(&family.start) && cidr.contains(&family.end));
                    assert!(family.start <= family.end);
                    assert!(family.network.contains(&cidr.network()));
                }
                match to_pool(&valid) {
                    Ok(pool) => {
                        if let Err(err) = pool.pool_config() {
                            check_message(&err.to_string(), input_len);
                        }
                    }
                    Err(err) => check_message(&err.to_string(), input_len),
                }
            }
            Err(errors) => {
                assert!(!found.is_empty(), "validate refused with no violation");
                check_message(&errors.to_string(), input_len);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_network_file("fuzz.yaml", text) {
        Ok(defs) => {
            for def in &defs {
                assert!(!def.name.is_empty());
                for pool in &def.pools {
                    assert!(pool.start <= pool.end, "{pool:?}");
                    assert!(pool.cidr.contains(&pool.start) && pool.cidr.contains(&pool.end));
                }
            }
        }
        Err(err) => check_message(&err.to_string(), data.len()),
    }
    if let Ok(docs) = documents("fuzz.yaml", text) {
        for doc in docs.iter().filter(|doc| is_network_object(doc)) {
            check_object(doc, data.len());
        }
    }
});
