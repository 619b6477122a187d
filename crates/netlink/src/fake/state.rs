//! The fake's in-memory kernel: namespaces holding links (with addresses), routes, rules and
//! sysctls, and the link rules the real kernel enforces (name clashes, missing parents,
//! addresses flushed by a netns move, cascading deletes). Layer 3 is in `layer3.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::error::{ErrorContext, ErrorKind, Result};
use crate::names::validate_link_name;
use crate::routing::{AddressEntry, IpFamily, Route, Rule};
use crate::types::{Link, LinkKind, LinkSpec, LinkSpecKind, MacAddr, Netns};

/// MTU the kernel gives a new link that inherits nothing.
const DEFAULT_MTU: u32 = 1500;
/// Bytes a VXLAN header costs on an IPv4 underlay.
const VXLAN_OVERHEAD: u32 = 50;
/// Priorities of the kernel's default rules (local, main, default).
const DEFAULT_RULES: [(u32, u32); 3] = [(0, 255), (32766, 254), (32767, 253)];

/// A link in the fake, with the state the kernel keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    /// What [`crate::Dataplane::link`] reports. Indexes are unique across all namespaces,
    /// which lets `parent_index` and `peer` name a link wherever it lives.
    pub link: Link,
    /// The other end of a veth pair.
    pub peer: Option<u32>,
    /// Addresses, in the order added.
    pub addresses: Vec<AddressEntry>,
}

/// One namespace of the fake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeNetns {
    /// Links, in index order.
    pub links: Vec<FakeLink>,
    /// Routes added through the dataplane (connected routes are implied by addresses).
    pub routes: Vec<Route>,
    /// Policy rules, the kernel's three defaults first.
    pub rules: Vec<Rule>,
    /// Sysctl writes: `(link, key)` → value.
    pub sysctls: BTreeMap<(String, String), String>,
    /// Announcements sent: `(link, address)`.
    pub announcements: Vec<(String, IpAddr)>,
}

impl FakeNetns {
    fn fresh(lo_index: u32, lo_up: bool) -> FakeNetns {
        let lo = FakeLink {
            link: Link {
                name: "lo".into(),
                index: lo_index,
                kind: None,
                parent_index: None,
                mtu: 65536,
                mac: Some(MacAddr([0; 6])),
                up: lo_up,
            },
            peer: None,
            addresses: Vec::new(),
        };
        let mut rules = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            for (priority, table) in DEFAULT_RULES {
                // IPv6 has no "from all lookup default" rule.
                if family == IpFamily::V6 && table == 253 {
                    continue;
                }
                rules.push(Rule {
                    family,
                    from: None,
                    table,
                    priority: Some(priority),
                });
            }
        }
        FakeNetns {
            links: vec![lo],
            rules,
            ..FakeNetns::default()
        }
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&FakeLink> {
        self.links.iter().find(|l| l.link.name == name)
    }

    pub(super) fn link_mut(&mut self, name: &str) -> Option<&mut FakeLink> {
        self.links.iter_mut().find(|l| l.link.name == name)
    }

    fn name_of(&self, index: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.link.index == index)
            .map(|l| l.link.name.as_str())
    }

    /// True when an up link has an address whose prefix contains `gateway`.
    pub(super) fn reachable(&self, gateway: IpAddr, via: Option<&str>) -> bool {
        self.links
            .iter()
            .filter(|l| l.link.up && via.is_none_or(|name| l.link.name == name))
            .flat_map(|l| l.addresses.iter())
            .any(|a| a.address.contains(&gateway))
    }
}

/// Every namespace of the fake, plus what it was told to pretend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKernel {
    /// Namespaces by identity.
    pub namespaces: BTreeMap<Netns, FakeNetns>,
    /// Link kinds whose module is "missing": creating one is `Unsupported`.
    pub unsupported: BTreeSet<String>,
    /// Addresses that fail IPv6 DAD when added with [`Dad::Run`].
    pub duplicates: BTreeSet<IpAddr>,
    next_index: u32,
}

