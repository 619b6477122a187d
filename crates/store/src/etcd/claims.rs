//! Claims on etcd with few round trips: the reads every claim makes first go out together
//! in one read-only request, and a node agent's batch of claims shares one snapshot and
//! one commit.
//!
//! A claim through the engine reads, one request after the other, its attachment index,
//! its node's blocks, their cursor hints and a window of addresses, then commits: five
//! round trips, each of which waits for the scheduler on a loaded node. The first three do
//! not depend on each other, so [`EtcdTxn::prefetch_claims`] sends them as one `Txn`,
//! together with the address keys of the blocks the node held at its last claim
//! ([`BlockBounds`]): the window a claim searches lies inside one of them, and is answered
//! without a server call. A batch of `n` claims then costs two round trips instead of
//! `5 n` (three when the node's blocks changed since, as the window is read on its own).
//!
//! A batch's commit also reads back the node's blocks, cursors and block address keys as
//! they are after it ([`NodeViews`]): the next batch of the node starts from that view and
//! costs ONE round trip, its commit. A view is only a starting point: every read from it is
//! guarded at commit, the batch's attachment keys are required absent, and a refusal
//! found on it is re-checked on a fresh snapshot (see `super::buffered::start`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plexus_ipam_core::addr::canonical;
use plexus_ipam_core::range::RangeSet;

use super::buffered::{PrefetchRange, ReadBack, ReadBackSink};
use super::keys::Keys;
use super::txn::{EtcdTxn, NodeSet};
use crate::engine;
use crate::error::StoreError;
use crate::types::{Allocation, AttachmentKey, Claim, ClaimContext, ClaimRequest, Owner};

/// An owned [`Claim`], to move a claim onto the I/O thread.
#[derive(Debug, Clone)]
enum OwnedClaim {
    Dynamic(RangeSet),
    Static { set: RangeSet, ip: IpAddr },
}

impl OwnedClaim {
    fn of(claim: &Claim<'_>) -> Self {
        match claim {
            Claim::Dynamic(set) => OwnedClaim::Dynamic((*set).clone()),
            Claim::Static { set, ip } => OwnedClaim::Static {
                set: (*set).clone(),
                ip: *ip,
            },
        }
    }

    fn borrow(&self) -> Claim<'_> {
        match self {
            OwnedClaim::Dynamic(set) => Claim::Dynamic(set),
            OwnedClaim::Static { set, ip } => Claim::Static { set, ip: *ip },
        }
    }
}

/// An owned [`ClaimRequest`].
#[derive(Debug, Clone)]
pub(super) struct OwnedRequest {
    key: AttachmentKey,
    owner: Owner,
    claims: Vec<OwnedClaim>,
    ctx: ClaimContext,
}

impl OwnedRequest {
    pub(super) fn of(request: &ClaimRequest<'_>) -> Self {
        OwnedRequest {
            key: request.key.clone(),
            owner: request.owner.clone(),
            claims: request.claims.iter().map(OwnedClaim::of).collect(),
            ctx: request.ctx.clone(),
        }
    }

    /// The network claimed in.
    pub(super) fn network(&self) -> &str {
        &self.key.network
    }

    /// The claims, borrowed as the engine takes them.
    pub(super) fn claims(&self) -> Vec<Claim<'_>> {
        self.claims.iter().map(OwnedClaim::borrow).collect()
    }

    /// The request, with `claims` from [`claims`](Self::claims).
    pub(super) fn request<'a>(&'a self, claims: &'a [Claim<'a>]) -> ClaimRequest<'a> {
        ClaimRequest {
            key: &self.key,
            owner: &self.owner,
            claims,
            ctx: &self.ctx,
        }
    }
}

/// Blocks larger than this are not prefetched (their window reads stay bounded by the
/// engine's own windows instead).
const MAX_PREFETCHED_BLOCK: u128 = 256;

/// The address-key bounds of each node's blocks as its last claim found them: a hint of
/// which allocation keys the next claim will search. A stale hint costs a wasted read,
/// never correctness (the engine reads whatever the prefetch did not cover).
#[derive(Debug, Default)]
pub(super) struct BlockBounds(Mutex<HashMap<NodeSet, Vec<(u128, u128)>>>);

