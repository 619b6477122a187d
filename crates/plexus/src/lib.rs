//! `plexus`: the CNI meta-plugin. One CNI call from the runtime gives a pod every interface
//! it asked for — each on its own network, with addresses from the cluster-wide store — or
//! none of them, with everything rolled back (DANM's metaplugin, rebuilt).
//!
//! # Flow of an ADD
//! 1. [`config`]: the netconf (`store`, `cniDir`, `networksDir`, `namingScheme`, …).
//! 2. [`request`]: the attachments asked for — `runtimeConfig`/`args.cni`
//!    `plexus.networks`, else pod annotations from a [`request::RequestSource`], else the
//!    default network.
//! 3. [`networks`]: each attachment's network from a [`networks::NetworkSource`]; with
//!    `kubeconfig`, steps 2 and 3 are the Kubernetes source's ([`kube`]: the pod's
//!    annotations resolved by plexus-k8s), which also writes network-status after the ADD
//!    and removes it on DEL.
//! 4. [`naming`] and [`plan`]: interface names, drivers, claims — all checked before
//!    anything is created.
//! 5. [`add`] and [`engine`]: the transaction: intent recorded ([`records`]), attachments
//!    set up concurrently under one deadline (built-in macvlan/ipvlan through
//!    `plexus-netlink`, other types through [`delegate`]), routes and policy routing;
//!    any failure replays the undo journal. Interfaces the kernel does not manage get
//!    none of that ([`userspace`]); interfaces of networks with a device-plugin resource
//!    get one of the pod's devices first ([`devices`]).
//! 6. One merged CNI result, eth0's entries first.
//!
//! DEL, CHECK and GC work from the endpoint records; STATUS probes the store.

pub mod add;
pub mod check;
pub mod config;
pub mod delegate;
pub mod devices;
pub mod duplicate;
pub mod engine;
pub mod error;
pub mod forward;
pub mod kube;
pub mod logging;
pub mod naming;
pub mod networks;
pub mod plan;
pub mod plugin;
pub mod records;
pub mod request;
pub mod userspace;

pub use error::PlexusError;
pub use plugin::PlexusPlugin;
