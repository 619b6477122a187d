//! The SQL of the `"ips-table"` layout: the `ips` table of the CNI 1.1 talk's IPAM
//! plugin (maiqueb/devconf2024) plus plexus's small side table `plexus_talk`.
//!
//! ```sql
//! ips(id serial PRIMARY KEY, pod_id varchar(64) UNIQUE NOT NULL,
//!     interface varchar(16) NOT NULL, ip varchar(128) UNIQUE NOT NULL,
//!     created_on timestamp DEFAULT now())
//! ```
//! `ip` holds `address/prefix` text, so the talk's own `UNIQUE (ip)` would accept one
//! address spelled twice (`10.0.0.5/24`, `10.0.0.5/32`). plexus adds the unique index
//! `plexus_ips_addr` on `host(ip::inet)::inet`: the server then refuses a second holder of
//! an address whatever its spelling, and the free-address search is an index range scan.
//! `plexus_talk(key, value)` keeps what the talk's table has no column for: the one
//! network the table belongs to, next-fit cursors, the STATUS heartbeat.
//!
//! plexus also adds the nullable column `plexus_node` to `ips` (the node that claimed the
//! row): a node's GC on a shared database may only collect its own rows. The talk's own
//! plugin never writes it, so its rows read as "node unknown" and no node's GC touches
//! them. Adding a nullable column keeps the talk's inserts (named or positional) working.

use std::net::IpAddr;

use plexus_ipam_core::addr::canonical;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::error::StoreError;
use crate::gc_scope::AttachedRow;
use crate::postgres::errors::ErrCtx;
use crate::types::{Allocation, AttachmentKey, Owner};

/// Longest `pod_id` (container id) the talk's table takes.
pub(crate) const MAX_POD_ID: usize = 64;
/// Longest `interface` the talk's table takes.
pub(crate) const MAX_INTERFACE: usize = 16;

/// The indexed address expression; queries must spell it exactly so to use the index.
const ADDR: &str = "host(ip::inet)::inet";

/// Advisory lock (one `bigint` key) serializing setup and every write of this layout:
/// "plexus", then 2.
pub(crate) const IPS_TABLE_LOCK: i64 = 0x706c_6578_7573_0002;

/// Creates what is missing: the talk's table exactly as its plugin creates it, the address
/// index and the side table. Idempotent.
pub(crate) const SETUP_SQL: &str = r#"
    CREATE TABLE IF NOT EXISTS ips (
        id serial PRIMARY KEY,
        pod_id VARCHAR(64) UNIQUE NOT NULL,
        interface VARCHAR(16) NOT NULL,
        ip VARCHAR(128) UNIQUE NOT NULL,
        created_on TIMESTAMP DEFAULT now()
    );
    CREATE UNIQUE INDEX IF NOT EXISTS plexus_ips_addr ON ips ((host(ip::inet)::inet));
    ALTER TABLE ips ADD COLUMN IF NOT EXISTS plexus_node text;
    CREATE TABLE IF NOT EXISTS plexus_talk (
        key text COLLATE "C" PRIMARY KEY,
        value text NOT NULL
    );"#;

/// Whether the index, the side table and the node column exist (the one query of an
/// up-to-date database; a table prepared by an older plexus gets the column then).
pub(crate) const READY_SQL: &str = "SELECT to_regclass('plexus_ips_addr') IS NOT NULL \
     AND to_regclass('plexus_talk') IS NOT NULL \
     AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('ips') \
                 AND attname = 'plexus_node' AND NOT attisdropped)";

/// Columns in the order [`allocation_of`] expects.
const COLUMNS: &str =
    "pod_id, interface, ip, extract(epoch FROM created_on)::bigint, id, plexus_node";

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

async fn query(
    client: &Client,
    ctx: &ErrCtx,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, StoreError> {
    client
        .query_typed(sql, params)
        .await
        .map_err(|e| ctx.map(&e))
}

/// The address and prefix length of an `ip` column value (`a.b.c.d/len` or bare).
pub(crate) fn parse_ip_column(text: &str) -> Option<(IpAddr, Option<u8>)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        Some(p) if p > bits => None,
        _ => Some((canonical(ip), prefix)),
    }
}

/// The `ip` column value plexus writes: `address/prefix`, as the talk's plugin stores it.
pub(crate) fn ip_column(ip: IpAddr, prefix: u8) -> String {
    format!("{ip}/{prefix}")
}

/// What the range set of a stored row reads as: the subnet of its `address/prefix`
/// (the talk's table does not record range sets).
pub(crate) fn subnet_of(ip: IpAddr, prefix: Option<u8>) -> String {
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(bits);
    ipnet::IpNet::new(ip, prefix)
        .map(|net| net.trunc().to_string())
        .unwrap_or_else(|_| format!("{ip}/{bits}"))
}

