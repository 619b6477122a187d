//! [`FakeDataplane`]: an in-memory [`Dataplane`] for tests without root. It models
//! namespaces, links (name, kind, parent, MTU, MAC, up, addresses), routes, rules and
//! sysctls with the kernel's rules, records every call in order, and fails on demand (the
//! n-th call, every call of an operation, or an operation on one link) so that rollback
//! ordering and every error path of the meta-plugin can be tested.

mod calls;
mod layer3;
mod state;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use ipnet::IpNet;

pub use self::calls::{Call, Failure, Trigger};
pub use self::layer3::DUPLICATE_HOLDER;
pub use self::state::{FakeKernel, FakeLink, FakeNetns};
use crate::dataplane::Dataplane;
use crate::error::{ErrorContext, ErrorKind, Op, Result};
use crate::probe::ArpProbe;
use crate::routing::{AddressEntry, Dad, Route, Rule};
use crate::sysctl::Sysctl;
use crate::types::{Link, LinkKind, LinkSpec, MacAddr, Netns};

#[derive(Debug, Default)]
struct Inner {
    kernel: FakeKernel,
    calls: Vec<Call>,
    calls_made: usize,
    failures: Vec<Failure>,
}

/// In-memory dataplane. The host netns exists from the start (with `lo` up); add pod
/// namespaces with [`FakeDataplane::add_netns`] and NICs with [`FakeDataplane::add_device`].
#[derive(Debug, Default)]
pub struct FakeDataplane {
    inner: Mutex<Inner>,
}

impl FakeDataplane {
    /// An empty fake: a host netns with only `lo`.
    pub fn new() -> FakeDataplane {
        FakeDataplane::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the state from the others.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates an empty namespace (loopback down), like `ip netns add`.
    pub fn add_netns(&self, netns: &Netns) {
        self.lock().kernel.add_netns(netns.clone());
    }

    /// Removes a namespace and everything in it, like the runtime deleting the pod sandbox.
    pub fn remove_netns(&self, netns: &Netns) {
        self.lock().kernel.remove_netns(netns);
    }

    /// Adds an up, kind-less device (a NIC) to `netns` without recording a call.
    pub fn add_device(&self, netns: &Netns, name: &str, mtu: u32) -> Link {
        self.lock().kernel.add_device(netns, name, mtu)
    }

    /// Makes creating links of `kind` fail with `Unsupported`, like a kernel without the
    /// module (ipvlan, 8021q on the project machine).
    pub fn set_unsupported(&self, kind: LinkKind) {
        self.lock()
            .kernel
            .unsupported
            .insert(kind.as_str().to_owned());
    }

    /// Makes `ip` held by another host: IPv6 DAD ([`Dad::Run`]) flags it `dad_failed`, an
    /// IPv4 ARP probe is answered by [`DUPLICATE_HOLDER`].
    pub fn set_duplicate(&self, ip: IpAddr) {
        self.lock().kernel.duplicates.insert(ip);
    }

    /// Fails the `n`-th call made to this fake since it was built (1-based), once.
    pub fn fail_call(&self, n: usize, kind: ErrorKind) {
        self.push_failure(Trigger::Nth(n), kind, Some(1));
    }

    /// Fails every call of `op` until [`FakeDataplane::clear_failures`].
    pub fn fail_op(&self, op: Op, kind: ErrorKind) {
        self.push_failure(Trigger::Op(op), kind, None);
    }

    /// Fails the next call of `op` only.
    pub fn fail_op_once(&self, op: Op, kind: ErrorKind) {
        self.push_failure(Trigger::Op(op), kind, Some(1));
    }

    /// Fails every call of `op` about `link` until cleared.
    pub fn fail_op_on_link(&self, op: Op, link: &str, kind: ErrorKind) {
        self.push_failure(Trigger::OpOnLink(op, link.to_owned()), kind, None);
    }

    fn push_failure(&self, trigger: Trigger, kind: ErrorKind, remaining: Option<usize>) {
        self.lock().failures.push(Failure {
            trigger,
            kind,
            remaining,
        });
    }

    /// Removes every programmed failure.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Every call so far, in order (failed ones included).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The operations of [`FakeDataplane::calls`].
    pub fn ops(&self) -> Vec<Op> {
        self.lock().calls.iter().map(Call::op).collect()
    }

    /// Calls made since the fake was built ([`FakeDataplane::fail_call`] counts these).
    pub fn call_count(&self) -> usize {
        self.lock().calls_made
    }

    /// Forgets the recorded calls (the count used by `fail_call` keeps running).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// A copy of one namespace's state, for assertions.
    pub fn netns_state(&self, netns: &Netns) -> Option<FakeNetns> {
        self.lock().kernel.namespaces.get(netns).cloned()
    }

    /// A copy of the whole model.
    pub fn kernel(&self) -> FakeKernel {
        self.lock().kernel.clone()
    }

    /// Records `call`, fires a programmed failure if one matches, else runs `apply`.
    fn run<T>(
        &self,
        call: Call,
        apply: impl FnOnce(&mut FakeKernel, &ErrorContext) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self.lock();
        let ctx = ErrorContext::new(call.op(), call.link(), call.netns());
        inner.calls_made += 1;
        let number = inner.calls_made;
        let fired = inner.failures.iter_mut().find_map(|f| {
            let live = f.remaining != Some(0);
            (live && f.trigger.matches(number, &call)).then(|| {
                if let Some(left) = f.remaining.as_mut() {
                    *left -= 1;
                }
                f.kind
            })
        });
        inner.calls.push(call);
        if let Some(kind) = fired {
            return Err(ctx.error(kind, format!("injected failure (call #{number})")));
        }
        apply(&mut inner.kernel, &ctx)
    }

    fn get_link(kernel: &FakeKernel, ctx: &ErrorContext, name: &str) -> Result<Option<Link>> {
        Ok(kernel.ns(ctx)?.link(name).map(|l| l.link.clone()))
    }

    /// MTU ceiling of a stacked link: its parent's MTU, if the parent is in the same netns.
    fn mtu_ceiling(kernel: &FakeKernel, ctx: &ErrorContext, name: &str) -> Option<u32> {
        let ns = kernel.namespaces.get(&ctx.netns)?;
        let link = ns.link(name)?;
        let stacked = matches!(
            link.link.kind,
            Some(LinkKind::Macvlan | LinkKind::Ipvlan | LinkKind::Vlan)
        );
        let parent = link.link.parent_index?;
        let parent = kernel
            .namespaces
            .values()
            .flat_map(|ns| ns.links.iter())
            .find(|l| l.link.index == parent)?;
        stacked.then_some(parent.link.mtu)
    }
}

fn owned(netns: &Netns, link: &str) -> (Netns, String) {
    (netns.clone(), link.to_owned())
}

#[async_trait]
impl Dataplane for FakeDataplane {
    async fn create_link(&self, netns: &Netns, spec: &LinkSpec) -> Result<Link> {
        let call = Call::CreateLink {
            netns: netns.clone(),
            spec: spec.clone(),
        };
        self.run(call, |k, ctx| k.create_link(ctx, spec))
    }

