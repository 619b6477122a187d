//! Claims that move onto the store's runtime, and a node agent's batch of claims in ONE
//! transaction.
//!
//! A claim alone is a transaction of its own: BEGIN, the network's advisory lock, the
//! engine's statements, COMMIT. The claims of a batch (the agent's group commit: one node,
//! one network) share the first two and the last: one transaction, one lock, one commit.
//! If any claim of the batch fails on its own (an exhausted pool, a static address held by
//! someone else), the transaction is rolled back and every claim runs alone, as
//! [`Store::claim`] would, so each gets its own answer and a failed one leaves nothing
//! behind. A failure of the store itself (unreachable, contention past its retries) is the
//! answer of every claim: running them again one by one would only multiply the deadline.

use std::net::IpAddr;
use std::sync::Arc;

use plexus_ipam_core::range::RangeSet;
use tokio_postgres::Client;

use super::txn::NetworkLock;
use super::{PostgresStore, Shared};
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Allocation, AttachmentKey, Claim, ClaimContext, ClaimRequest, Owner};

/// A claim that owns its range set, so it can move to the store's runtime.
pub(super) enum OwnedClaim {
    Dynamic(RangeSet),
    Static(RangeSet, IpAddr),
}

impl OwnedClaim {
    pub(super) fn of(claim: &Claim<'_>) -> Self {
        match claim {
            Claim::Dynamic(set) => OwnedClaim::Dynamic((*set).clone()),
            Claim::Static { set, ip } => OwnedClaim::Static((*set).clone(), *ip),
        }
    }

    pub(super) fn borrow(&self) -> Claim<'_> {
        match self {
            OwnedClaim::Dynamic(set) => Claim::Dynamic(set),
            OwnedClaim::Static(set, ip) => Claim::Static { set, ip: *ip },
        }
    }
}

/// One request of a batch, owned.
struct OwnedRequest {
    key: AttachmentKey,
    owner: Owner,
    claims: Vec<OwnedClaim>,
    ctx: ClaimContext,
}

/// Whether `requests` can share one transaction: two or more, of one network and one
/// node, with blocks (the node's lock lets other nodes claim meanwhile). Without blocks a
/// claim takes the network's exclusive lock: a batch would hold it longer, and a layout
/// may have no blocks at all.
fn shareable(store: &PostgresStore, requests: &[ClaimRequest<'_>]) -> bool {
    let Some(first) = requests.first() else {
        return false;
    };
    requests.len() > 1
        && store.shared.tables.has_blocks()
        && requests.iter().all(|r| {
            r.ctx.blocks.enabled
                && r.key.network == first.key.network
                && r.ctx.node == first.ctx.node
        })
}

/// [`Store::claim_batch`] of the PostgreSQL backend (see the module docs).
pub(super) async fn claim_batch(
    store: &PostgresStore,
    requests: &[ClaimRequest<'_>],
) -> Vec<Result<Vec<Allocation>, StoreError>> {
    if shareable(store, requests) {
        let owned: Vec<OwnedRequest> = requests
            .iter()
            .map(|r| OwnedRequest {
                key: r.key.clone(),
                owner: r.owner.clone(),
                claims: r.claims.iter().map(OwnedClaim::of).collect(),
                ctx: r.ctx.clone(),
            })
            .collect();
        let owned = Arc::new(owned);
        let together = store
            .run("the claims", move |client, shared| {
                let owned = owned.clone();
                Box::pin(async move { shared.claim_together(client, &owned).await })
            })
            .await;
        match together {
            Ok(answers) => return answers.into_iter().map(Ok).collect(),
            Err(err @ (StoreError::Unavailable { .. } | StoreError::Busy { .. })) => {
                return vec![Err(err); requests.len()];
            }
            Err(err) => {
                tracing::debug!(error = %err, "a claim of the batch failed; claiming one by one");
            }
        }
    }
    let mut answers = Vec::with_capacity(requests.len());
    for r in requests {
        answers.push(store.claim(r.key, r.owner, r.claims, r.ctx).await);
    }
    answers
}

impl Shared {
    /// Every request of a [`shareable`] batch in one transaction; the first error rolls
    /// it all back.
    async fn claim_together(
        &self,
        client: &mut Client,
        requests: &[OwnedRequest],
    ) -> Result<Vec<Vec<Allocation>>, StoreError> {
        let first = requests.first().ok_or_else(|| StoreError::Internal {
            reason: "an empty batch of claims".into(),
        })?;
        let lock = NetworkLock::Node(&first.ctx.node);
        let txn = self.begin(client, &first.key.network, lock, true).await?;
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let claims: Vec<Claim<'_>> = request.claims.iter().map(OwnedClaim::borrow).collect();
            answers.push(
                self.tables
                    .claim(
                        txn.client(),
                        &self.ctx,
                        &request.key,
                        &request.owner,
                        &claims,
                        &request.ctx,
                    )
                    .await?,
            );
        }
        self.commit(txn).await?;
        Ok(answers)
    }
}
