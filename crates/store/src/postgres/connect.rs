//! Connections: one short-lived connection per call (plugin processes) or a pool (the
//! long-running daemon), the per-call deadline, and retries of contended transactions
//! with the shared [`Backoff`] until that deadline.

use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{PasswordSource, PostgresConfig, SslMode};
use super::errors::ErrCtx;
use super::{statements, tls};
use crate::backoff::Backoff;
use crate::error::StoreError;

/// A boxed future borrowing the client, as operations return it.
pub(crate) type OpFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where connections come from.
pub(crate) enum Source {
    /// A new connection per call, closed at its end.
    Direct {
        /// The connection settings, without the password (read per connection).
        pg: Box<tokio_postgres::Config>,
        /// TLS connector, when TLS is on.
        tls: Option<MakeRustlsConnect>,
    },
    /// Warm connections of the daemon.
    Pool(Pool),
}

/// One connection in use.
enum Conn {
    /// Our own connection and the task driving its socket.
    Direct(Client, JoinHandle<()>),
    /// A pooled connection, returned to the pool on drop.
    Pooled(deadpool_postgres::Object),
}

impl Conn {
    fn client(&mut self) -> &mut Client {
        match self {
            Conn::Direct(client, _) => client,
            Conn::Pooled(object) => object,
        }
    }

    /// The statement cache of a pooled connection (see `statements`).
    fn statement_cache(&self) -> Option<Arc<deadpool_postgres::StatementCache>> {
        match self {
            Conn::Direct(..) => None,
            Conn::Pooled(object) => Some(object.statement_cache.clone()),
        }
    }

    /// Ends the connection politely (direct) or hands it back (pooled); a connection that
    /// failed is closed instead, so the pool never keeps a broken one.
    async fn finish(self, healthy: bool) {
        match self {
            Conn::Direct(client, task) => {
                // Dropping the client makes the task send Terminate and close the socket.
                drop(client);
                let _ = tokio::time::timeout(Duration::from_millis(100), task).await;
            }
            Conn::Pooled(object) if !healthy => drop(deadpool_postgres::Object::take(object)),
            Conn::Pooled(object) => drop(object),
        }
    }
}

/// The connection settings shared by both sources.
pub(crate) fn pg_config(cfg: &PostgresConfig) -> tokio_postgres::Config {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .dbname(&cfg.dbname)
        .user(&cfg.user)
        .application_name("plexus")
        .connect_timeout(cfg.timeout)
        .keepalives(true)
        .ssl_mode(match cfg.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    // A dead server must not hold a call past its deadline, and a vanished client must
    // not hold locks on the server past it either.
    let ms = cfg.timeout.as_millis();
    pg.tcp_user_timeout(cfg.timeout).options(format!(
        "-c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
    ));
    pg
}

/// The password of `cfg`, read now (a rotated file is picked up by the next connection).
pub(crate) fn read_password(cfg: &PostgresConfig) -> Result<Option<String>, StoreError> {
    match &cfg.password {
        None => Ok(None),
        Some(PasswordSource::Inline(secret)) => Ok(Some(secret.expose().to_string())),
        Some(PasswordSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                let hint = if e.kind() == ErrorKind::NotFound {
                    " (is the secret mounted?)"
                } else {
                    ""
                };
                StoreError::Unavailable {
                    reason: format!(
                        "cannot read ipam.store.password_file {}: {e}{hint}",
                        path.display()
                    ),
                }
            })?;
            // `echo secret > file` leaves a line break that is not part of the password.
            let password = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Ok(Some(password.to_string()))
        }
    }
}

impl Source {
    /// A direct source for `cfg`.
    pub fn direct(cfg: &PostgresConfig) -> Result<Source, StoreError> {
        let tls = tls::client_config(cfg)?.map(MakeRustlsConnect::new);
        Ok(Source::Direct {
            pg: Box::new(pg_config(cfg)),
            tls,
        })
    }

