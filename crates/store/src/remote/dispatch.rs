//! Runs one [`Op`] against a [`Store`] and returns its result as JSON: the agent's
//! dispatcher, and the plugin's when it falls back to direct access mid-call.

use serde::Serialize;
use serde_json::Value;

use plexus_ipam_core::range::RangeSet;

use super::protocol::Op;
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Claim, ClaimContext, ClaimRequest};

/// Runs several [`Op::Claim`]s with one [`Store::claim_batch`] and answers each, in order.
/// Any other operation among them is answered with an internal error (never sent here).
pub async fn claim_batch(store: &dyn Store, ops: Vec<Op>) -> Vec<Result<Value, StoreError>> {
    struct Parts {
        key: crate::AttachmentKey,
        owner: crate::Owner,
        sets: Vec<(RangeSet, Option<std::net::IpAddr>)>,
        ctx: ClaimContext,
    }
    let mut slots: Vec<Result<Parts, StoreError>> = Vec::with_capacity(ops.len());
    for op in ops {
        slots.push(match op {
            Op::Claim {
                key,
                owner,
                claims,
                ctx,
            } => Ok(Parts {
                key,
                owner,
                sets: claims.iter().map(|c| (c.range_set(), c.ip)).collect(),
                ctx: ctx.into(),
            }),
            other => Err(StoreError::Internal {
                reason: format!("{} is no claim and cannot join a claim batch", other.name()),
            }),
        });
    }
    let claims: Vec<Vec<Claim<'_>>> = slots
        .iter()
        .map(|slot| match slot {
            Ok(parts) => parts
                .sets
                .iter()
                .map(|(set, ip)| to_claim(set, *ip))
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let requests: Vec<ClaimRequest<'_>> = slots
        .iter()
        .zip(&claims)
        .filter_map(|(slot, claims)| {
            let parts = slot.as_ref().ok()?;
            Some(ClaimRequest {
                key: &parts.key,
                owner: &parts.owner,
                claims,
                ctx: &parts.ctx,
            })
        })
        .collect();
    let mut answers = store.claim_batch(&requests).await.into_iter();
    slots
        .iter()
        .map(|slot| match slot {
            Ok(_) => answers.next().unwrap_or_else(|| {
                Err(StoreError::Internal {
                    reason: "the store answered fewer claims than it was given".into(),
                })
            }),
            Err(err) => Err(err.clone()),
        })
        .map(|answer| answer.and_then(to_json))
        .collect()
}

fn to_claim(set: &RangeSet, ip: Option<std::net::IpAddr>) -> Claim<'_> {
    match ip {
        None => Claim::Dynamic(set),
        Some(ip) => Claim::Static { set, ip },
    }
}

/// Runs `op` on `store`.
pub async fn run(store: &dyn Store, op: Op) -> Result<Value, StoreError> {
    match op {
        Op::Claim {
            key,
            owner,
            claims,
            ctx,
        } => {
            let sets: Vec<_> = claims.iter().map(|c| (c.range_set(), c.ip)).collect();
            let claims: Vec<Claim<'_>> = sets.iter().map(|(set, ip)| to_claim(set, *ip)).collect();
            to_json(store.claim(&key, &owner, &claims, &ctx.into()).await?)
        }
        Op::Release { key } => to_json(store.release(&key).await?),
        Op::Attachment { key } => to_json(store.attachment(&key).await?),
        Op::Holder { network, ip } => to_json(store.holder(&network, ip).await?),
        Op::List { network } => to_json(store.list(&network).await?),
        Op::CountBetween { network, lo, hi } => {
            to_json(store.count_between(&network, lo, hi).await?)
        }
        Op::ListBetween {
            network,
            lo,
            hi,
            limit,
        } => to_json(store.list_between(&network, lo, hi, limit).await?),
        Op::PutNetwork {
            name,
            definition,
            mode,
        } => to_json(store.put_network(&name, &definition, mode.into()).await?),
        Op::Network { name } => to_json(store.network(&name).await?),
        Op::Networks => to_json(store.networks().await?),
        Op::AllocatedNetworks => to_json(store.allocated_networks().await?),
        Op::DeleteNetwork { name, force } => to_json(store.delete_network(&name, force).await?),
        Op::History { query } => to_json(store.history(&query.into()).await?),
        Op::RecordHistory { events } => to_json(store.record_history(&events).await?),
        Op::Blocks { network } => to_json(store.blocks(&network).await?),
        Op::Gc {
            network,
            valid,
            scope,
            blocks,
            now,
        } => to_json(
            store
                .gc(&network, &valid, &scope, &blocks.into(), now)
                .await?,
        ),
        Op::Probe => to_json(store.probe().await?),
    }
}

fn to_json(value: impl Serialize) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal {
        reason: format!("cannot encode a store result for the node agent: {e}"),
    })
}
