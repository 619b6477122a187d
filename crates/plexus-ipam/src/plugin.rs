//! The five CNI verbs of `plexus-ipam` (VERSION is answered by the runner).
//!
//! Each verb parses its inputs ([`crate::request`]), opens the configured store and makes
//! one store call ([`crate::store_call`]): the store retries transient failures itself
//! until its deadline, the plugin never loops around it. Uniqueness is the store's job:
//! the plugin never decides "free" by reading and then writing.
//!
//! Only an ADD with its own ranges may create the store (a SQLite file). Every other call
//! needs it to exist: an ADD from a stored network (`"network"`) and CHECK refuse a missing
//! store naming where they looked; DEL and GC of a store that does not exist have nothing
//! to release; STATUS of one is ready (the first ADD creates it).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use plexus_cni::{Dns, Error as CniError, IpConfig, Plugin, Request, Route, SuccessResult, codes};
use plexus_ipam_core::PoolConfig;
use plexus_ipam_core::addr::Family;
use plexus_store::{AgentSetting, Allocation, ClaimContext, GcScope, OpenMode, Store, StoreConfig};
use serde_json::Value;

use crate::store_call::store_call;
use crate::stored::Resolved;
use crate::{IpamError, logging, request, shared, stored};

/// How long STATUS may take before it answers "not available" (the runtime polls it often).
pub const STATUS_DEADLINE: Duration = Duration::from_millis(1500);

/// The `plexus-ipam` plugin. How long a call may take is the store's configured deadline
/// (`timeout_ms`, `busy_timeout_ms`): past it, a busy store answers code 11.
#[derive(Debug, Clone, Default)]
pub struct IpamPlugin {}

/// Runs a future to completion on a fresh current-thread runtime with I/O and timers (one
/// CNI call = one process; see "Execution model" in docs/architecture.md).
fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, IpamError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            IpamError::Cni(CniError::new(
                codes::INTERNAL,
                format!("cannot start runtime: {e}"),
                String::new(),
            ))
        })?;
    Ok(runtime.block_on(fut))
}

/// Opens the configured store, through the node agent when `agent` names a live one and
/// directly otherwise; failures to open are store errors (code 11, or 50 for STATUS).
///
/// If the agent dies during a call, the store repeats the call directly only when that
/// is safe: an ADD's claim is idempotent by (network, container id, ifname), so a claim
/// the agent already committed comes back as the same allocation, never a second one.
async fn open_store(
    config: &StoreConfig,
    agent: &AgentSetting,
    mode: OpenMode,
) -> Result<Box<dyn Store>, IpamError> {
    Ok(plexus_store::open_with_agent_as(config, agent, mode).await?)
}

