//! Fuzz target: the `ipam` section in both syntaxes (host-local `ranges` / `subnet`,
//! whereabouts `range` / `ipRanges`), `plexus_ipam_core::parse_pool_config`.
//!
//! The input is JSON: either the `ipam` object itself, or a netconf-shaped object whose
//! `ipam`, `name` and `runtimeConfig.ipRanges` are used.
//!
//! Invariants: errors render as CNI JSON (through plexus-ipam's error mapping); a parsed
//! pool has at least one set, each of one family, pairwise disjoint; every range's start,
//! end and gateway lie in its subnet; an empty store hands out an allocatable address of
//! the set exactly when the set has capacity; a set's
//! canonical id (stored with every allocation) rebuilds the same set id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_fuzz::check_cni_error;
use plexus_ipam::IpamError;
use plexus_ipam_core::{find_free, parse_pool_config};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (name, ipam, runtime) = match value.get("ipam") {
        Some(ipam) => (
            value.get("name").and_then(Value::as_str).unwrap_or(""),
            ipam,
            value.pointer("/runtimeConfig/ipRanges"),
        ),
        None => ("fuzz", &value, None),
    };
    let pool = match parse_pool_config(name, ipam, runtime) {
        Ok(pool) => pool,
        Err(err) => {
            let cni = plexus_cni::Error::from(IpamError::from(err));
            return check_cni_error(&cni, data.len());
        }
    };
    assert!(!pool.range_sets.is_empty());
    assert!(!pool.network.is_empty());
    for (i, set) in pool.range_sets.iter().enumerate() {
        assert!(!set.ranges.is_empty());
        for range in &set.ranges {
            assert_eq!(range.family(), set.family());
            assert!(range.subnet.contains(&range.start) && range.subnet.contains(&range.end));
            assert!(range.start <= range.end);
            if let Some(gw) = range.gateway {
                assert!(range.subnet.contains(&gw));
            }
        }
        // Pairwise, so only for fuzzer-sized pools (the 1 MB inputs hold thousands of sets).
        if pool.range_sets.len() <= 64 {
            for other in &pool.range_sets[..i] {
                assert!(
                    set.overlap_with(other).is_none(),
                    "overlapping sets accepted"
                );
            }
        }
        // An empty store hands out an address exactly when the set has capacity (exclusions
        // may legitimately cover a whole range).
        let first = find_free(set, None, |_, _| Ok::<_, ()>(Vec::new()))
            .expect("an empty store never fails");
        match first {
            Some(ip) => {
                assert!(set.is_allocatable(ip), "{ip} handed out of {}", set.id());
                assert!(set.find(ip).is_some());
            }
            None => assert_eq!(set.capacity(), 0, "nothing free in empty set {}", set.id()),
        }
        let rebuilt = plexusctl::import::range_set_from_id(&set.id())
            .unwrap_or_else(|e| panic!("id {} does not re-parse: {e}", set.id()));
        assert_eq!(rebuilt.id(), set.id());
    }
    for route in &pool.routes {
        assert_eq!(route.dst, route.dst.trunc());
    }
});
