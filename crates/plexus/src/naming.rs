//! Pod interface names (DANM's `calculateIfaceName`), decided for the whole pod before
//! anything is created.
//!
//! - the first attachment gets the runtime's `CNI_IFNAME` (`eth0` from every Kubernetes
//!   runtime; kubelet needs it), whatever its network says;
//! - an explicitly requested name (NPWG `interface`) is used as is;
//! - otherwise `container_prefix` + index, or `eth` + index without a prefix; the index is
//!   the attachment's position in the pod's list (global to the pod, not per network);
//! - under the `legacy` scheme a prefix is used alone, without the index.
//!
//! Every name is checked against the kernel's rules (IFNAMSIZ) and against the other names
//! of the pod, so a clash fails the ADD before any link exists.

use std::fmt;
use std::str::FromStr;

use plexus_netlink::validate_link_name;

/// How names after the first are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamingScheme {
    /// `prefix<index>` / `eth<index>` (DANM's default since PR #78).
    #[default]
    Indexed,
    /// `prefix` alone when the network has one (DANM's `namingScheme: legacy`).
    Legacy,
}

impl FromStr for NamingScheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "indexed" | "default" => Ok(NamingScheme::Indexed),
            "legacy" => Ok(NamingScheme::Legacy),
            other => Err(format!(
                "unknown naming scheme {other:?} (expected \"indexed\" or \"legacy\")"
            )),
        }
    }
}

impl fmt::Display for NamingScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamingScheme::Indexed => "indexed",
            NamingScheme::Legacy => "legacy",
        })
    }
}

/// What naming needs to know about one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameInput {
    /// Position in the pod's list (0 is the runtime's interface).
    pub index: usize,
    /// The network's `container_prefix`, if any.
    pub prefix: Option<String>,
    /// A name the request asked for explicitly, if any.
    pub requested: Option<String>,
    /// The network, for messages.
    pub network: String,
}

/// Why the pod's interface names cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// The kernel would refuse the name.
    #[error(
        "interface name {name:?} of attachment [{index}] (network {network}) is invalid: {reason}"
    )]
    Invalid {
        /// Position of the attachment.
        index: usize,
        /// The derived name.
        name: String,
        /// The network.
        network: String,
        /// The kernel rule it breaks.
        reason: String,
    },
    /// Two attachments would get the same name.
    #[error(
        "attachments [{first}] and [{second}] would both be named {name:?} (under the legacy \
         scheme two attachments of one prefixed network clash; use the indexed scheme)"
    )]
    Duplicate {
        /// The clashing name.
        name: String,
        /// The first attachment with it.
        first: usize,
        /// The second one.
        second: usize,
    },
}

/// The name of one attachment, unchecked.
pub fn derive_name(first: &str, input: &NameInput, scheme: NamingScheme) -> String {
    if input.index == 0 {
        return first.to_owned();
    }
    if let Some(requested) = &input.requested {
        return requested.clone();
    }
    match (&input.prefix, scheme) {
        (Some(prefix), NamingScheme::Legacy) => prefix.clone(),
        (Some(prefix), NamingScheme::Indexed) => format!("{prefix}{}", input.index),
        (None, _) => format!("eth{}", input.index),
    }
}