    /// A pool of at most `max_size` connections for `cfg`; connects lazily. The password
    /// is read once, here.
    pub fn pool(cfg: &PostgresConfig, max_size: usize) -> Result<Source, StoreError> {
        let mut pg = pg_config(cfg);
        if let Some(password) = read_password(cfg)? {
            pg.password(password);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::client_config(cfg)? {
            Some(tls) => Manager::from_config(pg, MakeRustlsConnect::new(tls), manager_config),
            None => Manager::from_config(pg, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal {
                reason: format!("cannot build the PostgreSQL pool: {e}"),
            })?;
        Ok(Source::Pool(pool))
    }

    async fn connect(&self, cfg: &PostgresConfig, ctx: &ErrCtx) -> Result<Conn, StoreError> {
        match self {
            Source::Direct { pg, tls } => {
                let mut pg = (**pg).clone();
                if let Some(password) = read_password(cfg)? {
                    pg.password(password);
                }
                let (client, task) = match tls {
                    Some(tls) => {
                        let (client, connection) =
                            pg.connect(tls.clone()).await.map_err(|e| ctx.map(&e))?;
                        (client, tokio::spawn(drive(connection)))
                    }
                    None => {
                        let (client, connection) =
                            pg.connect(NoTls).await.map_err(|e| ctx.map(&e))?;
                        (client, tokio::spawn(drive(connection)))
                    }
                };
                Ok(Conn::Direct(client, task))
            }
            Source::Pool(pool) => pool.get().await.map(Conn::Pooled).map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => ctx.map(&e),
                other => StoreError::Unavailable {
                    reason: ctx.scrub(format!("no PostgreSQL connection from the pool: {other}")),
                },
            }),
        }
    }
}

/// Drives one connection's socket until the client is dropped or the server goes away.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(err) = connection.await {
        // The operation sees the same failure through its client and reports it.
        tracing::debug!(%err, "PostgreSQL connection ended with an error");
    }
}

/// Runs `op` on a connection from `source` within `cfg.timeout`, retrying contention
/// (serialization failure, deadlock, too many connections) until that deadline, after
/// which the call ends with [`StoreError::Busy`].
///
/// `prepare` runs once per connection before the first attempt (the schema check).
pub(crate) async fn run<T>(
    source: &Source,
    cfg: &PostgresConfig,
    ctx: &ErrCtx,
    what: &str,
    prepare: impl for<'c> Fn(&'c mut Client) -> OpFuture<'c, ()>,
    op: impl for<'c> Fn(&'c mut Client) -> OpFuture<'c, T>,
) -> Result<T, StoreError> {
    let mut backoff = Backoff::until(Instant::now() + cfg.timeout);
    let attempts = async {
        // A server refusing connections as busy (starting up, shutting down, too many
        // clients) is tried again like a contended transaction.
        let mut conn = loop {
            let err = match source.connect(cfg, ctx).await {
                Ok(conn) => break conn,
                Err(err) => err,
            };
            if !err.is_transient() || !backoff.wait().await {
                return Err(err);
            }
            tracing::debug!(%err, "server busy; connecting again");
        };
        let cache = conn.statement_cache();
        let attempts = attempt_all(conn.client(), backoff, &prepare, &op);
        let result = statements::with_cache(cache, attempts).await;
        let healthy = !matches!(result, Err(StoreError::Unavailable { .. }));
        conn.finish(healthy).await;
        result
    };
    match tokio::time::timeout(cfg.timeout, attempts).await {
        Ok(result) => result,
        // The dropped future closed its connection: the server rolls the transaction back.
        Err(_) => Err(ctx.timed_out(what)),
    }
}

