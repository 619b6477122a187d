//! The CNI environment variables of one invocation, read and validated per verb.

use std::path::PathBuf;

use crate::args::CniArgs;
use crate::command::Command;
use crate::error::Error;
use crate::netconf::Attachment;

/// The verb.
pub const VAR_COMMAND: &str = "CNI_COMMAND";
/// The container ID (with `CNI_IFNAME`, the attachment's identity).
pub const VAR_CONTAINER_ID: &str = "CNI_CONTAINERID";
/// The path of the container's network namespace.
pub const VAR_NETNS: &str = "CNI_NETNS";
/// The interface name inside the container.
pub const VAR_IFNAME: &str = "CNI_IFNAME";
/// Extra `K=V;K=V` arguments.
pub const VAR_ARGS: &str = "CNI_ARGS";
/// Where to look for delegate plugin binaries (`:`-separated).
pub const VAR_PATH: &str = "CNI_PATH";

/// Linux's IFNAMSIZ (16) less the terminating NUL.
const MAX_IFNAME_BYTES: usize = 15;

/// The environment of one CNI invocation.
///
/// For STATUS, GC and VERSION the per-attachment variables (`CNI_CONTAINERID`, `CNI_NETNS`,
/// `CNI_IFNAME`) carry no meaning (libcni exports them as empty strings), so they are
/// ignored and always `None` here. For VERSION, `CNI_ARGS` and `CNI_PATH` are ignored too,
/// so that VERSION answers whatever else the environment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The verb (`CNI_COMMAND`).
    pub command: Command,
    /// `CNI_CONTAINERID`: always present for ADD, DEL and CHECK.
    pub container_id: Option<String>,
    /// `CNI_NETNS`: always present for ADD and CHECK; optional for DEL, because DEL must
    /// succeed after the namespace is gone.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: always present for ADD, DEL and CHECK.
    pub ifname: Option<String>,
    /// `CNI_ARGS`, parsed (empty when unset).
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:` with empty entries dropped.
    pub path: Vec<PathBuf>,
}

impl Environment {
    /// Reads `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and
    /// `CNI_PATH` through `var` (the binary passes `|k| std::env::var(k).ok()`; tests pass a
    /// map). An empty variable counts as unset.
    ///
    /// Errors (all code 4, invalid environment): `CNI_COMMAND` unset or unknown; a variable
    /// the verb requires is unset (the message names every missing one; ADD and CHECK need
    /// `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`; DEL needs `CNI_CONTAINERID`,
    /// `CNI_IFNAME`); `CNI_CONTAINERID` outside the spec grammar (alphanumeric first, then
    /// alphanumerics, `_`, `.`, `-`); `CNI_IFNAME` not a valid Linux interface name;
    /// malformed `CNI_ARGS`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Environment, Error> {
        let read = |name: &str| var(name).filter(|value| !value.is_empty());

        let command: Command = read(VAR_COMMAND)
            .ok_or_else(|| Error::invalid_env(format!("{VAR_COMMAND} is not set")))?
            .parse()?;

        let mut env = Environment {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: CniArgs::default(),
            path: Vec::new(),
        };
        if command == Command::Version {
            return Ok(env);
        }

        if command.is_per_attachment() {
            env.container_id = read(VAR_CONTAINER_ID);
            env.netns = read(VAR_NETNS).map(PathBuf::from);
            env.ifname = read(VAR_IFNAME);
            env.check_required()?;
            if let Some(id) = &env.container_id {
                validate_container_id(id)?;
            }
            if let Some(ifname) = &env.ifname {
                validate_ifname(ifname)?;
            }
        }

        if let Some(args) = read(VAR_ARGS) {
            env.args = CniArgs::parse(&args)?;
        }
        if let Some(path) = read(VAR_PATH) {
            env.path = std::env::split_paths(&path)
                .filter(|entry| !entry.as_os_str().is_empty())
                .collect();
        }
        Ok(env)
    }

    /// The attachment this invocation is about (ADD, DEL, CHECK), or `None` for the other
    /// verbs.
    pub fn attachment(&self) -> Option<Attachment> {
        Some(Attachment {
            container_id: self.container_id.clone()?,
            ifname: self.ifname.clone()?,
        })
    }

    /// Fails with code 4 naming every variable the verb requires but did not get.
    fn check_required(&self) -> Result<(), Error> {
        let needs_netns = matches!(self.command, Command::Add | Command::Check);
        let mut missing = Vec::new();
        if self.container_id.is_none() {
            missing.push(VAR_CONTAINER_ID);
        }
        if needs_netns && self.netns.is_none() {
            missing.push(VAR_NETNS);
        }
        if self.ifname.is_none() {
            missing.push(VAR_IFNAME);
        }
        if missing.is_empty() {
            return Ok(());
        }
        let noun = if missing.len() == 1 {
            "variable"
        } else {
            "variables"
        };
        Err(Error::invalid_env(format!(
            "{} requires environment {noun} {}, which {} not set",
            self.command,
            missing.join(", "),
            if missing.len() == 1 { "is" } else { "are" },
        )))
    }
}

/// Whether `id` follows the spec grammar for container IDs and network names: an ASCII
/// alphanumeric first, then ASCII alphanumerics, `_`, `.` or `-`.
pub(crate) fn is_spec_identifier(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn validate_container_id(id: &str) -> Result<(), Error> {
    if is_spec_identifier(id) {
        Ok(())
    } else {
        Err(Error::invalid_env(format!(
            "invalid {VAR_CONTAINER_ID} {id:?}: it must start with a letter or digit and \
             contain only letters, digits, '_', '.' and '-'"
        )))
    }
}

/// Checks the rules the Linux kernel (and libcni's `ValidateInterfaceName`) apply, and
/// refuses non-ASCII names (lookalikes), which libcni accepts.
fn validate_ifname(ifname: &str) -> Result<(), Error> {
    let problem = if ifname.len() > MAX_IFNAME_BYTES {
        Some("it is longer than 15 bytes")
    } else if ifname == "." || ifname == ".." {
        Some("it must not be \".\" or \"..\"")
    } else if ifname.contains('/') {
        Some("it must not contain '/'")
    } else if ifname.contains(':') {
        Some("it must not contain ':'")
    } else if ifname.chars().any(char::is_whitespace) {
        Some("it must not contain whitespace")
    } else if ifname.chars().any(char::is_control) {
        Some("it must not contain control characters")
    } else if !ifname.is_ascii() {
        // The kernel takes any byte, but `еth0` (Cyrillic е) beside `eth0` is a trap for
        // every operator and policy that matches interface names.
        Some("it must contain only ASCII characters")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::invalid_env(format!(
            "invalid {VAR_IFNAME} {ifname:?}: {problem}"
        ))),
    }
}

#[cfg(test)]
mod tests;
