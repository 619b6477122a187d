//! Network definitions as plexusctl sees them: which pools (CIDR, start..end, gateways,
//! exclusions) a network has, and where that was defined.
//!
//! Sources, first match wins: network definition files (`--networks`, settings
//! `networks:`; plexus or DANM YAML, via `plexus-model`), then the CNI configuration
//! directory (every plugin whose `ipam.type` is `plexus-ipam`, read with the plugin's own
//! parser so plexusctl sees exactly the ranges the plugin allocates from).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use plexus_ipam_core::addr::Family;
use plexus_ipam_core::{BlockPolicy, Range, RangeSet, parse_pool_config};
use plexus_store::NetworkRecord;
use serde::Serialize;
use serde_json::Value;

use crate::error::{CtlError, CtlResult};
use crate::settings::Settings;

/// What kind of object defined a network; DANM kinds keep DANM's name for the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// A DANM object: `DanmNet`, `ClusterNetwork` or `TenantNetwork`.
    Danm(String),
    /// A plexus network definition (`plexus.io/v1`) of this object kind.
    Plexus(String),
    /// A network definition kept in the store (its object's kind).
    Stored(String),
    /// A plugin of a CNI configuration with `ipam.type: plexus-ipam`.
    Conflist,
    /// Only a CIDR given on the command line.
    Cidr,
}

impl NetworkKind {
    /// The object kind (`ClusterNetwork`, `DanmNet`, …) for JSON and YAML; `None` for a
    /// CNI configuration or a bare CIDR, which are no network objects.
    pub fn object_kind(&self) -> Option<&str> {
        match self {
            NetworkKind::Danm(kind) | NetworkKind::Plexus(kind) | NetworkKind::Stored(kind) => {
                Some(kind)
            }
            NetworkKind::Conflist | NetworkKind::Cidr => None,
        }
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkKind::Danm(kind) => f.write_str(kind),
            NetworkKind::Plexus(kind) => write!(f, "{kind} (plexus)"),
            NetworkKind::Stored(kind) => write!(f, "{kind} (stored)"),
            NetworkKind::Conflist => f.write_str("CNI conflist"),
            NetworkKind::Cidr => f.write_str("CIDR"),
        }
    }
}

/// One address pool of a network: a subnet and the part of it handed out dynamically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    /// The subnet (host bits cleared).
    pub cidr: IpNet,
    /// First address handed out dynamically.
    pub start: IpAddr,
    /// Last address handed out dynamically.
    pub end: IpAddr,
    /// Gateways, reserved.
    pub gateways: Vec<IpAddr>,
    /// Never handed out.
    pub exclude: Vec<IpNet>,
}

impl Pool {
    /// The pool of one allocator range.
    pub fn from_range(range: &Range) -> Pool {
        Pool {
            cidr: range.subnet,
            start: range.start,
            end: range.end,
            gateways: range.gateway.into_iter().collect(),
            exclude: range.exclude.clone(),
        }
    }

    /// The whole subnet as a pool with the allocator's defaults (start = network + 1, end =
    /// broadcast − 1 for IPv4, the last address for IPv6).
    pub fn from_cidr(cidr: IpNet) -> CtlResult<Pool> {
        let range = Range::new(cidr.trunc(), None, None, None, Vec::new())
            .map_err(|e| CtlError::invalid(format!("CIDR {cidr}"), e.to_string()))?;
        Ok(Pool::from_range(&range))
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of_net(&self.cidr)
    }
}

/// A network and its pools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkDef {
    /// The name allocations are stored under.
    pub name: String,
    /// What defined it.
    pub kind: NetworkKind,
    /// Where it was defined: a file path, `store`, or `--cidr`.
    pub source: String,
    /// Pools in definition order (IPv4 and IPv6 mixed).
    pub pools: Vec<Pool>,
    /// The allocator's range sets, when known: used to record imported addresses under
    /// the range set the plugin itself would use.
    #[serde(skip)]
    pub range_sets: Vec<RangeSet>,
    /// The network object it was read from (definition files only), for `export`.
    #[serde(skip)]
    pub object: Option<Value>,
    /// Per-node block policy (what the plugin uses; GC releases expired blocks by it).
    #[serde(skip)]
    pub blocks: BlockPolicy,
    /// The CNI configurations (netconf names) sharing this network, when it is one that
    /// several whereabouts-syntax configurations share (overlapping-range protection): each
    /// owns its range sets, and its name finds this network too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
}

