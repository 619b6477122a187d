//! etcd for the store's tests: the shared and private servers of
//! `plexus_test_support::servers::etcd`, with store configurations for them.
//!
//! Include with `#[path = "support/etcd.rs"] mod etcd_support;`.

#![allow(dead_code)]

use plexus_store::EtcdConfig;
use plexus_test_support::servers::etcd::unique_prefix;

/// A configuration for `endpoints` under a fresh prefix.
pub fn config(endpoints: &[String], test: &str) -> EtcdConfig {
    let mut cfg = EtcdConfig::new(endpoints.to_vec());
    cfg.prefix = unique_prefix(test);
    cfg
}
