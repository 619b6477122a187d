//! DANM's interfaces annotation: `[{"clusterNetwork": "a", "ip": "dynamic", …}, …]`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use plexus_ipam_core::Family;
use serde::Deserialize;

use super::{
    AddressRequest, AnnotationError, AttachmentRequest, DANM_INTERFACES, NetworkRef,
    NetworkRefKind, PolicyRoute, Problems, RequestFormat, parse_static, raw_list,
};
use crate::names::dns_subdomain_problem;
use crate::parse::parse_cidr;

/// One entry as written; unknown keys are refused like DANM does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// A DanmNet in the pod's namespace.
    network: Option<String>,
    /// A TenantNetwork in the pod's namespace.
    #[serde(rename = "tenantNetwork")]
    tenant_network: Option<String>,
    /// A ClusterNetwork.
    #[serde(rename = "clusterNetwork")]
    cluster_network: Option<String>,
    /// IPv4 request.
    ip: Option<String>,
    /// IPv6 request.
    ip6: Option<String>,
    /// IPv4 policy routes.
    proutes: Option<BTreeMap<String, String>>,
    /// IPv6 policy routes.
    proutes6: Option<BTreeMap<String, String>>,
}

/// Parse the value of DANM's interfaces annotation (any of its keys; errors name
/// `danm.k8s.io/interfaces`). An empty list means "the default network".
pub fn parse_danm_interfaces(value: &str) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    parse_as(DANM_INTERFACES, value)
}

/// [`parse_danm_interfaces`], naming `key` in errors.
pub(super) fn parse_as(key: &str, value: &str) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    let raw = raw_list(key, value)?;
    let mut problems = Problems::default();
    let mut requests = Vec::with_capacity(raw.len());
    for (index, entry) in raw.iter().enumerate() {
        match serde_json::from_str::<Entry>(entry.get()) {
            Ok(entry) => {
                if let Some(request) = convert(&mut problems, index, entry) {
                    requests.push(request);
                }
            }
            Err(e) => problems.report(format!("[{index}]"), "", e.to_string()),
        }
    }
    problems.finish(key, requests)
}

/// Check one entry and turn it into a request.
fn convert(problems: &mut Problems, index: usize, entry: Entry) -> Option<AttachmentRequest> {
    let named = [
        ("network", NetworkRefKind::DanmNet, &entry.network),
        (
            "tenantNetwork",
            NetworkRefKind::TenantNetwork,
            &entry.tenant_network,
        ),
        (
            "clusterNetwork",
            NetworkRefKind::ClusterNetwork,
            &entry.cluster_network,
        ),
    ];
    let given: Vec<(&str, NetworkRefKind, &String)> = named
        .iter()
        .filter_map(|(field, kind, name)| name.as_ref().map(|n| (*field, *kind, n)))
        .collect();
    let network = match given.as_slice() {
        [(field, kind, name)] => {
            if let Some(problem) = dns_subdomain_problem(name) {
                problems.report(format!("[{index}].{field}"), *name, problem);
            }
            Some(NetworkRef {
                kind: *kind,
                name: (*name).clone(),
                namespace: None,
            })
        }
        [] => {
            problems.report(
                format!("[{index}]"),
                "",
                "names no network: set exactly one of network, tenantNetwork, clusterNetwork",
            );
            None
        }
        several => {
            let fields: Vec<&str> = several.iter().map(|(f, _, _)| *f).collect();
            problems.report(
                format!("[{index}]"),
                fields.join(", "),
                "names several networks: set exactly one of network, tenantNetwork, \
                 clusterNetwork",
            );
            None
        }
    };
    let ipv4 = address(problems, index, "ip", entry.ip.as_deref(), Family::V4);
    let ipv6 = address(problems, index, "ip6", entry.ip6.as_deref(), Family::V6);
    let mut policy_routes = routes(problems, index, "proutes", entry.proutes, Family::V4);
    policy_routes.extend(routes(
        problems,
        index,
        "proutes6",
        entry.proutes6,
        Family::V6,
    ));
    let mut request = AttachmentRequest::new(RequestFormat::Danm, index, network?);
    request.ipv4 = ipv4?;
    request.ipv6 = ipv6?;
    request.policy_routes = policy_routes;
    Some(request)
}

/// `ip`/`ip6`: absent or empty, `none`, `dynamic`, or a static address of `family`.
fn address(
    problems: &mut Problems,
    index: usize,
    field: &str,
    value: Option<&str>,
    family: Family,
) -> Option<AddressRequest> {
    match value {
        None | Some("") => Some(AddressRequest::Absent),
        Some("none") => Some(AddressRequest::None),
        Some("dynamic") => Some(AddressRequest::Dynamic),
        Some(text) => match parse_static(text, Some(family)) {
            Ok(request) => Some(request),
            Err(message) => {
                problems.report(
                    format!("[{index}].{field}"),
                    text,
                    format!("{message}; use \"dynamic\", \"none\" or a static address"),
                );
                None
            }
        },
    }
}

/// `proutes`/`proutes6`: destination CIDR → gateway, both of `family`.
fn routes(
    problems: &mut Problems,
    index: usize,
    field: &str,
    routes: Option<BTreeMap<String, String>>,
    family: Family,
) -> Vec<PolicyRoute> {
    let mut out = Vec::new();
    for (dst_text, gw_text) in routes.unwrap_or_default() {
        let path = format!("[{index}].{field}[{dst_text:?}]");
        let dst = match parse_cidr(&dst_text) {
            Some(dst) if Family::of_net(&dst) == family => Some(dst.trunc()),
            _ => {
                problems.report(
                    &path,
                    &dst_text,
                    format!("the destination must be an IPv{family} CIDR"),
                );
                None
            }
        };
        let gw = match gw_text.parse::<IpAddr>() {
            Ok(gw) if Family::of(gw) == family => Some(gw),
            _ => {
                problems.report(
                    &path,
                    &gw_text,
                    format!("the gateway must be an IPv{family} address"),
                );
                None
            }
        };
        if let (Some(dst), Some(gw)) = (dst, gw) {
            out.push(PolicyRoute { dst, gw });
        }
    }
    out
}
