//! A stored dual-stack network and addresses claimed in it the way the plugin claims them
//! (the model's range sets, per-node blocks), written straight into a test store.

use std::net::IpAddr;

use plexus_model::{NetworkObject, Operation, to_pool, validate};
use plexus_store::{AttachmentKey, Claim, ClaimContext, Owner, StoreConfig};
use serde_json::{Value, json};

/// `blue`: 10.91.0.0/24 handing out .10-.99, and fd91::/64 handing out from fd91::/120.
pub const BLUE: &str = "\
apiVersion: plexus.io/v1
kind: ClusterNetwork
metadata: {name: blue}
spec:
  NetworkID: blue
  NetworkType: ipvlan
  Options:
    host_device: eth1
    cidr: 10.91.0.0/24
    allocation_pool: {start: 10.91.0.10, end: 10.91.0.99}
    net6: fd91::/64
    allocation_pool_v6: {cidr: 'fd91::/120'}
";

/// A network object given as YAML, as JSON.
pub fn object(yaml: &str) -> Value {
    serde_norway::from_str(yaml).unwrap()
}

/// Claims one address per family of `definition` (stored as `name`) for each of
/// `containers`, on `node` with the network's per-node blocks, in the store `store` (an
/// `ipam.store` value). Returns the addresses, in claim order.
pub fn claim(
    store: &Value,
    name: &str,
    definition: &Value,
    containers: &[&str],
    node: &str,
) -> Vec<IpAddr> {
    let object: NetworkObject = serde_json::from_value(definition.clone()).unwrap();
    let valid = validate(&object, Operation::Update).unwrap();
    let pool = to_pool(&valid).unwrap().pool_config().unwrap();
    let config = StoreConfig::from_json(Some(store)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = plexus_store::open(&config).await.unwrap();
        let mut ips = Vec::new();
        for container in containers {
            let key = AttachmentKey::new(name, *container, "eth0");
            let claims: Vec<Claim<'_>> = pool.range_sets.iter().map(Claim::Dynamic).collect();
            let owner = Owner::new(Some("ns".into()), Some(format!("pod-{container}")), None);
            let ctx = ClaimContext::new(node, pool.blocks);
            let got = store.claim(&key, &owner, &claims, &ctx).await.unwrap();
            ips.extend(got.iter().map(|a| a.ip));
        }
        ips
    })
}

/// The `ipam.store` value of a SQLite database.
pub fn sqlite(path: &std::path::Path) -> Value {
    json!({"type": "sqlite", "path": path})
}
