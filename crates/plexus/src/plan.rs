//! The plan of one ADD: every attachment with its network, interface name, driver and
//! address claims, decided (and checked) before anything is created.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use plexus_model::annotation::PolicyRoute;
use plexus_model::{AddressRequest, FamilyPool, NetworkPool, to_pool};
use plexus_netlink::{IpvlanMode, MacvlanMode, vlan_link_name, vxlan_link_name};
use plexus_store::Claim;
use serde_json::Value;

use crate::delegate;
use crate::error::PlexusError;
use crate::networks::Network;
use crate::userspace::{self, USERSPACE_TYPE};

/// How an attachment's interface is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Driver {
    /// Built-in macvlan on `parent`.
    Macvlan {
        /// Host-side parent link.
        parent: String,
        /// Mode.
        mode: MacvlanMode,
    },
    /// Built-in ipvlan on `parent`.
    Ipvlan {
        /// Host-side parent link.
        parent: String,
        /// Mode.
        mode: IpvlanMode,
    },
    /// Another CNI plugin (or a chain of them from a `.conflist`), run from `CNI_PATH`.
    Delegate {
        /// The plugin configurations, in chain order, each complete (`cniVersion`, `name`).
        plugins: Vec<Value>,
    },
}

impl Driver {
    /// `macvlan`, `ipvlan` or `delegate`.
    pub fn label(&self) -> &'static str {
        match self {
            Driver::Macvlan { .. } => "macvlan",
            Driver::Ipvlan { .. } => "ipvlan",
            Driver::Delegate { .. } => "delegate",
        }
    }
}

/// One attachment of the pod, ready to be set up.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Position in the pod's list.
    pub index: usize,
    /// Final interface name in the pod.
    pub ifname: String,
    /// The network.
    pub network: Network,
    /// The network's pools (none for an L2 network).
    pub pool: Option<NetworkPool>,
    /// IPv4 request.
    pub ipv4: AddressRequest,
    /// IPv6 request.
    pub ipv6: AddressRequest,
    /// Policy routes of the request.
    pub policy_routes: Vec<PolicyRoute>,
    /// How the interface is made.
    pub driver: Driver,
    /// Whether plexus allocates the addresses (always for built-in drivers; for delegates
    /// DANM's rule, see [`plexus_allocates`]).
    pub plexus_ipam: bool,
    /// The device-plugin resource the interface takes a device from (`device_pool`, or
    /// the `k8s.v1.cni.cncf.io/resourceName` annotation), if any.
    pub resource: Option<String>,
    /// The device taken from `resource` (set by [`crate::devices::assign`]).
    pub device_id: Option<String>,
    /// Whether the network marks its delegate as user-space ([`crate::userspace`]).
    pub userspace: bool,
}

impl Planned {
    /// The store identity of the network.
    pub fn network_name(&self) -> String {
        self.network.qualified_name()
    }

    /// The claims of this attachment (empty when plexus allocates nothing).
    pub fn claims(&self) -> Result<Vec<Claim<'_>>, PlexusError> {
        if !self.plexus_ipam {
            return Ok(Vec::new());
        }
        let pool = self.pool.as_ref();
        let mut claims = Vec::new();
        for (label, request, family) in [
            ("ip", self.ipv4, pool.and_then(|p| p.v4.as_ref())),
            ("ip6", self.ipv6, pool.and_then(|p| p.v6.as_ref())),
        ] {
            if let Some(claim) = claim_for(&self.network_name(), label, request, family)? {
                claims.push(claim);
            }
        }
        Ok(claims)
    }

    /// Whether `ip`'s family was requested as a static address.
    pub fn is_static(&self, ip: IpAddr) -> bool {
        let request = if ip.is_ipv4() { self.ipv4 } else { self.ipv6 };
        matches!(request, AddressRequest::Static { .. })
    }

    /// The address (with the network's prefix) and gateway of an allocated `ip`: the
    /// model's conversion, the same `plexus-ipam` reports a stored network with.
    pub fn address_of(&self, ip: IpAddr) -> Option<(IpNet, Option<IpAddr>)> {
        self.pool.as_ref()?.interface_address(ip)
    }

    /// The network's routes of the families in `addresses` (DANM: only for families that
    /// got an address), as destination and gateway.
    pub fn routes_for(&self, addresses: &[IpNet]) -> Vec<(IpNet, IpAddr)> {
        let Some(pool) = &self.pool else {
            return Vec::new();
        };
        let has = |v4: bool| addresses.iter().any(|a| a.addr().is_ipv4() == v4);
        let mut out = Vec::new();
        for (v4, family) in [(true, &pool.v4), (false, &pool.v6)] {
            if let Some(family) = family
                && has(v4)
            {
                out.extend(family.routes.iter().filter_map(|r| Some((r.dst, r.gw?))));
            }
        }
        out
    }
}

