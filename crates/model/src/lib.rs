//! plexus-model: plexus' network definitions and pod requests, as data. No I/O.
//!
//! - [`network`]: DANM's `DanmNet` / `ClusterNetwork` / `TenantNetwork` objects, read and
//!   written with DANM's exact keys (`NetworkID`, `Options.cidr`, `allocation_pool`, …), plus
//!   plexus' own `spec.plexus` section (exclusions, reserved addresses, block sizes).
//! - [`mod@validate`]: every rule of DANM's admission webhook and plexus' own, reporting all
//!   broken rules at once with field path and value. IPv4 networks may be as large as a /8
//!   (DANM stopped at /9).
//! - [`convert`]: a validated network → the allocator's [`plexus_ipam_core::PoolConfig`],
//!   and the defaults DANM's webhook fills in.
//! - [`bitmap`]: DANM's base64 allocation bitmaps (`alloc`, `alloc6`), decoded and encoded.
//! - [`tenant`]: the TenantConfig (host devices and VLAN/VxLAN ids TenantNetworks may use)
//!   and its rules.
//! - [`annotation`]: the pod's request: DANM's interfaces annotation or the NPWG
//!   `k8s.v1.cni.cncf.io/networks` annotation, as one list of attachment requests.
//!
//! ```
//! use plexus_model::{NetworkObject, Operation, to_pool, validate};
//!
//! let doc = r#"{"apiVersion": "danm.k8s.io/v1", "kind": "ClusterNetwork",
//!   "metadata": {"name": "blue"},
//!   "spec": {"NetworkID": "blue", "Options": {"cidr": "10.0.0.0/8",
//!            "routes": {"192.168.0.0/16": "10.0.0.1"}}}}"#;
//! let object: NetworkObject = serde_json::from_str(doc)?;
//! let network = validate(&object, Operation::Create)?;
//! let pool = to_pool(&network)?.pool_config()?;
//! assert_eq!(pool.network, "blue");
//! assert_eq!(pool.range_sets[0].id(), "10.0.0.0/8[10.0.0.1-10.255.255.254]");
//! assert_eq!(pool.range_sets[0].ranges[0].gateway, Some("10.0.0.1".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod annotation;
pub mod bitmap;
pub mod convert;
pub mod names;
pub mod network;
pub mod parse;
pub mod tenant;
pub mod validate;

pub use annotation::{
    AddressRequest, AnnotationError, AttachmentRequest, NetworkRef, NetworkRefKind, PodRequest,
    RequestFormat, parse_danm_interfaces, parse_npwg_networks, parse_pod_annotations,
};
pub use bitmap::{AllocBitmap, BitmapError};
pub use convert::{
    ConvertError, FamilyPool, NetworkPool, Reservation, apply_defaults, default_pool_bounds,
    to_pool,
};
pub use network::{
    IpPool, IpPoolV6, NetworkKind, NetworkList, NetworkObject, NetworkOptions, NetworkSpec,
    ObjectMeta, PlexusOptions,
};
pub use tenant::{
    HostDevice, TenantConfigSpec, ValidHostDevice, ValidTenantConfig, VniKind, VniPool,
    validate_tenant_config,
};
pub use validate::{
    Operation, Rule, ValidFamily, ValidNetwork, ValidationErrors, Violation, validate, violations,
};

/// Longest user-supplied value quoted in an error; a 1 MB bitmap must not end up in a message.
const MAX_SHOWN_VALUE: usize = 120;

/// `value`, cut to [`MAX_SHOWN_VALUE`] bytes (on a character boundary) with its length noted.
pub(crate) fn shorten(value: String) -> String {
    if value.len() <= MAX_SHOWN_VALUE {
        return value;
    }
    let mut cut = MAX_SHOWN_VALUE;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &value[..cut], value.len())
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_values_are_shortened_on_char_boundaries() {
        assert_eq!(shorten("abc".to_owned()), "abc");
        let long = "é".repeat(100);
        let short = shorten(long.clone());
        assert!(short.len() < long.len());
        assert!(short.ends_with("… (200 bytes)"), "{short}");
    }
}
