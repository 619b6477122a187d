//! Success results (ADD output, `prevResult`) and the VERSION reply, in the JSON shape of each
//! supported CNI version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::version::{CniVersion, SUPPORTED_VERSIONS};

mod decode;

/// An interface created or known by a plugin (`interfaces[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// The hardware address, if any.
    pub mac: Option<String>,
    /// The MTU (CNI 1.1.0+; omitted from older results).
    pub mtu: Option<u32>,
    /// The netns path for container-side interfaces; `None` for host-side ones.
    pub sandbox: Option<String>,
    /// A vhost-user socket path (CNI 1.1.0+; omitted from older results).
    pub socket_path: Option<String>,
    /// The PCI ID of a device (CNI 1.1.0+; omitted from older results).
    pub pci_id: Option<String>,
}

/// An address assigned to an interface (`ips[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length (`10.0.0.5/24`).
    pub address: IpNet,
    /// The default gateway for this subnet, if any.
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` of the interface holding the address; `None` in the
    /// abbreviated results of IPAM plugins.
    pub interface: Option<usize>,
}

/// A route (`routes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination network.
    pub dst: IpNet,
    /// The next hop; `None` means the default gateway.
    pub gw: Option<IpAddr>,
    /// Route MTU (CNI 1.1.0+).
    pub mtu: Option<u32>,
    /// TCP advertised MSS (CNI 1.1.0+).
    pub advmss: Option<u32>,
    /// Route priority (CNI 1.1.0+).
    pub priority: Option<u32>,
    /// Routing table (CNI 1.1.0+).
    pub table: Option<u32>,
    /// Route scope: 0 global, 253 link, 254 host (CNI 1.1.0+).
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw` with none of the 1.1.0 attributes set.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings (`dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    /// Name server addresses, in priority order.
    pub nameservers: Vec<String>,
    /// The local domain.
    pub domain: Option<String>,
    /// Search domains, in priority order.
    pub search: Vec<String>,
    /// Resolver options.
    pub options: Vec<String>,
}

/// A successful ADD result (also the shape of `prevResult`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuccessResult {
    /// Interfaces; IPAM plugins leave this empty.
    pub interfaces: Vec<Interface>,
    /// Assigned addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS settings, if any.
    pub dns: Option<Dns>,
}

impl SuccessResult {
    /// The result in the wire format of `version`.
    ///
    /// Always has `cniVersion`. Below 1.0.0 every `ips[]` entry carries `"version": "4"` or
    /// `"6"`; 1.x results do not. The 1.1.0-only fields (interface `mtu`, `socketPath`,
    /// `pciID`; route `mtu`, `advmss`, `priority`, `table`, `scope`) are omitted below 1.1.0.
    /// Empty lists and `None` fields are omitted.
    pub fn to_json(&self, version: &CniVersion) -> Value {
        let has_1_1_fields = *version >= CniVersion::V1_1_0;
        let has_ip_version = *version < CniVersion::V1_0_0;

        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(version.to_string()));
        if !self.interfaces.is_empty() {
            let list = self.interfaces.iter();
            let list = list.map(|iface| interface_json(iface, has_1_1_fields));
            out.insert("interfaces".into(), Value::Array(list.collect()));
        }
        if !self.ips.is_empty() {
            let list = self.ips.iter().map(|ip| ip_json(ip, has_ip_version));
            out.insert("ips".into(), Value::Array(list.collect()));
        }
        if !self.routes.is_empty() {
            let list = self.routes.iter();
            let list = list.map(|route| route_json(route, has_1_1_fields));
            out.insert("routes".into(), Value::Array(list.collect()));
        }
        if let Some(dns) = &self.dns {
            out.insert("dns".into(), dns_json(dns));
        }
        Value::Object(out)
    }

    /// Parses a result in the shape of any supported version (for `prevResult`); unknown
    /// fields are ignored, as is `cniVersion`. A value of the wrong JSON shape is a code 6
    /// (decode failure) error; an address or route that does not parse is a code 7 error
    /// naming the field.
    pub fn from_json(v: &Value) -> Result<SuccessResult, Error> {
        decode::success_result(v)
    }
}

/// The reply to VERSION: `{"cniVersion": requested, "supportedVersions": [...]}`.
pub fn version_reply(requested: &CniVersion) -> Value {
    json!({
        "cniVersion": requested.to_string(),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

fn insert_some(out: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        out.insert(key.to_owned(), value.into());
    }
}

fn interface_json(iface: &Interface, has_1_1_fields: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::String(iface.name.clone()));
    insert_some(&mut out, "mac", iface.mac.clone());
    insert_some(&mut out, "sandbox", iface.sandbox.clone());
    if has_1_1_fields {
        insert_some(&mut out, "mtu", iface.mtu);
        insert_some(&mut out, "socketPath", iface.socket_path.clone());
        insert_some(&mut out, "pciID", iface.pci_id.clone());
    }
    Value::Object(out)
}

fn ip_json(ip: &IpConfig, has_ip_version: bool) -> Value {
    let mut out = Map::new();
    if has_ip_version {
        let family = match ip.address {
            IpNet::V4(_) => "4",
            IpNet::V6(_) => "6",
        };
        out.insert("version".into(), Value::String(family.into()));
    }
    out.insert("address".into(), Value::String(ip.address.to_string()));
    insert_some(&mut out, "gateway", ip.gateway.map(|gw| gw.to_string()));
    insert_some(&mut out, "interface", ip.interface);
    Value::Object(out)
}

fn route_json(route: &Route, has_1_1_fields: bool) -> Value {
    let mut out = Map::new();
    out.insert("dst".into(), Value::String(route.dst.to_string()));
    insert_some(&mut out, "gw", route.gw.map(|gw| gw.to_string()));
    if has_1_1_fields {
        insert_some(&mut out, "mtu", route.mtu);
        insert_some(&mut out, "advmss", route.advmss);
        insert_some(&mut out, "priority", route.priority);
        insert_some(&mut out, "table", route.table);
        insert_some(&mut out, "scope", route.scope);
    }
    Value::Object(out)
}

fn dns_json(dns: &Dns) -> Value {
    let mut out = Map::new();
    let lists = [
        ("nameservers", &dns.nameservers),
        ("search", &dns.search),
        ("options", &dns.options),
    ];
    for (key, list) in lists {
        if !list.is_empty() {
            out.insert(key.into(), json!(list));
        }
    }
    insert_some(&mut out, "domain", dns.domain.clone());
    Value::Object(out)
}

#[cfg(test)]
mod tests;
