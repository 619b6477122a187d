//! Helpers of the conformance checks: test inputs and short forms of store calls.

use std::net::IpAddr;

use plexus_ipam_core::range::{Range, RangeSet};

use crate::{
    Allocation, AttachmentKey, BlockPolicy, Claim, ClaimContext, Owner, Store, StoreError,
};

/// The address `s`; panics on bad test input.
pub fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test address {s:?}: {e}"))
}

/// A range set of the one subnet `cidr` with its default start and end; panics on bad
/// test input.
pub fn range_set(cidr: &str) -> RangeSet {
    range_set_with(cidr, None, &[])
}

/// Like [`range_set`], with a gateway and exclusions.
pub fn range_set_with(cidr: &str, gateway: Option<&str>, exclude: &[&str]) -> RangeSet {
    let subnet = cidr
        .parse()
        .unwrap_or_else(|e| panic!("bad test subnet {cidr:?}: {e}"));
    let exclude = exclude
        .iter()
        .map(|e| {
            e.parse()
                .unwrap_or_else(|err| panic!("bad test exclusion {e:?}: {err}"))
        })
        .collect();
    let range = Range::new(subnet, None, None, gateway.map(ip), exclude)
        .unwrap_or_else(|e| panic!("bad test range {cidr}: {e}"));
    RangeSet::new(vec![range]).unwrap_or_else(|e| panic!("bad test range set {cidr}: {e}"))
}

/// The node the checks claim from, with per-node blocks off: whole-set next-fit.
pub const NODE: &str = "node-a";

/// A claim context for [`NODE`] now, with per-node blocks off (the checks of plain
/// next-fit behaviour).
pub fn no_blocks() -> ClaimContext {
    ClaimContext::new(NODE, BlockPolicy::disabled())
}

pub(super) fn key(network: &str, container_id: &str, ifname: &str) -> AttachmentKey {
    AttachmentKey::new(network, container_id, ifname)
}

pub(super) fn owner(name: &str) -> Owner {
    Owner {
        pod_namespace: Some("telco".into()),
        pod_name: Some(name.into()),
        pod_uid: Some(format!("uid-{name}")),
        details: None,
    }
}

pub(super) fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: unexpected error: {e:?}"))
}

/// Claims one dynamic address from `set` for `key` and returns it.
pub(super) async fn claim_ip(store: &dyn Store, key: &AttachmentKey, set: &RangeSet) -> IpAddr {
    let what = format!("dynamic claim for {}/{}", key.container_id, key.ifname);
    let got = ok(
        store
            .claim(key, &owner("p"), &[Claim::Dynamic(set)], &no_blocks())
            .await,
        &what,
    );
    assert_eq!(got.len(), 1, "{what}: one claim, one allocation");
    got[0].ip
}

pub(super) async fn release(store: &dyn Store, key: &AttachmentKey) -> Vec<Allocation> {
    ok(store.release(key).await, "release")
}

pub(super) async fn ips_of(store: &dyn Store, network: &str) -> Vec<IpAddr> {
    ok(store.list(network).await, "list")
        .iter()
        .map(|a| a.ip)
        .collect()
}
