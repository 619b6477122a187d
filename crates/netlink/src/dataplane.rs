//! The [`Dataplane`] trait: every kernel operation the meta-plugin (and the netwatcher)
//! needs, and nothing else.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::Result;
use crate::probe::{ArpProbe, DAD_POLL, DadOutcome};
use crate::routing::{AddressEntry, Dad, Route, Rule};
use crate::sysctl::Sysctl;
use crate::types::{Link, LinkSpec, MacAddr, Netns};

/// Kernel network configuration, one netns at a time.
///
/// Links are named by interface name within the given netns. Deleting something that is
/// already absent — or whose netns is gone — succeeds (teardown and rollback are
/// idempotent, as CNI DEL must be); creating something that exists fails with
/// [`crate::ErrorKind::Exists`].
#[async_trait]
pub trait Dataplane: Send + Sync {
    /// Creates a link in `netns` and returns it as the kernel reports it. Macvlan, ipvlan
    /// and vlan links take the parent's MTU unless `spec.mtu` is set. A kernel without the
    /// kind's module answers [`crate::ErrorKind::Unsupported`]; a missing parent
    /// [`crate::ErrorKind::NotFound`].
    async fn create_link(&self, netns: &Netns, spec: &LinkSpec) -> Result<Link>;

    /// Moves `link` from `netns` into `target`. The kernel drops its addresses and routes
    /// and sets it down, so move first, then configure.
    async fn move_link(&self, netns: &Netns, link: &str, target: &Netns) -> Result<()>;

    /// Renames `link` to `new_name` (the link should be down).
    async fn rename_link(&self, netns: &Netns, link: &str, new_name: &str) -> Result<()>;

    /// Sets the MTU of `link`.
    async fn set_mtu(&self, netns: &Netns, link: &str, mtu: u32) -> Result<()>;

    /// Sets the MAC address of `link`.
    async fn set_mac(&self, netns: &Netns, link: &str, mac: MacAddr) -> Result<()>;

    /// Sets `link` administratively up.
    async fn set_up(&self, netns: &Netns, link: &str) -> Result<()>;

    /// Sets `link` administratively down.
    async fn set_down(&self, netns: &Netns, link: &str) -> Result<()>;

    /// Deletes `link`; an absent link is success. Deleting one end of a veth pair deletes
    /// both; deleting a parent deletes the macvlans/ipvlans/vlans on it.
    async fn delete_link(&self, netns: &Netns, link: &str) -> Result<()>;

    /// The link named `link`, or `None` when there is none.
    async fn link(&self, netns: &Netns, link: &str) -> Result<Option<Link>>;

    /// True when `netns` has a link named `link`.
    async fn link_exists(&self, netns: &Netns, link: &str) -> Result<bool> {
        Ok(self.link(netns, link).await?.is_some())
    }

    /// Every link in `netns`, in index order.
    async fn list_links(&self, netns: &Netns) -> Result<Vec<Link>>;

    /// Adds `address` (with its prefix length) to `link`. For IPv6, `dad` chooses between
    /// `IFA_F_NODAD` and a real duplicate address detection; IPv4 ignores it.
    async fn add_address(&self, netns: &Netns, link: &str, address: IpNet, dad: Dad) -> Result<()>;

    /// Removes `address` from `link`; absent is success.
    async fn del_address(&self, netns: &Netns, link: &str, address: IpNet) -> Result<()>;

    /// The addresses of `link` (IPv4 and IPv6, link-local ones included).
    async fn list_addresses(&self, netns: &Netns, link: &str) -> Result<Vec<AddressEntry>>;

    /// Adds `route`; an identical route already present is [`crate::ErrorKind::Exists`].
    async fn add_route(&self, netns: &Netns, route: &Route) -> Result<()>;

    /// Deletes `route`; absent is success.
    async fn del_route(&self, netns: &Netns, route: &Route) -> Result<()>;

    /// The unicast routes of every table in `netns` (local and broadcast entries of the
    /// kernel's local table are left out).
    async fn list_routes(&self, netns: &Netns) -> Result<Vec<Route>>;

    /// Adds a policy rule; an identical rule already present is
    /// [`crate::ErrorKind::Exists`].
    async fn add_rule(&self, netns: &Netns, rule: &Rule) -> Result<()>;

    /// Deletes a policy rule; absent is success.
    async fn del_rule(&self, netns: &Netns, rule: &Rule) -> Result<()>;

    /// The `lookup` rules of both families in `netns`, the kernel's defaults included.
    async fn list_rules(&self, netns: &Netns) -> Result<Vec<Rule>>;

    /// Writes per-interface sysctls of `link` (or `all`/`default`) inside `netns`, in order.
    async fn set_sysctls(&self, netns: &Netns, link: &str, sysctls: &[Sysctl]) -> Result<()>;

    /// Tells the segment that `addresses` now live on `link` (which must be up): a
    /// gratuitous ARP per IPv4 address, an unsolicited neighbour advertisement per IPv6 one.
    /// Best effort by nature: callers log a failure and carry on.
    async fn announce(&self, netns: &Netns, link: &str, addresses: &[IpAddr]) -> Result<()>;

    /// RFC 5227 ARP probe for `ip` out of `link` (which must be up; `ip` should not be on it
    /// yet): sends `probe.probes` probes and listens until `probe.wait` after the last.
    /// Returns the MAC address of a host that claims `ip`, or `None` when nobody did.
    async fn arp_probe(
        &self,
        netns: &Netns,
        link: &str,
        ip: Ipv4Addr,
        probe: ArpProbe,
    ) -> Result<Option<MacAddr>>;

    /// Waits until the kernel's IPv6 duplicate address detection of `address` on `link`
    /// ends (the address was added with [`Dad::Run`] and the link is up), at most `timeout`.
    async fn wait_dad(
        &self,
        netns: &Netns,
        link: &str,
        address: IpNet,
        timeout: Duration,
    ) -> Result<DadOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let entries = self.list_addresses(netns, link).await?;
            match entries.iter().find(|e| e.address == address) {
                None => return Ok(DadOutcome::Missing),
                Some(e) if e.dad_failed => return Ok(DadOutcome::Duplicate),
                Some(e) if !e.tentative => return Ok(DadOutcome::Unique),
                Some(_) if tokio::time::Instant::now() >= deadline => {
                    return Ok(DadOutcome::TimedOut);
                }
                Some(_) => tokio::time::sleep(DAD_POLL).await,
            }
        }
    }
}
