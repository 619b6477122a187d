//! What one invocation asks for, assembled from the netconf, CNI_ARGS and the environment.
//!
//! Nothing here touches the store: it turns untrusted input into checked values (pool,
//! store config, static addresses per range set, attachment key, owner metadata).

use std::net::IpAddr;

use plexus_cni::{Environment, Error as CniError, NetConf, codes};
use plexus_ipam_core::{PoolConfig, parse_pool_config, place_static};
use plexus_store::{AgentSetting, AttachmentKey, Claim, Owner, StoreConfig};
use serde_json::{Map, Value};

use crate::IpamError;

/// The `ipam` object of the netconf, or a code 7 error when it is missing.
fn ipam_section(conf: &NetConf) -> Result<&Value, IpamError> {
    conf.ipam
        .as_ref()
        .filter(|v| v.is_object())
        .ok_or_else(|| missing_ipam(conf))
}

/// [`ipam_section`] as a map.
fn ipam_object(conf: &NetConf) -> Result<&Map<String, Value>, IpamError> {
    conf.ipam
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| missing_ipam(conf))
}

fn missing_ipam(conf: &NetConf) -> IpamError {
    IpamError::Cni(CniError::new(
        codes::INVALID_CONFIG,
        "missing or invalid \"ipam\" object in the network configuration",
        format!("network {:?}", conf.name),
    ))
}

/// Parses the pool (ranges, routes, dns) and logs what was accepted but ignored.
pub fn pool(conf: &NetConf) -> Result<PoolConfig, IpamError> {
    let pool = parse_pool_config(&conf.name, ipam_section(conf)?, conf.runtime_ip_ranges())?;
    for warning in &pool.warnings {
        tracing::warn!(network = %pool.network, "{warning}");
    }
    Ok(pool)
}

/// The store of the `ipam` section: its `store` object; else the plexus etcd store on
/// whereabouts' `etcd_host` (`datastore: "etcd"`, or `etcd_host` alone), whose claims wait
/// for whereabouts' own data in that etcd to be imported; else SQLite at the default path.
/// whereabouts' Kubernetes datastore without `store` is code 7: plexus has no Kubernetes
/// store, and a node-local file would hand out one address on two nodes.
pub fn store(conf: &NetConf) -> Result<StoreConfig, IpamError> {
    let section = ipam_object(conf)?;
    let chosen = plexus_store::whereabouts::store_of_section(section)?;
    for note in &chosen.notes {
        tracing::warn!("{note}");
    }
    Ok(chosen.config)
}

/// Whether the section names whereabouts' Kubernetes datastore (and no `store`): no
/// address was ever handed out for it, so DEL has nothing to release.
pub fn names_kubernetes_datastore(conf: &NetConf) -> bool {
    ipam_object(conf).is_ok_and(plexus_store::whereabouts::names_kubernetes)
}

/// Whether and where to reach the node agent (`ipam.agent`): a socket path, `false`, or
/// absent for the default socket when it exists.
pub fn agent(conf: &NetConf) -> Result<AgentSetting, IpamError> {
    let section = ipam_section(conf)?;
    Ok(AgentSetting::from_json(section.get("agent"), "ipam.agent")?)
}

/// [`agent`] for DEL: a bad value means the default, so a config edited badly still
/// releases (through the agent or directly, the store is the same).
pub fn agent_lenient(conf: &NetConf) -> AgentSetting {
    agent(conf).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring ipam.agent for DEL");
        AgentSetting::Default
    })
}

/// The network name, the network used before whereabouts overlapping-range protection
/// (see `PoolConfig::legacy_network`) and the store, read leniently so that DEL can release
/// even when the ranges of the config no longer parse (DEL must not leak because a config
/// was edited badly).
pub fn network_and_store_lenient(
    conf: &NetConf,
) -> Result<(String, Option<String>, StoreConfig), IpamError> {
    let section = ipam_section(conf)?;
    // A stored network (`ipam.network`) keeps its allocations under its own name.
    let stored = section
        .get("network")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (network, legacy) = match stored {
        Some(name) => (name.to_string(), None),
        None => plexus_ipam_core::allocation_networks(&conf.name, section)
            .unwrap_or_else(|| (conf.name.clone(), None)),
    };
    Ok((network, legacy, store(conf)?))
}

/// Longest accepted network name in bytes (a Kubernetes object name is at most 253).
pub const MAX_NETWORK_NAME_BYTES: usize = 253;