impl Default for FakeKernel {
    fn default() -> FakeKernel {
        let mut kernel = FakeKernel {
            namespaces: BTreeMap::new(),
            unsupported: BTreeSet::new(),
            duplicates: BTreeSet::new(),
            next_index: 1,
        };
        let lo = kernel.allocate_index();
        kernel
            .namespaces
            .insert(Netns::Host, FakeNetns::fresh(lo, true));
        kernel
    }
}

pub(super) fn invalid_name(ctx: &ErrorContext, err: impl std::fmt::Display) -> crate::Error {
    ctx.error(ErrorKind::Invalid, err.to_string())
}

pub(super) fn missing_link(ctx: &ErrorContext, name: &str) -> crate::Error {
    ctx.error(
        ErrorKind::NotFound,
        format!("no link named {name:?}: No such device (ENODEV)"),
    )
}

impl FakeKernel {
    fn allocate_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// Adds an empty namespace (loopback down), as `ip netns add` would. Idempotent.
    pub fn add_netns(&mut self, netns: Netns) {
        if !self.namespaces.contains_key(&netns) {
            let lo = self.allocate_index();
            self.namespaces.insert(netns, FakeNetns::fresh(lo, false));
        }
    }

    /// Removes a namespace; its links go with it, as do links whose parent was in it.
    pub fn remove_netns(&mut self, netns: &Netns) {
        if let Some(ns) = self.namespaces.remove(netns) {
            for link in ns.links {
                self.cascade_delete(link.link.index);
            }
        }
    }

    /// The namespace, or `NotFound` as opening a missing netns file would be.
    pub fn ns(&self, ctx: &ErrorContext) -> Result<&FakeNetns> {
        self.namespaces.get(&ctx.netns).ok_or_else(|| {
            ctx.error(
                ErrorKind::NotFound,
                "the netns file does not exist: No such file or directory (ENOENT)",
            )
        })
    }

    pub(super) fn ns_mut(&mut self, ctx: &ErrorContext) -> Result<&mut FakeNetns> {
        self.ns(ctx)?;
        self.namespaces
            .get_mut(&ctx.netns)
            .ok_or_else(|| ctx.error(ErrorKind::NotFound, "netns vanished"))
    }

    /// A physical-like device (no kind), up, e.g. the node's NIC.
    pub fn add_device(&mut self, netns: &Netns, name: &str, mtu: u32) -> Link {
        let index = self.allocate_index();
        let link = Link {
            name: name.to_owned(),
            index,
            kind: None,
            parent_index: None,
            mtu,
            mac: Some(generated_mac(index)),
            up: true,
        };
        if let Some(ns) = self.namespaces.get_mut(netns) {
            ns.links.push(FakeLink {
                link: link.clone(),
                peer: None,
                addresses: Vec::new(),
            });
        }
        link
    }