/// Whether `config` names a SQLite file that is not there (nothing was ever allocated in
/// it: DEL and GC have nothing to release, STATUS nothing to count).
fn sqlite_missing(config: &StoreConfig) -> bool {
    matches!(config, StoreConfig::Sqlite(sqlite)
        if matches!(std::fs::symlink_metadata(&sqlite.path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound))
}

impl IpamPlugin {
    /// ADD in one pass: parse the request, resolve the network, build the claim, claim.
    fn add_inner(&self, req: &Request) -> Result<SuccessResult, IpamError> {
        let add = request::AddRequest::parse(&req.conf, &req.env)?;
        let (resolved, key, allocations) = block_on(async {
            let store = open_store(&add.store, &add.agent, add.open_mode()).await?;
            let location = add.store.location();
            let resolved = stored::resolve(&req.conf, add.source, &*store, &location).await?;
            let pool = &resolved.pool;
            shared::refuse_legacy_holdings(pool, &*store).await?;
            let key = request::attachment_key(&pool.network, &req.env)?;
            let statics = request::place_statics(&add.requested, pool)?;
            let claims = request::claims(pool, &statics);
            let ctx = ClaimContext::new(add.node, pool.blocks);
            let allocations = store_call(store.claim(&key, &add.owner, &claims, &ctx)).await?;
            Ok::<_, IpamError>((resolved, key, allocations))
        })??;
        tracing::info!(
            network = %resolved.pool.network,
            container = %key.container_id,
            ifname = %key.ifname,
            addresses = ?allocations.iter().map(|a| a.ip).collect::<Vec<_>>(),
            "allocated"
        );
        Ok(build_result(&resolved, &allocations))
    }

    fn del_inner(&self, req: &Request) -> Result<(), IpamError> {
        if request::names_kubernetes_datastore(&req.conf) {
            // ADD refuses this configuration, so nothing was ever allocated for it.
            tracing::warn!(
                "DEL: whereabouts' Kubernetes datastore and no ipam.store; nothing to release"
            );
            return Ok(());
        }
        let (network, legacy, store_config) = request::network_and_store_lenient(&req.conf)?;
        let agent = request::agent_lenient(&req.conf);
        let key = request::attachment_key(&network, &req.env)?;
        // An attachment made before the network became shared is released where it was
        // made (releasing nothing costs one idempotent call).
        let legacy_key = legacy
            .map(|name| request::attachment_key(&name, &req.env))
            .transpose()?;
        if sqlite_missing(&store_config) {
            tracing::info!(
                store = %store_config.location(),
                "DEL: the store does not exist, nothing to release"
            );
            return Ok(());
        }
        let released = block_on(async {
            let store = open_store(&store_config, &agent, OpenMode::MustExist).await?;
            let mut released = store_call(store.release(&key)).await?;
            if let Some(legacy_key) = &legacy_key {
                released.extend(store_call(store.release(legacy_key)).await?);
            }
            Ok::<_, IpamError>(released)
        })??;
        tracing::info!(
            network = %network,
            container = %key.container_id,
            ifname = %key.ifname,
            released = released.len(),
            "released"
        );
        Ok(())
    }

    fn check_inner(&self, req: &Request) -> Result<(), IpamError> {
        let source = request::source(&req.conf)?;
        let store_config = request::store(&req.conf)?;
        let agent = request::agent(&req.conf)?;
        let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
            IpamError::Cni(CniError::new(
                codes::INVALID_CONFIG,
                "CHECK needs prevResult in the network configuration",
                String::new(),
            ))
        })?;
        let prev = SuccessResult::from_json(prev)?;
        let (pool, key, held) = block_on(async {
            let store = open_store(&store_config, &agent, OpenMode::MustExist).await?;
            let pool = stored::resolve(&req.conf, source, &*store, &store_config.location())
                .await?
                .pool;
            let mut key = request::attachment_key(&pool.network, &req.env)?;
            let mut held = store_call(store.attachment(&key)).await?;
            if let (true, Some(legacy)) = (held.is_empty(), &pool.legacy_network) {
                // Attached before the network became shared: still held where it was made.
                key = request::attachment_key(legacy, &req.env)?;
                held = store_call(store.attachment(&key)).await?;
            }
            Ok::<_, IpamError>((pool, key, held))
        })??;
        check_against(&pool, &key_label(&key), &prev, &held)
    }

    fn status_inner(&self, req: &Request) -> Result<(), IpamError> {
        let source = request::source(&req.conf)?;
        let store_config = request::store(&req.conf)?.with_timeout(STATUS_DEADLINE);
        let agent = request::agent(&req.conf)?;
        let unavailable = |e: IpamError| IpamError::NotAvailable(format!("store not usable: {e}"));
        if matches!(source, request::PoolSource::Inline(_)) && sqlite_missing(&store_config) {
            // Ready: the first ADD creates the store (STATUS creates nothing).
            tracing::info!(
                store = %store_config.location(),
                "STATUS: the store does not exist yet; the first ADD creates it"
            );
            return Ok(());
        }
        block_on(async {
            let store = open_store(&store_config, &agent, OpenMode::MustExist)
                .await
                .map_err(unavailable)?;
            store.probe().await.map_err(|e| unavailable(e.into()))?;
            let location = store_config.location();
            let pool = match stored::resolve(&req.conf, source, &*store, &location).await {
                // A network missing from the store is a configuration error, not an outage.
                Err(IpamError::Store(e)) => return Err(unavailable(e.into())),
                other => other?.pool,
            };
            for set in &pool.range_sets {
                let mut free: u128 = 0;
                for range in &set.ranges {
                    let held = store
                        .count_between(&pool.network, range.start, range.end)
                        .await
                        .map_err(|e| unavailable(e.into()))?;
                    free += range.capacity().saturating_sub(u128::from(held));
                }
                if free == 0 {
                    return Err(IpamError::NotAvailable(format!(
                        "pool exhausted: network {} has no free address in range set {}",
                        pool.network,
                        set.id()
                    )));
                }
            }
            Ok(())
        })?
    }

    fn gc_inner(&self, req: &Request) -> Result<(), IpamError> {
        let source = request::source(&req.conf)?;
        let store_config = request::store(&req.conf)?;
        let agent = request::agent(&req.conf)?;
        let Some(valid) = &req.conf.valid_attachments else {
            let network = match &source {
                request::PoolSource::Inline(pool) => pool.network.clone(),
                request::PoolSource::Stored(name) => name.clone(),
            };
            tracing::warn!(
                network = %network,
                "GC without cni.dev/valid-attachments: nothing released (send an empty list to release everything)"
            );
            return Ok(());
        };
        let valid: Vec<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        // The runtime's valid attachments are this node's only: on a shared store, GC must
        // never consider what other nodes (or no known node) claimed.
        let node = request::node_name(&req.conf)?;
        let now = plexus_store::unix_now();
        if sqlite_missing(&store_config) {
            tracing::info!(
                store = %store_config.location(),
                "GC: the store does not exist, nothing to collect"
            );
            return Ok(());
        }
        let (pool, scope, report) = block_on(async {
            let store = open_store(&store_config, &agent, OpenMode::MustExist).await?;
            let pool = stored::resolve(&req.conf, source, &*store, &store_config.location())
                .await?
                .pool;
            let scope = shared::gc_scope(&pool, node.clone());
            let mut report =
                store_call(store.gc(&pool.network, &valid, &scope, &pool.blocks, now)).await?;
            // What this configuration still holds from before its network was shared.
            if let Some(legacy) = &pool.legacy_network {
                let own = GcScope::node(node.clone());
                let old = store_call(store.gc(legacy, &valid, &own, &pool.blocks, now)).await?;
                report.released.extend(old.released);
                report.released_blocks.extend(old.released_blocks);
                report.errors.extend(old.errors);
            }
            Ok::<_, IpamError>((pool, scope, report))
        })??;
        tracing::info!(
            network = %pool.network,
            scope = %scope.describe(),
            released = report.released.len(),
            released_blocks = report.released_blocks.len(),
            "GC done"
        );
        if report.errors.is_empty() {
            Ok(())
        } else {
            Err(IpamError::GcIncomplete {
                network: pool.network.clone(),
                released: report.released.len(),
                failed: report.errors.len(),
                details: report.errors,
            })
        }
    }
}