/// Checks a network name taken from the config (`name`, `ipam.network`,
/// `ipam.network_name`): the CNI spec grammar (an ASCII letter or digit, then letters,
/// digits, `_`, `.`, `-`), no `..`, at most [`MAX_NETWORK_NAME_BYTES`]. The name keys every
/// row and etcd key of the network and appears in log lines and file names, so traversal,
/// control characters and Unicode lookalikes are refused with code 7.
pub fn check_network_name(field: &str, name: &str) -> Result<(), IpamError> {
    let mut bytes = name.bytes();
    let grammar = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let problem = if name.len() > MAX_NETWORK_NAME_BYTES {
        Some(format!("it is longer than {MAX_NETWORK_NAME_BYTES} bytes"))
    } else if !grammar {
        Some(
            "it must start with an ASCII letter or digit and contain only ASCII letters, \
             digits, '_', '.' and '-'"
                .to_string(),
        )
    } else if name.contains("..") {
        Some("it must not contain \"..\"".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            // An overlong name is cut so that the error stays readable.
            let shown: String = name.chars().take(64).collect();
            Err(IpamError::Cni(CniError::new(
                codes::INVALID_CONFIG,
                format!("invalid {field} {shown:?}: {problem}"),
                String::new(),
            )))
        }
    }
}

/// The attachment identity (network, CNI_CONTAINERID, CNI_IFNAME).
pub fn attachment_key(network: &str, env: &Environment) -> Result<AttachmentKey, IpamError> {
    check_network_name("network name", network)?;
    let missing = |var: &str| {
        IpamError::Cni(CniError::new(
            codes::INVALID_ENV,
            format!("required environment variable {var} is missing"),
            String::new(),
        ))
    };
    Ok(AttachmentKey {
        network: network.to_string(),
        container_id: env
            .container_id
            .clone()
            .ok_or_else(|| missing("CNI_CONTAINERID"))?,
        ifname: env.ifname.clone().ok_or_else(|| missing("CNI_IFNAME"))?,
    })
}

/// The name of this node, which per-node address blocks are claimed for: `ipam.node_name`
/// from the netconf, else the `NODE_NAME` environment variable (the Kubernetes downward
/// API convention), else the host name.
pub fn node_name(conf: &NetConf) -> Result<String, IpamError> {
    let configured = match ipam_section(conf)?.get("node_name") {
        // An empty string is absent, as Go-written configs mean it.
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.trim().is_empty() => None,
        Some(Value::String(name)) => Some(name.trim().to_string()),
        Some(other) => {
            return Err(IpamError::Cni(CniError::new(
                codes::INVALID_CONFIG,
                "invalid ipam.node_name: must be a string",
                format!("found {other}"),
            )));
        }
    };
    Ok(configured
        .or_else(plexus_store::local_node_name)
        .unwrap_or_else(|| {
            // Placement suffers (nodes share blocks) and GC scopes to every such node;
            // uniqueness is the store's job.
            tracing::warn!(
                "no node name in ipam.node_name, NODE_NAME or the kernel host name; using \"unknown\""
            );
            "unknown".to_string()
        }))
}

/// Pod metadata from CNI_ARGS (kept for operators; never part of the identity).
pub fn owner(env: &Environment) -> Owner {
    Owner {
        pod_namespace: env.args.pod_namespace().map(str::to_string),
        pod_name: env.args.pod_name().map(str::to_string),
        pod_uid: env.args.pod_uid().map(str::to_string),
        details: None,
    }
}

/// Rejects CNI_ARGS keys plexus does not know, unless `IgnoreUnknown` is set (code 2).
pub fn reject_unknown_args(env: &Environment) -> Result<(), IpamError> {
    Ok(env.args.reject_unknown()?)
}

/// Statically requested addresses, one slot per range set of the pool.
///
/// Per the CNI conventions, `runtimeConfig.ips` / `args.cni.ips` win; the CNI_ARGS `IP=`
/// copy is used only when neither is present.
pub fn statics(
    conf: &NetConf,
    env: &Environment,
    pool: &PoolConfig,
) -> Result<Vec<Option<IpAddr>>, IpamError> {
    let mut requested = conf.requested_ips()?;
    if requested.is_empty() {
        requested = env.args.ips()?;
    }
    let mut slots: Vec<Option<IpAddr>> = vec![None; pool.range_sets.len()];
    for ip in requested {
        let index = place_static(&pool.range_sets, ip)?;
        if let Some(first) = slots[index]
            && first != ip
        {
            return Err(IpamError::StaticTwice {
                range_set: pool.range_sets[index].id(),
                first,
                second: ip,
            });
        }
        slots[index] = Some(ip);
    }
    Ok(slots)
}

/// One claim per range set: static where an address was requested, dynamic otherwise.
pub fn claims<'a>(pool: &'a PoolConfig, statics: &[Option<IpAddr>]) -> Vec<Claim<'a>> {
    pool.range_sets
        .iter()
        .zip(statics)
        .map(|(set, ip)| match ip {
            Some(ip) => Claim::Static { set, ip: *ip },
            None => Claim::Dynamic(set),
        })
        .collect()
}