fn allocation_of(row: &Row, network: &str, ctx: &ErrCtx) -> Result<Allocation, StoreError> {
    let get_err = |e: tokio_postgres::Error| ctx.corrupt(format!("unexpected value in ips: {e}"));
    let id: i32 = row.try_get(4).map_err(get_err)?;
    let text: String = row.try_get(2).map_err(get_err)?;
    let (ip, prefix) = parse_ip_column(&text).ok_or_else(|| {
        ctx.corrupt(format!(
            "ips row {id} holds {text:?}, not an address/prefix"
        ))
    })?;
    Ok(Allocation {
        network: network.to_string(),
        container_id: row.try_get(0).map_err(get_err)?,
        ifname: row.try_get(1).map_err(get_err)?,
        ip,
        range_set: subnet_of(ip, prefix),
        owner: Owner::default(),
        created_at: row
            .try_get::<_, Option<i64>>(3)
            .map_err(get_err)?
            .unwrap_or(0),
        node: row.try_get(5).map_err(get_err)?,
    })
}

fn allocations_of(
    rows: &[Row],
    network: &str,
    ctx: &ErrCtx,
) -> Result<Vec<Allocation>, StoreError> {
    let mut all: Vec<Allocation> = rows
        .iter()
        .map(|row| allocation_of(row, network, ctx))
        .collect::<Result<_, _>>()?;
    all.sort_by_key(|a| plexus_ipam_core::addr::key(a.ip));
    Ok(all)
}

/// A value of the side table.
pub(crate) async fn get_value(
    client: &Client,
    ctx: &ErrCtx,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let rows = query(
        client,
        ctx,
        "SELECT value FROM plexus_talk WHERE key = $1",
        &[(&key, Type::TEXT)],
    )
    .await?;
    rows.first()
        .map(|row| {
            row.try_get(0)
                .map_err(|e| ctx.corrupt(format!("unexpected value in plexus_talk: {e}")))
        })
        .transpose()
}

/// Sets a value of the side table (create or overwrite).
pub(crate) async fn set_value(
    client: &Client,
    ctx: &ErrCtx,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    query(
        client,
        ctx,
        "INSERT INTO plexus_talk (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[(&key, Type::TEXT), (&value, Type::TEXT)],
    )
    .await
    .map(drop)
}

/// The row of the container `container_id` (at most one: `pod_id` is unique).
pub(crate) async fn by_container(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    container_id: &str,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM ips WHERE pod_id = $1");
    let rows = query(client, ctx, &sql, &[(&container_id, Type::TEXT)]).await?;
    rows.first()
        .map(|row| allocation_of(row, network, ctx))
        .transpose()
}

/// Everything held by `key` (zero or one row).
pub(crate) async fn attachment(
    client: &Client,
    ctx: &ErrCtx,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let held = by_container(client, ctx, &key.network, &key.container_id).await?;
    Ok(held
        .into_iter()
        .filter(|a| a.ifname == key.ifname)
        .collect())
}

/// The row holding `ip`, whatever prefix it was written with.
pub(crate) async fn holder(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
    ip: IpAddr,
) -> Result<Option<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM ips WHERE {ADDR} = $1");
    let ip = canonical(ip);
    let rows = query(client, ctx, &sql, &[(&ip, Type::INET)]).await?;
    rows.first()
        .map(|row| allocation_of(row, network, ctx))
        .transpose()
}

/// Every row, ordered by address.
pub(crate) async fn list(
    client: &Client,
    ctx: &ErrCtx,
    network: &str,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM ips");
    let rows = query(client, ctx, &sql, &[]).await?;
    allocations_of(&rows, network, ctx)
}

/// Held addresses within `[lo, hi]` (one family), ascending: an index range scan.
pub(crate) async fn held_between(
    client: &Client,
    ctx: &ErrCtx,
    lo: IpAddr,
    hi: IpAddr,
) -> Result<Vec<IpAddr>, StoreError> {
    let sql = format!("SELECT {ADDR} FROM ips WHERE {ADDR} BETWEEN $1 AND $2 ORDER BY 1");
    let rows = query(client, ctx, &sql, &[(&lo, Type::INET), (&hi, Type::INET)]).await?;
    rows.iter()
        .map(|row| {
            row.try_get::<_, IpAddr>(0)
                .map(canonical)
                .map_err(|e| ctx.corrupt(format!("unexpected address in ips: {e}")))
        })
        .collect()
}