/// `container/ifname`, for messages.
fn key_label(key: &plexus_store::AttachmentKey) -> String {
    format!("{}/{}", key.container_id, key.ifname)
}

/// CHECK: every address of this pool in `prev` is held by this attachment, and vice versa.
fn check_against(
    pool: &PoolConfig,
    attachment: &str,
    prev: &SuccessResult,
    held: &[Allocation],
) -> Result<(), IpamError> {
    if held.is_empty() {
        return Err(IpamError::CheckFailed(format!(
            "attachment {attachment} holds no address in network {}",
            pool.network
        )));
    }
    let held_ips: HashSet<IpAddr> = held.iter().map(|a| a.ip).collect();
    let ours = |ip: &IpAddr| pool.range_sets.iter().any(|set| set.find(*ip).is_some());
    let prev_ips: HashSet<IpAddr> = prev
        .ips
        .iter()
        .map(|c| c.address.addr())
        .filter(ours)
        .collect();
    if let Some(missing) = prev_ips.iter().find(|ip| !held_ips.contains(ip)) {
        return Err(IpamError::CheckFailed(format!(
            "address {missing} in prevResult is not reserved for attachment {attachment} in network {}",
            pool.network
        )));
    }
    if let Some(extra) = held_ips.iter().find(|ip| !prev_ips.contains(ip)) {
        return Err(IpamError::CheckFailed(format!(
            "attachment {attachment} holds {extra} in network {} but prevResult does not list it",
            pool.network
        )));
    }
    Ok(())
}

