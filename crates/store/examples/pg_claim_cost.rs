//! What one plugin call costs on the PostgreSQL store: open a store, connect (TCP +
//! SCRAM-SHA-256 login), check the schema, claim in one transaction, commit, close. Also
//! the same claim on warm pooled connections (the daemon's path) for comparison.
//!
//! Run against the test server (results go to stderr):
//! `scripts/with-servers cargo run --release -p plexus-store --example pg_claim_cost`
//! Set `PLEXUS_BENCH_CLAIMS` to change the number of claims per mode (default 500).

use std::time::{Duration, Instant};

use plexus_ipam_core::range::{Range, RangeSet};
use plexus_store::{
    AttachmentKey, BlockPolicy, Claim, ClaimContext, Owner, PasswordSource, PostgresConfig,
    PostgresStore, SslMode, Store,
};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: run under scripts/with-servers"))
}

fn config() -> Result<PostgresConfig, String> {
    let mut cfg = PostgresConfig::new(env("PLEXUS_TEST_PG_HOST")?);
    cfg.port = env("PLEXUS_TEST_PG_PORT")?
        .parse()
        .map_err(|e| format!("PLEXUS_TEST_PG_PORT: {e}"))?;
    cfg.user = env("PLEXUS_TEST_PG_USER")?;
    cfg.dbname = env("PLEXUS_TEST_PG_DB")?;
    cfg.password = Some(PasswordSource::File(
        env("PLEXUS_TEST_PG_PASSWORD_FILE")?.into(),
    ));
    cfg.sslmode = SslMode::Disable;
    Ok(cfg)
}

fn pool() -> Result<RangeSet, String> {
    let subnet = "10.128.0.0/12"
        .parse()
        .map_err(|e| format!("subnet: {e}"))?;
    let range = Range::new(subnet, None, None, None, Vec::new()).map_err(|e| e.to_string())?;
    RangeSet::new(vec![range]).map_err(|e| e.to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn report(mode: &str, mut times: Vec<Duration>) {
    times.sort();
    let total: Duration = times.iter().sum();
    let mean = total / u32::try_from(times.len().max(1)).unwrap_or(u32::MAX);
    eprintln!(
        "{mode:<44} n={:<5} mean={:>8.3} ms  p50={:>8.3} ms  p99={:>8.3} ms",
        times.len(),
        mean.as_secs_f64() * 1e3,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() -> Result<(), String> {
    let cfg = config()?;
    let claims: usize = std::env::var("PLEXUS_BENCH_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let set = pool()?;
    let network = format!("bench-{}", std::process::id());
    let ctx = ClaimContext::new("bench-node", BlockPolicy::default());
    // A plugin's runtime: current-thread, no I/O driver of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let claim = |store: &PostgresStore, i: usize, tag: &str| {
        let key = AttachmentKey::new(&network, format!("{tag}-{i}"), "eth0");
        rt.block_on(store.claim(&key, &Owner::default(), &[Claim::Dynamic(&set)], &ctx))
            .map_err(|e| e.to_string())
    };
    // Warm-up: creates or migrates the schema once.
    claim(
        &PostgresStore::open(&cfg).map_err(|e| e.to_string())?,
        0,
        "warmup",
    )?;

    let mut per_call = Vec::with_capacity(claims);
    for i in 0..claims {
        let started = Instant::now();
        let store = PostgresStore::open(&cfg).map_err(|e| e.to_string())?;
        claim(&store, i, "direct")?;
        drop(store);
        per_call.push(started.elapsed());
    }
    report("plugin call: open+connect+claim+commit+close", per_call);

    let mut connect_only = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let store = PostgresStore::open(&cfg).map_err(|e| e.to_string())?;
        rt.block_on(store.probe()).map_err(|e| e.to_string())?;
        connect_only.push(started.elapsed());
    }
    report("open+connect+probe (heartbeat write)+close", connect_only);

    // For attribution: tokio-postgres alone, connect (SCRAM login) + one query + close.
    let password =
        std::fs::read_to_string(env("PLEXUS_TEST_PG_PASSWORD_FILE")?).map_err(|e| e.to_string())?;
    let mut raw = tokio_postgres::Config::new();
    raw.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.dbname)
        .password(password.trim_end());
    let io_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut bare = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        io_rt.block_on(async {
            let (client, connection) = raw
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let task = tokio::spawn(connection);
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            drop(client);
            let _ = task.await;
            Ok::<(), String>(())
        })?;
        bare.push(started.elapsed());
    }
    report("tokio-postgres alone: connect+SELECT 1+close", bare);

    let pooled = PostgresStore::pooled(&cfg, 4).map_err(|e| e.to_string())?;
    claim(&pooled, 0, "pool-warmup")?;
    let mut warm = Vec::with_capacity(claims);
    for i in 0..claims {
        let started = Instant::now();
        claim(&pooled, i, "pooled")?;
        warm.push(started.elapsed());
    }
    report("daemon: claim+commit on a pooled connection", warm);
    Ok(())
}
