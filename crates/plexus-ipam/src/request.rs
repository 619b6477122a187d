//! What one invocation asks for, assembled from the netconf, CNI_ARGS and the environment.
//!
//! Nothing here touches the store: it turns untrusted input into checked values (pool
//! source, store config, static addresses, attachment key, owner metadata). It is the
//! first step of an ADD, which then runs top to bottom:
//!
//! 1. parse: [`AddRequest::parse`] (everything from the input; inline ranges parsed, bad
//!    static addresses refused before the store is touched);
//! 2. resolve the network: [`crate::stored::resolve`] (inline ranges as parsed, or the
//!    stored network read from the store);
//! 3. build the claim: [`attachment_key`], [`place_statics`] and [`claims`] on the
//!    resolved pool.

use std::net::IpAddr;

use plexus_cni::{Environment, Error as CniError, NetConf, codes};
use plexus_ipam_core::{PoolConfig, parse_pool_config, place_static};
use plexus_store::{AgentSetting, AttachmentKey, Claim, OpenMode, Owner, StoreConfig};
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

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> IpamError {
    IpamError::Cni(CniError::new(codes::INVALID_CONFIG, msg, details))
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

/// Keys that define addresses or routes inline; with `network` they are an error.
const INLINE_KEYS: &[&str] = &[
    "ranges",
    "subnet",
    "range",
    "ipRanges",
    "range_start",
    "range_end",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "exclude",
    "routes",
    "addresses",
    "network_name",
];

/// Where the pool of this configuration comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolSource {
    /// Inline ranges, already parsed (boxed: far larger than a name).
    Inline(Box<PoolConfig>),
    /// The stored network of this name.
    Stored(String),
}

/// `ipam.network` when set: a non-empty string, else code 7.
pub fn network_ref(conf: &NetConf) -> Result<Option<String>, IpamError> {
    match ipam_object(conf)?.get("network") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) if !name.trim().is_empty() => {
            check_network_name("ipam.network", name.trim())?;
            Ok(Some(name.trim().to_string()))
        }
        Some(other) => Err(invalid(
            "invalid ipam.network: must be the non-empty name of a stored network",
            format!("found {other}"),
        )),
    }
}

/// Decides where the pool comes from: the stored network named by `ipam.network` (inline
/// ranges then refused), else the inline ranges.
pub fn source(conf: &NetConf) -> Result<PoolSource, IpamError> {
    let Some(name) = network_ref(conf)? else {
        return pool(conf).map(|pool| PoolSource::Inline(Box::new(pool)));
    };
    let inline: Vec<&str> = INLINE_KEYS
        .iter()
        .copied()
        .filter(|key| ipam_object(conf).is_ok_and(|s| s.contains_key(*key)))
        .collect();
    if !inline.is_empty() {
        return Err(invalid(
            format!(
                "ipam.network {name:?} names a stored network; inline {} cannot be combined \
                 with it",
                inline.join(", ")
            ),
            "remove the inline ranges, or remove ipam.network",
        ));
    }
    Ok(PoolSource::Stored(name))
}

/// Everything an ADD asks for, parsed and checked before the store is touched.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Where the pool comes from.
    pub source: PoolSource,
    /// The store holding the allocations.
    pub store: StoreConfig,
    /// Whether and where to reach the node agent.
    pub agent: AgentSetting,
    /// Pod metadata kept with the allocations.
    pub owner: Owner,
    /// The node that per-node blocks are claimed for.
    pub node: String,
    /// Statically requested addresses, in request order.
    pub requested: Vec<IpAddr>,
}

impl AddRequest {
    /// Parses the ADD of `conf` and `env`: unknown CNI_ARGS, the pool source, the store,
    /// the agent, the static addresses (placed in the inline ranges right away), the
    /// owner and the node name.
    pub fn parse(conf: &NetConf, env: &Environment) -> Result<AddRequest, IpamError> {
        reject_unknown_args(env)?;
        let source = source(conf)?;
        let store = store(conf)?;
        let agent = agent(conf)?;
        let requested = requested_ips(conf, env)?;
        if let PoolSource::Inline(pool) = &source {
            // Bad input is refused before the store is touched.
            place_statics(&requested, pool)?;
        }
        Ok(AddRequest {
            source,
            store,
            agent,
            owner: owner(env),
            node: node_name(conf)?,
            requested,
        })
    }

