//! The CNI protocol for plexus binaries: CNI specification 0.3.0 to 1.1.0, including
//! STATUS and GC.
//!
//! This crate knows nothing about address allocation or storage. It reads and validates the
//! environment ([`Environment`], [`CniArgs`]) and the network configuration ([`NetConf`]),
//! renders results ([`SuccessResult`]) in each version's JSON shape, owns the single error
//! type ([`Error`]) and its rendering ([`render_error`]), and runs a [`Plugin`] for one
//! invocation ([`run`]).
//!
//! stdout belongs to the CNI result: nothing in this crate prints anything else there.
//!
//! # Example
//!
//! A binary's `main` is one call to [`run`]; here it answers VERSION from a fake environment.
//!
//! ```
//! use plexus_cni::{Error, Plugin, Request, SuccessResult, run};
//!
//! struct Noop;
//!
//! impl Plugin for Noop {
//!     fn add(&self, _: &Request) -> Result<SuccessResult, Error> {
//!         Ok(SuccessResult::default())
//!     }
//!     fn del(&self, _: &Request) -> Result<(), Error> { Ok(()) }
//!     fn check(&self, _: &Request) -> Result<(), Error> { Ok(()) }
//!     fn status(&self, _: &Request) -> Result<(), Error> { Ok(()) }
//!     fn gc(&self, _: &Request) -> Result<(), Error> { Ok(()) }
//! }
//!
//! // A real binary passes `|k| std::env::var(k).ok()`, `std::io::stdin()` and
//! // `std::io::stdout()`, then exits with the returned code.
//! let env = |k: &str| (k == "CNI_COMMAND").then(|| "VERSION".to_owned());
//! let mut stdout = Vec::new();
//! let exit = run(&Noop, "noop plugin", env, &br#"{"cniVersion":"1.0.0"}"#[..], &mut stdout);
//! assert_eq!(exit, 0);
//! assert_eq!(
//!     String::from_utf8(stdout).unwrap(),
//!     "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
//! );
//! ```

pub mod args;
pub mod codes;
pub mod command;
pub mod env;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod result;
pub mod version;

pub use args::CniArgs;
pub use command::Command;
pub use env::Environment;
pub use error::{Error, render_error};
pub use netconf::{Attachment, NetConf};
pub use plugin::{Plugin, Request, run};
pub use result::{Dns, Interface, IpConfig, Route, SuccessResult, version_reply};
pub use version::{CniVersion, SUPPORTED_VERSIONS};
