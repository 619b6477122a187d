//! The NPWG `k8s.v1.cni.cncf.io/network-status` annotation: what a pod got on each network,
//! written by plexus after ADD and read by tools (MultiNetworkPolicy engines, whereabouts'
//! reconciler, operators).
//!
//! The value is a JSON list with one entry per attachment: `name` (`namespace/name` of the
//! NAD, or the plexus/DANM network), `interface`, `ips` (addresses without prefix), `mac`,
//! `mtu`, `default` (`true` on exactly the cluster-network entry), `dns`, `device-info`, and
//! the gateways of the attachment's default routes under both `gateway` (the key NPWG's
//! client library and Multus emit) and `default-route` (the key the NPWG text names), so
//! readers of either find them.
//!
//! [`entry_from_result`] builds an entry from a CNI result the way NPWG says: from the first
//! interface that is in the sandbox, the IPs on it (and IPs that name no interface: a
//! client-library regression dropped those), its MAC and MTU. [`render`] and [`parse`] cap
//! the value at [`MAX_STATUS_BYTES`] and [`MAX_STATUS_ENTRIES`]: an annotation is untrusted
//! input when read back.

use std::collections::BTreeSet;
use std::net::IpAddr;

use plexus_model::annotation::{MAX_ANNOTATION_BYTES, MAX_ATTACHMENTS};
use serde::{Deserialize, Serialize};

/// The annotation key.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
/// Largest value written or read: the annotation limit of the API server.
pub const MAX_STATUS_BYTES: usize = MAX_ANNOTATION_BYTES;
/// Most entries written or read: one per attachment, plus the cluster network.
pub const MAX_STATUS_ENTRIES: usize = MAX_ATTACHMENTS + 1;

/// One attachment's status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NetworkStatusEntry {
    /// `namespace/name` of the NAD, or the network's qualified name.
    pub name: String,
    /// The interface name in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The addresses, without prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// The interface's MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The interface's MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Whether this is the pod's cluster (default) network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// DNS settings the result carried.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// Device information (SR-IOV and similar), verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<serde_json::Value>,
    /// Gateways of the attachment's default routes (the NPWG client's key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<IpAddr>,
    /// The same gateways under the key the NPWG text names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<IpAddr>,
}

/// DNS settings of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Why a network-status value cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Over [`MAX_STATUS_BYTES`].
    #[error("{NETWORK_STATUS} is {bytes} bytes; at most {MAX_STATUS_BYTES} are allowed")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Over [`MAX_STATUS_ENTRIES`].
    #[error("{NETWORK_STATUS} has {count} entries; at most {MAX_STATUS_ENTRIES} are allowed")]
    TooManyEntries {
        /// How many.
        count: usize,
    },
    /// Not a JSON list of status entries.
    #[error("{NETWORK_STATUS} is not a JSON list of network status entries: {detail}")]
    Syntax {
        /// What the parser found.
        detail: String,
    },
    /// An entry without a name.
    #[error("{NETWORK_STATUS}[{index}].name is empty")]
    EmptyName {
        /// The entry's position.
        index: usize,
    },
    /// More than one entry says `default: true`.
    #[error("{NETWORK_STATUS}: entries [{first}] and [{second}] both say default; NPWG allows one")]
    TwoDefaults {
        /// The first default entry.
        first: usize,
        /// The second.
        second: usize,
    },
}

/// The entry NPWG derives from one attachment's CNI result: the first sandbox interface
/// (the first interface at all when none names a sandbox), the IPs on it or on no
/// interface, its MAC and MTU, the result's DNS, and the gateways of default routes (the
/// result's routes to `0.0.0.0/0` or `::/0`, then `requested_default_route`, the
/// selection element's `default-route`), without repeats.
pub fn entry_from_result(
    name: &str,
    is_default: bool,
    requested_default_route: &[IpAddr],
    result: &plexus_cni::SuccessResult,
) -> NetworkStatusEntry {
    let sandbox = result
        .interfaces
        .iter()
        .position(|i| i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
        .or_else(|| (!result.interfaces.is_empty()).then_some(0));
    let iface = sandbox.map(|i| &result.interfaces[i]);
    let ips = result
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == sandbox)
        .map(|ip| ip.address.addr())
        .collect();
    let mut seen = BTreeSet::new();
    let gateways: Vec<IpAddr> = result
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 0)
        .filter_map(|r| r.gw)
        .chain(requested_default_route.iter().copied())
        .filter(|gw| seen.insert(*gw))
        .collect();
    let dns = result
        .dns
        .as_ref()
        .map(|d| Dns {
            nameservers: d.nameservers.clone(),
            domain: d.domain.clone(),
            search: d.search.clone(),
            options: d.options.clone(),
        })
        .unwrap_or_default();
    NetworkStatusEntry {
        name: name.to_owned(),
        interface: iface.map(|i| i.name.clone()),
        ips,
        mac: iface.and_then(|i| i.mac.clone()),
        mtu: iface.and_then(|i| i.mtu),
        default: is_default,
        dns,
        device_info: None,
        gateway: gateways.clone(),
        default_route: gateways,
    }
}

/// The annotation value for `entries`, checked like [`parse`] checks what it reads.
pub fn render(entries: &[NetworkStatusEntry]) -> Result<String, StatusError> {
    check_entries(entries)?;
    let value = serde_json::to_string(entries).map_err(|e| StatusError::Syntax {
        detail: e.to_string(),
    })?;
    if value.len() > MAX_STATUS_BYTES {
        return Err(StatusError::TooLarge { bytes: value.len() });
    }
    Ok(value)
}

/// Read an annotation value (one plexus or another implementation wrote). Unknown keys
/// are ignored, as NPWG allows extensions.
pub fn parse(value: &str) -> Result<Vec<NetworkStatusEntry>, StatusError> {
    if value.len() > MAX_STATUS_BYTES {
        return Err(StatusError::TooLarge { bytes: value.len() });
    }
    let raw: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(value).map_err(|e| StatusError::Syntax {
            detail: e.to_string(),
        })?;
    if raw.len() > MAX_STATUS_ENTRIES {
        return Err(StatusError::TooManyEntries { count: raw.len() });
    }
    let entries = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            serde_json::from_str(r.get()).map_err(|e| StatusError::Syntax {
                detail: format!("[{i}]: {e}"),
            })
        })
        .collect::<Result<Vec<NetworkStatusEntry>, _>>()?;
    check_entries(&entries)?;
    Ok(entries)
}

/// Count, names and the single default.
fn check_entries(entries: &[NetworkStatusEntry]) -> Result<(), StatusError> {
    if entries.len() > MAX_STATUS_ENTRIES {
        return Err(StatusError::TooManyEntries {
            count: entries.len(),
        });
    }
    let mut default = None;
    for (index, entry) in entries.iter().enumerate() {
        if entry.name.is_empty() {
            return Err(StatusError::EmptyName { index });
        }
        if entry.default {
            if let Some(first) = default {
                return Err(StatusError::TwoDefaults {
                    first,
                    second: index,
                });
            }
            default = Some(index);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