    /// How the store is opened: only inline ranges may create it; a stored network lives
    /// in an existing store, so creating one cannot help.
    pub fn open_mode(&self) -> OpenMode {
        match self.source {
            PoolSource::Inline(_) => OpenMode::CreateIfMissing,
            PoolSource::Stored(_) => OpenMode::MustExist,
        }
    }
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

/// The statically requested addresses, in request order.
///
/// Per the CNI conventions, `runtimeConfig.ips` / `args.cni.ips` win; the CNI_ARGS `IP=`
/// copy is used only when neither is present.
pub fn requested_ips(conf: &NetConf, env: &Environment) -> Result<Vec<IpAddr>, IpamError> {
    let requested = conf.requested_ips()?;
    if requested.is_empty() {
        return Ok(env.args.ips()?);
    }
    Ok(requested)
}

/// Places each of the `requested` addresses in its range set of `pool`: one slot per range
/// set, at most one address each.
pub fn place_statics(
    requested: &[IpAddr],
    pool: &PoolConfig,
) -> Result<Vec<Option<IpAddr>>, IpamError> {
    let mut slots: Vec<Option<IpAddr>> = vec![None; pool.range_sets.len()];
    for &ip in requested {
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

/// [`requested_ips`] placed by [`place_statics`] in one go.
pub fn statics(
    conf: &NetConf,
    env: &Environment,
    pool: &PoolConfig,
) -> Result<Vec<Option<IpAddr>>, IpamError> {
    place_statics(&requested_ips(conf, env)?, pool)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(ipam: Value) -> NetConf {
        let conf = json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "ipam": ipam});
        NetConf::parse(conf.to_string().as_bytes()).unwrap()
    }

    fn add_env(cni_args: &str) -> Environment {
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", cni_args),
        ];
        Environment::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
        .unwrap()
    }

    fn inline() -> Value {
        json!({"type": "plexus-ipam", "node_name": "node-1",
            "ranges": [[{"subnet": "10.1.0.0/24"}]]})
    }

    #[test]
    fn an_inline_add_is_parsed_in_one_pass_and_may_create_the_store() {
        let env = add_env("IP=10.1.0.5;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod");
        let add = AddRequest::parse(&conf(inline()), &env).unwrap();
        let PoolSource::Inline(pool) = &add.source else {
            panic!("inline ranges parsed as {:?}", add.source);
        };
        assert_eq!(add.requested, ["10.1.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            place_statics(&add.requested, pool).unwrap(),
            [Some("10.1.0.5".parse().unwrap())]
        );
        assert_eq!(add.open_mode(), OpenMode::CreateIfMissing);
        assert_eq!(add.node, "node-1");
        assert_eq!(add.owner.pod_name.as_deref(), Some("pod"));
        assert_eq!(add.owner.pod_namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn a_static_address_outside_the_inline_ranges_is_refused_by_parse() {
        let got = AddRequest::parse(&conf(inline()), &add_env("IP=192.168.9.9"));
        let err = plexus_cni::Error::from(got.expect_err("outside every range"));
        assert_ne!(err.code, codes::TRY_AGAIN_LATER, "{err:?}");
    }

    #[test]
    fn a_stored_network_is_only_named_by_parse_and_must_exist() {
        let ipam = json!({"type": "plexus-ipam", "network": " blue "});
        // Where the address belongs is known only once the stored network is read.
        let add = AddRequest::parse(&conf(ipam), &add_env("IP=192.168.9.9")).unwrap();
        assert_eq!(add.source, PoolSource::Stored("blue".into()));
        assert_eq!(add.open_mode(), OpenMode::MustExist);
        assert_eq!(add.requested, ["192.168.9.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_stored_network_with_inline_ranges_is_refused_naming_them() {
        let mut ipam = inline();
        ipam["network"] = json!("blue");
        let got = AddRequest::parse(&conf(ipam), &add_env(""));
        let err = plexus_cni::Error::from(got.expect_err("both"));
        assert_eq!(err.code, codes::INVALID_CONFIG);
        assert!(err.msg.contains("ranges"), "{err:?}");
    }
}
