//! The NPWG v1.3 `k8s.v1.cni.cncf.io/networks` annotation, in both of its forms.

use std::collections::BTreeMap;
use std::net::IpAddr;

use plexus_ipam_core::Family;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AddressRequest, AnnotationError, AttachmentRequest, NPWG_NETWORKS, NetworkRef, NetworkRefKind,
    Problems, RequestFormat, check_count, check_size, check_unique_interfaces, parse_static,
    raw_list,
};
use crate::names::{dns_label_problem, dns_subdomain_problem, ifname_problem};

/// Keys of a selection element that plexus reads.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "namespace",
    "interface",
    "interfaceRequest",
    "ips",
    "mac",
    "default-route",
    "cni-args",
    "deviceID",
    "ipam-claim-reference",
    "infiniband-guid",
    "portMappings",
    "bandwidth",
];

/// A port mapping (`portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (default `tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host address to bind.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

/// Traffic shaping (`bandwidth` capability), in bits per second and bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bandwidth {
    /// Ingress rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_rate: Option<u64>,
    /// Ingress burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_burst: Option<u64>,
    /// Egress rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_rate: Option<u64>,
    /// Egress burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_burst: Option<u64>,
}

/// A selection element as written. Unknown keys are ignored here and checked separately,
/// because reverse-DNS keys are allowed.
#[derive(Debug, Deserialize)]
struct Element {
    /// NetworkAttachmentDefinition name.
    name: Option<String>,
    /// Its namespace (default: the pod's).
    namespace: Option<String>,
    /// Interface name.
    interface: Option<String>,
    /// Deprecated spelling of `interface`.
    #[serde(rename = "interfaceRequest")]
    interface_request: Option<String>,
    /// Static addresses.
    ips: Option<Vec<String>>,
    /// MAC address.
    mac: Option<String>,
    /// Default-route gateways.
    #[serde(rename = "default-route")]
    default_route: Option<Vec<String>>,
    /// Extra CNI args.
    #[serde(rename = "cni-args")]
    cni_args: Option<BTreeMap<String, Value>>,
    /// Device ID.
    #[serde(rename = "deviceID")]
    device_id: Option<String>,
    /// IPAMClaim name.
    #[serde(rename = "ipam-claim-reference")]
    ipam_claim: Option<String>,
    /// InfiniBand GUID.
    #[serde(rename = "infiniband-guid")]
    infiniband_guid: Option<String>,
    /// Port mappings.
    #[serde(rename = "portMappings")]
    port_mappings: Option<Vec<PortMapping>>,
    /// Bandwidth limits.
    bandwidth: Option<Bandwidth>,
}

/// Parse the value of `k8s.v1.cni.cncf.io/networks`: a JSON list if it starts with `[`,
/// else the comma form `name`, `ns/name`, `ns/name@ifname`.
pub fn parse_npwg_networks(value: &str) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    check_size(NPWG_NETWORKS, value)?;
    let mut problems = Problems::default();
    let requests = if value.trim_start().starts_with('[') {
        parse_json(&mut problems, value)?
    } else {
        parse_comma(&mut problems, value)?
    };
    check_unique_interfaces(&mut problems, &requests);
    problems.finish(NPWG_NETWORKS, requests)
}

/// The comma form.
fn parse_comma(
    problems: &mut Problems,
    value: &str,
) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    check_count(NPWG_NETWORKS, items.len())?;
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let path = format!("[{index}]");
        if item.is_empty() {
            problems.report(
                path,
                "",
                "empty entry (two commas in a row, or a trailing comma)",
            );
            continue;
        }
        let (selector, interface) = match item.split_once('@') {
            Some((s, i)) => (s, Some(i)),
            None => (item, None),
        };
        let (namespace, name) = match selector.split_once('/') {
            Some((ns, n)) => (Some(ns), n),
            None => (None, selector),
        };
        let before = problems_len(problems);
        check_name(problems, &path, name, namespace);
        if let Some(ifname) = interface
            && let Some(problem) = ifname_problem(ifname)
        {
            problems.report(&path, item, format!("interface name after '@' {problem}"));
        }
        if problems_len(problems) == before {
            let mut request = AttachmentRequest::new(
                RequestFormat::Npwg,
                index,
                attachment(name, namespace.map(str::to_owned)),
            );
            request.interface = interface.map(str::to_owned);
            requests.push(request);
        }
    }
    Ok(requests)
}

/// How many problems have been recorded.
fn problems_len(problems: &Problems) -> usize {
    problems.found.len()
}

/// A reference to a NetworkAttachmentDefinition.
fn attachment(name: &str, namespace: Option<String>) -> NetworkRef {
    NetworkRef {
        kind: NetworkRefKind::Attachment,
        name: name.to_owned(),
        namespace,
    }
}

/// NAD name (DNS-1123 subdomain) and namespace (DNS-1123 label).
fn check_name(problems: &mut Problems, path: &str, name: &str, namespace: Option<&str>) {
    if let Some(problem) = dns_subdomain_problem(name) {
        problems.report(format!("{path}.name"), name, problem);
    }
    if let Some(ns) = namespace
        && let Some(problem) = dns_label_problem(ns)
    {
        problems.report(format!("{path}.namespace"), ns, problem);
    }
}

