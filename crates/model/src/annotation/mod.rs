//! What a pod asks for: DANM's interfaces annotation or the NPWG v1.3
//! `k8s.v1.cni.cncf.io/networks` annotation, read into one list of [`AttachmentRequest`]s.
//!
//! - DANM (`plexus.io/interfaces`, `danm.k8s.io/interfaces`, `danm.io/interfaces`): a JSON
//!   list; each entry names exactly one of `network` (DanmNet), `tenantNetwork` or
//!   `clusterNetwork`, and optionally `ip`, `ip6` (`none`, `dynamic` or a static
//!   `a.b.c.d/nn`), `proutes`, `proutes6`. Unknown keys are refused.
//! - NPWG: either the comma form `name`, `ns/name`, `ns/name@ifname`, or a JSON list of
//!   selection elements (`name`, `namespace`, `interface`, `ips`, `mac`, `default-route`,
//!   `cni-args`, `portMappings`, `bandwidth`, `deviceID`, `ipam-claim-reference`,
//!   `infiniband-guid`). Unknown keys without a dot are refused as typos; reverse-DNS keys
//!   (with a dot) are extensions and kept.
//!
//! Input is bounded: values over [`MAX_ANNOTATION_BYTES`] or with more than
//! [`MAX_ATTACHMENTS`] entries are refused before any entry is examined. Every problem of
//! every entry is reported, each with its position, unlike NPWG's "silently ignore an
//! invalid annotation".
//!
//! Only the exact keys above are read (DANM matched any key *containing* its key). A pod
//! carrying more than one of them is refused as ambiguous.

mod danm;
mod npwg;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use plexus_ipam_core::Family;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use danm::parse_danm_interfaces;
pub use npwg::{Bandwidth, PortMapping, parse_npwg_networks};

/// plexus' own interfaces annotation (DANM format).
pub const PLEXUS_INTERFACES: &str = "plexus.io/interfaces";
/// DANM's interfaces annotation (API group `danm.k8s.io`).
pub const DANM_INTERFACES: &str = "danm.k8s.io/interfaces";
/// DANM's interfaces annotation after its rename to `danm.io`.
pub const DANM_IO_INTERFACES: &str = "danm.io/interfaces";
/// The NPWG network selection annotation.
pub const NPWG_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// Largest annotation value read: 256 KiB (Kubernetes caps all annotations at 256 KiB).
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// Most attachments one pod may request.
pub const MAX_ATTACHMENTS: usize = 64;

/// Which annotation format a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestFormat {
    /// DANM's interfaces annotation (any of its three keys).
    Danm,
    /// The NPWG `networks` annotation.
    Npwg,
}

/// What kind of object a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkRefKind {
    /// DANM `network`: a DanmNet in the pod's namespace.
    DanmNet,
    /// DANM `tenantNetwork`: a TenantNetwork in the pod's namespace.
    TenantNetwork,
    /// DANM `clusterNetwork`: a ClusterNetwork.
    ClusterNetwork,
    /// NPWG: a NetworkAttachmentDefinition.
    Attachment,
}

/// The network a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkRef {
    /// What kind of object.
    pub kind: NetworkRefKind,
    /// Its name.
    pub name: String,
    /// Its namespace if the request gave one; otherwise the pod's (namespaced kinds).
    pub namespace: Option<String>,
}

/// What a request asks for in one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressRequest {
    /// DANM: the field is absent or empty, so nothing is allocated in this family.
    Absent,
    /// DANM `none`: no address; the interface is L2 only.
    None,
    /// DANM `dynamic`: the next free address of the pool (fails on an L2 network).
    Dynamic,
    /// NPWG without `ips`: whatever the network's IPAM hands out, in every family it has.
    NetworkDefault,
    /// This address. The prefix, if written, is informational: the network's prefix is
    /// what the interface gets, as in DANM.
    Static {
        /// The address.
        address: IpAddr,
        /// The prefix written after it, if any.
        prefix: Option<u8>,
    },
}

/// A policy route (`proutes`/`proutes6`): traffic to `dst` goes through `gw`, in the
/// network's `rt_tables` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRoute {
    /// Destination (host bits cleared).
    pub dst: IpNet,
    /// Next hop.
    pub gw: IpAddr,
}