    /// Creates a link as `ip link add` would.
    pub fn create_link(&mut self, ctx: &ErrorContext, spec: &LinkSpec) -> Result<Link> {
        validate_link_name(&spec.name).map_err(|e| invalid_name(ctx, e))?;
        let kind = spec.kind.link_kind();
        if self.unsupported.contains(kind.as_str()) {
            return Err(ctx.error(
                ErrorKind::Unsupported,
                format!("Unknown device type {kind:?}: Operation not supported (EOPNOTSUPP)"),
            ));
        }
        let ns = self.ns(ctx)?;
        // The parent (and a veth peer) live where the call runs; the link where it targets.
        let dest = spec.target.clone().unwrap_or_else(|| ctx.netns.clone());
        let Some(dest_ns) = self.namespaces.get(&dest) else {
            return Err(ctx.error(
                ErrorKind::NotFound,
                format!("target netns {dest} does not exist: No such file or directory (ENOENT)"),
            ));
        };
        if dest_ns.link(&spec.name).is_some() {
            return Err(ctx.error(ErrorKind::Exists, "File exists (EEXIST)"));
        }
        let parent = match spec.kind.parent() {
            Some(name) => Some(ns.link(name).cloned().ok_or_else(|| {
                ctx.error(
                    ErrorKind::NotFound,
                    format!("parent link {name:?} does not exist: No such device (ENODEV)"),
                )
            })?),
            None => None,
        };
        let mut peer_name = None;
        match &spec.kind {
            LinkSpecKind::Vlan { id, .. } if *id >= 4095 => {
                return Err(ctx.error(ErrorKind::Invalid, "VLAN id out of range (ERANGE)"));
            }
            LinkSpecKind::Vxlan(vx) if vx.vni >= 1 << 24 => {
                return Err(ctx.error(ErrorKind::Invalid, "VNI out of range (ERANGE)"));
            }
            LinkSpecKind::Veth { peer } => {
                validate_link_name(peer).map_err(|e| invalid_name(ctx, e))?;
                if peer == &spec.name || ns.link(peer).is_some() {
                    return Err(ctx.error(ErrorKind::Exists, "peer: File exists (EEXIST)"));
                }
                peer_name = Some(peer.clone());
            }
            _ => {}
        }
        let stacked = matches!(kind, LinkKind::Macvlan | LinkKind::Ipvlan | LinkKind::Vlan);
        let mtu = match (spec.mtu, &parent) {
            (Some(mtu), Some(p)) if stacked && mtu > p.link.mtu => {
                return Err(ctx.error(
                    ErrorKind::Invalid,
                    format!("MTU {mtu} exceeds the parent's {}", p.link.mtu),
                ));
            }
            (Some(mtu), _) if !(68..=65535).contains(&mtu) => {
                return Err(ctx.error(ErrorKind::Invalid, "MTU out of range (EINVAL)"));
            }
            (Some(mtu), _) => mtu,
            (None, Some(p)) if stacked => p.link.mtu,
            (None, Some(p)) if kind == LinkKind::Vxlan => p.link.mtu.saturating_sub(VXLAN_OVERHEAD),
            (None, _) if kind == LinkKind::Vxlan => DEFAULT_MTU - VXLAN_OVERHEAD,
            (None, _) => DEFAULT_MTU,
        };
        let index = self.allocate_index();
        let mac = match (&spec.kind, &parent) {
            (LinkSpecKind::Ipvlan { .. }, Some(p)) => p.link.mac,
            _ => Some(spec.mac.unwrap_or_else(|| generated_mac(index))),
        };
        let peer_index = peer_name.as_ref().map(|_| self.allocate_index());
        let link = Link {
            name: spec.name.clone(),
            index,
            kind: Some(kind),
            parent_index: parent.map(|p| p.link.index).or(peer_index),
            mtu,
            mac,
            up: false,
        };
        let dest_ns = self
            .namespaces
            .get_mut(&dest)
            .ok_or_else(|| ctx.error(ErrorKind::NotFound, "target netns vanished"))?;
        dest_ns.links.push(FakeLink {
            link: link.clone(),
            peer: peer_index,
            addresses: Vec::new(),
        });
        dest_ns.links.sort_by_key(|l| l.link.index);
        let ns = self.ns_mut(ctx)?;
        if let (Some(peer), Some(peer_index)) = (peer_name, peer_index) {
            ns.links.push(FakeLink {
                link: Link {
                    name: peer,
                    index: peer_index,
                    kind: Some(LinkKind::Veth),
                    parent_index: Some(index),
                    mtu,
                    mac: Some(generated_mac(peer_index)),
                    up: false,
                },
                peer: Some(index),
                addresses: Vec::new(),
            });
        }
        Ok(link)
    }

    /// Moves a link between namespaces: down, addresses and routes gone.
    pub fn move_link(&mut self, ctx: &ErrorContext, name: &str, target: &Netns) -> Result<()> {
        let ns = self.ns(ctx)?;
        let link = ns.link(name).ok_or_else(|| missing_link(ctx, name))?;
        if link.link.name == "lo" && link.link.kind.is_none() {
            return Err(ctx.error(ErrorKind::Invalid, "loopback cannot leave its netns"));
        }
        let Some(dest) = self.namespaces.get(target) else {
            return Err(ctx.error(
                ErrorKind::NotFound,
                format!("target netns {target} does not exist: No such file or directory (ENOENT)"),
            ));
        };
        if target == &ctx.netns {
            return Ok(());
        }
        if dest.link(name).is_some() {
            return Err(ctx.error(
                ErrorKind::Exists,
                format!("the target netns already has a link named {name:?} (EEXIST)"),
            ));
        }
        let ns = self.ns_mut(ctx)?;
        let pos = ns
            .links
            .iter()
            .position(|l| l.link.name == name)
            .ok_or_else(|| missing_link(ctx, name))?;
        let mut moved = ns.links.remove(pos);
        ns.routes.retain(|r| r.link.as_deref() != Some(name));
        moved.link.up = false;
        moved.addresses.clear();
        if let Some(dest) = self.namespaces.get_mut(target) {
            dest.links.push(moved);
            dest.links.sort_by_key(|l| l.link.index);
        }
        Ok(())
    }

