//! Interface names: the kernel's rules (IFNAMSIZ), the names plexus derives for host-side
//! VLAN/VXLAN links, and temporary names for links being set up.

/// Longest interface name the kernel accepts (IFNAMSIZ minus the NUL).
pub const MAX_LINK_NAME_LEN: usize = 15;

/// Prefix of [`temporary_link_name`]s, so leftovers are recognisable on a node.
pub const TEMPORARY_PREFIX: &str = "plx";

/// Why an interface name is not acceptable to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("interface name is empty")]
    Empty,
    /// Longer than [`MAX_LINK_NAME_LEN`] bytes.
    #[error("interface name {0:?} is longer than 15 bytes")]
    TooLong(String),
    /// `.`/`..`, or contains `/`, `:`, whitespace, a control character or a non-ASCII
    /// character (the kernel takes those, but they make lookalikes of other names).
    #[error(
        "interface name {0:?} contains a character plexus refuses ('/', ':', whitespace, control, non-ASCII) or is '.'/'..'"
    )]
    BadCharacter(String),
}

/// Checks `name` against the kernel's `dev_valid_name` rules.
pub fn validate_link_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_LINK_NAME_LEN {
        return Err(NameError::TooLong(name.to_owned()));
    }
    let bad_char =
        |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control() || !c.is_ascii();
    if name == "." || name == ".." || name.chars().any(bad_char) {
        return Err(NameError::BadCharacter(name.to_owned()));
    }
    Ok(())
}

/// `<parent>.<id>`: the host-side VLAN link of a network (DANM: `<NetworkID>.<vlan>`).
pub fn vlan_link_name(parent: &str, id: u16) -> Result<String, NameError> {
    let name = format!("{parent}.{id}");
    validate_link_name(&name)?;
    Ok(name)
}

/// `vx_<network>`: the host-side VXLAN link of a network (DANM's naming).
pub fn vxlan_link_name(network_id: &str) -> Result<String, NameError> {
    let name = format!("vx_{network_id}");
    validate_link_name(&name)?;
    Ok(name)
}

/// A fresh name like `plx3fa9c01b7e2d` (15 bytes) for a link created in the host netns
/// before it is moved and renamed. 48 random bits from the thread's CSPRNG make
/// collisions between concurrent plugins negligible; the kernel still refuses a duplicate
/// with `Exists`, so a caller may simply retry.
pub fn temporary_link_name() -> String {
    let bits = rand::random::<u64>() & 0xffff_ffff_ffff;
    format!("{TEMPORARY_PREFIX}{bits:012x}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn kernel_rules_are_enforced() {
        assert_eq!(validate_link_name(""), Err(NameError::Empty));
        assert!(validate_link_name("eth0").is_ok());
        assert!(validate_link_name("a23456789012345").is_ok());
        assert!(matches!(
            validate_link_name("a234567890123456"),
            Err(NameError::TooLong(_))
        ));
        for bad in [".", "..", "a/b", "a:b", "a b", "a\tb", "a\nb"] {
            assert!(
                matches!(validate_link_name(bad), Err(NameError::BadCharacter(_))),
                "{bad:?}"
            );
        }
        // Multi-byte characters count in bytes, like the kernel does.
        assert!(matches!(
            validate_link_name("ééééééééé"),
            Err(NameError::TooLong(_))
        ));
        // Unicode lookalikes (Cyrillic е, zero-width space) are refused.
        for lookalike in ["\u{0435}th0", "eth\u{200b}0", "é"] {
            assert!(
                matches!(
                    validate_link_name(lookalike),
                    Err(NameError::BadCharacter(_))
                ),
                "{lookalike:?}"
            );
        }
    }

    #[test]
    fn host_link_names_follow_danm() {
        assert_eq!(vlan_link_name("internal", 700), Ok("internal.700".into()));
        assert_eq!(vxlan_link_name("internal"), Ok("vx_internal".into()));
        assert!(matches!(
            vlan_link_name("averylongnet", 4094),
            Err(NameError::TooLong(_))
        ));
        assert!(matches!(
            vxlan_link_name("a/b"),
            Err(NameError::BadCharacter(_))
        ));
    }

    #[test]
    fn temporary_names_are_valid_prefixed_and_distinct() {
        let names: HashSet<String> = (0..10_000).map(|_| temporary_link_name()).collect();
        assert_eq!(names.len(), 10_000);
        for name in names.iter().take(100) {
            assert!(name.starts_with(TEMPORARY_PREFIX), "{name}");
            assert_eq!(name.len(), MAX_LINK_NAME_LEN, "{name}");
            assert!(validate_link_name(name).is_ok(), "{name}");
        }
    }

    proptest! {
        #[test]
        fn validation_matches_the_rules(name in "\\PC{0,20}") {
            let ok = validate_link_name(&name).is_ok();
            let expected = !name.is_empty()
                && name.len() <= MAX_LINK_NAME_LEN
                && name != "." && name != ".."
                && name.is_ascii()
                && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
            prop_assert_eq!(ok, expected);
        }

        #[test]
        fn vlan_names_are_valid_whenever_produced(parent in "[a-z0-9_-]{1,16}", id in 1u16..=4094) {
            if let Ok(name) = vlan_link_name(&parent, id) {
                prop_assert!(validate_link_name(&name).is_ok());
                prop_assert_eq!(name, format!("{parent}.{id}"));
            } else {
                prop_assert!(parent.len() + 1 + id.to_string().len() > MAX_LINK_NAME_LEN);
            }
        }
    }
}