/// One requested attachment, whichever annotation it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttachmentRequest {
    /// Which annotation format.
    pub format: RequestFormat,
    /// Position in the annotation (DANM names interfaces by it: 0 is `eth0`).
    pub index: usize,
    /// The network.
    pub network: NetworkRef,
    /// Requested interface name (NPWG `interface` or `@ifname`); DANM derives it.
    pub interface: Option<String>,
    /// IPv4 request.
    pub ipv4: AddressRequest,
    /// IPv6 request.
    pub ipv6: AddressRequest,
    /// DANM `proutes` then `proutes6`.
    pub policy_routes: Vec<PolicyRoute>,
    /// NPWG `mac`, lower-case with colons.
    pub mac: Option<String>,
    /// NPWG `default-route`: gateways to install default routes through (one per family).
    pub default_route: Vec<IpAddr>,
    /// NPWG `deviceID` (Multus extension): a PCI address or similar.
    pub device_id: Option<String>,
    /// NPWG `ipam-claim-reference`: the IPAMClaim owning the addresses.
    pub ipam_claim: Option<String>,
    /// NPWG `infiniband-guid`.
    pub infiniband_guid: Option<String>,
    /// NPWG `portMappings`.
    pub port_mappings: Vec<PortMapping>,
    /// NPWG `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// NPWG `cni-args`, merged into the CNI `args`.
    pub cni_args: BTreeMap<String, serde_json::Value>,
    /// NPWG reverse-DNS extension keys, verbatim.
    pub extensions: BTreeMap<String, serde_json::Value>,
}

impl AttachmentRequest {
    /// A request for `network` with nothing else set.
    fn new(format: RequestFormat, index: usize, network: NetworkRef) -> AttachmentRequest {
        let family_default = match format {
            RequestFormat::Danm => AddressRequest::Absent,
            RequestFormat::Npwg => AddressRequest::NetworkDefault,
        };
        AttachmentRequest {
            format,
            index,
            network,
            interface: None,
            ipv4: family_default,
            ipv6: family_default,
            policy_routes: Vec::new(),
            mac: None,
            default_route: Vec::new(),
            device_id: None,
            ipam_claim: None,
            infiniband_guid: None,
            port_mappings: Vec::new(),
            bandwidth: None,
            cni_args: BTreeMap::new(),
            extensions: BTreeMap::new(),
        }
    }
}

/// The requests of one pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodRequest {
    /// The annotation key they came from.
    pub key: &'static str,
    /// Its format.
    pub format: RequestFormat,
    /// The attachments, in annotation order. For DANM an empty list means "the default
    /// network", which the caller resolves.
    pub attachments: Vec<AttachmentRequest>,
}

/// One problem of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// Position and field, e.g. `[2].ip` (`[2]` for the whole entry).
    pub path: String,
    /// The offending value as written (shortened), empty if missing.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{} = {:?}: {}", self.path, self.value, self.message)
        }
    }
}

/// Why a pod's request annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The value is over [`MAX_ANNOTATION_BYTES`].
    #[error("annotation {key} is {bytes} bytes; at most {MAX_ANNOTATION_BYTES} are read")]
    TooLarge {
        /// The annotation key.
        key: String,
        /// Its size.
        bytes: usize,
    },
    /// More than [`MAX_ATTACHMENTS`] entries.
    #[error("annotation {key} requests {count} attachments; at most {MAX_ATTACHMENTS} are allowed")]
    TooManyEntries {
        /// The annotation key.
        key: String,
        /// How many entries it has.
        count: usize,
    },
    /// Not the expected JSON list.
    #[error("annotation {key} is not a JSON list of objects: {detail}")]
    Syntax {
        /// The annotation key.
        key: String,
        /// What the parser found.
        detail: String,
    },
    /// Two request annotations on one pod.
    #[error("the pod has both {first} and {second}; request networks through one of them")]
    Conflict {
        /// The first key.
        first: &'static str,
        /// The second key.
        second: &'static str,
    },
    /// Entries with problems.
    #[error("annotation {key}: {}", join_problems(.problems))]
    Invalid {
        /// The annotation key.
        key: String,
        /// Every problem found.
        problems: Vec<EntryProblem>,
    },
}

/// How many of an annotation's problems its error text spells out; the rest are counted.
/// A pod event or CNI error of 64 entries × several problems, each quoting its value with
/// control characters escaped, ran to 28 KB for a 2.6 KB annotation (found by fuzzing);
/// the first ten say what is wrong, and every problem stays in `Invalid::problems`.
pub const MAX_SHOWN_PROBLEMS: usize = 10;

