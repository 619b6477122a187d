//! `import --from whereabouts-etcd --conf FILE`: the addresses whereabouts ≤ 0.5.4 holds in
//! etcd, taken over into the store the network's plexus-ipam configuration names.
//!
//! whereabouts kept each range as ONE etcd key, `/whereabouts/<range>`, whose value lists
//! `<ip> <container id> [<pod ref>]` lines (`plexus_store::whereabouts`). A plexus-ipam
//! configuration with whereabouts' `etcd_host` claims in that same etcd, but only while
//! those keys are absent, so it never hands out an address whereabouts holds. This import
//! makes them absent correctly, key by key:
//!
//! 1. read the key (value and revision) from the etcd of the configuration's `etcd_*` keys;
//! 2. record every line as a held address — attachment (network, container id,
//!    `--default-ifname`, since whereabouts recorded no interface), in the range set the
//!    plugin would use — with the same idempotent static claims as every other import;
//! 3. move the key to `/plexus-imported/whereabouts/<range>` in one compare-and-swap on the
//!    revision read in 1. If whereabouts wrote it meanwhile, the swap fails and the key is
//!    imported again from step 1, so no address it handed out is ever left behind.
//!
//! A conflict (an address plexus already gives another attachment) leaves the key in
//! place, so claims keep refusing until an operator resolves it. Running the import again
//! changes nothing that is already imported.

use std::path::Path;

use plexus_ipam_core::{RangeSet, parse_pool_config};
use plexus_store::whereabouts::{
    self, key_range, parse_reservations, range_keys, retired_key, store_of_section,
};
use plexus_store::{AttachmentKey, ForeignEtcd, StoreConfig};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{ImportOutcome, ImportPlan, ImportRecord, owner_from_podref, range_set_for};
use crate::error::{CtlError, CtlResult};

/// How often a key whereabouts keeps rewriting is imported again before giving up.
const MAX_ROUNDS: usize = 5;

/// What to import, from one network's configuration.
#[derive(Debug)]
pub struct EtcdSource {
    /// The configuration file, for messages.
    pub what: String,
    /// The network (plexus-ipam's: `network_name`, else the configuration's `name`).
    pub network: String,
    /// Its range sets, as the plugin parses them.
    pub range_sets: Vec<RangeSet>,
    /// The etcd whereabouts used (its `etcd_*` keys).
    pub etcd: plexus_store::EtcdConfig,
    /// The store plexus-ipam uses for this configuration (claims' required-absent keys
    /// removed: this import is what makes them absent).
    pub target: StoreConfig,
    /// whereabouts' keys of the ranges.
    pub keys: Vec<String>,
    /// Settings noticed while reading the configuration.
    pub notes: Vec<String>,
}

/// What happened to one range key.
#[derive(Debug, Default, Serialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// Addresses it listed.
    pub listed: usize,
    /// Where it was moved, when it was.
    pub moved_to: Option<String>,
}

/// The result of the whole import.
#[derive(Debug, Default, Serialize)]
pub struct EtcdImport {
    /// Per range key.
    pub keys: Vec<KeyReport>,
    /// Records written, conflicts, notes.
    #[serde(flatten)]
    pub outcome: ImportOutcome,
}

