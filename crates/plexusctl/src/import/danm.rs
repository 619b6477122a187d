//! DANM's network objects (`DanmNet`, `ClusterNetwork`, `TenantNetwork`) with their
//! `alloc` / `alloc6` bitmaps, and optionally DanmEps to name the holders.
//!
//! Every set bit is a held address, except the ones DANM sets for itself: the network
//! address, the last address and route gateways (and plexus' own reserved addresses).
//! Without a DanmEp for an address the holder is unknown; the address is recorded under a
//! placeholder attachment (`danm-<address>`, interface `unknown`) so it is never handed out
//! again, and `showalloc` prints it as DANM does: `allocated (unknown Pod)`.

use std::collections::HashMap;
use std::net::IpAddr;

use plexus_model::{AllocBitmap, FamilyPool, NetworkObject, Reservation, to_pool};
use plexus_store::{AttachmentKey, Owner};
use serde_json::Value;

use super::{ImportPlan, ImportRecord};
use crate::error::{CtlError, CtlResult};
use crate::netdef::NetworkDef;
use crate::netfile::{is_network_object, network_def, network_object};

/// Interface name recorded for addresses whose DanmEp is unknown.
pub const UNKNOWN_IFNAME: &str = "unknown";

/// Who holds an address, from a DanmEp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `spec.CID`.
    pub container_id: String,
    /// `spec.Interface.Name`.
    pub ifname: String,
    /// Pod namespace and name.
    pub owner: Owner,
    /// `spec.NetworkName`, if set.
    pub network_name: Option<String>,
}

/// How many notes about reserved-but-held addresses are spelled out one by one; the rest
/// are counted, so a hostile bitmap cannot grow the note list without bound.
const MAX_ADDRESS_NOTES: usize = 10;

/// One decoded `alloc` / `alloc6` bitmap and the network family it belongs to.
#[derive(Debug)]
struct HeldBitmap {
    /// Qualified network name the addresses are recorded under.
    network: String,
    /// The family pool (allocation CIDR, reservations, range set).
    family: FamilyPool,
    /// The decoded bits (at most the size the CIDR implies, 2 MiB for a /8).
    bitmap: AllocBitmap,
}

/// The outcome of parsing a DANM file: the networks and notes in `plan`, and the decoded
/// bitmaps. Records are not built here: [`DanmImport::records`] yields them lazily, so
/// memory stays bounded by the bitmaps (2 MiB each at most) however many bits are set.
#[derive(Debug, Default)]
pub struct DanmImport {
    /// Network definitions to store and notes; `plan.records` stays empty.
    pub plan: ImportPlan,
    /// The network objects, for the operator's network files.
    pub networks: Vec<(NetworkObject, NetworkDef)>,
    /// How many records [`DanmImport::records`] yields.
    pub held: u64,
    bitmaps: Vec<HeldBitmap>,
    endpoints: HashMap<IpAddr, Endpoint>,
}

/// Parses DANM documents: network objects and, optionally, DanmEps naming the holders.
pub fn plan(source: &str, docs: &[Value]) -> CtlResult<DanmImport> {
    let mut out = DanmImport::default();
    let mut objects = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let what = format!("{source}: document {}", index + 1);
        if is_network_object(doc) {
            objects.push((what, doc));
        } else if doc.get("kind").and_then(Value::as_str) == Some("DanmEp") {
            for (ip, ep) in endpoint(doc) {
                out.endpoints.insert(ip, ep);
            }
        } else {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("(no kind)");
            return Err(CtlError::invalid(
                what,
                format!("{kind} is not a DANM network object or DanmEp"),
            ));
        }
    }
    for (what, doc) in objects {
        let (object, valid) = network_object(&what, doc)?;
        let def = network_def(source, &object, &valid)?;
        let pool = to_pool(&valid).map_err(|e| CtlError::invalid(&what, e.to_string()))?;
        let bitmaps = [
            (pool.v4, object.spec.options.alloc.as_str(), "alloc"),
            (pool.v6, object.spec.options.alloc6.as_str(), "alloc6"),
        ];
        for (family, text, field) in bitmaps {
            let (Some(family), false) = (family, text.is_empty()) else {
                continue;
            };
            let bitmap = AllocBitmap::decode_for(text, &family.allocation_cidr).map_err(|e| {
                CtlError::invalid(format!("{what}: spec.Options.{field}"), e.to_string())
            })?;
            let held = HeldBitmap {
                network: def.name.clone(),
                family,
                bitmap,
            };
            out.held += out.survey(&what, field, &held);
            out.bitmaps.push(held);
        }
        // The store's allocations are the truth from now on, not the bitmaps.
        let mut stored = object.clone();
        stored.spec.options.alloc.clear();
        stored.spec.options.alloc6.clear();
        let definition = serde_json::to_value(&stored)
            .map_err(|e| CtlError::invalid(&what, format!("cannot encode a network: {e}")))?;
        out.plan
            .networks
            .push((stored.qualified_name(), definition));
        out.networks.push((object, def));
    }
    Ok(out)
}

