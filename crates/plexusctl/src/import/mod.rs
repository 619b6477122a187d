//! Importers: plexus' own export, whereabouts (IPPool, OverlappingRangeIPReservation; and
//! the ranges whereabouts ≤ 0.5.4 kept in etcd, read live) and DANM (network objects with
//! their `alloc` bitmaps). Parsing is pure and produces an
//! [`ImportPlan`]; [`apply`] writes a plan to a store.

pub mod danm;
pub mod native;
pub mod whereabouts;
pub mod whereabouts_etcd;

use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::{Range, RangeSet, place_static};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, HistoryEvent, HistoryQuery, Owner, PutMode,
    Store, StoreError,
};
use serde::Serialize;

use crate::error::{CtlError, CtlResult};

/// One address to record as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// Who holds it.
    pub key: AttachmentKey,
    /// Pod metadata.
    pub owner: Owner,
    /// The address.
    pub ip: IpAddr,
    /// The range set it is recorded under (its id keys idempotency in the store).
    pub range_set: RangeSet,
    /// The node recorded with it (plexus exports keep it).
    pub node: Option<String>,
    /// When it was claimed (plexus exports keep it; default: now).
    pub created_at: Option<i64>,
}

/// What an import will write, and what it noticed while parsing.
#[derive(Debug, Default)]
pub struct ImportPlan {
    /// Network definitions to store (created or replaced), by qualified name.
    pub networks: Vec<(String, serde_json::Value)>,
    /// Whether a network already in the store keeps its definition (the definitions were
    /// derived, as from whereabouts pools) instead of being replaced (an export's or a DANM
    /// object's own definition).
    pub keep_stored_networks: bool,
    /// Addresses to record, in input order.
    pub records: Vec<ImportRecord>,
    /// History to restore (a plexus export's). When present, the records' claims append
    /// no events of their own, so a round trip keeps the history as it was.
    pub history: Vec<HistoryEvent>,
    /// Things the operator should know (skipped entries, leaks found), one line each.
    pub notes: Vec<String>,
}

/// What [`apply`] did.
#[derive(Debug, Default, Serialize)]
pub struct ImportOutcome {
    /// Records newly written or already present with the same holder.
    pub imported: usize,
    /// Network definitions stored (one already stored as it is counts as none).
    #[serde(default)]
    pub networks: usize,
    /// History events restored.
    #[serde(default)]
    pub history: usize,
    /// Records refused because another attachment holds the address (or the attachment
    /// holds another address), one message each.
    pub conflicts: Vec<String>,
    /// Notes from parsing.
    pub notes: Vec<String>,
}

/// Records are built and written this many at a time by [`apply_streamed`], so an import's
/// memory does not grow with its size.
pub const BATCH_SIZE: usize = 10_000;

/// Writes every record of `plan` with one static claim each (idempotent: importing the
/// same file twice changes nothing). `progress` is called with the records done so far.
pub async fn apply(
    store: &dyn Store,
    plan: &ImportPlan,
    progress: impl FnMut(usize),
) -> CtlResult<ImportOutcome> {
    apply_streamed(store, plan, plan.records.iter().cloned(), progress).await
}

