//! Fuzz target: `plexusctl import` parsers: YAML / JSON documents (`netfile::documents`)
//! read as whereabouts objects (`IPPool` allocations keyed by offset,
//! `OverlappingRangeIPReservation`), as DANM objects (networks with their `alloc` bitmaps
//! plus `DanmEp`s), and as plexus exports.
//!
//! Invariants: errors have a non-empty, bounded message; a DANM import yields as many
//! records as it announced (streamed, so memory stays bounded); every record's address
//! lies in a subnet of the range set it is recorded under, and names a container and
//! interface.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_fuzz::check_message;
use plexusctl::import::whereabouts::{WhereaboutsOptions, plan as whereabouts_plan};
use plexusctl::import::{ImportPlan, ImportRecord, danm, native};
use plexusctl::netfile::documents;

fn check_plan(plan: &ImportPlan) {
    check_records(plan.records.iter());
}

fn check_records<'a>(records: impl Iterator<Item = &'a ImportRecord>) {
    for record in records {
        assert!(
            record
                .range_set
                .ranges
                .iter()
                .any(|r| r.subnet.contains(&record.ip)),
            "{} recorded under {}",
            record.ip,
            record.range_set.id()
        );
        assert!(!record.key.container_id.is_empty() && !record.key.ifname.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let docs = match documents("fuzz.yaml", text) {
        Ok(docs) => docs,
        Err(err) => return check_message(&err.to_string(), data.len()),
    };
    let opts = WhereaboutsOptions {
        network: Some("fuzz".into()),
        range_sets: Vec::new(),
        default_ifname: "eth0".into(),
    };
    match whereabouts_plan(&docs, &opts) {
        Ok(plan) => check_plan(&plan),
        Err(err) => check_message(&err.to_string(), data.len()),
    }
    match danm::plan("fuzz.yaml", &docs) {
        Ok(import) => {
            check_plan(&import.plan);
            // Records are streamed from the bitmaps: checked one by one, never collected.
            let mut held = 0u64;
            for record in import.records() {
                check_records(std::iter::once(&record));
                held += 1;
            }
            assert_eq!(held, import.held);
        }
        Err(err) => check_message(&err.to_string(), data.len()),
    }
    for doc in docs.iter().filter(|doc| native::is_export(doc)) {
        match native::parse("fuzz.yaml", doc).and_then(|export| native::plan("fuzz.yaml", &export))
        {
            Ok(plan) => check_plan(&plan),
            Err(err) => check_message(&err.to_string(), data.len()),
        }
    }
});
