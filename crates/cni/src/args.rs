//! `CNI_ARGS`: the deprecated but still universal `K=V;K=V` channel of per-invocation
//! arguments (Kubernetes runtimes send the pod's namespace, name and UID through it).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Error;

/// Tells the plugin to ignore keys it does not know (`IgnoreUnknown=1`).
pub const KEY_IGNORE_UNKNOWN: &str = "IgnoreUnknown";
/// The pod's Kubernetes namespace.
pub const KEY_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
/// The pod's Kubernetes name.
pub const KEY_POD_NAME: &str = "K8S_POD_NAME";
/// The pod's Kubernetes UID.
pub const KEY_POD_UID: &str = "K8S_POD_UID";
/// The ID of the pod's infrastructure ("pause") container.
pub const KEY_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";
/// Requested addresses (`IP=10.0.0.5[/24][,fd00::5]`, CNI conventions).
pub const KEY_IP: &str = "IP";
/// A requested gateway (as host-local and static understand it).
pub const KEY_GATEWAY: &str = "GATEWAY";

/// The keys plexus understands; any other key is "unknown" (see [`CniArgs::unknown_keys`]).
pub const KNOWN_KEYS: &[&str] = &[
    KEY_IGNORE_UNKNOWN,
    KEY_POD_NAMESPACE,
    KEY_POD_NAME,
    KEY_POD_UID,
    KEY_INFRA_CONTAINER_ID,
    KEY_IP,
    KEY_GATEWAY,
];

/// Parsed `CNI_ARGS`: `K=V` pairs in the order received.
///
/// Parsing splits on `;`, then each element at its first `=` (so values may contain `=`).
/// Empty elements (such as the one after a trailing `;`) are skipped. A duplicate key is
/// kept, and the last occurrence wins in [`CniArgs::get`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses a `CNI_ARGS` value. The empty string gives no arguments. An element without `=`
    /// or with an empty key is a code 4 (invalid environment) error naming the element.
    pub fn parse(s: &str) -> Result<CniArgs, Error> {
        let mut pairs = Vec::new();
        for element in s.split(';').filter(|element| !element.is_empty()) {
            let Some((key, value)) = element.split_once('=') else {
                return Err(Error::invalid_env(format!(
                    "invalid CNI_ARGS element {element:?}: expected KEY=VALUE"
                )));
            };
            if key.is_empty() {
                return Err(Error::invalid_env(format!(
                    "invalid CNI_ARGS element {element:?}: the key is empty"
                )));
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(CniArgs { pairs })
    }

    /// The value of `key` (the last one if the key repeats), or `None`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in the order received, duplicates included.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether `IgnoreUnknown` is `1` or `true` (any case), as libcni reads it.
    pub fn ignore_unknown(&self) -> bool {
        self.get(KEY_IGNORE_UNKNOWN)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// `K8S_POD_NAMESPACE`, if present and non-empty.
    pub fn pod_namespace(&self) -> Option<&str> {
        self.non_empty(KEY_POD_NAMESPACE)
    }

    /// `K8S_POD_NAME`, if present and non-empty.
    pub fn pod_name(&self) -> Option<&str> {
        self.non_empty(KEY_POD_NAME)
    }

    /// `K8S_POD_UID`, if present and non-empty.
    pub fn pod_uid(&self) -> Option<&str> {
        self.non_empty(KEY_POD_UID)
    }

    /// `K8S_POD_INFRA_CONTAINER_ID`, if present and non-empty.
    pub fn infra_container_id(&self) -> Option<&str> {
        self.non_empty(KEY_INFRA_CONTAINER_ID)
    }

    /// The addresses requested with `IP=` (comma separated, each `ip` or `ip/prefix`; the
    /// prefix is validated and then dropped). No `IP` key gives an empty list; a value that is
    /// not an address is a code 4 error naming it.
    pub fn ips(&self) -> Result<Vec<IpAddr>, Error> {
        let Some(value) = self.get(KEY_IP) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(|item| {
                parse_ip_maybe_with_prefix(item.trim()).ok_or_else(|| {
                    Error::invalid_env(format!(
                        "invalid CNI_ARGS IP={value:?}: {item:?} is not an IP address \
                         (expected e.g. 10.0.0.5, 10.0.0.5/24 or fd00::5)"
                    ))
                })
            })
            .collect()
    }

    /// Keys other than [`KNOWN_KEYS`], each once, in the order first seen. The plugin rejects
    /// them with code 2 unless [`CniArgs::ignore_unknown`]; see [`CniArgs::reject_unknown`].
    pub fn unknown_keys(&self) -> Vec<&str> {
        let mut unknown: Vec<&str> = Vec::new();
        for (key, _) in &self.pairs {
            if !KNOWN_KEYS.contains(&key.as_str()) && !unknown.contains(&key.as_str()) {
                unknown.push(key);
            }
        }
        unknown
    }

    /// `Ok` when there are no unknown keys or `IgnoreUnknown` is set; otherwise a code 2
    /// (unsupported field) error naming every unknown key and its value.
    pub fn reject_unknown(&self) -> Result<(), Error> {
        let unknown = self.unknown_keys();
        if unknown.is_empty() || self.ignore_unknown() {
            return Ok(());
        }
        let named: Vec<String> = unknown
            .iter()
            .map(|key| format!("{key}={:?}", self.get(key).unwrap_or_default()))
            .collect();
        Err(Error::unsupported_field(format!(
            "unsupported CNI_ARGS: {} (set IgnoreUnknown=1 to ignore unknown keys)",
            named.join(", ")
        )))
    }

    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

impl fmt::Display for CniArgs {
    /// Renders the pairs back as `K=V;K=V`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (key, value)) in self.pairs.iter().enumerate() {
            if index > 0 {
                f.write_str(";")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

/// Parses `ip` or `ip/prefix` (the prefix must be valid for the family) into the address.
pub(crate) fn parse_ip_maybe_with_prefix(text: &str) -> Option<IpAddr> {
    if text.contains('/') {
        text.parse::<IpNet>().ok().map(|net| net.addr())
    } else {
        text.parse::<IpAddr>().ok()
    }
}

#[cfg(test)]
mod tests;
