//! The SQL of stored networks and of the bounded claim history.
//!
//! `history` is keyed by `(network, seq)`, `seq` growing per network: an append is one
//! statement that takes the network's largest `seq` from the primary key. The bound is kept
//! amortized, as on etcd: the append whose `seq` is a multiple of
//! [`prune_interval`]`(limit)` deletes everything that fell out of the bound with one
//! primary-key range delete, so a history may exceed its limit by that interval (exact for
//! limits up to 16) and an append costs the same with ten events kept or ten million. Every
//! plugin call appends, so one statement instead of three is on every pod's path. Queries
//! by address and by pod use their own indexes.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::errors::ErrCtx;
use super::rows::{addr_blob, blob_addr};
use crate::error::StoreError;
use crate::records::{
    HistoryEvent, HistoryKind, HistoryQuery, NetworkRecord, prune_interval, sort_events,
};

/// Columns of `networks` in the order [`read_network`] expects.
const NETWORK_COLUMNS: &str = "name, definition, revision, created_at, updated_at";

/// Columns of `history` in the order [`read_event`] expects.
const HISTORY_COLUMNS: &str = "network, seq, at, kind, addr, container_id, ifname, \
                               pod_namespace, pod_name, pod_uid, node";

type RawNetwork = (String, String, i64, i64, i64);

fn read_network(row: &Row<'_>) -> rusqlite::Result<RawNetwork> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn into_network(raw: RawNetwork, ctx: &ErrCtx<'_>) -> Result<NetworkRecord, StoreError> {
    let (name, definition, revision, created_at, updated_at) = raw;
    let definition = serde_json::from_str(&definition)
        .map_err(|e| ctx.corrupt(format!("definition of network {name} is not JSON: {e}")))?;
    let revision = u64::try_from(revision)
        .map_err(|_| ctx.corrupt(format!("network {name} has revision {revision}")))?;
    Ok(NetworkRecord {
        name,
        definition,
        revision,
        created_at,
        updated_at,
    })
}

/// The stored network `name`.
pub(crate) fn network(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    name: &str,
) -> Result<Option<NetworkRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {NETWORK_COLUMNS} FROM networks WHERE name = ?1"
        ))
        .map_err(|e| ctx.map(e))?;
    let raw = stmt
        .query_row(params![name], read_network)
        .optional()
        .map_err(|e| ctx.map(e))?;
    raw.map(|raw| into_network(raw, ctx)).transpose()
}

/// Every stored network, by name.
pub(crate) fn networks(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
) -> Result<Vec<NetworkRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {NETWORK_COLUMNS} FROM networks ORDER BY name"
        ))
        .map_err(|e| ctx.map(e))?;
    let raw: Vec<RawNetwork> = stmt
        .query_map([], read_network)
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.map(e))?;
    raw.into_iter().map(|raw| into_network(raw, ctx)).collect()
}

/// Creates or overwrites `record`.
pub(crate) fn write_network(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    record: &NetworkRecord,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO networks (name, definition, revision, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET \
             definition = excluded.definition, revision = excluded.revision, \
             created_at = excluded.created_at, updated_at = excluded.updated_at",
        )
        .map_err(|e| ctx.map(e))?;
    let revision = i64::try_from(record.revision).unwrap_or(i64::MAX);
    stmt.execute(params![
        record.name,
        record.definition.to_string(),
        revision,
        record.created_at,
        record.updated_at
    ])
    .map(drop)
    .map_err(|e| ctx.map(e))
}

/// Deletes network `name` (missing is fine).
pub(crate) fn remove_network(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    name: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM networks WHERE name = ?1")
        .and_then(|mut stmt| stmt.execute(params![name]))
        .map(drop)
        .map_err(|e| ctx.map(e))
}

/// Appends `event` to its network's history, pruning it to `limit` events once every
/// [`prune_interval`]`(limit)` appends.
pub(crate) fn append_history(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    event: &HistoryEvent,
    limit: u32,
) -> Result<(), StoreError> {
    let seq: i64 = conn
        .prepare_cached(&format!(
            "INSERT INTO history ({HISTORY_COLUMNS}) \
             SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
             FROM history WHERE network = ?1 RETURNING seq"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    event.network,
                    event.at,
                    event.kind.as_str(),
                    addr_blob(event.ip),
                    event.container_id,
                    event.ifname,
                    event.pod_namespace,
                    event.pod_name,
                    event.pod_uid,
                    event.node
                ],
                |row| row.get(0),
            )
        })
        .map_err(|e| ctx.map(e))?;
    if seq % i64::from(prune_interval(limit)) != 0 {
        return Ok(());
    }
    conn.prepare_cached(PRUNE_SQL)
        .and_then(|mut stmt| stmt.execute(params![event.network, seq - i64::from(limit)]))
        .map(drop)
        .map_err(|e| ctx.map(e))
}

/// Drops the events of a network at or below a position (a primary-key range delete).
pub(crate) const PRUNE_SQL: &str = "DELETE FROM history WHERE network = ?1 AND seq <= ?2";

/// The history query of `query`'s kind (every one answered from an index).
pub(crate) fn history_sql(query: &HistoryQuery) -> String {
    let filter = match query {
        HistoryQuery::Network { .. } => "network = ?1",
        HistoryQuery::Address { .. } => "network = ?1 AND addr = ?2",
        HistoryQuery::Pod { .. } => "pod_namespace = ?1 AND pod_name = ?2",
        HistoryQuery::PodUid { .. } => "pod_uid = ?1",
    };
    format!("SELECT {HISTORY_COLUMNS} FROM history WHERE {filter}")
}

type RawEvent = (
    String,
    i64,
    i64,
    String,
    Vec<u8>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn read_event(row: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn into_event(raw: RawEvent, ctx: &ErrCtx<'_>) -> Result<HistoryEvent, StoreError> {
    let (
        network,
        seq,
        at,
        kind,
        addr,
        container_id,
        ifname,
        pod_namespace,
        pod_name,
        pod_uid,
        node,
    ) = raw;
    let kind = HistoryKind::parse(&kind)
        .ok_or_else(|| ctx.corrupt(format!("history of {network} holds event kind {kind:?}")))?;
    Ok(HistoryEvent {
        seq: u64::try_from(seq)
            .map_err(|_| ctx.corrupt(format!("history of {network} holds seq {seq}")))?,
        ip: blob_addr(&addr, ctx)?,
        network,
        at,
        kind,
        container_id,
        ifname,
        pod_namespace,
        pod_name,
        pod_uid,
        node,
    })
}

/// The events matching `query`, oldest first.
pub(crate) fn history(
    conn: &Connection,
    ctx: &ErrCtx<'_>,
    query: &HistoryQuery,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&history_sql(query))
        .map_err(|e| ctx.map(e))?;
    let rows = match query {
        HistoryQuery::Network { network } => stmt.query_map(params![network], read_event),
        HistoryQuery::Address { network, ip } => {
            stmt.query_map(params![network, addr_blob(*ip)], read_event)
        }
        HistoryQuery::Pod { namespace, name } => {
            stmt.query_map(params![namespace, name], read_event)
        }
        HistoryQuery::PodUid { uid } => stmt.query_map(params![uid], read_event),
    };
    let raw: Vec<RawEvent> = rows
        .and_then(|rows| rows.collect())
        .map_err(|e| ctx.map(e))?;
    let mut events = raw
        .into_iter()
        .map(|raw| into_event(raw, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    sort_events(&mut events);
    Ok(events)
}
