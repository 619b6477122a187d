//! [`RealDataplane`]: the [`Dataplane`] on the running kernel, over rtnetlink.
//!
//! Each netns gets one netlink connection, opened by a short-lived thread that entered it
//! (`netns.rs`); requests then run as ordinary async I/O from any task. Sysctl writes and
//! announcements, which must happen *inside* the netns, run on such a thread too.

mod inside;
mod messages;
mod netns;
mod request;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use async_trait::async_trait;
use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage as Msg;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;
use rtnetlink::Handle;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use self::inside::InsideError;
use self::netns::Namespaces;
use self::request::{ack, dump, get_one};
use crate::dataplane::Dataplane;
use crate::error::{ErrorContext, ErrorKind, Op, Result, errno_detail};
use crate::names::validate_link_name;
use crate::probe::ArpProbe;
use crate::routing::{AddressEntry, Dad, IpFamily, Route, Rule};
use crate::sysctl::Sysctl;
use crate::types::{Link, LinkSpec, LinkSpecKind, MacAddr, Netns};

/// The kernel dataplane. Build it on a thread in the host netns (normally `main`), inside a
/// tokio runtime with I/O enabled, and use it from that runtime only.
pub struct RealDataplane {
    namespaces: Namespaces,
}

const NEW: u16 = NLM_F_CREATE | NLM_F_EXCL;

