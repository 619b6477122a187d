//! Every CNI error code plexus knows: the specification's (0–99, this module) and plexus'
//! own (≥ 100, [`plexus`]), each defined exactly once.
//!
//! Both plugins and `plexusctl` take their codes from here, and `docs/errors.md` is tested
//! against [`SPEC`] and [`plexus::ALL`] (`crates/cni/tests/errors_doc.rs`): a code defined
//! here but missing from the document, documented with another number, or documented but
//! not defined fails the build. Users script against these numbers: never renumber one.

/// One error code: the name of its constant and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The constant's name as a Rust user writes it after `codes::` (`INVALID_CONFIG`,
    /// `plexus::POOL_EXHAUSTED`).
    pub name: &'static str,
    /// The number on the wire.
    pub value: u32,
}

/// Defines each code as a `pub const` and lists them all in a table named `$table`, so a
/// code cannot exist without being in the table the documentation test reads.
macro_rules! define_codes {
    ($prefix:literal, $table:ident; $($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: u32 = $value;
        )*

        /// Every code of this module, in definition order.
        pub const $table: &[$crate::codes::Code] = &[$(
            $crate::codes::Code {
                name: concat!($prefix, stringify!($name)),
                value: $name,
            },
        )*];
    };
}

define_codes! {
    "", SPEC;
    /// The runtime asked for a CNI version this plugin does not support.
    INCOMPATIBLE_VERSION = 1;
    /// The configuration contains a field the plugin does not support (the message names it).
    UNSUPPORTED_FIELD = 2;
    /// The container is unknown or no longer exists; the runtime need not clean up.
    UNKNOWN_CONTAINER = 3;
    /// A required environment variable is missing or invalid (the message names it).
    INVALID_ENV = 4;
    /// An I/O failure, such as failing to read stdin.
    IO_FAILURE = 5;
    /// The configuration or a version string could not be decoded.
    DECODE_FAILURE = 6;
    /// The network configuration is invalid.
    INVALID_CONFIG = 7;
    /// A transient failure: the runtime should retry later.
    TRY_AGAIN_LATER = 11;
    /// STATUS: the plugin cannot service ADD requests.
    NOT_AVAILABLE = 50;
    /// STATUS: the plugin cannot service ADD, and existing containers may have limited
    /// connectivity.
    NOT_AVAILABLE_LIMITED = 51;
    /// An internal error (libcni's `ErrInternal`), e.g. a bug caught as a panic.
    INTERNAL = 999;
}

/// The codes of the plexus binaries (`plexus-ipam` and the `plexus` meta-plugin), in the
/// plugin space the specification leaves from 100 up.
///
/// 100–109 are outcomes of address management, returned by both plugins; 110 and up are
/// the meta-plugin's own (interfaces, delegates). Other plugins use the same numbers for
/// other things: a code ≥ 100 means one of these only when a plexus binary returned it.
pub mod plexus {
    define_codes! {
        "plexus::", ALL;
        /// No free address left in a range set of the network.
        POOL_EXHAUSTED = 100;
        /// A statically requested address is held by another attachment.
        ADDRESS_TAKEN = 101;
        /// A statically requested address is outside every range, reserved or excluded.
        STATIC_NOT_ALLOWED = 102;
        /// CHECK found the attachment different from what ADD left (addresses, interfaces,
        /// routes).
        CHECK_FAILED = 103;
        /// The attachment already holds a different address than the one now requested.
        ATTACHMENT_HOLDS_OTHER = 104;
        /// The store holds data this version cannot use (e.g. a newer schema).
        STORE_CORRUPT = 105;
        /// A kernel (netlink) operation on a pod interface failed.
        DATAPLANE = 110;
        /// The host-side parent link of a network is missing on this node.
        MISSING_PARENT = 111;
        /// A delegated CNI plugin failed (its own code and message are in the details).
        DELEGATE_FAILED = 112;
        /// The kernel lacks the link type a network needs (e.g. no ipvlan module).
        UNSUPPORTED_LINK = 113;
        /// A new address is already used by another host on the segment (ARP probe / DAD),
        /// and no other address could be taken (static request, attempts used up).
        DUPLICATE_ADDRESS = 114;
        /// The pod has no device left in a device-plugin resource (SR-IOV `device_pool`,
        /// `k8s.v1.cni.cncf.io/resourceName`) for one of its interfaces.
        NO_DEVICE = 115;
        /// Neither the kubelet's pod-resources API nor its device checkpoint could say
        /// which devices the pod holds (or one named an unusable device ID).
        DEVICES_UNKNOWN = 116;
    }

    /// The binaries whose codes ≥ 100 are the ones of this module.
    pub const BINARIES: &[&str] = &["plexus", "plexus-ipam"];
}

/// The name of `code` when `plugin` (a binary's file name) returned it: a specification
/// code for any plugin, a [`plexus`] code only for a plexus binary; `None` otherwise.
pub fn name_of(code: u32, plugin: &str) -> Option<&'static str> {
    let plexus_binary = plexus::BINARIES.contains(&plugin);
    SPEC.iter()
        .chain(plexus::ALL.iter().filter(|_| plexus_binary))
        .find(|c| c.value == code)
        .map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn plexus_codes_are_plugin_space_unique_and_stable() {
        let all: Vec<(&str, u32)> = plexus::ALL.iter().map(|c| (c.name, c.value)).collect();
        // Users script against these numbers: a change here is a breaking change.
        assert_eq!(
            all,
            [
                ("plexus::POOL_EXHAUSTED", 100),
                ("plexus::ADDRESS_TAKEN", 101),
                ("plexus::STATIC_NOT_ALLOWED", 102),
                ("plexus::CHECK_FAILED", 103),
                ("plexus::ATTACHMENT_HOLDS_OTHER", 104),
                ("plexus::STORE_CORRUPT", 105),
                ("plexus::DATAPLANE", 110),
                ("plexus::MISSING_PARENT", 111),
                ("plexus::DELEGATE_FAILED", 112),
                ("plexus::UNSUPPORTED_LINK", 113),
                ("plexus::DUPLICATE_ADDRESS", 114),
                ("plexus::NO_DEVICE", 115),
                ("plexus::DEVICES_UNKNOWN", 116),
            ]
        );
        let numbers: BTreeSet<u32> = SPEC.iter().chain(plexus::ALL).map(|c| c.value).collect();
        assert_eq!(
            numbers.len(),
            SPEC.len() + plexus::ALL.len(),
            "a number twice"
        );
    }

    #[test]
    fn names_depend_on_the_plugin() {
        assert_eq!(name_of(7, "bridge"), Some("INVALID_CONFIG"));
        assert_eq!(name_of(100, "plexus-ipam"), Some("plexus::POOL_EXHAUSTED"));
        assert_eq!(name_of(111, "plexus"), Some("plexus::MISSING_PARENT"));
        assert_eq!(name_of(100, "host-local"), None, "another plugin's 100");
        assert_eq!(name_of(42, "plexus"), None);
    }
}
