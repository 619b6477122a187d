//! Decoding a result of any supported CNI version (0.3.0–1.1.0) from JSON.
//!
//! The wire structs mirror the union of all versions' fields; serde ignores unknown fields
//! (such as the pre-1.0 `ips[].version`), and `null` lists are read as empty, as Go does.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::{Dns, Interface, IpConfig, Route, SuccessResult};
use crate::error::Error;
use crate::netconf::json_type_name;

#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    interfaces: Option<Vec<WireInterface>>,
    #[serde(default)]
    ips: Option<Vec<WireIp>>,
    #[serde(default)]
    routes: Option<Vec<WireRoute>>,
    #[serde(default)]
    dns: Option<WireDns>,
}

#[derive(Deserialize)]
struct WireInterface {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    sandbox: Option<String>,
    #[serde(default, rename = "socketPath")]
    socket_path: Option<String>,
    #[serde(default, rename = "pciID")]
    pci_id: Option<String>,
}

#[derive(Deserialize)]
struct WireIp {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    interface: Option<usize>,
}

#[derive(Deserialize)]
struct WireRoute {
    dst: String,
    #[serde(default)]
    gw: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    advmss: Option<u32>,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    table: Option<u32>,
    #[serde(default)]
    scope: Option<u8>,
}

#[derive(Deserialize)]
struct WireDns {
    #[serde(default)]
    nameservers: Option<Vec<String>>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    search: Option<Vec<String>>,
    #[serde(default)]
    options: Option<Vec<String>>,
}

/// See [`SuccessResult::from_json`].
pub(super) fn success_result(value: &Value) -> Result<SuccessResult, Error> {
    if !value.is_object() {
        return Err(Error::decode_failure(format!(
            "a CNI result must be a JSON object, not {}",
            json_type_name(value)
        )));
    }
    let wire = WireResult::deserialize(value).map_err(|err| {
        Error::decode_failure("malformed CNI result").with_details(err.to_string())
    })?;

    let interfaces = wire.interfaces.unwrap_or_default();
    let interfaces = interfaces.into_iter().map(|iface| Interface {
        name: iface.name.unwrap_or_default(),
        mac: iface.mac,
        mtu: iface.mtu,
        sandbox: iface.sandbox,
        socket_path: iface.socket_path,
        pci_id: iface.pci_id,
    });

    let ips = wire.ips.unwrap_or_default().into_iter().enumerate();
    let ips = ips.map(|(index, ip)| {
        Ok(IpConfig {
            address: parse_net(&ip.address, &format!("ips[{index}].address"))?,
            gateway: parse_optional_ip(ip.gateway, &format!("ips[{index}].gateway"))?,
            interface: ip.interface,
        })
    });

    let routes = wire.routes.unwrap_or_default().into_iter().enumerate();
    let routes = routes.map(|(index, route)| {
        Ok(Route {
            dst: parse_net(&route.dst, &format!("routes[{index}].dst"))?,
            gw: parse_optional_ip(route.gw, &format!("routes[{index}].gw"))?,
            mtu: route.mtu,
            advmss: route.advmss,
            priority: route.priority,
            table: route.table,
            scope: route.scope,
        })
    });

    let dns = wire.dns.map(|dns| Dns {
        nameservers: dns.nameservers.unwrap_or_default(),
        domain: dns.domain,
        search: dns.search.unwrap_or_default(),
        options: dns.options.unwrap_or_default(),
    });

    Ok(SuccessResult {
        interfaces: interfaces.collect(),
        ips: ips.collect::<Result<_, Error>>()?,
        routes: routes.collect::<Result<_, Error>>()?,
        dns,
    })
}

fn parse_net(text: &str, field: &str) -> Result<IpNet, Error> {
    text.parse().map_err(|_| {
        Error::invalid_config(format!(
            "CNI result field {field} = {text:?} is not an address with prefix length \
             (expected e.g. \"10.0.0.5/24\")"
        ))
    })
}

/// An optional address; the empty string means none, as Go's `net.IP` decodes it.
fn parse_optional_ip(text: Option<String>, field: &str) -> Result<Option<IpAddr>, Error> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Error::invalid_config(format!(
                "CNI result field {field} = {text:?} is not an IP address"
            ))
        }),
    }
}
