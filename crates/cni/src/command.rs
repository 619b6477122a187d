//! The CNI verbs, as named by the `CNI_COMMAND` environment variable.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A CNI verb (the value of `CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container to the network (`ADD`).
    Add,
    /// Release a container's attachment (`DEL`); must succeed when it is already gone.
    Del,
    /// Verify an attachment is still as ADD left it (`CHECK`, CNI 0.4.0+).
    Check,
    /// Report whether the plugin is ready to service ADD (`STATUS`, CNI 1.1.0+).
    Status,
    /// Remove resources of attachments that are no longer valid (`GC`, CNI 1.1.0+).
    Gc,
    /// Report the supported CNI versions (`VERSION`).
    Version,
}

impl Command {
    /// Every verb, in the order the spec introduces them.
    pub const ALL: [Command; 6] = [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Status,
        Command::Gc,
        Command::Version,
    ];

    /// The verb as it appears in `CNI_COMMAND` (`"ADD"`, `"DEL"`, ...).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Whether the verb concerns one attachment, identified by `CNI_CONTAINERID` and
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub const fn is_per_attachment(&self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = Error;

    /// Parses a `CNI_COMMAND` value; the match is exact (libcni sends upper case). An unknown
    /// verb is a code 4 (invalid environment) error naming the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::ALL
            .into_iter()
            .find(|command| command.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_env(format!(
                    "unknown CNI_COMMAND {s:?}: expected one of ADD, DEL, CHECK, STATUS, GC, VERSION"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn every_verb_round_trips_through_its_wire_name() {
        for command in Command::ALL {
            assert_eq!(command.as_str().parse::<Command>(), Ok(command));
            assert_eq!(command.to_string(), command.as_str());
        }
    }

    #[test]
    fn wire_names_are_the_spec_names() {
        let names: Vec<&str> = Command::ALL.iter().map(Command::as_str).collect();
        assert_eq!(names, ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]);
    }

    #[test]
    fn unknown_or_lower_case_verb_is_code_4_naming_the_value() {
        for bad in ["add", "Add", "", "ADD ", "DELETE", "gc"] {
            let err = bad.parse::<Command>().expect_err(bad);
            assert_eq!(err.code, codes::INVALID_ENV, "{bad:?}");
            assert!(err.msg.contains("CNI_COMMAND"), "{}", err.msg);
            assert!(err.msg.contains(&format!("{bad:?}")), "{}", err.msg);
        }
    }

    #[test]
    fn only_add_del_check_are_per_attachment() {
        let per: Vec<Command> = Command::ALL
            .into_iter()
            .filter(Command::is_per_attachment)
            .collect();
        assert_eq!(per, [Command::Add, Command::Del, Command::Check]);
    }
}
