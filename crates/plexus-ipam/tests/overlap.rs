//! whereabouts' overlapping-range protection through the real binary on one SQLite store:
//! configurations with different names whose ranges are equal or overlap never hold one
//! address twice (sequentially, exhausted, and racing), `network_name` scopes that to the
//! configurations naming it, and `enable_overlapping_ranges: false` keeps each
//! configuration's addresses to itself, as whereabouts does per range.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::{SHARED, held, ipam, netconf};
use plexus_cni::codes::plexus::POOL_EXHAUSTED;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A NAD-style whereabouts configuration named `name` (macvlan, as a NAD's config is).
fn nad(name: &str, db: &Path, ipam_body: Value) -> Value {
    let mut conf = netconf("0.4.0", name, db, ipam_body);
    conf["type"] = json!("macvlan");
    conf["master"] = json!("eth0");
    conf
}

/// The one address an ADD reply carries.
fn address(reply: &common::Reply) -> String {
    let ips = reply.ips();
    assert_eq!(ips.len(), 1, "{reply:?}");
    ips[0].split('/').next().unwrap_or_default().to_string()
}

/// Notes `ip` as handed to `holder`; a second holder of one address fails the test.
fn record(seen: &mut HashMap<String, String>, ip: String, holder: String) {
    if let Some(first) = seen.insert(ip.clone(), holder.clone()) {
        panic!("{ip} handed to {first} and to {holder}");
    }
}

#[test]
fn overlapping_ranges_of_two_configurations_never_share_an_address() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    // Overlapping, not equal: b's range is the upper half of a's subnet, and a hands out
    // .100–.254, so after 28 addresses of its own it competes with b for every address.
    let a = nad(
        "net-a",
        &db,
        json!({"range": "10.44.0.0/24", "range_start": "10.44.0.100"}),
    );
    let b = nad("net-b", &db, json!({"range": "10.44.0.128/25"}));
    let mut seen: HashMap<String, String> = HashMap::new();
    // b's range holds .129–.254: 126 addresses. Alternate until b is exhausted.
    let mut b_count = 0;
    for i in 0.. {
        let reply = ipam("ADD", &format!("b{i}"), "net1", &b);
        if reply.code != 0 {
            let msg = reply.err(POOL_EXHAUSTED.into());
            assert!(msg.contains("10.44.0.128/25"), "{msg}");
            break;
        }
        let ip = address(&reply);
        record(&mut seen, ip, format!("net-b/b{i}"));
        b_count += 1;
        let reply = ipam("ADD", &format!("a{i}"), "net1", &a);
        record(&mut seen, address(&reply), format!("net-a/a{i}"));
    }
    // a took part of the upper half, so b got fewer than its 126 …
    assert!((60..126).contains(&b_count), "b got {b_count}");
    let in_b = |ip: &str| ip.parse::<std::net::Ipv4Addr>().unwrap().octets()[3] > 128;
    let a_in_b = seen
        .iter()
        .filter(|(ip, holder)| holder.starts_with("net-a") && in_b(ip))
        .count();
    assert_eq!(
        a_in_b + b_count,
        126,
        "every address of b's range held exactly once"
    );
    // … and with b's range full, a fills what is left of its own (never an address b
    // holds), then is exhausted.
    for i in 0.. {
        let reply = ipam("ADD", &format!("a-late{i}"), "net1", &a);
        if reply.code != 0 {
            reply.err(POOL_EXHAUSTED.into());
            break;
        }
        let ip = address(&reply);
        assert!(!in_b(&ip), "{ip}");
        record(&mut seen, ip, format!("net-a/a-late{i}"));
    }
    assert_eq!(
        seen.len(),
        155,
        "a's .100–.254 and b's .129–.254, each once"
    );

    // Everything is kept in the one shared network, each configuration under its own
    // range set, and released by its own DEL.
    let rows = held(&db, SHARED);
    assert_eq!(rows.len(), seen.len());
    ipam("DEL", "b0", "net1", &b).ok();
    ipam("DEL", "a0", "net1", &a).ok();
    assert_eq!(held(&db, SHARED).len(), seen.len() - 2);
}

#[test]
fn two_configurations_racing_over_overlapping_ranges_get_distinct_addresses() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    // Different ranges with the same 14 addresses (.17–.30): 24 ADDs at once fight over
    // them, so 10 must fail, each cleanly, and no address may be handed out twice.
    let a = nad(
        "race-a",
        &db,
        json!({"range": "10.45.0.0/27", "range_start": "10.45.0.17"}),
    );
    let b = nad("race-b", &db, json!({"range": "10.45.0.16/28"}));
    let replies: Vec<(String, common::Reply)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let (conf, name) = if i % 2 == 0 { (&a, "a") } else { (&b, "b") };
                s.spawn(move || {
                    let holder = format!("{name}{i}");
                    (holder.clone(), ipam("ADD", &holder, "net1", conf))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut exhausted = 0;
    for (holder, reply) in &replies {
        if reply.code != 0 {
            reply.err(POOL_EXHAUSTED.into());
            exhausted += 1;
            continue;
        }
        let ip = address(reply);
        if let Some(first) = seen.insert(ip.clone(), holder.clone()) {
            panic!("{ip} handed to {first} and to {holder}");
        }
    }
    assert_eq!((seen.len(), exhausted), (14, 10));
    assert!(
        seen.values().any(|h| h.starts_with('a')) && seen.values().any(|h| h.starts_with('b')),
        "both configurations won some: {seen:?}"
    );
    // The store agrees with the replies: one row per address, no more.
    let rows = held(&db, SHARED);
    let ips: BTreeSet<&str> = rows.iter().map(|(_, _, ip)| ip.as_str()).collect();
    assert_eq!(ips.len(), rows.len(), "{rows:?}");
    assert_eq!(rows.len(), seen.len());
}

#[test]
fn network_name_scopes_the_protection_and_disabling_it_keeps_each_range_apart() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("p.db");
    let range = json!("10.46.0.0/29");
    let scoped = |name: &str, network_name: &str| {
        nad(
            name,
            &db,
            json!({"range": range, "network_name": network_name}),
        )
    };
    // Two configurations naming tenant-1 share it; tenant-2 reuses the same CIDR.
    let t1a = scoped("t1-a", "tenant-1");
    let t1b = scoped("t1-b", "tenant-1");
    let t2 = scoped("t2", "tenant-2");
    assert_eq!(address(&ipam("ADD", "c1", "net1", &t1a)), "10.46.0.1");
    assert_eq!(address(&ipam("ADD", "c2", "net1", &t1b)), "10.46.0.2");
    assert_eq!(address(&ipam("ADD", "c3", "net1", &t2)), "10.46.0.1");
    assert_eq!(held(&db, "tenant-1").len(), 2);
    assert_eq!(held(&db, "tenant-2").len(), 1);
    assert!(held(&db, SHARED).is_empty());

    // Protection off: each configuration keeps its addresses in its own network, as
    // whereabouts keeps overlapping ranges apart without reservations.
    let off = |name: &str| {
        nad(
            name,
            &db,
            json!({"range": range, "enable_overlapping_ranges": false}),
        )
    };
    assert_eq!(
        address(&ipam("ADD", "c4", "net1", &off("off-a"))),
        "10.46.0.1"
    );
    assert_eq!(
        address(&ipam("ADD", "c5", "net1", &off("off-b"))),
        "10.46.0.1"
    );
    assert_eq!(held(&db, "off-a").len(), 1);
    assert_eq!(held(&db, "off-b").len(), 1);
    assert!(held(&db, SHARED).is_empty());
}