/// Number of rows with an address within `[lo, hi]` (one family).
pub(crate) async fn count_between(
    client: &Client,
    ctx: &ErrCtx,
    lo: IpAddr,
    hi: IpAddr,
) -> Result<u64, StoreError> {
    let sql = format!("SELECT count(*) FROM ips WHERE {ADDR} BETWEEN $1 AND $2");
    let rows = query(client, ctx, &sql, &[(&lo, Type::INET), (&hi, Type::INET)]).await?;
    let count: i64 = match rows.first() {
        Some(row) => row
            .try_get(0)
            .map_err(|e| ctx.corrupt(format!("unexpected count: {e}")))?,
        None => 0,
    };
    u64::try_from(count).map_err(|_| ctx.corrupt(format!("negative row count {count}")))
}

/// Inserts one row. `Ok(false)` when the address or the container is taken (the
/// statement skips the row; the transaction stays usable).
pub(crate) async fn insert(
    client: &Client,
    ctx: &ErrCtx,
    a: &Allocation,
    prefix: u8,
) -> Result<bool, StoreError> {
    let ip = ip_column(a.ip, prefix);
    client
        .execute_typed(
            "INSERT INTO ips (pod_id, interface, ip, created_on, plexus_node) \
             VALUES ($1, $2, $3, to_timestamp($4) AT TIME ZONE 'UTC', $5) ON CONFLICT DO NOTHING",
            &[
                (&a.container_id, Type::VARCHAR),
                (&a.ifname, Type::VARCHAR),
                (&ip, Type::VARCHAR),
                (&(a.created_at as f64), Type::FLOAT8),
                (&a.node, Type::TEXT),
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(|e| ctx.map(&e))
}

/// Deletes the row of `key`, returning it (zero or one).
pub(crate) async fn delete_attachment(
    client: &Client,
    ctx: &ErrCtx,
    key: &AttachmentKey,
) -> Result<Vec<Allocation>, StoreError> {
    let sql = format!("DELETE FROM ips WHERE pod_id = $1 AND interface = $2 RETURNING {COLUMNS}");
    let rows = query(
        client,
        ctx,
        &sql,
        &[
            (&key.container_id, Type::VARCHAR),
            (&key.ifname, Type::VARCHAR),
        ],
    )
    .await?;
    allocations_of(&rows, &key.network, ctx)
}

/// Every `(pod_id, interface)` of the table.
pub(crate) async fn attachments(
    client: &Client,
    ctx: &ErrCtx,
) -> Result<Vec<AttachedRow>, StoreError> {
    let rows = query(
        client,
        ctx,
        "SELECT pod_id, interface, ip, plexus_node FROM ips",
        &[],
    )
    .await?;
    let get_err = |e: tokio_postgres::Error| ctx.corrupt(format!("unexpected value in ips: {e}"));
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(2).map_err(get_err)?;
            let (ip, prefix) = parse_ip_column(&text)
                .ok_or_else(|| ctx.corrupt(format!("ips holds {text:?}, not an address/prefix")))?;
            Ok(AttachedRow {
                container_id: row.try_get(0).map_err(get_err)?,
                ifname: row.try_get(1).map_err(get_err)?,
                node: row.try_get(3).map_err(get_err)?,
                range_set: subnet_of(ip, prefix),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_spellings_of_the_talk() {
        assert_eq!(
            parse_ip_column("192.168.200.1/24"),
            Some((ip("192.168.200.1"), Some(24)))
        );
        assert_eq!(parse_ip_column("10.0.0.1"), Some((ip("10.0.0.1"), None)));
        assert_eq!(
            parse_ip_column("fd00::1/64"),
            Some((ip("fd00::1"), Some(64)))
        );
        assert_eq!(
            parse_ip_column("::ffff:10.0.0.9/24"),
            Some((ip("10.0.0.9"), Some(24))),
            "IPv4-mapped is the IPv4 address"
        );
        for bad in [
            "",
            "10.0.0.1/33",
            "fd00::1/129",
            "10.0.0/24",
            "x/24",
            "10.0.0.1/",
        ] {
            assert_eq!(parse_ip_column(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subnets_of_stored_rows() {
        assert_eq!(
            subnet_of(ip("192.168.200.22"), Some(24)),
            "192.168.200.0/24"
        );
        assert_eq!(subnet_of(ip("10.0.0.1"), None), "10.0.0.1/32");
        assert_eq!(subnet_of(ip("fd00::5"), Some(120)), "fd00::/120");
    }

    proptest::proptest! {
        /// What plexus writes reads back as the same address and prefix.
        #[test]
        fn column_round_trips(raw in proptest::num::u32::ANY, prefix in 0u8..=32) {
            let addr = IpAddr::from(raw.to_be_bytes());
            proptest::prop_assert_eq!(
                parse_ip_column(&ip_column(addr, prefix)),
                Some((addr, Some(prefix)))
            );
        }
    }
}
