//! The SQL of stored networks and of the bounded claim history in the native layout.
//!
//! `plexus_history` is keyed by `(network, seq)`, `seq` drawn from one sequence, so appends
//! take no lock (see [`append_history`]); the bound is kept by a primary-key range delete
//! once every [`prune_interval`] appends.
//! Network definitions are written under the network's exclusive lock, which no claim or
//! release holds at the same time, so a deletion's count of allocations and the deletion
//! are one atomic step with respect to claims.

use std::sync::LazyLock;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::errors::ErrCtx;
use super::rows::{addr_bytes, bytes_addr};
use super::statements;
use crate::error::StoreError;
use crate::records::{
    HistoryEvent, HistoryKind, HistoryQuery, NetworkRecord, prune_interval, sort_events,
};

/// Columns of `plexus_networks` in the order [`network_of`] expects.
const NETWORK_COLUMNS: &str = "name, definition::text, revision, created_at, updated_at";

/// Columns of `plexus_history` in the order [`event_of`] expects.
const HISTORY_COLUMNS: &str = "network, seq, at, kind, addr, container_id, ifname, \
                               pod_namespace, pod_name, pod_uid, node";

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
    ctx: &ErrCtx,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| ctx.corrupt(format!("unexpected stored value: {e}")))
}

fn network_of(row: &Row, ctx: &ErrCtx) -> Result<NetworkRecord, StoreError> {
    let name: String = get(row, 0, ctx)?;
    let definition: &str = get(row, 1, ctx)?;
    let revision: i64 = get(row, 2, ctx)?;
    Ok(NetworkRecord {
        definition: serde_json::from_str(definition)
            .map_err(|e| ctx.corrupt(format!("definition of network {name} is not JSON: {e}")))?,
        revision: u64::try_from(revision)
            .map_err(|_| ctx.corrupt(format!("network {name} has revision {revision}")))?,
        created_at: get(row, 3, ctx)?,
        updated_at: get(row, 4, ctx)?,
        name,
    })
}

/// The stored network `name`.
pub(crate) async fn network(
    client: &Client,
    ctx: &ErrCtx,
    name: &str,
) -> Result<Option<NetworkRecord>, StoreError> {
    let sql = format!("SELECT {NETWORK_COLUMNS} FROM plexus_networks WHERE name = $1");
    let rows = statements::query_typed(client, &sql, &[(&name, Type::TEXT)])
        .await
        .map_err(|e| ctx.map(&e))?;
    rows.first().map(|row| network_of(row, ctx)).transpose()
}

/// Every stored network, by name.
pub(crate) async fn networks(
    client: &Client,
    ctx: &ErrCtx,
) -> Result<Vec<NetworkRecord>, StoreError> {
    let sql = format!("SELECT {NETWORK_COLUMNS} FROM plexus_networks ORDER BY name");
    let rows = statements::query_typed(client, &sql, &[])
        .await
        .map_err(|e| ctx.map(&e))?;
    rows.iter().map(|row| network_of(row, ctx)).collect()
}

/// Creates or overwrites `record`.
pub(crate) async fn write_network(
    client: &Client,
    ctx: &ErrCtx,
    record: &NetworkRecord,
) -> Result<(), StoreError> {
    let definition = record.definition.to_string();
    let revision = i64::try_from(record.revision).unwrap_or(i64::MAX);
    statements::execute_typed(
        client,
        "INSERT INTO plexus_networks (name, definition, revision, created_at, updated_at) \
             VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
             definition = excluded.definition, revision = excluded.revision, \
             created_at = excluded.created_at, updated_at = excluded.updated_at",
        &[
            (&record.name, Type::TEXT),
            (&definition, Type::TEXT),
            (&revision, Type::INT8),
            (&record.created_at, Type::INT8),
            (&record.updated_at, Type::INT8),
        ],
    )
    .await
    .map(drop)
    .map_err(|e| ctx.map(&e))
}

/// Deletes network `name` (missing is fine).
pub(crate) async fn remove_network(
    client: &Client,
    ctx: &ErrCtx,
    name: &str,
) -> Result<(), StoreError> {
    statements::execute_typed(
        client,
        "DELETE FROM plexus_networks WHERE name = $1",
        &[(&name, Type::TEXT)],
    )
    .await
    .map(drop)
    .map_err(|e| ctx.map(&e))
}

/// The append of [`append_history`], built once from [`HISTORY_COLUMNS`].
static APPEND_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO plexus_history ({HISTORY_COLUMNS}) \
         VALUES ($1, nextval('plexus_history_seq'), $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING seq"
    )
});