/// Reads the network's configuration (a conf, a conflist, or a NAD's config JSON; its
/// first plugin whose IPAM is `whereabouts` or `plexus-ipam`), merged with whereabouts'
/// flat file as the plugin does it.
pub fn source(path: &Path, network: Option<String>) -> CtlResult<EtcdSource> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?;
    let conf: Value = serde_json::from_str(&text)
        .map_err(|e| CtlError::invalid(&what, format!("not JSON: {e}")))?;
    let name = conf.get("name").and_then(Value::as_str).unwrap_or_default();
    let plugins: Vec<&Value> = match conf.get("plugins").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![&conf],
    };
    let ipam = plugins
        .iter()
        .filter_map(|p| p.get("ipam").and_then(Value::as_object))
        .find(|ipam| {
            matches!(
                ipam.get("type").and_then(Value::as_str),
                Some("whereabouts" | "plexus-ipam")
            )
        })
        .ok_or_else(|| CtlError::invalid(&what, "has no whereabouts or plexus-ipam IPAM"))?;
    let mut ipam: Map<String, Value> = ipam.clone();
    let mut notes = Vec::new();
    if let Some(merged) = whereabouts::with_flat_file(&ipam)? {
        notes.push(format!(
            "{} taken from whereabouts' flat file {}",
            merged.keys.join(", "),
            merged.file.display()
        ));
        ipam = merged.ipam;
    }
    let pool = parse_pool_config(name, &Value::Object(ipam.clone()), None)
        .map_err(|e| CtlError::invalid(&what, format!("ipam: {e}")))?;
    let (etcd, etcd_notes) = whereabouts::etcd_of_section(&ipam)?.ok_or_else(|| {
        CtlError::invalid(
            &what,
            "names no whereabouts etcd (ipam.etcd_host, with datastore \"etcd\" or none)",
        )
    })?;
    notes.extend(etcd_notes);
    let mut target = store_of_section(&ipam)?.config;
    if let StoreConfig::Etcd(cfg) = &mut target {
        cfg.require_absent.clear();
    }
    Ok(EtcdSource {
        what,
        network: network.unwrap_or(pool.network),
        range_sets: pool.range_sets,
        etcd,
        target,
        keys: range_keys(&ipam),
        notes,
    })
}

/// Imports every range key of `source` (see the module docs); with `dry_run`, reads and
/// reports only.
pub async fn run(
    source: &EtcdSource,
    default_ifname: &str,
    dry_run: bool,
) -> CtlResult<EtcdImport> {
    let foreign = ForeignEtcd::open(&source.etcd)?;
    let store = if dry_run {
        None
    } else {
        Some(plexus_store::open(&source.target).await?)
    };
    let mut report = EtcdImport::default();
    report.outcome.notes.clone_from(&source.notes);
    'keys: for key in &source.keys {
        let mut entry = KeyReport {
            key: key.clone(),
            ..KeyReport::default()
        };
        for _ in 0..MAX_ROUNDS {
            let Some(seen) = foreign.get(key).await? else {
                break;
            };
            let plan = plan(source, key, &seen.value, default_ifname)?;
            entry.listed = plan.records.len();
            let Some(store) = &store else {
                report.outcome.imported += plan.records.len();
                report.keys.push(entry);
                continue 'keys;
            };
            let outcome = super::apply(store.as_ref(), &plan, |_| {}).await?;
            report.outcome.imported += outcome.imported;
            if !outcome.conflicts.is_empty() {
                report.outcome.conflicts.extend(outcome.conflicts);
                report.outcome.notes.push(format!(
                    "{key} left in place: resolve the conflicts, then import again (until \
                     then plexus-ipam hands out no address in this range)"
                ));
                report.keys.push(entry);
                continue 'keys;
            }
            let to = retired_key(key);
            if foreign.retire(key, &seen, &to).await? {
                entry.moved_to = Some(to);
                break;
            }
            report.outcome.notes.push(format!(
                "{key} changed while it was imported (is whereabouts still running?); \
                 importing it again"
            ));
        }
        if entry.moved_to.is_none() && foreign.get(key).await?.is_some() {
            return Err(CtlError::Problems(format!(
                "{key} kept changing during {MAX_ROUNDS} imports: stop whereabouts on every \
                 node, then import again"
            )));
        }
        report.keys.push(entry);
    }
    Ok(report)
}

