//! What `network apply` would change in a stored network: the fields of the definition
//! that differ, and the held addresses the new definition would leave outside its pools
//! (which `apply` refuses unless `--force`, since `check` would then fail on them).

use std::net::IpAddr;

use plexus_ipam_core::addr::key;
use plexus_store::Allocation;
use serde::Serialize;
use serde_json::Value;

use crate::commands::check::placement_problem;
use crate::error::CtlResult;
use crate::netdef::NetworkDef;
use crate::netfile::{network_def, network_object};

/// One held address the new definition would strand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stranded {
    /// The address.
    pub ip: IpAddr,
    /// Its holder, `container/ifname`.
    pub holder: String,
    /// Where it would be: outside every pool, reserved, outside start..end.
    pub problem: String,
}

/// The changed fields of a definition, one line each: `path: old -> new`, with `(none)`
/// for a field that is added or removed. Empty when the definitions are equal.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    diff_at("", old, new, &mut lines);
    lines
}

fn diff_at(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_at(&sub, x, y, lines),
                    (Some(x), None) => lines.push(format!("{sub}: {} -> (none)", show(x))),
                    (None, Some(y)) => lines.push(format!("{sub}: (none) -> {}", show(y))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => lines.push(format!(
            "{}: {} -> {}",
            display_path(path),
            show(a),
            show(b)
        )),
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(whole)" } else { path }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The network `definition` (stored as `name`) as plexusctl sees it.
pub fn def_of(name: &str, definition: &Value) -> CtlResult<NetworkDef> {
    let at = format!("network {name}");
    let (object, valid) = network_object(&at, definition)?;
    let mut def = network_def(&at, &object, &valid)?;
    def.name = name.to_string();
    def.source = "the new definition".to_string();
    Ok(def)
}

/// The allocations in `held` that `def` would leave outside its pools: outside every
/// subnet, on a reserved or excluded address, or outside every start..end range.
pub fn stranded(def: &NetworkDef, held: &[Allocation]) -> Vec<Stranded> {
    held.iter()
        .filter_map(|a| {
            let problem = placement_problem(def, a.ip).or_else(|| {
                let k = key(a.ip);
                let in_range = def
                    .pools
                    .iter()
                    .any(|p| key(p.start) <= k && k <= key(p.end));
                (!in_range).then(|| "outside the pool's start-end range".to_string())
            })?;
            Some(Stranded {
                ip: a.ip,
                holder: format!("{}/{}", a.container_id, a.ifname),
                problem,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use plexus_store::Owner;
    use serde_json::json;

    use super::*;

    fn network(cidr: &str, start: &str, end: &str) -> Value {
        json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
               "metadata": {"name": "blue"},
               "spec": {"NetworkID": "blue", "NetworkType": "ipvlan",
                        "Options": {"host_device": "eth1", "cidr": cidr,
                                    "allocation_pool": {"start": start, "end": end}}}})
    }

    fn held(ip: &str) -> Allocation {
        Allocation {
            network: "blue".into(),
            container_id: format!("c-{ip}"),
            ifname: "eth0".into(),
            ip: ip.parse().unwrap(),
            range_set: String::new(),
            owner: Owner::default(),
            created_at: 0,
            node: None,
        }
    }

    #[test]
    fn diff_names_each_changed_field() {
        let old = network("10.0.0.0/24", "10.0.0.10", "10.0.0.20");
        let mut new = network("10.1.0.0/24", "10.1.0.10", "10.0.0.20");
        new["spec"]["Options"]["vlan"] = json!(7);
        assert_eq!(
            diff(&old, &new),
            [
                "spec.Options.allocation_pool.start: 10.0.0.10 -> 10.1.0.10",
                "spec.Options.cidr: 10.0.0.0/24 -> 10.1.0.0/24",
                "spec.Options.vlan: (none) -> 7",
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn addresses_left_outside_the_new_pool_are_stranded() {
        let moved = def_of("blue", &network("10.1.0.0/24", "10.1.0.10", "10.1.0.20")).unwrap();
        let narrowed = def_of("blue", &network("10.0.0.0/24", "10.0.0.10", "10.0.0.12")).unwrap();
        let live = [held("10.0.0.10"), held("10.0.0.15")];
        let out = stranded(&moved, &live);
        assert_eq!(out.len(), 2);
        assert!(out[0].problem.contains("outside every pool"), "{out:?}");
        let out = stranded(&narrowed, &live);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ip.to_string(), "10.0.0.15");
        assert_eq!(out[0].problem, "outside the pool's start-end range");
    }
}