/// The first [`MAX_SHOWN_PROBLEMS`] problems joined with "; ", then how many more there are.
fn join_problems(problems: &[EntryProblem]) -> String {
    let mut text = problems
        .iter()
        .take(MAX_SHOWN_PROBLEMS)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(more) = problems
        .len()
        .checked_sub(MAX_SHOWN_PROBLEMS)
        .filter(|n| *n > 0)
    {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

/// Find and parse the pod's request annotation, if it has one.
///
/// `Ok(None)`: none of the request keys is present (DANM's default network applies).
pub fn parse_pod_annotations<I, K, V>(annotations: I) -> Result<Option<PodRequest>, AnnotationError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    const KEYS: [(&str, RequestFormat); 4] = [
        (PLEXUS_INTERFACES, RequestFormat::Danm),
        (DANM_INTERFACES, RequestFormat::Danm),
        (DANM_IO_INTERFACES, RequestFormat::Danm),
        (NPWG_NETWORKS, RequestFormat::Npwg),
    ];
    let mut found: Vec<(&'static str, RequestFormat, V)> = Vec::new();
    for (key, value) in annotations {
        if let Some((known, format)) = KEYS.iter().find(|(k, _)| *k == key.as_ref()) {
            found.push((known, *format, value));
        }
    }
    found.sort_by_key(|(key, _, _)| KEYS.iter().position(|(k, _)| k == key));
    let mut found = found.into_iter();
    let Some((key, format, value)) = found.next() else {
        return Ok(None);
    };
    if let Some((second, _, _)) = found.next() {
        return Err(AnnotationError::Conflict { first: key, second });
    }
    let attachments = match format {
        RequestFormat::Danm => danm::parse_as(key, value.as_ref())?,
        RequestFormat::Npwg => parse_npwg_networks(value.as_ref())?,
    };
    Ok(Some(PodRequest {
        key,
        format,
        attachments,
    }))
}

/// Problems found while reading entries.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    /// What was found so far.
    found: Vec<EntryProblem>,
}

impl Problems {
    /// Record a problem at `path`.
    pub(crate) fn report(
        &mut self,
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.found.push(EntryProblem {
            path: path.into(),
            value: crate::shorten(value.into()),
            message: message.into(),
        });
    }

    /// `Ok(value)` if nothing was found, else every problem.
    pub(crate) fn finish<T>(self, key: &str, value: T) -> Result<T, AnnotationError> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(AnnotationError::Invalid {
                key: key.to_owned(),
                problems: self.found,
            })
        }
    }
}

/// Check the size, parse a JSON list, and check its length; entries stay raw so each is
/// decoded on its own (with duplicate keys detected and its index in errors).
pub(crate) fn raw_list<'a>(
    key: &str,
    value: &'a str,
) -> Result<Vec<&'a RawValue>, AnnotationError> {
    check_size(key, value)?;
    let entries: Vec<&RawValue> =
        serde_json::from_str(value).map_err(|e| AnnotationError::Syntax {
            key: key.to_owned(),
            detail: e.to_string(),
        })?;
    check_count(key, entries.len())?;
    Ok(entries)
}

/// Refuse values over [`MAX_ANNOTATION_BYTES`].
pub(crate) fn check_size(key: &str, value: &str) -> Result<(), AnnotationError> {
    if value.len() > MAX_ANNOTATION_BYTES {
        return Err(AnnotationError::TooLarge {
            key: key.to_owned(),
            bytes: value.len(),
        });
    }
    Ok(())
}

/// Refuse more than [`MAX_ATTACHMENTS`] entries.
pub(crate) fn check_count(key: &str, count: usize) -> Result<(), AnnotationError> {
    if count > MAX_ATTACHMENTS {
        return Err(AnnotationError::TooManyEntries {
            key: key.to_owned(),
            count,
        });
    }
    Ok(())
}

/// Parse `a.b.c.d`, `a.b.c.d/nn` (or IPv6) as an address of `family`.
pub(crate) fn parse_static(text: &str, family: Option<Family>) -> Result<AddressRequest, String> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(address) = addr_text.parse::<IpAddr>() else {
        return Err("not an IP address (write e.g. 10.0.0.5/24)".to_owned());
    };
    let actual = Family::of(address);
    if let Some(family) = family
        && actual != family
    {
        return Err(format!(
            "is an IPv{actual} address; IPv{family} is expected here"
        ));
    }
    let prefix = match prefix_text {
        None => None,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= actual.bits() && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                return Err(format!(
                    "the prefix after '/' must be a number from 0 to {}",
                    actual.bits()
                ));
            }
        },
    };
    Ok(AddressRequest::Static { address, prefix })
}

/// Refuse interface names requested twice in one pod.
pub(crate) fn check_unique_interfaces(problems: &mut Problems, requests: &[AttachmentRequest]) {
    for (i, request) in requests.iter().enumerate() {
        let Some(name) = &request.interface else {
            continue;
        };
        if let Some(first) = requests[..i]
            .iter()
            .find(|r| r.interface.as_ref() == Some(name))
        {
            problems.report(
                format!("[{}].interface", request.index),
                name,
                format!(
                    "interface name already requested by entry [{}]",
                    first.index
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
