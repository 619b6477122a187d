//! Translation between the crate's value types and rtnetlink messages: building requests
//! and reading the kernel's reports. Pure, so it is unit-tested without a kernel.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoKind, IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope as NlScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{
    LinkBridge, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVlan,
    LinkVxlan,
};

use crate::routing::{AddressEntry, Dad, IpFamily, Route, RouteScope, Rule};
use crate::types::{IpvlanMode, Link, LinkKind, LinkSpec, LinkSpecKind, MacAddr, MacvlanMode};

/// The netlink address family of `f`.
pub(crate) fn family(f: IpFamily) -> AddressFamily {
    match f {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

fn macvlan_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

fn ipvlan_mode(mode: IpvlanMode) -> IpVlanMode {
    match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

/// Applies the options every kind shares, then builds.
fn finish<T>(builder: LinkMessageBuilder<T>, spec: &LinkSpec) -> LinkMessage {
    let builder = match spec.mtu {
        Some(mtu) => builder.mtu(mtu),
        None => builder,
    };
    let builder = match spec.mac {
        Some(mac) => builder.address(mac.0.to_vec()),
        None => builder,
    };
    builder.build()
}

/// The `RTM_NEWLINK` body for `spec`; `parent_index` is the resolved parent, if any.
pub(crate) fn new_link(spec: &LinkSpec, parent_index: Option<u32>) -> LinkMessage {
    let name = spec.name.as_str();
    let parent = parent_index.unwrap_or_default();
    match &spec.kind {
        LinkSpecKind::Macvlan { mode, .. } => {
            finish(LinkMacVlan::new(name, parent, macvlan_mode(*mode)), spec)
        }
        LinkSpecKind::Ipvlan { mode, .. } => {
            finish(LinkIpVlan::new(name, parent, ipvlan_mode(*mode)), spec)
        }
        LinkSpecKind::Vlan { id, .. } => finish(LinkVlan::new(name, parent, *id), spec),
        LinkSpecKind::Vxlan(vx) => {
            let mut b = LinkVxlan::new(name, vx.vni)
                .port(vx.port)
                .learning(vx.learning)
                .l2miss(vx.l2miss)
                .l3miss(vx.l3miss);
            if let Some(index) = parent_index {
                b = b.dev(index);
            }
            b = match vx.local {
                Some(IpAddr::V4(ip)) => b.local(ip),
                Some(IpAddr::V6(ip)) => b.local6(ip),
                None => b,
            };
            b = match vx.remote {
                Some(IpAddr::V4(ip)) => b.group(ip),
                Some(IpAddr::V6(ip)) => b.group6(ip),
                None => b,
            };
            finish(b, spec)
        }
        // Not LinkBridge::new: that one creates the bridge up, and every kind starts down.
        LinkSpecKind::Bridge => finish(LinkMessageBuilder::<LinkBridge>::new(name), spec),
        LinkSpecKind::Veth { peer } => finish(LinkVeth::new(name, peer), spec),
    }
}

/// A set request addressing the link by name.
pub(crate) fn by_name(name: &str) -> LinkMessageBuilder<LinkUnspec> {
    LinkUnspec::new_with_name(name)
}

/// A get request for the link named `name`.
pub(crate) fn get_link(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_owned()));
    message
}

/// Reads a kernel link report.
pub(crate) fn parse_link(message: &LinkMessage) -> Link {
    let mut link = Link {
        name: String::new(),
        index: message.header.index,
        kind: None,
        parent_index: None,
        mtu: 0,
        mac: None,
        up: message.header.flags.contains(LinkFlags::Up),
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = MacAddr::from_slice(bytes),
            LinkAttribute::Link(index) if *index != 0 => link.parent_index = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(link_kind(kind));
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn link_kind(kind: &InfoKind) -> LinkKind {
    LinkKind::from_kernel_name(&kind.to_string())
}

/// The `RTM_NEWADDR`/`RTM_DELADDR` body for `address` on link `index`.
pub(crate) fn address(index: u32, address: IpNet, dad: Option<Dad>) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family(IpFamily::of(address.addr()));
    message.header.prefix_len = address.prefix_len();
    message.header.index = index;
    message
        .attributes
        .push(AddressAttribute::Local(address.addr()));
    if let IpNet::V4(v4) = address {
        message
            .attributes
            .push(AddressAttribute::Address(address.addr()));
        if v4.prefix_len() < 31 {
            message
                .attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    }
    if matches!(address, IpNet::V6(_)) && dad == Some(Dad::Skip) {
        message.header.flags = AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    message
}

/// Reads a kernel address report.
pub(crate) fn parse_address(message: &AddressMessage) -> Option<AddressEntry> {
    let mut local = None;
    let mut peer = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(message.header.flags.bits()));
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => peer = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IPv6 reports only IFA_ADDRESS.
    let ip = local.or(peer)?;
    let address = IpNet::new(ip, message.header.prefix_len).ok()?;
    Some(AddressEntry {
        address,
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}

fn nl_scope(scope: RouteScope) -> NlScope {
    match scope {
        RouteScope::Universe => NlScope::Universe,
        RouteScope::Link => NlScope::Link,
        RouteScope::Host => NlScope::Host,
        RouteScope::Other(n) => NlScope::from(n),
    }
}

fn scope_of(scope: NlScope) -> RouteScope {
    match scope {
        NlScope::Universe => RouteScope::Universe,
        NlScope::Link => RouteScope::Link,
        NlScope::Host => RouteScope::Host,
        other => RouteScope::Other(u8::from(other)),
    }
}

/// The `RTM_NEWROUTE` body (or, with `for_delete`, an `RTM_DELROUTE` body that matches any
/// protocol, scope and type) for `route`; `oif` is its resolved output link.
pub(crate) fn route(route: &Route, oif: Option<u32>, for_delete: bool) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = family(route.family());
    header.destination_prefix_length = route.destination.prefix_len();
    // Tables above 255 only fit the attribute; the header then says "unspec".
    header.table = u8::try_from(route.table).unwrap_or(0);
    if for_delete {
        header.scope = NlScope::NoWhere;
    } else {
        header.protocol = RouteProtocol::Static;
        header.scope = nl_scope(route.effective_scope());
        header.kind = RouteType::Unicast;
    }
    let attributes = &mut message.attributes;
    attributes.push(RouteAttribute::Table(route.table));
    if route.destination.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(RouteAddress::from(
            route.destination.trunc().addr(),
        )));
    }
    if let Some(gateway) = route.gateway {
        attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    if let Some(oif) = oif {
        attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(metric) = route.metric {
        attributes.push(RouteAttribute::Priority(metric));
    }
    message
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// Reads a kernel route report; `None` for non-unicast routes and other families.
pub(crate) fn parse_route(message: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let header = &message.header;
    if header.kind != RouteType::Unicast {
        return None;
    }
    let unspecified: IpAddr = match header.address_family {
        AddressFamily::Inet => IpAddr::from([0u8; 4]),
        AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let mut destination = unspecified;
    let mut route = Route::new(IpNet::new(unspecified, 0).ok()?);
    route.table = u32::from(header.table);
    route.scope = Some(scope_of(header.scope));
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = route_ip(a)?,
            RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
            RouteAttribute::Oif(index) => route.link = names.get(index).cloned(),
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            RouteAttribute::Table(table) => route.table = *table,
            _ => {}
        }
    }
    route.destination = IpNet::new(destination, header.destination_prefix_length).ok()?;
    Some(route)
}

/// The `RTM_NEWRULE`/`RTM_DELRULE` body for `rule`.
pub(crate) fn rule(rule: &Rule) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = family(rule.family);
    message.header.table = u8::try_from(rule.table).unwrap_or(0);
    message.header.action = RuleAction::ToTable;
    message.attributes.push(RuleAttribute::Table(rule.table));
    if let Some(from) = rule.from {
        message.header.src_len = from.prefix_len();
        message
            .attributes
            .push(RuleAttribute::Source(from.trunc().addr()));
    }
    if let Some(priority) = rule.priority {
        message.attributes.push(RuleAttribute::Priority(priority));
    }
    message
}

/// Reads a kernel rule report; `None` for rules that do not look up a table.
pub(crate) fn parse_rule(message: &RuleMessage) -> Option<Rule> {
    if message.header.action != RuleAction::ToTable {
        return None;
    }
    let family = match message.header.family {
        AddressFamily::Inet => IpFamily::V4,
        AddressFamily::Inet6 => IpFamily::V6,
        _ => return None,
    };
    let mut rule = Rule {
        family,
        from: None,
        table: u32::from(message.header.table),
        priority: Some(0),
    };
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Source(ip) => {
                rule.from = IpNet::new(*ip, message.header.src_len).ok();
            }
            RuleAttribute::Table(table) => rule.table = *table,
            RuleAttribute::Priority(priority) => rule.priority = Some(*priority),
            _ => {}
        }
    }
    Some(rule)
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::{InfoData, InfoMacVlan};

    use super::*;
    use crate::routing::MAIN_TABLE;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    #[test]
    fn macvlan_request_names_parent_mode_and_options() {
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let spec = LinkSpec::macvlan("plx1", "eth1", MacvlanMode::Vepa)
            .with_mtu(1400)
            .with_mac(mac);
        let m = new_link(&spec, Some(7));
        let attrs = &m.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("plx1".into())));
        assert!(attrs.contains(&LinkAttribute::Link(7)));
        assert!(attrs.contains(&LinkAttribute::Mtu(1400)));
        assert!(attrs.contains(&LinkAttribute::Address(mac.0.to_vec())));
        let info = attrs.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i),
            _ => None,
        });
        let info = info.expect("link info");
        assert!(info.contains(&LinkInfo::Kind(InfoKind::MacVlan)));
        assert!(
            info.contains(&LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Vepa
            )])))
        );
        assert!(!m.header.flags.contains(LinkFlags::Up));
    }

    #[test]
    fn bridge_is_created_down() {
        let m = new_link(&LinkSpec::bridge("br0"), None);
        assert!(!m.header.flags.contains(LinkFlags::Up));
        assert!(!m.header.change_mask.contains(LinkFlags::Up));
    }

    #[test]
    fn link_report_round_trips_through_parse() {
        let mut m = new_link(&LinkSpec::macvlan("m1", "p", MacvlanMode::Bridge), Some(3));
        m.header.index = 12;
        m.header.flags = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Mtu(1500));
        m.attributes
            .push(LinkAttribute::Address(vec![2, 1, 2, 3, 4, 5]));
        let link = parse_link(&m);
        assert_eq!(link.name, "m1");
        assert_eq!(link.index, 12);
        assert_eq!(link.kind, Some(LinkKind::Macvlan));
        assert_eq!(link.parent_index, Some(3));
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.mac, Some(MacAddr([2, 1, 2, 3, 4, 5])));
        assert!(link.up);
    }

    #[test]
    fn ipv6_addresses_skip_dad_on_request_and_ipv4_gets_broadcast() {
        let v6 = address(4, net("fd00::5/64"), Some(Dad::Skip));
        assert!(v6.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(
            v6.attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Nodad))
        );
        let probed = address(4, net("fd00::5/64"), Some(Dad::Run));
        assert!(!probed.header.flags.contains(AddressHeaderFlags::Nodad));
        let v4 = address(4, net("10.0.0.5/24"), Some(Dad::Skip));
        assert_eq!(v4.header.prefix_len, 24);
        assert!(!v4.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(v4.attributes.contains(&AddressAttribute::Broadcast(
            "10.0.0.255".parse().expect("ip")
        )));
        let entry = parse_address(&v4).expect("parses");
        assert_eq!(entry.address, net("10.0.0.5/24"));
        assert!(!entry.tentative && !entry.dad_failed);
    }

    #[test]
    fn address_flags_are_reported() {
        let mut m = address(4, net("fd00::5/64"), None);
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Tentative | AddressFlags::Dadfailed,
        ));
        let entry = parse_address(&m).expect("parses");
        assert!(entry.tentative && entry.dad_failed);
    }

    #[test]
    fn route_request_and_report_agree() {
        let wanted = Route::new(net("10.1.0.0/16"))
            .via("10.0.0.1".parse().expect("ip"))
            .in_table(1000)
            .with_metric(7);
        let m = route(&wanted, Some(5), false);
        assert_eq!(m.header.table, 0, "tables > 255 live in RTA_TABLE only");
        assert_eq!(m.header.scope, NlScope::Universe);
        let names = HashMap::from([(5, "eth1".to_string())]);
        let reported = parse_route(&m, &names).expect("unicast");
        assert!(reported.covers(&wanted.clone().dev("eth1")), "{reported:?}");
        let del = route(&wanted, Some(5), true);
        assert_eq!(del.header.scope, NlScope::NoWhere);
        assert_eq!(del.header.protocol, RouteProtocol::Unspec);
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let m = route(
            &Route::new(net("0.0.0.0/0")).via("10.0.0.1".parse().expect("ip")),
            None,
            false,
        );
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        let reported = parse_route(&m, &HashMap::new()).expect("unicast");
        assert_eq!(reported.destination, net("0.0.0.0/0"));
        assert_eq!(reported.table, MAIN_TABLE);
    }

    #[test]
    fn non_unicast_routes_are_not_reported() {
        let mut m = route(&Route::new(net("10.0.0.5/32")), None, false);
        m.header.kind = RouteType::Local;
        assert_eq!(parse_route(&m, &HashMap::new()), None);
    }

    #[test]
    fn rule_request_and_report_agree() {
        let wanted = Rule::from_source(net("10.0.0.5/24"), 100).with_priority(500);
        let reported = parse_rule(&rule(&wanted)).expect("lookup rule");
        assert!(reported.covers(&wanted), "{reported:?}");
        assert_eq!(reported.from, Some(net("10.0.0.0/24")));
        let v6 = Rule::from_source(net("fd00::5/64"), 300);
        let reported = parse_rule(&rule(&v6)).expect("lookup rule");
        assert_eq!(reported.family, IpFamily::V6);
        assert_eq!(reported.table, 300);
    }
}