impl DanmImport {
    /// Every held address as a record, bitmap by bitmap in ascending address order,
    /// built one at a time (nothing is collected).
    pub fn records(&self) -> impl Iterator<Item = ImportRecord> + '_ {
        self.bitmaps.iter().flat_map(move |held| {
            held.bitmap
                .addresses(&held.family.allocation_cidr)
                .filter(|ip| !danm_reserved(&held.family, *ip))
                .map(move |ip| self.record(held, ip))
        })
    }

    /// The record of `ip`, held in `held`'s bitmap.
    fn record(&self, held: &HeldBitmap, ip: IpAddr) -> ImportRecord {
        let (key, owner) = match self.endpoint_of(&held.network, ip) {
            Some(ep) => (
                AttachmentKey::new(&held.network, &ep.container_id, &ep.ifname),
                ep.owner.clone(),
            ),
            None => (
                AttachmentKey::new(&held.network, placeholder_container(ip), UNKNOWN_IFNAME),
                Owner::default(),
            ),
        };
        ImportRecord {
            key,
            owner,
            ip,
            range_set: held.family.range_set.clone(),
            node: None,
            created_at: None,
        }
    }

    /// The DanmEp naming the holder of `ip` in `network`, if any.
    fn endpoint_of(&self, network: &str, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoints.get(&ip).filter(|ep| {
            ep.network_name
                .as_deref()
                .is_none_or(|n| network_matches(network, n))
        })
    }

    /// Counts the records of `held` without building them, and notes held addresses that
    /// plexus reserves and addresses without a known holder. Returns the count.
    fn survey(&mut self, what: &str, field: &str, held: &HeldBitmap) -> u64 {
        let (mut count, mut unknown, mut reserved) = (0u64, 0u64, 0usize);
        for ip in held.bitmap.addresses(&held.family.allocation_cidr) {
            if danm_reserved(&held.family, ip) {
                continue;
            }
            count += 1;
            if let Some(reason) = held.family.reservation(ip) {
                reserved += 1;
                if reserved <= MAX_ADDRESS_NOTES {
                    self.plan.notes.push(format!(
                        "{what}: {ip} is held but {reason}; imported anyway"
                    ));
                }
            }
            if self.endpoint_of(&held.network, ip).is_none() {
                unknown += 1;
            }
        }
        if reserved > MAX_ADDRESS_NOTES {
            self.plan.notes.push(format!(
                "{what}: {} more held address(es) in {field} are reserved or excluded; \
                 imported anyway",
                reserved - MAX_ADDRESS_NOTES
            ));
        }
        if unknown > 0 {
            self.plan.notes.push(format!(
                "{what}: {unknown} address(es) in {field} have no DanmEp; recorded with an \
                 unknown holder (pass the DanmEps in the same file to name them)"
            ));
        }
        count
    }
}

/// Whether DANM set the bit of `ip` for itself (network address, last address, gateway):
/// such bits are not holders.
fn danm_reserved(family: &FamilyPool, ip: IpAddr) -> bool {
    matches!(
        family.reservation(ip),
        Some(Reservation::NetworkAddress | Reservation::Broadcast | Reservation::Gateway)
    )
}

/// Whether a DanmEp's `NetworkName` (a bare name) refers to `network` (`ns/name` or `name`).
fn network_matches(network: &str, ep_network: &str) -> bool {
    network == ep_network || network.rsplit('/').next() == Some(ep_network)
}

/// The placeholder container id of an address with no known holder (a valid CNI id).
pub fn placeholder_container(ip: IpAddr) -> String {
    format!("danm-{}", ip.to_string().replace(':', "-"))
}

