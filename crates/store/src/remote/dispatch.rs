//! Runs one [`Op`] against a [`Store`] and returns its result as JSON: the agent's
//! dispatcher, and the plugin's when it falls back to direct access mid-call.

use serde::Serialize;
use serde_json::Value;

use super::protocol::Op;
use crate::error::StoreError;
use crate::store::Store;
use crate::types::Claim;

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
            let claims: Vec<Claim<'_>> = sets
                .iter()
                .map(|(set, ip)| match ip {
                    None => Claim::Dynamic(set),
                    Some(ip) => Claim::Static { set, ip: *ip },
                })
                .collect();
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
        Op::DeleteNetwork { name, force } => to_json(store.delete_network(&name, force).await?),
        Op::History { query } => to_json(store.history(&query.into()).await?),
        Op::RecordHistory { events } => to_json(store.record_history(&events).await?),
        Op::Blocks { network } => to_json(store.blocks(&network).await?),
        Op::Gc {
            network,
            valid,
            blocks,
            now,
        } => to_json(store.gc(&network, &valid, &blocks.into(), now).await?),
        Op::Probe => to_json(store.probe().await?),
    }
}

fn to_json(value: impl Serialize) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal {
        reason: format!("cannot encode a store result for the node agent: {e}"),
    })
}