/// Appends `event`; once every [`prune_interval`] appends (by its `seq`), prunes its
/// network's history to the newest `limit` events.
///
/// No lock: `seq` comes from the sequence `plexus_history_seq` (schema v4), shared by all
/// networks, so appends of one network run side by side. (Until v4 they took the network's
/// history lock to read `max(seq) + 1`, held to the commit: every claim and release of a
/// network queued on it, 22 ms per append on average in the 8-node benchmark.) A `seq` is
/// unique and grows with each append; an append that rolls back leaves a gap, which
/// nothing reads (events are ordered by time, then network, then `seq`). The prune is one
/// primary-key walk of `limit` entries, then a range delete.
pub(crate) async fn append_history(
    client: &Client,
    ctx: &ErrCtx,
    event: &HistoryEvent,
    limit: u32,
) -> Result<(), StoreError> {
    let addr = addr_bytes(event.ip);
    let kind = event.kind.as_str();
    let map = |e: tokio_postgres::Error| ctx.map(&e);
    let rows = statements::query_typed(
        client,
        &APPEND_SQL,
        &[
            (&event.network, Type::TEXT),
            (&event.at, Type::INT8),
            (&kind, Type::TEXT),
            (&addr, Type::BYTEA),
            (&event.container_id, Type::TEXT),
            (&event.ifname, Type::TEXT),
            (&event.pod_namespace, Type::TEXT),
            (&event.pod_name, Type::TEXT),
            (&event.pod_uid, Type::TEXT),
            (&event.node, Type::TEXT),
        ],
    )
    .await
    .map_err(map)?;
    let seq: i64 = match rows.first() {
        Some(row) => get(row, 0, ctx)?,
        None => return Err(ctx.corrupt("a history append returned no seq")),
    };
    if seq % i64::from(prune_interval(limit)) != 0 {
        return Ok(());
    }
    // The event just added counts (this transaction sees it): keep `limit` in all.
    let keep_from = i64::from(limit.max(1)) - 1;
    statements::execute_typed(
        client,
        "DELETE FROM plexus_history WHERE network = $1 AND seq < \
           (SELECT seq FROM plexus_history WHERE network = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)",
        &[(&event.network, Type::TEXT), (&keep_from, Type::INT8)],
    )
    .await
    .map(drop)
    .map_err(map)
}

fn event_of(row: &Row, ctx: &ErrCtx) -> Result<HistoryEvent, StoreError> {
    let network: String = get(row, 0, ctx)?;
    let seq: i64 = get(row, 1, ctx)?;
    let kind: &str = get(row, 3, ctx)?;
    let addr: &[u8] = get(row, 4, ctx)?;
    Ok(HistoryEvent {
        seq: u64::try_from(seq)
            .map_err(|_| ctx.corrupt(format!("history of {network} holds seq {seq}")))?,
        at: get(row, 2, ctx)?,
        kind: HistoryKind::parse(kind)
            .ok_or_else(|| ctx.corrupt(format!("history of {network} holds kind {kind:?}")))?,
        ip: bytes_addr(addr, ctx)?,
        container_id: get(row, 5, ctx)?,
        ifname: get(row, 6, ctx)?,
        pod_namespace: get(row, 7, ctx)?,
        pod_name: get(row, 8, ctx)?,
        pod_uid: get(row, 9, ctx)?,
        node: get(row, 10, ctx)?,
        network,
    })
}

/// The events matching `query`, oldest first (each query kind answered from an index).
pub(crate) async fn history(
    client: &Client,
    ctx: &ErrCtx,
    query: &HistoryQuery,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let base = format!("SELECT {HISTORY_COLUMNS} FROM plexus_history WHERE");
    let rows = match query {
        HistoryQuery::Network { network } => {
            statements::query_typed(
                client,
                &format!("{base} network = $1"),
                &[(network, Type::TEXT)],
            )
            .await
        }
        HistoryQuery::Address { network, ip } => {
            let addr = addr_bytes(*ip);
            statements::query_typed(
                client,
                &format!("{base} network = $1 AND addr = $2"),
                &[(network, Type::TEXT), (&addr, Type::BYTEA)],
            )
            .await
        }
        HistoryQuery::Pod { namespace, name } => {
            statements::query_typed(
                client,
                &format!("{base} pod_namespace = $1 AND pod_name = $2"),
                &[(namespace, Type::TEXT), (name, Type::TEXT)],
            )
            .await
        }
        HistoryQuery::PodUid { uid } => {
            statements::query_typed(
                client,
                &format!("{base} pod_uid = $1"),
                &[(uid, Type::TEXT)],
            )
            .await
        }
    }
    .map_err(|e| ctx.map(&e))?;
    let mut events = rows
        .iter()
        .map(|row| event_of(row, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    sort_events(&mut events);
    Ok(events)
}