/// Like [`apply`], but the records come from `records` (a lazy source such as a DANM
/// bitmap) instead of `plan.records`. They are taken [`BATCH_SIZE`] at a time, written and
/// dropped before the next batch is built; `progress` is called after each record.
pub async fn apply_streamed(
    store: &dyn Store,
    plan: &ImportPlan,
    mut records: impl Iterator<Item = ImportRecord>,
    mut progress: impl FnMut(usize),
) -> CtlResult<ImportOutcome> {
    let mut outcome = ImportOutcome {
        notes: plan.notes.clone(),
        ..ImportOutcome::default()
    };
    for (name, definition) in &plan.networks {
        // The same definition again is no change: no new revision.
        if !plan.keep_stored_networks
            && store
                .network(name)
                .await?
                .is_some_and(|stored| &stored.definition == definition)
        {
            continue;
        }
        let mode = if plan.keep_stored_networks {
            PutMode::Create
        } else {
            PutMode::Upsert
        };
        match store.put_network(name, definition, mode).await {
            Ok(_) => outcome.networks += 1,
            Err(StoreError::Conflict { .. }) if plan.keep_stored_networks => {
                outcome.notes.push(format!(
                    "network {name} is already in the store; its definition is kept"
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let restore_history = !plan.history.is_empty();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut done = 0;
    loop {
        batch.clear();
        batch.extend(records.by_ref().take(BATCH_SIZE));
        if batch.is_empty() {
            break;
        }
        for record in &batch {
            write_record(store, record, restore_history, &mut outcome).await?;
            done += 1;
            progress(done);
        }
    }
    outcome.history = restore(store, &plan.history, &mut outcome.notes).await?;
    Ok(outcome)
}

/// Claims one record with a static claim (the store has no multi-attachment call); a
/// conflict is collected in `outcome`, any other error ends the import.
async fn write_record(
    store: &dyn Store,
    record: &ImportRecord,
    restore_history: bool,
    outcome: &mut ImportOutcome,
) -> CtlResult<()> {
    let claim = Claim::Static {
        set: &record.range_set,
        ip: record.ip,
    };
    // Static claims ignore blocks; the context only carries node and time.
    let mut ctx = ClaimContext::new(
        record.node.clone().unwrap_or_default(),
        BlockPolicy::disabled(),
    );
    if let Some(at) = record.created_at {
        ctx.now = at;
    }
    if restore_history {
        ctx = ctx.without_history();
    }
    match store
        .claim(&record.key, &record.owner, &[claim], &ctx)
        .await
    {
        Ok(_) => outcome.imported += 1,
        Err(e @ (StoreError::AddressTaken { .. } | StoreError::AttachmentHoldsOther { .. })) => {
            outcome.conflicts.push(format!(
                "{} for {}/{}: {e}",
                record.ip, record.key.container_id, record.key.ifname
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Appends `history` network by network, skipping networks whose history is not empty
/// (a second import of the same file must not double it). Returns the events written.
async fn restore(
    store: &dyn Store,
    history: &[HistoryEvent],
    notes: &mut Vec<String>,
) -> CtlResult<usize> {
    let mut networks: Vec<&str> = history.iter().map(|e| e.network.as_str()).collect();
    networks.sort_unstable();
    networks.dedup();
    let mut written = 0;
    for network in networks {
        let query = HistoryQuery::Network {
            network: network.to_string(),
        };
        if !store.history(&query).await?.is_empty() {
            notes.push(format!(
                "history of network {network} not restored: the store already has some"
            ));
            continue;
        }
        let events: Vec<HistoryEvent> = history
            .iter()
            .filter(|e| e.network == network)
            .cloned()
            .collect();
        store.record_history(&events).await?;
        written += events.len();
    }
    Ok(written)
}

/// The range set `ip` belongs to among `sets` (as the plugin would place a static
/// address), else a one-range set over `fallback` with the allocator's defaults.
pub fn range_set_for(sets: &[RangeSet], ip: IpAddr, fallback: &IpNet) -> CtlResult<RangeSet> {
    if let Ok(index) = place_static(sets, ip)
        && let Some(set) = sets.get(index)
    {
        return Ok(set.clone());
    }
    let range = Range::new(fallback.trunc(), None, None, None, Vec::new())
        .map_err(|e| CtlError::invalid(format!("range {fallback}"), e.to_string()))?;
    RangeSet::new(vec![range])
        .map_err(|e| CtlError::invalid(format!("range {fallback}"), e.to_string()))
}

/// Rebuilds a range set from its canonical id (`subnet[start-end]`, joined with `,`, after
/// `name|` for a set owned by one of several configurations sharing a network), as stored
/// with every allocation, so an import records addresses under the same id.
pub fn range_set_from_id(id: &str) -> CtlResult<RangeSet> {
    let bad = |why: &str| CtlError::invalid(format!("range set {id:?}"), why.to_string());
    let (shared_by, ranges_id) = match id.split_once(plexus_ipam_core::range::SHARED_BY_SEPARATOR) {
        Some((by, rest)) if !by.is_empty() => (by, rest),
        Some(_) => return Err(bad("empty owner before '|'")),
        None => ("", id),
    };
    let mut ranges = Vec::new();
    for part in ranges_id.split(',') {
        let (subnet, bounds) = part
            .strip_suffix(']')
            .and_then(|p| p.split_once('['))
            .ok_or_else(|| bad("expected subnet[start-end]"))?;
        let (start, end) = bounds
            .split_once('-')
            .ok_or_else(|| bad("expected start-end"))?;
        let subnet: IpNet = subnet.parse().map_err(|_| bad("subnet is not a CIDR"))?;
        let start: IpAddr = start.parse().map_err(|_| bad("start is not an address"))?;
        let end: IpAddr = end.parse().map_err(|_| bad("end is not an address"))?;
        ranges.push(
            Range::new(subnet, Some(start), Some(end), None, Vec::new())
                .map_err(|e| bad(&e.to_string()))?,
        );
    }
    RangeSet::new(ranges)
        .map(|set| set.shared_by(shared_by))
        .map_err(|e| bad(&e.to_string()))
}

/// Splits `ns/name` into an owner (a bare `name` has no namespace).
pub fn owner_from_podref(podref: &str) -> Owner {
    let (ns, name) = match podref.split_once('/') {
        Some((ns, name)) => (Some(ns.to_string()), name),
        None => (None, podref),
    };
    Owner {
        pod_namespace: ns.filter(|n| !n.is_empty()),
        pod_name: Some(name.to_string()).filter(|n| !n.is_empty()),
        pod_uid: None,
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn range_set_ids_round_trip() {
        for id in [
            "10.0.0.0/24[10.0.0.1-10.0.0.254]",
            "10.0.0.0/24[10.0.0.10-10.0.0.20],10.0.1.0/24[10.0.1.1-10.0.1.254]",
            "fd00::/64[fd00::1-fd00::ffff:ffff:ffff:ffff]",
        ] {
            assert_eq!(range_set_from_id(id).unwrap().id(), id);
        }
        for bad in [
            "",
            "10.0.0.0/24",
            "10.0.0.0/24[x-y]",
            "10.0.0.0/24[10.0.0.9-10.0.0.1]",
        ] {
            assert!(range_set_from_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn podrefs() {
        let o = owner_from_podref("ns/p");
        assert_eq!(
            (o.pod_namespace.as_deref(), o.pod_name.as_deref()),
            (Some("ns"), Some("p"))
        );
        assert_eq!(owner_from_podref("p").pod_namespace, None);
        assert_eq!(owner_from_podref("").pod_name, None);
    }

    #[test]
    fn placement_prefers_configured_sets() {
        let set = range_set_from_id("10.0.0.0/24[10.0.0.10-10.0.0.20]").unwrap();
        let cidr: IpNet = "10.0.0.0/24".parse().unwrap();
        let placed = range_set_for(
            std::slice::from_ref(&set),
            "10.0.0.15".parse().unwrap(),
            &cidr,
        )
        .unwrap();
        assert_eq!(placed, set);
        let fallback = range_set_for(&[], "10.0.0.15".parse().unwrap(), &cidr).unwrap();
        assert_eq!(fallback.id(), "10.0.0.0/24[10.0.0.1-10.0.0.254]");
    }

    proptest! {
        /// Any valid single-range IPv4 set survives id → set → id.
        #[test]
        fn any_v4_range_id_round_trips(prefix in 8u8..=29, base in any::<u32>(), a in any::<u32>(), b in any::<u32>()) {
            let net = IpNet::new(IpAddr::from(std::net::Ipv4Addr::from(base)), prefix).unwrap().trunc();
            let size = 1u64 << (32 - prefix);
            let first = u64::from(u32::from(match net.network() { IpAddr::V4(v) => v, IpAddr::V6(_) => unreachable!() }));
            let (lo, hi) = (1 + u64::from(a) % (size - 2), 1 + u64::from(b) % (size - 2));
            let start = IpAddr::from(std::net::Ipv4Addr::from((first + lo.min(hi)) as u32));
            let end = IpAddr::from(std::net::Ipv4Addr::from((first + lo.max(hi)) as u32));
            let set = RangeSet::new(vec![Range::new(net, Some(start), Some(end), None, Vec::new()).unwrap()]).unwrap();
            prop_assert_eq!(range_set_from_id(&set.id()).unwrap().id(), set.id());
        }
    }
}