fn claim_for<'a>(
    network: &str,
    label: &str,
    request: AddressRequest,
    family: Option<&'a FamilyPool>,
) -> Result<Option<Claim<'a>>, PlexusError> {
    let missing = || PlexusError::Network {
        reference: network.to_owned(),
        reason: format!(
            "{label} asks for an address but the network has no {} pool",
            if label == "ip" {
                "IPv4 (cidr)"
            } else {
                "IPv6 (net6)"
            }
        ),
    };
    match request {
        AddressRequest::Absent | AddressRequest::None => Ok(None),
        AddressRequest::NetworkDefault => Ok(family.map(|f| Claim::Dynamic(&f.range_set))),
        AddressRequest::Dynamic => Ok(Some(Claim::Dynamic(&family.ok_or_else(missing)?.range_set))),
        AddressRequest::Static { address, .. } => {
            let family = family.ok_or_else(missing)?;
            if !family.network.contains(&address) {
                return Err(PlexusError::Request(format!(
                    "{label} {address} is outside network {network} ({})",
                    family.network
                )));
            }
            Ok(Some(Claim::Static {
                set: &family.range_set,
                ip: address,
            }))
        }
    }
}

/// DANM's rule for delegates: plexus allocates when a family says `none`, or when a family
/// asks for an address and the network has that family's pool.
pub fn plexus_allocates(network: &Network, ipv4: AddressRequest, ipv6: AddressRequest) -> bool {
    let real =
        |r: AddressRequest| matches!(r, AddressRequest::Dynamic | AddressRequest::Static { .. });
    ipv4 == AddressRequest::None
        || ipv6 == AddressRequest::None
        || (real(ipv4) && network.valid.v4.is_some())
        || (real(ipv6) && network.valid.v6.is_some())
}

/// The host-side parent of a built-in interface: `vx_<NetworkID>` with a VXLAN,
/// `<NetworkID>.<vlan>` with a VLAN, else `host_device`.
pub fn parent_of(network: &Network) -> Result<String, PlexusError> {
    let v = &network.valid;
    let bad = |reason: String| PlexusError::Network {
        reference: network.qualified_name(),
        reason,
    };
    if v.vxlan.is_some() {
        return vxlan_link_name(&v.network_id).map_err(|e| bad(e.to_string()));
    }
    if let Some(vlan) = v.vlan {
        return vlan_link_name(&v.network_id, vlan).map_err(|e| bad(e.to_string()));
    }
    v.host_device.clone().ok_or_else(|| {
        bad(format!(
            "NetworkType {} needs Options.host_device",
            v.network_type
        ))
    })
}

/// How the network's interfaces are made.
pub fn driver_of(
    network: &Network,
    cni_dir: &Path,
    cni_version: &str,
) -> Result<Driver, PlexusError> {
    let bad = |reason: String| PlexusError::Network {
        reference: network.qualified_name(),
        reason,
    };
    let kind = network.valid.network_type.to_ascii_lowercase();
    let mode = network.link_mode();
    match kind.as_str() {
        "macvlan" => Ok(Driver::Macvlan {
            parent: parent_of(network)?,
            mode: mode
                .map(str::parse)
                .transpose()
                .map_err(|e: plexus_netlink::ModeParseError| bad(e.to_string()))?
                .unwrap_or_default(),
        }),
        "" | "ipvlan" => Ok(Driver::Ipvlan {
            parent: parent_of(network)?,
            mode: mode
                .map(str::parse)
                .transpose()
                .map_err(|e: plexus_netlink::ModeParseError| bad(e.to_string()))?
                .unwrap_or_default(),
        }),
        "sriov" => Ok(Driver::Delegate {
            plugins: sriov_config(network, cni_dir, cni_version).map_err(|e| bad(e.to_string()))?,
        }),
        USERSPACE_TYPE => {
            let mut plugins =
                delegate::static_config(cni_dir, &network.valid.network_id, cni_version)
                    .map_err(|e| bad(e.to_string()))?;
            userspace::pass_socket_dir(network, &mut plugins)?;
            Ok(Driver::Delegate { plugins })
        }
        _ => Ok(Driver::Delegate {
            plugins: delegate::static_config(cni_dir, &network.valid.network_id, cni_version)
                .map_err(|e| bad(e.to_string()))?,
        }),
    }
}

/// The delegate chain of an `sriov` network: `<cniDir>/<NetworkID>.conf` (or
/// `.conflist`) when there is one, else DANM's dynamic configuration — the SR-IOV CNI with
/// the network's `vlan`; the device (`deviceID`) and plexus' addresses (`ipam`) are added
/// per interface.
pub fn sriov_config(
    network: &Network,
    cni_dir: &Path,
    cni_version: &str,
) -> Result<Vec<Value>, delegate::DelegateError> {
    let id = &network.valid.network_id;
    match delegate::static_config(cni_dir, id, cni_version) {
        Err(delegate::DelegateError::NoConfig { .. }) => {
            let mut conf = serde_json::json!({"cniVersion": cni_version, "name": id,
                                              "type": "sriov"});
            if let Some(vlan) = network.valid.vlan {
                conf["vlan"] = Value::from(vlan);
            }
            Ok(vec![conf])
        }
        other => other,
    }
}

/// The network's pools, or none for an L2 network.
pub fn pool_of(network: &Network) -> Result<Option<NetworkPool>, PlexusError> {
    if network.valid.is_l2() {
        return Ok(None);
    }
    to_pool(&network.valid)
        .map(Some)
        .map_err(|e| PlexusError::Network {
            reference: network.qualified_name(),
            reason: e.to_string(),
        })
}