fn ok_if_absent(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

fn inside_error(ctx: &ErrorContext, err: InsideError) -> crate::Error {
    ctx.error(
        ErrorKind::from_errno(err.errno),
        format!("{}: {}", err.doing, errno_detail(err.errno)),
    )
}

impl RealDataplane {
    /// A dataplane whose [`Netns::Host`] is the calling thread's netns.
    pub fn new() -> std::io::Result<RealDataplane> {
        Ok(RealDataplane {
            namespaces: Namespaces::new()?,
        })
    }

    /// Closes the cached netlink connection of `netns`. A long-running process calls this
    /// once a pod is gone, so its socket does not keep the dead netns alive.
    pub fn forget_netns(&self, netns: &Netns) {
        self.namespaces.forget(netns);
    }

    /// How many namespaces currently have an open connection.
    pub fn open_connections(&self) -> usize {
        self.namespaces.open_connections()
    }

    async fn handle(&self, ctx: &ErrorContext) -> Result<Handle> {
        self.namespaces.handle(ctx, &ctx.netns).await
    }

    /// The handle for a deletion: `None` when the netns itself is gone (and with it
    /// whatever was to be deleted).
    async fn handle_unless_gone(&self, ctx: &ErrorContext) -> Result<Option<Handle>> {
        match self.handle(ctx).await {
            Ok(handle) => Ok(Some(handle)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find(&self, handle: &Handle, ctx: &ErrorContext, name: &str) -> Result<Option<Link>> {
        // A name the kernel would reject cannot exist; asking would only earn EINVAL.
        if validate_link_name(name).is_err() {
            return Ok(None);
        }
        let reply = get_one(handle, ctx, Msg::GetLink(messages::get_link(name))).await?;
        Ok(match reply {
            Some(Msg::NewLink(message)) => Some(messages::parse_link(&message)),
            _ => None,
        })
    }

    async fn index_of(&self, handle: &Handle, ctx: &ErrorContext, name: &str) -> Result<u32> {
        match self.find(handle, ctx, name).await? {
            Some(link) => Ok(link.index),
            None => Err(ctx.error(
                ErrorKind::NotFound,
                format!("no link named {name:?}: No such device (ENODEV)"),
            )),
        }
    }

    async fn set_link(&self, ctx: &ErrorContext, message: LinkMessage) -> Result<()> {
        let handle = self.handle(ctx).await?;
        ack(&handle, ctx, Msg::SetLink(message), 0).await
    }

    async fn link_names(
        &self,
        handle: &Handle,
        ctx: &ErrorContext,
    ) -> Result<HashMap<u32, String>> {
        let links = dump(handle, ctx, Msg::GetLink(LinkMessage::default())).await?;
        Ok(links
            .iter()
            .filter_map(|m| match m {
                Msg::NewLink(link) => Some(messages::parse_link(link)),
                _ => None,
            })
            .map(|link| (link.index, link.name))
            .collect())
    }
}

#[async_trait]
impl Dataplane for RealDataplane {
    async fn create_link(&self, netns: &Netns, spec: &LinkSpec) -> Result<Link> {
        let ctx = ErrorContext::new(Op::CreateLink, Some(&spec.name), netns);
        validate_link_name(&spec.name).map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        if let LinkSpecKind::Veth { peer } = &spec.kind {
            validate_link_name(peer).map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        }
        let handle = self.handle(&ctx).await?;
        let parent_index = match spec.kind.parent() {
            Some(parent) => Some(
                self.find(&handle, &ctx, parent)
                    .await?
                    .ok_or_else(|| {
                        ctx.error(
                            ErrorKind::NotFound,
                            format!(
                                "parent link {parent:?} does not exist: No such device (ENODEV)"
                            ),
                        )
                    })?
                    .index,
            ),
            None => None,
        };
        let mut message = messages::new_link(spec, parent_index);
        let target = spec.target.as_ref().filter(|t| *t != netns);
        let target_file = match target {
            Some(target) => Some(
                self.namespaces
                    .file(&ctx, target)
                    .map_err(|e| e.with_hint(&format!("opening the target netns {target}")))?,
            ),
            None => None,
        };
        if let Some(file) = &target_file {
            message
                .attributes
                .push(LinkAttribute::NetNsFd(file.as_raw_fd()));
        }
        ack(&handle, &ctx, Msg::NewLink(message), NEW)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Unsupported => e.with_hint(&format!(
                    "the kernel cannot create {} links (module not available?)",
                    spec.kind.link_kind()
                )),
                _ => e,
            })?;
        // The kernel has the target's fd by now.
        drop(target_file);
        let (home, home_ctx) = match target {
            Some(target) => {
                let home_ctx = ErrorContext::new(Op::CreateLink, Some(&spec.name), target);
                (self.handle(&home_ctx).await?, home_ctx)
            }
            None => (handle, ctx),
        };
        self.find(&home, &home_ctx, &spec.name)
            .await?
            .ok_or_else(|| {
                home_ctx.error(ErrorKind::Other, "the link vanished right after creation")
            })
    }

    async fn move_link(&self, netns: &Netns, link: &str, target: &Netns) -> Result<()> {
        let ctx = ErrorContext::new(Op::MoveLink, Some(link), netns);
        let target_file = self
            .namespaces
            .file(&ctx, target)
            .map_err(|e| e.with_hint(&format!("opening the target netns {target}")))?;
        let message = messages::by_name(link)
            .setns_by_fd(target_file.as_raw_fd())
            .build();
        // `target_file` stays open until the kernel has answered.
        let result = self.set_link(&ctx, message).await;
        drop(target_file);
        result
    }

    async fn rename_link(&self, netns: &Netns, link: &str, new_name: &str) -> Result<()> {
        let ctx = ErrorContext::new(Op::RenameLink, Some(link), netns);
        validate_link_name(new_name).map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        let handle = self.handle(&ctx).await?;
        let index = self.index_of(&handle, &ctx, link).await?;
        let message = rtnetlink::LinkUnspec::new_with_index(index)
            .name(new_name.to_owned())
            .build();
        ack(&handle, &ctx, Msg::SetLink(message), 0).await
    }

    async fn set_mtu(&self, netns: &Netns, link: &str, mtu: u32) -> Result<()> {
        let ctx = ErrorContext::new(Op::SetMtu, Some(link), netns);
        self.set_link(&ctx, messages::by_name(link).mtu(mtu).build())
            .await
    }

    async fn set_mac(&self, netns: &Netns, link: &str, mac: MacAddr) -> Result<()> {
        let ctx = ErrorContext::new(Op::SetMac, Some(link), netns);
        // The kernel answers EADDRNOTAVAIL here, which elsewhere means "absent".
        if !mac.is_assignable() {
            return Err(ctx.error(
                ErrorKind::Invalid,
                format!("{mac} is a multicast or all-zero MAC address"),
            ));
        }
        let message = messages::by_name(link).address(mac.0.to_vec()).build();
        self.set_link(&ctx, message).await
    }

    async fn set_up(&self, netns: &Netns, link: &str) -> Result<()> {
        let ctx = ErrorContext::new(Op::SetUp, Some(link), netns);
        self.set_link(&ctx, messages::by_name(link).up().build())
            .await
    }

    async fn set_down(&self, netns: &Netns, link: &str) -> Result<()> {
        let ctx = ErrorContext::new(Op::SetDown, Some(link), netns);
        self.set_link(&ctx, messages::by_name(link).down().build())
            .await
    }

    async fn delete_link(&self, netns: &Netns, link: &str) -> Result<()> {
        let ctx = ErrorContext::new(Op::DeleteLink, Some(link), netns);
        if validate_link_name(link).is_err() {
            return Ok(());
        }
        let Some(handle) = self.handle_unless_gone(&ctx).await? else {
            return Ok(());
        };
        let message = Msg::DelLink(messages::get_link(link));
        ok_if_absent(ack(&handle, &ctx, message, 0).await)
    }

    async fn link(&self, netns: &Netns, link: &str) -> Result<Option<Link>> {
        let ctx = ErrorContext::new(Op::GetLink, Some(link), netns);
        let handle = self.handle(&ctx).await?;
        self.find(&handle, &ctx, link).await
    }

    async fn list_links(&self, netns: &Netns) -> Result<Vec<Link>> {
        let ctx = ErrorContext::new(Op::ListLinks, None, netns);
        let handle = self.handle(&ctx).await?;
        let replies = dump(&handle, &ctx, Msg::GetLink(LinkMessage::default())).await?;
        let mut links: Vec<Link> = replies
            .iter()
            .filter_map(|m| match m {
                Msg::NewLink(link) => Some(messages::parse_link(link)),
                _ => None,
            })
            .collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    async fn add_address(&self, netns: &Netns, link: &str, address: IpNet, dad: Dad) -> Result<()> {
        let ctx = ErrorContext::new(Op::AddAddress, Some(link), netns);
        let handle = self.handle(&ctx).await?;
        let index = self.index_of(&handle, &ctx, link).await?;
        let message = messages::address(index, address, Some(dad));
        ack(&handle, &ctx, Msg::NewAddress(message), NEW)
            .await
            .map_err(|e| e.with_hint(&format!("address {address}")))
    }

    async fn del_address(&self, netns: &Netns, link: &str, address: IpNet) -> Result<()> {
        let ctx = ErrorContext::new(Op::DelAddress, Some(link), netns);
        let Some(handle) = self.handle_unless_gone(&ctx).await? else {
            return Ok(());
        };
        let index = match self.index_of(&handle, &ctx, link).await {
            Ok(index) => index,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let message = Msg::DelAddress(messages::address(index, address, None));
        ok_if_absent(ack(&handle, &ctx, message, 0).await)
    }

    async fn list_addresses(&self, netns: &Netns, link: &str) -> Result<Vec<AddressEntry>> {
        let ctx = ErrorContext::new(Op::ListAddresses, Some(link), netns);
        let handle = self.handle(&ctx).await?;
        let index = self.index_of(&handle, &ctx, link).await?;
        let replies = dump(&handle, &ctx, Msg::GetAddress(AddressMessage::default())).await?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                Msg::NewAddress(a) if a.header.index == index => messages::parse_address(a),
                _ => None,
            })
            .collect())
    }

    async fn add_route(&self, netns: &Netns, route: &Route) -> Result<()> {
        let ctx = ErrorContext::new(Op::AddRoute, route.link.as_deref(), netns);
        if !route.is_consistent() {
            return Err(ctx.error(
                ErrorKind::Invalid,
                format!("route {route}: gateway family differs from the destination's"),
            ));
        }
        let handle = self.handle(&ctx).await?;
        let oif = match &route.link {
            Some(link) => Some(self.index_of(&handle, &ctx, link).await?),
            None => None,
        };
        let message = messages::route(route, oif, false);
        ack(&handle, &ctx, Msg::NewRoute(message), NEW)
            .await
            .map_err(|e| e.with_hint(&format!("route {route}")))
    }

    async fn del_route(&self, netns: &Netns, route: &Route) -> Result<()> {
        let ctx = ErrorContext::new(Op::DelRoute, route.link.as_deref(), netns);
        let Some(handle) = self.handle_unless_gone(&ctx).await? else {
            return Ok(());
        };
        let oif = match &route.link {
            // The kernel removed the link's routes along with the link.
            Some(link) => match self.find(&handle, &ctx, link).await? {
                Some(found) => Some(found.index),
                None => return Ok(()),
            },
            None => None,
        };
        let message = Msg::DelRoute(messages::route(route, oif, true));
        ok_if_absent(ack(&handle, &ctx, message, 0).await)
    }

    async fn list_routes(&self, netns: &Netns) -> Result<Vec<Route>> {
        let ctx = ErrorContext::new(Op::ListRoutes, None, netns);
        let handle = self.handle(&ctx).await?;
        let names = self.link_names(&handle, &ctx).await?;
        let mut routes = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            let mut request = RouteMessage::default();
            request.header.address_family = messages::family(family);
            let replies = dump(&handle, &ctx, Msg::GetRoute(request)).await?;
            routes.extend(replies.iter().filter_map(|m| match m {
                Msg::NewRoute(r) => messages::parse_route(r, &names),
                _ => None,
            }));
        }
        Ok(routes)
    }

    async fn add_rule(&self, netns: &Netns, rule: &Rule) -> Result<()> {
        let ctx = ErrorContext::new(Op::AddRule, None, netns);
        if !rule.is_consistent() {
            return Err(ctx.error(
                ErrorKind::Invalid,
                format!("rule {rule}: source family differs from the rule's"),
            ));
        }
        let handle = self.handle(&ctx).await?;
        ack(&handle, &ctx, Msg::NewRule(messages::rule(rule)), NEW)
            .await
            .map_err(|e| e.with_hint(&format!("rule {rule}")))
    }

    async fn del_rule(&self, netns: &Netns, rule: &Rule) -> Result<()> {
        let ctx = ErrorContext::new(Op::DelRule, None, netns);
        let Some(handle) = self.handle_unless_gone(&ctx).await? else {
            return Ok(());
        };
        ok_if_absent(ack(&handle, &ctx, Msg::DelRule(messages::rule(rule)), 0).await)
    }

    async fn list_rules(&self, netns: &Netns) -> Result<Vec<Rule>> {
        let ctx = ErrorContext::new(Op::ListRules, None, netns);
        let handle = self.handle(&ctx).await?;
        let mut rules = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            let mut bare = RuleMessage::default();
            bare.header.family = messages::family(family);
            let replies = dump(&handle, &ctx, Msg::GetRule(bare)).await?;
            rules.extend(replies.iter().filter_map(|m| match m {
                Msg::NewRule(r) => messages::parse_rule(r),
                _ => None,
            }));
        }
        Ok(rules)
    }

    async fn set_sysctls(&self, netns: &Netns, link: &str, sysctls: &[Sysctl]) -> Result<()> {
        let ctx = ErrorContext::new(Op::SetSysctls, Some(link), netns);
        let writes = sysctls
            .iter()
            .map(|s| Ok((s.path(link)?, s.value())))
            .collect::<std::result::Result<Vec<_>, crate::NameError>>()
            .map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        if writes.is_empty() {
            return Ok(());
        }
        self.namespaces
            .run(&ctx, netns, move || inside::write_sysctls(&writes))
            .await?
            .map_err(|e| inside_error(&ctx, e))
    }

    async fn announce(&self, netns: &Netns, link: &str, addresses: &[IpAddr]) -> Result<()> {
        let ctx = ErrorContext::new(Op::Announce, Some(link), netns);
        if addresses.is_empty() {
            return Ok(());
        }
        validate_link_name(link).map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        let (name, addresses) = (link.to_owned(), addresses.to_vec());
        self.namespaces
            .run(&ctx, netns, move || inside::announce(&name, &addresses))
            .await?
            .map(|_sent| ())
            .map_err(|e| inside_error(&ctx, e))
    }

    async fn arp_probe(
        &self,
        netns: &Netns,
        link: &str,
        ip: Ipv4Addr,
        probe: ArpProbe,
    ) -> Result<Option<MacAddr>> {
        let ctx = ErrorContext::new(Op::ArpProbe, Some(link), netns);
        validate_link_name(link).map_err(|e| ctx.error(ErrorKind::Invalid, e.to_string()))?;
        let name = link.to_owned();
        self.namespaces
            .run(&ctx, netns, move || inside::arp_probe(&name, ip, probe))
            .await?
            .map_err(|e| inside_error(&ctx, e))
    }
}