impl NetworkDef {
    /// A network from allocator range sets.
    pub fn from_range_sets(
        name: &str,
        kind: NetworkKind,
        source: String,
        range_sets: Vec<RangeSet>,
    ) -> NetworkDef {
        let pools = range_sets
            .iter()
            .flat_map(|set| set.ranges.iter().map(Pool::from_range))
            .collect();
        NetworkDef {
            name: name.to_string(),
            kind,
            source,
            pools,
            range_sets,
            object: None,
            blocks: BlockPolicy::default(),
            owners: Vec::new(),
        }
    }

    /// Adds the pools and range sets of `other`, another configuration sharing this
    /// network (see [`NetworkDef::owners`]); range sets already present are not repeated.
    fn absorb(&mut self, other: NetworkDef) {
        let known: std::collections::HashSet<String> =
            self.range_sets.iter().map(RangeSet::id).collect();
        for set in other.range_sets {
            if !known.contains(&set.id()) {
                self.range_sets.push(set);
            }
        }
        for pool in other.pools {
            if !self.pools.contains(&pool) {
                self.pools.push(pool);
            }
        }
        self.source = format!("{}, {}", self.source, other.source);
        for owner in other.owners {
            if !self.owners.contains(&owner) {
                self.owners.push(owner);
            }
        }
    }

    /// The pools of one family.
    pub fn pools_of(&self, family: Family) -> impl Iterator<Item = &Pool> {
        self.pools.iter().filter(move |p| p.family() == family)
    }

    /// Whether some pool's subnet holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.pools
            .iter()
            .any(|p| plexus_ipam_core::addr::net_contains(&p.cidr, ip))
    }
}

/// Where a name's allocations are kept (see [`Catalog::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The network the store keeps them in.
    pub network: String,
    /// Only these range sets of it, when the name is one configuration of several sharing
    /// the network.
    pub range_sets: Option<Vec<RangeSet>>,
}

impl Resolved {
    /// Whether an allocation under `range_set` (an id) belongs to the name.
    pub fn owns(&self, range_set: &str) -> bool {
        self.range_sets
            .as_ref()
            .is_none_or(|sets| sets.iter().any(|set| set.id() == range_set))
    }

    /// Whether `ip` lies in a subnet of the name's range sets (every address of a network
    /// of its own does).
    pub fn covers_ip(&self, ip: IpAddr) -> bool {
        self.range_sets.as_ref().is_none_or(|sets| {
            sets.iter()
                .flat_map(|set| &set.ranges)
                .any(|r| plexus_ipam_core::addr::net_contains(&r.subnet, ip))
        })
    }

    /// The ids of the range sets a GC of the name is limited to, if any.
    pub fn range_set_ids(&self) -> Option<Vec<String>> {
        self.range_sets
            .as_ref()
            .map(|sets| sets.iter().map(RangeSet::id).collect())
    }
}

/// How the store's network definitions are named among the places searched.
const STORE_SOURCE: &str = "the store's networks";

/// Every network definition plexusctl can see, in precedence order.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The definitions; earlier ones win for a duplicated name.
    pub networks: Vec<NetworkDef>,
    /// Places searched, for "not defined" messages.
    pub searched: Vec<String>,
    /// Files that could not be used, one line each (reported, not fatal).
    pub warnings: Vec<String>,
    /// Where the store is, for "not defined" messages (empty when not read).
    pub store: String,
}

impl Catalog {
    /// Loads the network files and the CNI configuration directory named in `settings`.
    pub fn load(settings: &Settings) -> CtlResult<Catalog> {
        Catalog::load_with_stored(settings, &[])
    }

    /// Like [`Catalog::load`], with the networks kept in the store (`plexusctl network`)
    /// between the definition files and the CNI configuration directory. A stored
    /// definition that does not validate is reported as a warning and skipped.
    pub fn load_with_stored(settings: &Settings, stored: &[NetworkRecord]) -> CtlResult<Catalog> {
        let mut catalog = Catalog::default();
        for file in &settings.network_files {
            catalog.searched.push(file.display().to_string());
            let text = std::fs::read_to_string(file).map_err(|e| CtlError::io(file, e))?;
            let defs = crate::netfile::parse_network_file(&file.display().to_string(), &text)?;
            catalog.networks.extend(defs);
        }
        catalog.searched.push(STORE_SOURCE.to_string());
        for record in stored {
            match crate::netfile::stored_def(record) {
                Ok(def) => catalog.networks.push(def),
                Err(e) => catalog.warnings.push(format!("{e}; skipped")),
            }
        }
        catalog.load_cni_dir(&settings.cni_conf_dir);
        Ok(catalog)
    }