/// The records of one range value.
fn plan(source: &EtcdSource, key: &str, value: &[u8], ifname: &str) -> CtlResult<ImportPlan> {
    let reservations = parse_reservations(value)
        .map_err(|e| CtlError::invalid(format!("{key} ({})", source.what), e.to_string()))?;
    let cidr = key_range(key).ok_or_else(|| {
        CtlError::invalid(
            key,
            "the key does not name a range like /whereabouts/10.0.0.0/24",
        )
    })?;
    let mut plan = ImportPlan::default();
    for r in reservations {
        plan.records.push(ImportRecord {
            key: AttachmentKey::new(&source.network, &r.container_id, ifname),
            owner: owner_from_podref(r.pod_ref.as_deref().unwrap_or_default()),
            ip: r.ip,
            range_set: range_set_for(&source.range_sets, r.ip, &cidr)?,
            node: None,
            created_at: None,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_of(conf: &str) -> CtlResult<EtcdSource> {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("nad.json");
        std::fs::write(&path, conf).unwrap();
        source(&path, None)
    }

    #[test]
    fn the_configuration_names_source_target_and_keys() {
        let src = source_of(
            r#"{"cniVersion": "0.3.1", "name": "wb", "type": "macvlan",
                "ipam": {"type": "whereabouts", "range": "10.40.0.7/24",
                         "etcd_host": "10.0.0.1:2379", "range_start": "10.40.0.10"}}"#,
        )
        .unwrap();
        assert_eq!(src.network, plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK);
        assert_eq!(src.etcd.endpoints, ["http://10.0.0.1:2379"]);
        assert_eq!(
            src.keys,
            ["/whereabouts/10.40.0.7/24", "/whereabouts/10.40.0.0/24"]
        );
        let StoreConfig::Etcd(target) = &src.target else {
            panic!("the plugin's store is that etcd: {:?}", src.target)
        };
        assert!(target.require_absent.is_empty());
        assert_eq!(
            src.range_sets[0].id(),
            "wb|10.40.0.0/24[10.40.0.10-10.40.0.254]"
        );

        // An explicit store is where the plugin claims: the import goes there.
        let src = source_of(
            r#"{"name": "wb", "plugins": [{"type": "macvlan", "ipam": {"type": "plexus-ipam",
                "range": "10.40.0.0/24", "etcd_host": "10.0.0.1:2379",
                "store": {"type": "sqlite", "path": "/tmp/wb.db"}}}]}"#,
        )
        .unwrap();
        assert!(matches!(src.target, StoreConfig::Sqlite(_)));

        let err = source_of(
            r#"{"name": "wb", "ipam": {"type": "whereabouts", "range": "10.40.0.0/24"}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("names no whereabouts etcd"),
            "{err}"
        );
    }

    #[test]
    fn lines_become_records_in_the_plugins_range_sets() {
        let src = source_of(
            r#"{"name": "wb", "ipam": {"type": "whereabouts", "range": "10.40.0.0/24",
                "range_start": "10.40.0.10", "etcd_host": "e:2379"}}"#,
        )
        .unwrap();
        let value = b"10.40.0.12 c1\n10.40.0.3 c2 ns/pod-2\n";
        let plan = plan(&src, "/whereabouts/10.40.0.0/24", value, "net1").unwrap();
        assert_eq!(plan.records.len(), 2);
        let r = &plan.records[1];
        let shared = plexus_ipam_core::WHEREABOUTS_SHARED_NETWORK;
        assert_eq!(r.key, AttachmentKey::new(shared, "c2", "net1"));
        assert_eq!(r.owner.pod_name.as_deref(), Some("pod-2"));
        // Below range_start, still inside the subnet: the plugin's set records it.
        assert_eq!(r.range_set.id(), "wb|10.40.0.0/24[10.40.0.10-10.40.0.254]");
        let err = plan_err(&src, b"10.40.0.12\n");
        assert!(err.contains("line 1"), "{err}");
    }

    fn plan_err(src: &EtcdSource, value: &[u8]) -> String {
        plan(src, "/whereabouts/10.40.0.0/24", value, "net1")
            .unwrap_err()
            .to_string()
    }
}