    /// Renames a link; routes follow it.
    pub fn rename_link(&mut self, ctx: &ErrorContext, name: &str, new_name: &str) -> Result<()> {
        validate_link_name(new_name).map_err(|e| invalid_name(ctx, e))?;
        let ns = self.ns_mut(ctx)?;
        if ns.link(name).is_none() {
            return Err(missing_link(ctx, name));
        }
        if name != new_name && ns.link(new_name).is_some() {
            return Err(ctx.error(
                ErrorKind::Exists,
                format!("a link named {new_name:?} exists (EEXIST)"),
            ));
        }
        for route in ns.routes.iter_mut() {
            if route.link.as_deref() == Some(name) {
                route.link = Some(new_name.to_owned());
            }
        }
        if let Some(link) = ns.link_mut(name) {
            link.link.name = new_name.to_owned();
        }
        Ok(())
    }

    /// Applies `change` to an existing link.
    pub fn update_link(
        &mut self,
        ctx: &ErrorContext,
        name: &str,
        change: impl FnOnce(&mut Link) -> Result<()>,
    ) -> Result<()> {
        let ns = self.ns_mut(ctx)?;
        let link = ns.link_mut(name).ok_or_else(|| missing_link(ctx, name))?;
        change(&mut link.link)?;
        if !link.link.up {
            // The kernel drops routes through a link that goes down.
            ns.routes.retain(|r| r.link.as_deref() != Some(name));
        }
        Ok(())
    }

    /// Deletes a link (absent or netns gone = Ok) with its veth peer and the links stacked
    /// on it.
    pub fn delete_link(&mut self, ctx: &ErrorContext, name: &str) -> Result<()> {
        let Some(ns) = self.namespaces.get(&ctx.netns) else {
            return Ok(());
        };
        let Some(link) = ns.link(name) else {
            return Ok(());
        };
        if link.link.name == "lo" && link.link.kind.is_none() {
            return Err(ctx.error(
                ErrorKind::Unsupported,
                "loopback cannot be deleted: Operation not supported (EOPNOTSUPP)",
            ));
        }
        let index = link.link.index;
        self.cascade_delete(index);
        Ok(())
    }

    fn cascade_delete(&mut self, index: u32) {
        let mut doomed = vec![index];
        while let Some(index) = doomed.pop() {
            for ns in self.namespaces.values_mut() {
                let Some(pos) = ns.links.iter().position(|l| l.link.index == index) else {
                    continue;
                };
                let gone = ns.links.remove(pos);
                ns.routes
                    .retain(|r| r.link.as_deref() != Some(gone.link.name.as_str()));
                doomed.extend(gone.peer);
            }
            for ns in self.namespaces.values() {
                doomed.extend(
                    ns.links
                        .iter()
                        .filter(|l| l.peer.is_none() && l.link.parent_index == Some(index))
                        .map(|l| l.link.index),
                );
            }
        }
    }

    /// Resolves a link index to its name within a namespace.
    pub fn name_of(&self, netns: &Netns, index: u32) -> Option<String> {
        self.namespaces
            .get(netns)
            .and_then(|ns| ns.name_of(index))
            .map(str::to_owned)
    }
}

/// A locally administered MAC derived from the link index (deterministic for tests).
fn generated_mac(index: u32) -> MacAddr {
    let [a, b, c, d] = index.to_be_bytes();
    MacAddr([0x02, 0x00, a, b, c, d])
}
