//! plexus-netlink: the kernel dataplane of plexus behind one narrow trait, [`Dataplane`].
//!
//! The meta-plugin builds pod interfaces the way DANM did (create a macvlan/ipvlan on the
//! host under a [`temporary_link_name`], move it into the pod netns, add addresses — IPv6
//! with NODAD —, rename, set up, announce), and the netwatcher creates host-side
//! `<network>.<vlan>` and `vx_<network>` links. Creating the link straight into the pod
//! ([`LinkSpec::in_netns`]) does create + move in one request and spares the kernel the
//! move's RCU grace periods: ≈1 ms instead of ≈20 ms per interface (release build on the
//! project machine, see `tests/real_cost.rs`). Both depend only on the trait:
//!
//! - [`RealDataplane`] talks rtnetlink to the running kernel;
//! - [`FakeDataplane`] is an in-memory model with the kernel's rules that records every call
//!   and fails on demand, so rollback and error paths are tested without root.
//!
//! # Why async
//! rtnetlink is asynchronous, and the meta-plugin sets up a pod's attachments concurrently
//! under one deadline on a tokio runtime. An async trait lets it drive several netlink
//! requests at once and cancel them with `tokio::time::timeout`, without a thread per call;
//! a sync trait would have to nest a second runtime or block workers. The trait uses
//! `async-trait` so it stays object-safe (`Arc<dyn Dataplane>`).
//!
//! # Namespaces
//! `setns` changes the netns of the calling *thread*. plexus never calls it on a tokio
//! worker: a short-lived OS thread enters the target netns, opens the netlink socket there
//! (sockets stay bound to the netns they were created in) and exits; the socket is then
//! used from any task. Sysctl writes and packet sends, which must run inside the netns, get
//! such a thread too. Dumps interrupted by concurrent changes (`NLM_F_DUMP_INTR`) are
//! retried a bounded number of times.
//!
//! # Errors
//! Every failure is an [`Error`] with an [`ErrorKind`] (`NotFound`, `Exists`,
//! `Unsupported`, `Permission`, `Invalid`, `Other`) and an [`ErrorContext`] naming the
//! operation, the link and the netns. Deletions of absent objects succeed.
//!
//! ```no_run
//! use plexus_netlink::{Dad, Dataplane, LinkSpec, MacvlanMode, Netns, RealDataplane};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dp = RealDataplane::new()?;
//! let pod = Netns::path("/run/netns/pod1");
//! let tmp = plexus_netlink::temporary_link_name();
//! // Parent "eth1" on the node; the new link appears in the pod.
//! let spec = LinkSpec::macvlan(&tmp, "eth1", MacvlanMode::Bridge).in_netns(pod.clone());
//! dp.create_link(&Netns::Host, &spec).await?;
//! dp.add_address(&pod, &tmp, "10.0.0.5/24".parse()?, Dad::Skip).await?;
//! dp.rename_link(&pod, &tmp, "eth1").await?;
//! dp.set_up(&pod, "eth1").await?;
//! # Ok(())
//! # }
//! ```

mod dataplane;
mod error;
mod fake;
mod frames;
mod names;
mod probe;
mod real;
mod routing;
mod sysctl;
mod types;

pub use crate::dataplane::Dataplane;
pub use crate::error::{Error, ErrorContext, ErrorKind, Op, Result, errno_detail};
pub use crate::fake::{
    Call, DUPLICATE_HOLDER, Failure, FakeDataplane, FakeKernel, FakeLink, FakeNetns, Trigger,
};
pub use crate::frames::{arp_conflict, arp_probe, gratuitous_arp, unsolicited_na};
pub use crate::names::{
    MAX_LINK_NAME_LEN, NameError, TEMPORARY_PREFIX, temporary_link_name, validate_link_name,
    vlan_link_name, vxlan_link_name,
};
pub use crate::probe::{ArpProbe, DAD_POLL, DEFAULT_DAD_TIMEOUT, DadOutcome};
pub use crate::real::RealDataplane;
pub use crate::routing::{
    AddressEntry, Dad, IpFamily, LOCAL_TABLE, MAIN_TABLE, Route, RouteScope, Rule,
};
pub use crate::sysctl::Sysctl;
pub use crate::types::{
    IpvlanMode, Link, LinkKind, LinkSpec, LinkSpecKind, MacAddr, MacAddrParseError, MacvlanMode,
    ModeParseError, Netns, VxlanSpec,
};
