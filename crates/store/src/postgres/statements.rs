//! Prepared statements on pooled connections.
//!
//! A plugin process's own connection runs a handful of statements once, so it sends each
//! as an unnamed statement with its parameter types (`query_typed`: one round trip, but
//! parsed, analysed and planned by the server every time). A pooled connection of the
//! node agent runs the same dozen statements for every claim and release: there each is
//! prepared once per connection (deadpool's per-connection statement cache) and later
//! calls only bind and execute it. `connect::run` makes the connection's cache available
//! to the operation through a task-local ([`with_cache`]); every statement of the hot
//! path goes through [`query_typed`] / [`execute_typed`] here, which use it when set.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::StatementCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row};

tokio::task_local! {
    /// The statement cache of the pooled connection the current operation runs on.
    static CACHE: Arc<StatementCache>;
}

/// A parameter and its type, as `Client::query_typed` takes them.
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Runs `op` with `cache` (the connection's, when pooled) available to the statements below.
pub(crate) async fn with_cache<F: Future>(cache: Option<Arc<StatementCache>>, op: F) -> F::Output {
    match cache {
        Some(cache) => CACHE.scope(cache, op).await,
        None => op.await,
    }
}

/// The prepared form of `sql` when the connection caches statements.
async fn prepared(
    client: &Client,
    sql: &str,
    params: &[Param<'_>],
) -> Option<Result<tokio_postgres::Statement, Error>> {
    let cache = CACHE.try_with(Arc::clone).ok()?;
    let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
    Some(cache.prepare_typed(client, sql, &types).await)
}

/// A statement resolved ahead of sending: prepared (pooled connections) or sent unnamed
/// with its types. Resolving first lets a caller pipeline several statements in a known
/// order: each request below goes out on its future's first poll.
pub(crate) enum Resolved<'s> {
    Prepared(tokio_postgres::Statement),
    Unnamed(&'s str),
}

impl<'s> Resolved<'s> {
    /// Prepares `sql` (a cache hit costs nothing) when the connection caches statements.
    pub(crate) async fn of(
        client: &Client,
        sql: &'s str,
        params: &[Param<'_>],
    ) -> Result<Resolved<'s>, Error> {
        Ok(match prepared(client, sql, params).await {
            Some(statement) => Resolved::Prepared(statement?),
            None => Resolved::Unnamed(sql),
        })
    }

    /// Runs the statement and returns its rows.
    pub(crate) async fn query(
        &self,
        client: &Client,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, Error> {
        match self {
            Resolved::Prepared(statement) => client.query(statement, &values(params)).await,
            Resolved::Unnamed(sql) => client.query_typed(sql, params).await,
        }
    }

    /// Runs the statement and returns the number of rows it changed.
    pub(crate) async fn execute(
        &self,
        client: &Client,
        params: &[Param<'_>],
    ) -> Result<u64, Error> {
        match self {
            Resolved::Prepared(statement) => client.execute(statement, &values(params)).await,
            Resolved::Unnamed(sql) => client.execute_typed(sql, params).await,
        }
    }
}

fn values<'a>(params: &[Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}

/// `Client::query_typed`, through a prepared statement on pooled connections.
pub(crate) async fn query_typed(
    client: &Client,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, Error> {
    Resolved::of(client, sql, params)
        .await?
        .query(client, params)
        .await
}

/// `Client::execute_typed`, through a prepared statement on pooled connections.
pub(crate) async fn execute_typed(
    client: &Client,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, Error> {
    Resolved::of(client, sql, params)
        .await?
        .execute(client, params)
        .await
}