    async fn move_link(&self, netns: &Netns, link: &str, target: &Netns) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::MoveLink {
            netns,
            link: link.clone(),
            target: target.clone(),
        };
        self.run(call, |k, ctx| k.move_link(ctx, &link, target))
    }

    async fn rename_link(&self, netns: &Netns, link: &str, new_name: &str) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::RenameLink {
            netns,
            link: link.clone(),
            new_name: new_name.to_owned(),
        };
        self.run(call, |k, ctx| k.rename_link(ctx, &link, new_name))
    }

    async fn set_mtu(&self, netns: &Netns, link: &str, mtu: u32) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::SetMtu {
            netns,
            link: link.clone(),
            mtu,
        };
        self.run(call, |k, ctx| {
            let ceiling = Self::mtu_ceiling(k, ctx, &link).unwrap_or(65535);
            k.update_link(ctx, &link, |l| {
                if !(68..=ceiling).contains(&mtu) {
                    return Err(ctx.error(
                        ErrorKind::Invalid,
                        format!("MTU {mtu} outside 68..={ceiling} (EINVAL)"),
                    ));
                }
                l.mtu = mtu;
                Ok(())
            })
        })
    }

    async fn set_mac(&self, netns: &Netns, link: &str, mac: MacAddr) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::SetMac {
            netns,
            link: link.clone(),
            mac,
        };
        self.run(call, |k, ctx| {
            k.update_link(ctx, &link, |l| {
                if !mac.is_assignable() {
                    return Err(ctx.error(
                        ErrorKind::Invalid,
                        format!("{mac} is a multicast or all-zero MAC address"),
                    ));
                }
                l.mac = Some(mac);
                Ok(())
            })
        })
    }

    async fn set_up(&self, netns: &Netns, link: &str) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::SetUp {
            netns,
            link: link.clone(),
        };
        self.run(call, |k, ctx| {
            k.update_link(ctx, &link, |l| {
                l.up = true;
                Ok(())
            })
        })
    }

    async fn set_down(&self, netns: &Netns, link: &str) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::SetDown {
            netns,
            link: link.clone(),
        };
        self.run(call, |k, ctx| {
            k.update_link(ctx, &link, |l| {
                l.up = false;
                Ok(())
            })
        })
    }

    async fn delete_link(&self, netns: &Netns, link: &str) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::DeleteLink {
            netns,
            link: link.clone(),
        };
        self.run(call, |k, ctx| k.delete_link(ctx, &link))
    }

    async fn link(&self, netns: &Netns, link: &str) -> Result<Option<Link>> {
        let (netns, link) = owned(netns, link);
        let call = Call::GetLink {
            netns,
            link: link.clone(),
        };
        self.run(call, |k, ctx| Self::get_link(k, ctx, &link))
    }

    async fn list_links(&self, netns: &Netns) -> Result<Vec<Link>> {
        let call = Call::ListLinks {
            netns: netns.clone(),
        };
        self.run(call, |k, ctx| {
            Ok(k.ns(ctx)?.links.iter().map(|l| l.link.clone()).collect())
        })
    }

    async fn add_address(&self, netns: &Netns, link: &str, address: IpNet, dad: Dad) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::AddAddress {
            netns,
            link: link.clone(),
            address,
            dad,
        };
        self.run(call, |k, ctx| k.add_address(ctx, &link, address, dad))
    }

    async fn del_address(&self, netns: &Netns, link: &str, address: IpNet) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::DelAddress {
            netns,
            link: link.clone(),
            address,
        };
        self.run(call, |k, ctx| k.del_address(ctx, &link, address))
    }

    async fn list_addresses(&self, netns: &Netns, link: &str) -> Result<Vec<AddressEntry>> {
        let (netns, link) = owned(netns, link);
        let call = Call::ListAddresses {
            netns,
            link: link.clone(),
        };
        self.run(call, |k, ctx| {
            k.ns(ctx)?
                .link(&link)
                .map(|l| l.addresses.clone())
                .ok_or_else(|| {
                    ctx.error(
                        ErrorKind::NotFound,
                        format!("no link named {link:?}: No such device (ENODEV)"),
                    )
                })
        })
    }

    async fn add_route(&self, netns: &Netns, route: &Route) -> Result<()> {
        let call = Call::AddRoute {
            netns: netns.clone(),
            route: route.clone(),
        };
        self.run(call, |k, ctx| k.add_route(ctx, route))
    }

    async fn del_route(&self, netns: &Netns, route: &Route) -> Result<()> {
        let call = Call::DelRoute {
            netns: netns.clone(),
            route: route.clone(),
        };
        self.run(call, |k, ctx| k.del_route(ctx, route))
    }

    async fn list_routes(&self, netns: &Netns) -> Result<Vec<Route>> {
        let call = Call::ListRoutes {
            netns: netns.clone(),
        };
        self.run(call, |k, ctx| k.list_routes(ctx))
    }

    async fn add_rule(&self, netns: &Netns, rule: &Rule) -> Result<()> {
        let call = Call::AddRule {
            netns: netns.clone(),
            rule: rule.clone(),
        };
        self.run(call, |k, ctx| k.add_rule(ctx, rule))
    }

    async fn del_rule(&self, netns: &Netns, rule: &Rule) -> Result<()> {
        let call = Call::DelRule {
            netns: netns.clone(),
            rule: rule.clone(),
        };
        self.run(call, |k, ctx| k.del_rule(ctx, rule))
    }

    async fn list_rules(&self, netns: &Netns) -> Result<Vec<Rule>> {
        let call = Call::ListRules {
            netns: netns.clone(),
        };
        self.run(call, |k, ctx| Ok(k.ns(ctx)?.rules.clone()))
    }

    async fn set_sysctls(&self, netns: &Netns, link: &str, sysctls: &[Sysctl]) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::SetSysctls {
            netns,
            link: link.clone(),
            sysctls: sysctls.to_vec(),
        };
        self.run(call, |k, ctx| k.set_sysctls(ctx, &link, sysctls))
    }

    async fn announce(&self, netns: &Netns, link: &str, addresses: &[IpAddr]) -> Result<()> {
        let (netns, link) = owned(netns, link);
        let call = Call::Announce {
            netns,
            link: link.clone(),
            addresses: addresses.to_vec(),
        };
        self.run(call, |k, ctx| k.announce(ctx, &link, addresses))
    }

    async fn arp_probe(
        &self,
        netns: &Netns,
        link: &str,
        ip: Ipv4Addr,
        _probe: ArpProbe,
    ) -> Result<Option<MacAddr>> {
        let (netns, link) = owned(netns, link);
        let call = Call::ArpProbe {
            netns,
            link: link.clone(),
            ip,
        };
        self.run(call, |k, ctx| k.arp_probe(ctx, &link, ip))
    }
}