async fn attempt_all<T>(
    client: &mut Client,
    mut backoff: Backoff,
    prepare: &impl for<'c> Fn(&'c mut Client) -> OpFuture<'c, ()>,
    op: &impl for<'c> Fn(&'c mut Client) -> OpFuture<'c, T>,
) -> Result<T, StoreError> {
    prepare(client).await?;
    loop {
        match op(client).await {
            Err(err) if err.is_transient() => {
                tracing::debug!(%err, attempt = backoff.failures() + 1, "contended; retrying");
                if !backoff.wait().await {
                    return Err(err);
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn password_file_loses_one_line_break_only() {
        for (content, expected) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            (" pw \n\n", " pw \n"),
        ] {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(content.as_bytes()).unwrap();
            let mut cfg = PostgresConfig::new("h");
            cfg.password = Some(PasswordSource::File(file.path().to_path_buf()));
            assert_eq!(
                read_password(&cfg).unwrap().as_deref(),
                Some(expected),
                "{content:?}"
            );
        }
    }

    #[test]
    fn a_missing_password_file_is_unavailable_and_named() {
        let mut cfg = PostgresConfig::new("h");
        cfg.password = Some(PasswordSource::File("/nonexistent/pg-pw".into()));
        let err = read_password(&cfg).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/pg-pw"), "{err}");
    }

    /// A fake server that refuses every connection as PostgreSQL does while it starts up
    /// or shuts down (FATAL, SQLSTATE 57P03), counting the connections it was offered.
    async fn shutting_down_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let offered = Arc::new(AtomicUsize::new(0));
        let counter = offered.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // The startup message: its length (itself included), then the rest.
                let mut len = [0u8; 4];
                if socket.read_exact(&mut len).await.is_err() {
                    continue;
                }
                let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                if socket.read_exact(&mut rest).await.is_err() {
                    continue;
                }
                let mut fields = Vec::new();
                for (tag, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "57P03"),
                    (b'M', "the database system is shutting down"),
                ] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut message = vec![b'E'];
                message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                message.extend_from_slice(&fields);
                let _ = socket.write_all(&message).await;
            }
        });
        (port, offered)
    }

    fn nothing(_: &mut Client) -> OpFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_server_refusing_connections_as_busy_is_connected_again_until_the_deadline() {
        let (port, offered) = shutting_down_server().await;
        let mut cfg = PostgresConfig::new("127.0.0.1");
        cfg.port = port;
        cfg.sslmode = SslMode::Disable;
        cfg.timeout = Duration::from_millis(400);
        let ctx = ErrCtx {
            endpoint: cfg.endpoint(),
            dbname: cfg.dbname.clone(),
            timeout: cfg.timeout,
            secret: None,
            sslmode: cfg.sslmode,
        };
        let source = Source::direct(&cfg).unwrap();
        let started = Instant::now();
        let got = run(&source, &cfg, &ctx, "the probe", nothing, nothing).await;
        let elapsed = started.elapsed();
        assert!(matches!(got, Err(StoreError::Busy { .. })), "{got:?}");
        let offered = offered.load(std::sync::atomic::Ordering::SeqCst);
        // Pauses of 2-4, 4-8, 8-16, ... ms: far more than two attempts fit in 400 ms.
        assert!(offered >= 3, "connected only {offered} times");
        // It gave up only when the next pause (at most 128 ms) would pass the deadline.
        assert!(
            elapsed >= Duration::from_millis(250),
            "gave up early: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_millis(900), "overran: {elapsed:?}");
    }

    #[test]
    fn server_side_timeouts_follow_the_deadline() {
        let mut cfg = PostgresConfig::new("db");
        cfg.timeout = Duration::from_millis(1500);
        let pg = pg_config(&cfg);
        let options = pg.get_options().unwrap_or_default();
        assert!(options.contains("statement_timeout=1500"), "{options}");
        assert!(options.contains("lock_timeout=1500"), "{options}");
        assert!(
            options.contains("idle_in_transaction_session_timeout=1500"),
            "{options}"
        );
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_millis(1500)));
    }
}
