//! Fuzz target: what plexus-ipam reads from one invocation: the whole netconf
//! (`NetConf::parse`), its `ipam` section including `store` (`plexus_store::StoreConfig`),
//! the lenient DEL path, and static addresses from `runtimeConfig.ips`, `args.cni.ips` and
//! `CNI_ARGS` (`plexus_ipam::request`).
//!
//! The input is the netconf, optionally followed by a NUL byte and the `CNI_ARGS` text.
//!
//! Invariants: every error renders as CNI JSON through plexus-ipam's one mapping; each
//! static address lands in a set that accepts it; one claim per range set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_cni::{Environment, NetConf};
use plexus_fuzz::{check_cni_error, nul_fields};
use plexus_ipam::{IpamError, request};
use plexus_store::Claim;

fn check(err: IpamError, input_len: usize) {
    check_cni_error(&plexus_cni::Error::from(err), input_len);
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let conf = match NetConf::parse(&data[..split]) {
        Ok(conf) => conf,
        Err(err) => return check_cni_error(&err, data.len()),
    };
    if let Err(err) = request::network_and_store_lenient(&conf) {
        check(err, data.len());
    }
    match request::store(&conf) {
        Ok(store) => {
            // Capping timeouts (STATUS) must keep the configuration usable.
            let _ = store.with_timeout(std::time::Duration::from_millis(1500));
        }
        Err(err) => check(err, data.len()),
    }
    let pool = match request::pool(&conf) {
        Ok(pool) => pool,
        Err(err) => return check(err, data.len()),
    };
    let args = nul_fields(&data[split..], 2)
        .get(1)
        .copied()
        .flatten()
        .map(str::to_owned);
    let vars = |name: &str| match name {
        "CNI_COMMAND" => Some("ADD".to_owned()),
        "CNI_CONTAINERID" => Some("fuzz-container".to_owned()),
        "CNI_NETNS" => Some("/var/run/netns/fuzz".to_owned()),
        "CNI_IFNAME" => Some("eth0".to_owned()),
        "CNI_ARGS" => args.clone(),
        _ => None,
    };
    let env = match Environment::from_vars(vars) {
        Ok(env) => env,
        Err(err) => return check_cni_error(&err, data.len()),
    };
    if let Err(err) = request::reject_unknown_args(&env) {
        check(err, data.len());
    }
    // The network name ends up in store keys: a hostile one (`..`, `/`, NUL) is a config
    // error here, before any store is touched.
    let key = match request::attachment_key(&pool.network, &env) {
        Ok(key) => key,
        Err(err) => return check(err, data.len()),
    };
    assert_eq!(key.network, pool.network);
    let statics = match request::statics(&conf, &env, &pool) {
        Ok(statics) => statics,
        Err(err) => return check(err, data.len()),
    };
    assert_eq!(statics.len(), pool.range_sets.len());
    let claims = request::claims(&pool, &statics);
    assert_eq!(claims.len(), pool.range_sets.len());
    for claim in claims {
        if let Claim::Static { set, ip } = claim {
            assert!(
                set.ranges.iter().any(|r| r.accepts_static(ip)),
                "{ip} placed in {}, which refuses it",
                set.id()
            );
        }
    }
});