/// The JSON form.
fn parse_json(
    problems: &mut Problems,
    value: &str,
) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    let raw = raw_list(NPWG_NETWORKS, value)?;
    let mut requests = Vec::with_capacity(raw.len());
    for (index, entry) in raw.iter().enumerate() {
        let path = format!("[{index}]");
        // Two passes: the typed one detects duplicate keys, the map one finds unknown keys.
        let element = serde_json::from_str::<Element>(entry.get());
        let keys = serde_json::from_str::<BTreeMap<String, Value>>(entry.get());
        match (element, keys) {
            (Ok(element), Ok(keys)) => {
                if let Some(request) = convert(problems, index, element, keys) {
                    requests.push(request);
                }
            }
            (Err(e), _) | (_, Err(e)) => problems.report(path, "", e.to_string()),
        }
    }
    Ok(requests)
}

/// Check one selection element and turn it into a request.
fn convert(
    problems: &mut Problems,
    index: usize,
    element: Element,
    keys: BTreeMap<String, Value>,
) -> Option<AttachmentRequest> {
    let path = format!("[{index}]");
    let before = problems_len(problems);
    let mut extensions = BTreeMap::new();
    for (key, value) in keys {
        if KNOWN_KEYS.contains(&key.as_str()) {
            continue;
        }
        if key.contains('.') {
            extensions.insert(key, value);
        } else {
            problems.report(
                format!("{path}.{key}"),
                "",
                "unknown key; keys of your own must use reverse-DNS names (with a dot)",
            );
        }
    }
    let name = element.name.unwrap_or_default();
    check_name(problems, &path, &name, element.namespace.as_deref());

    let interface = match (element.interface, element.interface_request) {
        (Some(a), Some(b)) if a != b => {
            problems.report(
                format!("{path}.interfaceRequest"),
                &b,
                format!("conflicts with interface {a:?}; interfaceRequest is its old name"),
            );
            None
        }
        (a, b) => a.or(b),
    };
    if let Some(ifname) = &interface
        && let Some(problem) = ifname_problem(ifname)
    {
        problems.report(format!("{path}.interface"), ifname, problem);
    }

    let mut ipv4 = AddressRequest::NetworkDefault;
    let mut ipv6 = AddressRequest::NetworkDefault;
    let ips = element.ips.unwrap_or_default();
    if !ips.is_empty() && element.ipam_claim.is_some() {
        problems.report(
            format!("{path}.ips"),
            ips.join(","),
            "ips and ipam-claim-reference cannot both be set; the claim owns the addresses",
        );
    }
    for (i, text) in ips.iter().enumerate() {
        let ip_path = format!("{path}.ips[{i}]");
        let request = match parse_static(text, None) {
            Ok(request) => request,
            Err(message) => {
                problems.report(ip_path, text, message);
                continue;
            }
        };
        let AddressRequest::Static { address, .. } = request else {
            continue;
        };
        let slot = match Family::of(address) {
            Family::V4 => &mut ipv4,
            Family::V6 => &mut ipv6,
        };
        if matches!(slot, AddressRequest::Static { .. }) {
            problems.report(
                ip_path,
                text,
                format!(
                    "a second IPv{} address; one per family",
                    Family::of(address)
                ),
            );
        }
        *slot = request;
    }

    let mut default_route = Vec::new();
    for (i, text) in element.default_route.unwrap_or_default().iter().enumerate() {
        let gw_path = format!("{path}.default-route[{i}]");
        match text.parse::<IpAddr>() {
            Ok(gw)
                if default_route
                    .iter()
                    .any(|g| Family::of(*g) == Family::of(gw)) =>
            {
                problems.report(gw_path, text, "a second gateway of the same family");
            }
            Ok(gw) => default_route.push(gw),
            Err(_) => problems.report(gw_path, text, "not an IP address"),
        }
    }

    let mac = element.mac.and_then(|text| match normalize_mac(&text) {
        Some(mac) => Some(mac),
        None => {
            problems.report(
                format!("{path}.mac"),
                &text,
                "not a MAC address; write six hex octets like 0a:58:0a:00:00:05",
            );
            None
        }
    });

    let port_mappings = element.port_mappings.unwrap_or_default();
    for (i, mapping) in port_mappings.iter().enumerate() {
        if let Some(protocol) = &mapping.protocol
            && !["tcp", "udp", "sctp"]
                .iter()
                .any(|p| protocol.eq_ignore_ascii_case(p))
        {
            problems.report(
                format!("{path}.portMappings[{i}].protocol"),
                protocol,
                "must be tcp, udp or sctp",
            );
        }
        if mapping.host_port == 0 || mapping.container_port == 0 {
            problems.report(
                format!("{path}.portMappings[{i}]"),
                format!("{}:{}", mapping.host_port, mapping.container_port),
                "ports must be between 1 and 65535",
            );
        }
    }

    if problems_len(problems) != before {
        return None;
    }
    let mut request = AttachmentRequest::new(
        RequestFormat::Npwg,
        index,
        attachment(&name, element.namespace),
    );
    request.interface = interface;
    request.ipv4 = ipv4;
    request.ipv6 = ipv6;
    request.mac = mac;
    request.default_route = default_route;
    request.device_id = element.device_id;
    request.ipam_claim = element.ipam_claim;
    request.infiniband_guid = element.infiniband_guid;
    request.port_mappings = port_mappings;
    request.bandwidth = element.bandwidth;
    request.cni_args = element.cni_args.unwrap_or_default();
    request.extensions = extensions;
    Some(request)
}

/// Six hex octets separated by `:` or `-`, as lower-case with colons.
fn normalize_mac(text: &str) -> Option<String> {
    let octets: Vec<&str> = text.split([':', '-']).collect();
    let valid = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    valid.then(|| octets.join(":").to_ascii_lowercase())
}
