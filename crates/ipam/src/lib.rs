//! plexus-ipam-core: the pure address allocator of plexus. No I/O: no files, no network, no
//! clock.
//!
//! - [`parse_pool_config`] reads the `ipam` section of a netconf in host-local or whereabouts
//!   syntax into [`RangeSet`]s of validated [`Range`]s.
//! - [`FreeSearch`] walks a set next-fit, window by window, while the caller's store says
//!   which addresses of each window are held; [`find_free`] runs it against a closure.
//! - [`place_static`] finds the set a statically requested address belongs to.
//! - [`addr`] maps addresses to the `u128` keys stores persist.
//!
//! Pool size never costs memory or time: every computation is arithmetic on address keys.
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::IpAddr;
//! use plexus_ipam_core::{find_free, parse_pool_config};
//!
//! let ipam = serde_json::json!({"type": "plexus-ipam", "range": "10.0.0.0/24", "gateway": "10.0.0.1"});
//! let pool = parse_pool_config("blue", &ipam, None)?;
//! // A store answers "which addresses in [lo, hi] are held?"; here .2 and .3 are.
//! let held: Vec<IpAddr> = vec!["10.0.0.2".parse()?, "10.0.0.3".parse()?];
//! let free = find_free(&pool.range_sets[0], None, |lo, hi| {
//!     Ok::<_, Infallible>(held.iter().copied().filter(|ip| (lo..=hi).contains(ip)).collect())
//! })?;
//! assert_eq!(free, Some("10.0.0.4".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod addr;
pub mod blocks;
pub mod config;
pub mod error;
pub mod range;
pub mod request;
pub mod search;

pub use addr::{Family, from_key, key};
pub use blocks::BlockPolicy;
pub use config::{
    PoolConfig, Route, StaticAddress, WHEREABOUTS_SHARED_NETWORK, allocation_networks,
    parse_pool_config,
};
pub use error::{ConfigError, RangeError, RangeField, StaticError};
pub use range::{Range, RangeSet};
pub use request::place_static;
pub use search::{FreeSearch, find_free};