impl BlockBounds {
    fn of(&self, whose: &NodeSet) -> Vec<(u128, u128)> {
        let bounds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        bounds.get(whose).cloned().unwrap_or_default()
    }

    /// Remembers what a transaction found (see [`EtcdTxn::blocks_seen`]).
    pub(super) fn remember(&self, seen: Vec<(NodeSet, Vec<(u128, u128)>)>) {
        let mut bounds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (whose, blocks) in seen {
            bounds.insert(whose, blocks);
        }
    }
}

/// How long a node's view serves as a batch's starting point. Short: a view older than
/// the last change by someone else costs the batch a failed commit; and well inside any
/// compaction retention (reads at the view's revision must still be answerable).
const VIEW_TTL: Duration = Duration::from_secs(2);

/// Per node (and network and range set): what its last claim batch's commit read back.
#[derive(Debug, Default)]
pub(super) struct NodeViews(Mutex<HashMap<NodeSet, (Instant, Arc<ReadBack>)>>);

impl NodeViews {
    fn fresh(&self, whose: &NodeSet) -> Option<Arc<ReadBack>> {
        let views = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (taken, view) = views.get(whose)?;
        (taken.elapsed() < VIEW_TTL).then(|| view.clone())
    }

    /// Keeps what a batch's commit read back as `whose` view.
    pub(super) fn remember(&self, whose: NodeSet, view: ReadBack) {
        let mut views = self.0.lock().unwrap_or_else(|p| p.into_inner());
        views.insert(whose, (Instant::now(), Arc::new(view)));
    }

    /// Drops the views of `network` (after GC there, which releases and deletes blocks
    /// wholesale: a claim's commit would only find out about it by failing).
    pub(super) fn forget(&self, network: &str) {
        let mut views = self.0.lock().unwrap_or_else(|p| p.into_inner());
        views.retain(|(net, _, _), _| net != network);
    }
}

/// The one node, network and range set all claims of `requests` claim in from blocks, if
/// they do (only such batches read back and start from a view).
pub(super) fn single_node_set(requests: &[ClaimRequest<'_>]) -> Option<NodeSet> {
    let mut whose: Option<NodeSet> = None;
    for request in requests {
        for claim in request.claims {
            let Claim::Dynamic(set) = claim else {
                return None;
            };
            if !request.ctx.blocks.enabled {
                return None;
            }
            let this = (
                request.key.network.clone(),
                set.id(),
                request.ctx.node.clone(),
            );
            match &whose {
                Some(seen) if *seen != this => return None,
                _ => whose = Some(this),
            }
        }
    }
    whose
}

impl EtcdTxn<'_> {
    /// Reads, in one request, what the claims of `requests` read first: each attachment's
    /// index key, and per dynamic claim its node's blocks and their cursor hints (with
    /// blocks, plus the address keys of the blocks it held at its last claim) or its set's
    /// cursor (without), or a static claim's address key. Must come
    /// before any other read of the transaction (it pins the snapshot).
    pub(crate) async fn prefetch_claims(
        &mut self,
        requests: &[ClaimRequest<'_>],
        hints: &BlockBounds,
    ) -> Result<(), StoreError> {
        let mut points = Vec::new();
        let mut ranges = Vec::new();
        for request in requests {
            let key = request.key;
            let network = &key.network;
            for claim in request.claims {
                let set_id = claim.range_set().id();
                points.push(
                    self.keys
                        .attach(network, &key.container_id, &key.ifname, &set_id),
                );
                match claim {
                    Claim::Static { ip, .. } => {
                        points.push(self.keys.alloc(network, canonical(*ip)));
                    }
                    Claim::Dynamic(_) if request.ctx.blocks.enabled => {
                        let whose = (network.clone(), set_id.clone(), request.ctx.node.clone());
                        let bounds = hints.of(&whose);
                        ranges.extend(node_ranges(self.keys, &whose, bounds));
                    }
                    Claim::Dynamic(_) => points.push(self.keys.cursor(network, &set_id)),
                }
            }
        }
        points.sort();
        points.dedup();
        ranges.sort();
        ranges.dedup();
        self.inner.prefetch(&points, &ranges).await
    }
}

/// Where a batch of one node set ([`single_node_set`]) starts from and what its commit
/// reads back: the views, the node set, and the sink for the read-back (see the module
/// docs).
pub(super) struct ViewUse<'v> {
    pub(super) views: &'v NodeViews,
    pub(super) whose: &'v NodeSet,
    pub(super) sink: &'v ReadBackSink,
}