/// The abbreviated IPAM result: addresses (with their reported prefix and gateway, see
/// [`Resolved::interface_address`]), routes, dns.
pub fn build_result(resolved: &Resolved, allocations: &[Allocation]) -> SuccessResult {
    let pool = &resolved.pool;
    let mut ips: Vec<IpConfig> = allocations
        .iter()
        .filter_map(|a| {
            let (address, gateway) = resolved.interface_address(a.ip)?;
            // whereabouts reports a gateway outside every range; it is never reserved.
            let unreserved = pool
                .unreserved_gateway
                .filter(|gw| Family::of(*gw) == Family::of(a.ip));
            Some(IpConfig {
                address,
                gateway: gateway.or(unreserved),
                interface: None,
            })
        })
        .collect();
    ips.extend(pool.addresses.iter().map(|s| IpConfig {
        address: s.address,
        gateway: s.gateway,
        interface: None,
    }));
    let routes = pool
        .routes
        .iter()
        .map(|r| Route::new(r.dst, r.gw))
        .collect();
    SuccessResult {
        interfaces: Vec::new(),
        ips,
        routes,
        dns: pool.dns.as_ref().and_then(dns_from),
    }
}

/// The `dns` object of the config in CNI result form (unknown fields dropped).
fn dns_from(value: &Value) -> Option<Dns> {
    let strings = |key: &str| -> Vec<String> {
        value
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let dns = Dns {
        nameservers: strings("nameservers"),
        domain: value
            .get("domain")
            .and_then(Value::as_str)
            .map(str::to_string),
        search: strings("search"),
        options: strings("options"),
    };
    let empty = dns.nameservers.is_empty()
        && dns.domain.is_none()
        && dns.search.is_empty()
        && dns.options.is_empty();
    (!empty).then_some(dns)
}

/// Every verb's start: whereabouts' flat file merged in (a whereabouts-style section
/// only), then logging as the merged section says.
fn prepare(req: &Request) -> Result<Cow<'_, Request>, CniError> {
    let req = crate::flatfile::with_flat_file(req)?;
    logging::init(req.conf.ipam.as_ref());
    Ok(req)
}

impl Plugin for IpamPlugin {
    fn add(&self, req: &Request) -> Result<SuccessResult, CniError> {
        let req = prepare(req)?;
        if let Some(list) = crate::static_echo::section(&req.conf) {
            return crate::static_echo::result(list);
        }
        Ok(self.add_inner(&req)?)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let req = prepare(req)?;
        if crate::static_echo::section(&req.conf).is_some() {
            return Ok(());
        }
        Ok(self.del_inner(&req)?)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let req = prepare(req)?;
        if crate::static_echo::section(&req.conf).is_some() {
            return Ok(());
        }
        Ok(self.check_inner(&req)?)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let req = prepare(req)?;
        if crate::static_echo::section(&req.conf).is_some() {
            return Ok(());
        }
        Ok(self.status_inner(&req)?)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let req = prepare(req)?;
        if crate::static_echo::section(&req.conf).is_some() {
            return Ok(());
        }
        Ok(self.gc_inner(&req)?)
    }
}