    fn load_cni_dir(&mut self, dir: &Path) {
        self.searched
            .push(format!("{} (plexus-ipam plugins)", dir.display()));
        for path in cni_config_files(dir) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                self.warnings
                    .push(format!("{}: cannot be read, skipped", path.display()));
                continue;
            };
            match networks_of_cni_config(&path.display().to_string(), &text) {
                Ok(defs) => defs.into_iter().for_each(|d| self.add_cni_def(d)),
                Err(e) => self.warnings.push(format!("{e}; skipped")),
            }
        }
    }

    /// Adds a network of a CNI configuration, joining it to the network it shares with
    /// other configurations (whereabouts overlapping-range protection) if there is one.
    fn add_cni_def(&mut self, def: NetworkDef) {
        let shared = self.networks.iter_mut().find(|n| {
            n.name == def.name
                && n.kind == NetworkKind::Conflist
                && !n.owners.is_empty()
                && !def.owners.is_empty()
        });
        match shared {
            Some(existing) => existing.absorb(def),
            None => self.networks.push(def),
        }
    }

    /// The definition of `name`, if any: a network of that name or, failing that, the
    /// shared network a CNI configuration of that name keeps its allocations in.
    pub fn get(&self, name: &str) -> Option<&NetworkDef> {
        self.networks.iter().find(|n| n.name == name).or_else(|| {
            self.networks
                .iter()
                .find(|n| n.owners.iter().any(|o| o == name))
        })
    }

    /// Where the allocations of `name` are kept: the network itself, or for the name of a
    /// configuration sharing a network (see [`NetworkDef::owners`]) that network and the
    /// ids of the range sets the configuration owns. `None` when no definition names it.
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        if let Some(def) = self.networks.iter().find(|n| n.name == name) {
            return Some(Resolved {
                network: def.name.clone(),
                range_sets: None,
            });
        }
        let def = self
            .networks
            .iter()
            .find(|n| n.owners.iter().any(|o| o == name))?;
        Some(Resolved {
            network: def.name.clone(),
            range_sets: Some(
                def.range_sets
                    .iter()
                    .filter(|set| set.shared_by.as_deref() == Some(name))
                    .cloned()
                    .collect(),
            ),
        })
    }

    /// The definition of `name`; an unknown name is an error suggesting the nearest one.
    pub fn find(&self, name: &str) -> CtlResult<&NetworkDef> {
        self.get(name).ok_or_else(|| self.unknown(name, &[]))
    }

    /// The error for a network `name` that is neither defined nor among `held` (networks
    /// the store holds addresses of): where plexusctl looked, and the nearest known name.
    pub fn unknown(&self, name: &str, held: &[String]) -> CtlError {
        let known = self
            .networks
            .iter()
            .map(|n| n.name.as_str())
            .chain(held.iter().map(String::as_str));
        let mut searched: Vec<String> = self
            .searched
            .iter()
            .map(|s| {
                if s == STORE_SOURCE && !self.store.is_empty() {
                    format!("{s} ({})", self.store)
                } else {
                    s.clone()
                }
            })
            .collect();
        if !self.store.is_empty() {
            searched.push(format!("the allocations in {}", self.store));
        }
        CtlError::UnknownNetwork {
            network: name.to_string(),
            nearest: crate::known::nearest(name, known).map(str::to_string),
            searched: if searched.is_empty() {
                "no network sources configured".to_string()
            } else {
                format!(
                    "searched {}; name a definition file with --networks",
                    searched.join(", ")
                )
            },
        }
    }

    /// Each network once (the first definition of a name wins).
    pub fn unique(&self) -> Vec<&NetworkDef> {
        let mut seen = std::collections::HashSet::new();
        self.networks
            .iter()
            .filter(|n| seen.insert(n.name.as_str()))
            .collect()
    }
}

/// The CNI configuration files of `dir` in libcni's order (sorted by name).
pub fn cni_config_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "conf" | "conflist" | "json"))
        })
        .collect();
    files.sort();
    files
}