/// Runs every request of a batch in `txn` (one snapshot, one commit). `Err` when the batch
/// as a whole must be retried or fails (a lost race, a server failure); otherwise one
/// answer per request, a failed request leaving none of its writes behind.
pub(super) async fn claim_batch_in(
    txn: &mut EtcdTxn<'_>,
    requests: &[ClaimRequest<'_>],
    hints: &BlockBounds,
    view: Option<ViewUse<'_>>,
) -> Result<Vec<Result<Vec<Allocation>, StoreError>>, StoreError> {
    // Only a first attempt (the one that may read locally) starts from a view: a retry
    // follows a conflict, and reads afresh.
    let seeded = match &view {
        Some(view) if txn.inner.may_read_locally() => match view.views.fresh(view.whose) {
            Some(read_back) => {
                txn.inner.seed(&read_back);
                for request in requests {
                    let key = request.key;
                    for claim in request.claims {
                        let set_id = claim.range_set().id();
                        txn.inner.assume_absent(&txn.keys.attach(
                            &key.network,
                            &key.container_id,
                            &key.ifname,
                            &set_id,
                        ));
                    }
                }
                true
            }
            None => false,
        },
        _ => false,
    };
    if !seeded {
        txn.prefetch_claims(requests, hints).await?;
    }
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        let savepoint = txn.inner.savepoint();
        match engine::claim_all(txn, request.key, request.owner, request.claims, request.ctx).await
        {
            Ok(allocations) => answers.push(Ok(allocations)),
            // Busy: an address taken since the snapshot; a failed server call: both
            // concern the snapshot or the connection, not this request.
            Err(err) if matches!(err, StoreError::Busy { .. }) || txn.inner.has_failed() => {
                return Err(err);
            }
            // Reads that may predate the request (a local read, a view) cannot refuse it:
            // the pool may have been freed since. A fresh snapshot decides.
            Err(err) if txn.inner.maybe_stale() => {
                return Err(StoreError::Busy {
                    reason: format!("re-checking on a fresh snapshot: {err}"),
                });
            }
            Err(err) => {
                txn.inner.rollback_to(savepoint);
                answers.push(Err(err));
            }
        }
    }
    if let Some(view) = view {
        let ranges = view_ranges(txn, view.whose);
        txn.inner.read_back_at_commit(ranges, view.sink.clone());
    }
    Ok(answers)
}

/// What a batch of `whose` reads back at commit: its node's ranges, with the blocks as
/// the batch found them.
fn view_ranges(txn: &EtcdTxn<'_>, whose: &NodeSet) -> Vec<PrefetchRange> {
    let bounds = txn
        .blocks_seen
        .iter()
        .filter(|(seen, _)| seen == whose)
        .flat_map(|(_, bounds)| bounds.iter().copied());
    let mut ranges = node_ranges(txn.keys, whose, bounds);
    ranges.sort();
    ranges.dedup();
    ranges
}

/// The ranges a claim of `whose` reads first (prefetched, or read back for the next
/// batch): the node's block records and cursor hints, and the address keys of the blocks
/// in `bounds` that are small enough.
fn node_ranges(
    keys: &Keys,
    whose: &NodeSet,
    bounds: impl IntoIterator<Item = (u128, u128)>,
) -> Vec<PrefetchRange> {
    let (network, set_id, node) = whose;
    let with_values = |(start, end)| PrefetchRange {
        start,
        end,
        keys_only: false,
    };
    let mut ranges = vec![
        with_values(keys.node_blocks(network, set_id, node)),
        with_values(keys.block_cursors(network, set_id, node)),
    ];
    for (lo, hi) in bounds {
        if hi.saturating_sub(lo) < MAX_PREFETCHED_BLOCK {
            let (start, end) = keys.alloc_range(network, lo, hi);
            ranges.push(PrefetchRange {
                start,
                end,
                keys_only: true,
            });
        }
    }
    ranges
}