/// The names of every attachment of the pod, in input order, each valid and unique.
pub fn interface_names(
    first: &str,
    inputs: &[NameInput],
    scheme: NamingScheme,
) -> Result<Vec<String>, NamingError> {
    let mut names: Vec<String> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = derive_name(first, input, scheme);
        if let Err(err) = validate_link_name(&name) {
            return Err(NamingError::Invalid {
                index: input.index,
                name,
                network: input.network.clone(),
                reason: err.to_string(),
            });
        }
        if let Some(pos) = names.iter().position(|n| *n == name) {
            return Err(NamingError::Duplicate {
                name,
                first: inputs[pos].index,
                second: input.index,
            });
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn input(index: usize, prefix: Option<&str>) -> NameInput {
        NameInput {
            index,
            prefix: prefix.map(str::to_owned),
            requested: None,
            network: format!("net{index}"),
        }
    }

    #[test]
    fn danm_rules() {
        let inputs = [
            input(0, Some("int")),
            input(1, Some("int")),
            input(2, None),
            input(3, Some("ext")),
        ];
        let names = interface_names("eth0", &inputs, NamingScheme::Indexed).unwrap();
        assert_eq!(names, ["eth0", "int1", "eth2", "ext3"]);
        let legacy = [input(0, None), input(1, Some("int")), input(2, Some("ext"))];
        let names = interface_names("eth0", &legacy, NamingScheme::Legacy).unwrap();
        assert_eq!(names, ["eth0", "int", "ext"]);
    }

    #[test]
    fn explicit_names_win_after_the_first() {
        let mut second = input(1, Some("int"));
        second.requested = Some("data".into());
        let mut first = input(0, None);
        first.requested = Some("ignored".into());
        let names = interface_names("eth0", &[first, second], NamingScheme::Indexed).unwrap();
        assert_eq!(names, ["eth0", "data"]);
    }

    #[test]
    fn legacy_clash_is_refused_naming_both_entries() {
        let inputs = [input(0, None), input(1, Some("int")), input(2, Some("int"))];
        let err = interface_names("eth0", &inputs, NamingScheme::Legacy).unwrap_err();
        assert_eq!(
            err,
            NamingError::Duplicate {
                name: "int".into(),
                first: 1,
                second: 2
            }
        );
    }

    #[test]
    fn too_long_names_are_refused_before_anything_exists() {
        let inputs = [input(0, None), input(1, Some("averyverylongpfx"))];
        let err = interface_names("eth0", &inputs, NamingScheme::Indexed).unwrap_err();
        assert!(
            matches!(&err, NamingError::Invalid { index: 1, name, .. } if name == "averyverylongpfx1"),
            "{err}"
        );
        assert!(err.to_string().contains("net1"), "{err}");
    }

    #[test]
    fn scheme_parses() {
        assert_eq!("legacy".parse(), Ok(NamingScheme::Legacy));
        assert_eq!("".parse(), Ok(NamingScheme::Indexed));
        assert!("Legacy".parse::<NamingScheme>().is_err());
    }

    proptest! {
        #[test]
        fn names_are_valid_unique_and_follow_the_rules(
            prefixes in proptest::collection::vec(proptest::option::of("[a-z]{1,14}"), 1..20),
            legacy in any::<bool>(),
        ) {
            let scheme = if legacy { NamingScheme::Legacy } else { NamingScheme::Indexed };
            let inputs: Vec<NameInput> = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| NameInput { index: i, prefix: p.clone(), requested: None,
                                          network: format!("n{i}") })
                .collect();
            match interface_names("eth0", &inputs, scheme) {
                Ok(names) => {
                    prop_assert_eq!(names.len(), inputs.len());
                    prop_assert_eq!(&names[0], "eth0");
                    for (i, name) in names.iter().enumerate() {
                        prop_assert!(validate_link_name(name).is_ok());
                        prop_assert!(!names[..i].contains(name));
                        prop_assert_eq!(name, &derive_name("eth0", &inputs[i], scheme));
                    }
                }
                Err(NamingError::Invalid { index, name, .. }) => {
                    prop_assert!(name.len() > 15);
                    prop_assert_eq!(name, derive_name("eth0", &inputs[index], scheme));
                }
                Err(NamingError::Duplicate { name, first, second }) => {
                    prop_assert!(first < second);
                    prop_assert_eq!(&derive_name("eth0", &inputs[first], scheme), &name);
                    prop_assert_eq!(&derive_name("eth0", &inputs[second], scheme), &name);
                }
            }
        }
    }
}
