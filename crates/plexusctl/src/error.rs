//! The error type of every plexusctl command, and the one place errors become exit
//! statuses ([`CtlError::exit_code`]; [`EXIT_STATUS`] documents the scheme for `--help`,
//! the man page and the README).

use std::path::PathBuf;

use plexus_store::StoreError;

/// Exit status: the command did what it was asked and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit status: the command ran and its answer is "problems found" — `check` found
/// problems, `network validate` (and `create`/`apply`, which refuse the same files) found
/// invalid definitions, `import` met conflicts, `gc` could not release everything, a
/// change was refused because of what the store holds.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit status: the command could not run — a bad command line, an unreadable or
/// malformed input file, an unknown network, a store that does not exist or is not a
/// store, an invalid store configuration. clap's own usage errors are 2 as well.
pub const EXIT_CANNOT_RUN: u8 = 2;
/// Exit status: the allocation store could not be reached or stayed busy: the same
/// command may succeed later.
pub const EXIT_STORE_UNAVAILABLE: u8 = 3;

/// The exit-status scheme, one line per status, for `--help`, the man page and the README.
pub const EXIT_STATUS: &[(u8, &str)] = &[
    (EXIT_OK, "success: done, nothing wrong found"),
    (
        EXIT_PROBLEMS,
        "problems found: check found problems; network validate, create or apply found \
         invalid definitions (nothing stored); network apply refused a change that strands \
         held addresses; network delete refused a network in use; import met conflicts; gc \
         could not release everything; a plugin run by exec failed",
    ),
    (
        EXIT_CANNOT_RUN,
        "the command could not run: bad command line, unreadable or malformed input file, \
         unknown network, a store that does not exist or is not a store, invalid store \
         configuration",
    ),
    (
        EXIT_STORE_UNAVAILABLE,
        "the store is unreachable or stayed busy: try again later",
    ),
];

/// Why a plexusctl command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The allocation store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to stdout failed (other than a closed pipe, which ends the command quietly).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// An input (file, flag value, store config) is invalid; `what` says which.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file, flag or field at fault.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No definition of the network was found anywhere plexusctl looks, and the store
    /// holds no address of it.
    #[error("network {network:?} is not defined{}: {searched}", did_you_mean(.nearest.as_deref()))]
    UnknownNetwork {
        /// The requested name.
        network: String,
        /// Where plexusctl looked, for the operator to fix.
        searched: String,
        /// The known name closest to the requested one, if any is close.
        nearest: Option<String>,
    },
    /// A CNI plugin run by `exec` failed.
    #[error("{0}")]
    Plugin(String),
    /// The command ran and found or caused problems, already reported on stdout/stderr.
    #[error("{0}")]
    Problems(String),
    /// plexusctl itself failed (a bug, or output it cannot render).
    #[error("{0}")]
    Internal(String),
}

/// `; did you mean "blue"?` when there is a near name.
fn did_you_mean(nearest: Option<&str>) -> String {
    nearest
        .map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

impl CtlError {
    /// Shorthand for [`CtlError::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> CtlError {
        CtlError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CtlError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CtlError {
        CtlError::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit status for this error: the one mapping (see [`EXIT_STATUS`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Problems(_) | CtlError::Plugin(_) => EXIT_PROBLEMS,
            CtlError::Store(store) => match store {
                StoreError::Unavailable { .. } | StoreError::Busy { .. } => EXIT_STORE_UNAVAILABLE,
                // A write found the store holding something else: an answer, not a failure.
                StoreError::Conflict { .. }
                | StoreError::AddressTaken { .. }
                | StoreError::AttachmentHoldsOther { .. }
                | StoreError::Exhausted { .. } => EXIT_PROBLEMS,
                StoreError::Config { .. }
                | StoreError::Corrupt { .. }
                | StoreError::Internal { .. } => EXIT_CANNOT_RUN,
            },
            CtlError::Io { .. }
            | CtlError::Output(_)
            | CtlError::Invalid { .. }
            | CtlError::UnknownNetwork { .. }
            | CtlError::Internal(_) => EXIT_CANNOT_RUN,
        }
    }

    /// Whether this is a write to a closed stdout (`plexusctl showalloc | head`), which is
    /// not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Result alias for plexusctl.
pub type CtlResult<T> = Result<T, CtlError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_distinguish_problems_cannot_run_and_unavailable() {
        let unavailable = CtlError::Store(StoreError::Unavailable { reason: "x".into() });
        assert_eq!(unavailable.exit_code(), EXIT_STORE_UNAVAILABLE);
        assert_eq!(CtlError::invalid("f", "bad").exit_code(), EXIT_CANNOT_RUN);
        let missing = CtlError::io("/x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(missing.exit_code(), EXIT_CANNOT_RUN);
        let conflict = CtlError::Store(StoreError::Conflict { reason: "x".into() });
        assert_eq!(conflict.exit_code(), EXIT_PROBLEMS);
        assert_eq!(
            CtlError::Problems("2 problems".into()).exit_code(),
            EXIT_PROBLEMS
        );
        let codes: Vec<u8> = EXIT_STATUS.iter().map(|(code, _)| *code).collect();
        assert_eq!(
            codes,
            [0, 1, 2, 3],
            "the documented scheme lists every status"
        );
        let pipe = CtlError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        assert!(!CtlError::Problems(String::new()).is_broken_pipe());
    }
}
