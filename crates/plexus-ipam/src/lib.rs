//! `plexus-ipam`: a CNI IPAM plugin that keeps every address unique in a shared store.
//!
//! The binary is a thin `main` over [`IpamPlugin`], which implements the six CNI verbs
//! ([`plexus_cni::Plugin`]) on top of three library crates:
//!
//! - `plexus-cni` — the protocol: environment, netconf, results, the one error renderer;
//! - `plexus-ipam-core` — the pure allocator: ranges in host-local and whereabouts syntax;
//! - `plexus-store` — the allocation store (SQLite by default).
//!
//! # Layout
//! - [`error`] — the plugin's error enum and its mapping to CNI error codes (`docs/errors.md`).
//! - [`plugin`] — ADD, DEL, CHECK, STATUS and GC.
//! - [`request`] — what one invocation asks for: pool, static addresses, owner, store.
//! - [`flatfile`] — whereabouts' `whereabouts.conf`, merged into whereabouts-style sections.
//! - [`static_echo`] — echo mode for the `plexus` meta-plugin's delegates (DANM's fakeipam).
//! - [`store_call`] — one store call, a busy store past its deadline as code 11 (the
//!   store retries; the plugin does not).
//! - [`shared`] — networks several whereabouts configurations share (overlapping ranges).
//! - [`logging`] — `tracing` to stderr or a file, never stdout.

pub mod error;
pub mod flatfile;
pub mod logging;
pub mod plugin;
pub mod request;
pub mod shared;
pub mod static_echo;
pub mod store_call;
pub mod stored;

pub use error::IpamError;
pub use plugin::IpamPlugin;