/// The addresses a DanmEp holds (IPv4 and IPv6 of its interface), with the holder.
fn endpoint(doc: &Value) -> Vec<(IpAddr, Endpoint)> {
    let text = |path: &str| {
        doc.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let ep = Endpoint {
        container_id: text("/spec/CID").to_string(),
        ifname: text("/spec/Interface/Name").to_string(),
        owner: Owner {
            pod_namespace: Some(text("/metadata/namespace").to_string()).filter(|s| !s.is_empty()),
            pod_name: Some(text("/spec/Pod").to_string()).filter(|s| !s.is_empty()),
            pod_uid: Some(text("/spec/PodUID").to_string()).filter(|s| !s.is_empty()),
            details: None,
        },
        network_name: Some(text("/spec/NetworkName").to_string()).filter(|s| !s.is_empty()),
    };
    if ep.container_id.is_empty() || ep.ifname.is_empty() {
        return Vec::new();
    }
    ["/spec/Interface/Address", "/spec/Interface/AddressIPv6"]
        .iter()
        .filter_map(|path| {
            let address = text(path);
            let ip = address.split('/').next()?.parse::<IpAddr>().ok()?;
            Some((ip, ep.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfile::documents;

    /// A /24 bitmap built by hand from the documented format: 32 bytes, MSB first,
    /// bit i = 10.100.100.i. Bits 0 (network), 1 (gateway), 5, 6, 77 and 255 (broadcast).
    fn bitmap_24() -> String {
        let mut bytes = [0u8; 32];
        for bit in [0usize, 1, 5, 6, 77, 255] {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn danmnet(alloc: &str) -> String {
        format!(
            "apiVersion: danm.k8s.io/v1\nkind: DanmNet\nmetadata: {{name: internal, namespace: prod}}\n\
             spec:\n  NetworkID: internal\n  Options:\n    host_device: eth1\n    cidr: 10.100.100.0/24\n\
             \x20   allocation_pool: {{start: 10.100.100.1, end: 10.100.100.254}}\n\
             \x20   routes: {{10.20.0.0/16: 10.100.100.1}}\n    alloc: {alloc}\n"
        )
    }

    #[test]
    fn hand_built_bitmap_is_documented_format() {
        // The empty /24 with a gateway at .1 from danm.md §1.1 starts with "wAAA" and ends "AE=".
        let mut bytes = [0u8; 32];
        bytes[0] = 0xC0;
        bytes[31] = 0x01;
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(text.starts_with("wAAA") && text.ends_with("AE="), "{text}");
    }

    #[test]
    fn set_bits_become_allocations_except_danm_reservations() {
        let docs = documents("d.yaml", &danmnet(&bitmap_24())).unwrap();
        let import = plan("d.yaml", &docs).unwrap();
        let records: Vec<ImportRecord> = import.records().collect();
        let ips: Vec<String> = records.iter().map(|r| r.ip.to_string()).collect();
        assert_eq!(ips, ["10.100.100.5", "10.100.100.6", "10.100.100.77"]);
        assert_eq!(import.held, 3);
        assert!(
            import.plan.records.is_empty(),
            "records are streamed, not planned"
        );
        assert_eq!(import.plan.networks[0].0, "prod/internal");
        let first = &records[0];
        assert_eq!(first.key.network, "prod/internal");
        assert_eq!(first.key.container_id, "danm-10.100.100.5");
        assert_eq!(first.key.ifname, UNKNOWN_IFNAME);
        assert_eq!(import.networks.len(), 1);
        assert!(import.plan.notes[0].contains("3 address(es) in alloc have no DanmEp"));
    }

    #[test]
    fn danm_eps_name_the_holders() {
        let ep = "---\napiVersion: danm.k8s.io/v1\nkind: DanmEp\nmetadata: {name: e1, namespace: prod}\n\
                  spec: {NetworkName: internal, Pod: web-1, CID: abc123, Interface: {Name: eth1, Address: 10.100.100.6/24}}\n";
        let text = danmnet(&bitmap_24()) + ep;
        let docs = documents("d.yaml", &text).unwrap();
        let import = plan("d.yaml", &docs).unwrap();
        let records: Vec<ImportRecord> = import.records().collect();
        let six = &records[1];
        assert_eq!(six.key.container_id, "abc123");
        assert_eq!(six.key.ifname, "eth1");
        assert_eq!(six.owner.pod_namespace.as_deref(), Some("prod"));
        assert_eq!(six.owner.pod_name.as_deref(), Some("web-1"));
    }

    #[test]
    fn garbage_bitmaps_are_refused() {
        let docs = documents("d.yaml", &danmnet("not*base64")).unwrap();
        let err = plan("d.yaml", &docs).unwrap_err().to_string();
        assert!(err.contains("alloc"), "{err}");
        let docs = documents("d.yaml", &danmnet("gAAA")).unwrap();
        assert!(plan("d.yaml", &docs).is_err());
    }

    #[test]
    fn bitmaps_longer_than_the_cidr_are_refused() {
        use base64::Engine;
        // A /24 takes 32 bytes; 33 (or a /16's worth) is an error, not a bigger network.
        for len in [33usize, 8192] {
            let text = base64::engine::general_purpose::STANDARD.encode(vec![0xffu8; len]);
            let docs = documents("d.yaml", &danmnet(&text)).unwrap();
            let err = plan("d.yaml", &docs).unwrap_err().to_string();
            assert!(err.contains("spec.Options.alloc"), "{err}");
        }
    }

    #[test]
    fn reserved_notes_are_bounded() {
        use base64::Engine;
        // Every bit set, and half the /24 excluded: 127 held-but-excluded addresses give
        // MAX_ADDRESS_NOTES notes and one summary, not 127 lines.
        let text = base64::engine::general_purpose::STANDARD.encode([0xffu8; 32]);
        let yaml = danmnet(&text) + "  plexus: {exclude: [10.100.100.128/25]}\n";
        let docs = documents("d.yaml", &yaml).unwrap();
        let import = plan("d.yaml", &docs).unwrap();
        assert_eq!(import.held, 253, "256 minus network, broadcast and gateway");
        assert_eq!(import.records().count(), 253);
        let held_notes = import
            .plan
            .notes
            .iter()
            .filter(|n| n.contains("imported anyway"));
        assert_eq!(
            held_notes.count(),
            MAX_ADDRESS_NOTES + 1,
            "{:?}",
            import.plan.notes
        );
        assert!(
            import
                .plan
                .notes
                .iter()
                .any(|n| n.contains("117 more held address(es)")),
            "{:?}",
            import.plan.notes
        );
    }
}