/// The plexus-ipam networks defined by one CNI configuration (single plugin or list).
pub fn networks_of_cni_config(source: &str, text: &str) -> CtlResult<Vec<NetworkDef>> {
    let conf: Value = serde_json::from_str(text)
        .map_err(|e| CtlError::invalid(source, format!("not JSON: {e}")))?;
    let name = conf.get("name").and_then(Value::as_str).unwrap_or_default();
    let plugins: Vec<&Value> = match conf.get("plugins").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![&conf],
    };
    let mut defs = Vec::new();
    for plugin in plugins {
        let Some(ipam) = plugin.get("ipam") else {
            continue;
        };
        if ipam.get("type").and_then(Value::as_str) != Some("plexus-ipam") {
            continue;
        }
        let pool = parse_pool_config(name, ipam, None)
            .map_err(|e| CtlError::invalid(source, format!("ipam: {e}")))?;
        let mut def = NetworkDef::from_range_sets(
            &pool.network,
            NetworkKind::Conflist,
            source.to_string(),
            pool.range_sets,
        );
        def.blocks = pool.blocks;
        def.owners = def
            .range_sets
            .iter()
            .filter_map(|set| set.shared_by.clone())
            .fold(Vec::new(), |mut owners, owner| {
                if !owners.contains(&owner) {
                    owners.push(owner);
                }
                owners
            });
        // Gateways of routes are reserved the same way the plugin reports them.
        for route in &pool.routes {
            if let Some(gw) = route.gw {
                for p in def.pools.iter_mut() {
                    if plexus_ipam_core::addr::net_contains(&p.cidr, gw)
                        && !p.gateways.contains(&gw)
                    {
                        p.gateways.push(gw);
                    }
                }
            }
        }
        defs.push(def);
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_plexus_ipam_networks_are_found() {
        let text = r#"{"cniVersion":"1.1.0","name":"blue","plugins":[
            {"type":"bridge","ipam":{"type":"plexus-ipam","range":"10.9.0.0/24",
             "gateway":"10.9.0.1","network_name":"blue-net",
             "ipRanges":[{"range":"fd00:9::/120"}]}},
            {"type":"portmap"}]}"#;
        let defs = networks_of_cni_config("x.conflist", text).unwrap();
        assert_eq!(defs.len(), 1);
        let def = &defs[0];
        assert_eq!(def.name, "blue-net");
        assert_eq!(def.kind, NetworkKind::Conflist);
        assert_eq!(def.pools.len(), 2);
        assert_eq!(def.pools[0].cidr, "10.9.0.0/24".parse::<IpNet>().unwrap());
        assert_eq!(
            def.pools[0].gateways,
            vec!["10.9.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(def.pools[0].start, "10.9.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(def.pools_of(Family::V6).count(), 1);
        assert!(def.contains("fd00:9::5".parse().unwrap()));
        assert!(!def.contains("10.9.1.5".parse().unwrap()));
    }

    #[test]
    fn other_ipam_types_and_bad_json_are_not_networks() {
        let text = r#"{"cniVersion":"1.0.0","name":"x","type":"bridge",
                      "ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}"#;
        assert!(networks_of_cni_config("a.conf", text).unwrap().is_empty());
        assert!(networks_of_cni_config("b.conf", "{").is_err());
    }

    #[test]
    fn catalog_reports_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge",
               "ipam":{"type":"plexus-ipam","range":"10.1.0.0/16"}}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("20-broken.conf"), "{").unwrap();
        let settings = Settings {
            store: Default::default(),
            output: crate::cli::OutputFormat::Table,
            cni_conf_dir: dir.path().to_path_buf(),
            network_files: Vec::new(),
        };
        let catalog = Catalog::load(&settings).unwrap();
        assert_eq!(catalog.find("a").unwrap().pools.len(), 1);
        assert_eq!(catalog.warnings.len(), 1, "{:?}", catalog.warnings);
        let err = catalog.find("nope").unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("plexus-ipam plugins"),
            "{err}"
        );
    }

    #[test]
    fn pool_from_cidr_uses_allocator_defaults() {
        let pool = Pool::from_cidr("10.0.0.7/30".parse().unwrap()).unwrap();
        assert_eq!(pool.cidr.to_string(), "10.0.0.4/30");
        assert_eq!(pool.start.to_string(), "10.0.0.5");
        assert_eq!(pool.end.to_string(), "10.0.0.6");
    }
}
