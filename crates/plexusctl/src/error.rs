//! The error type of every plexusctl command, and the exit status each error maps to.

use std::path::PathBuf;

use plexus_store::StoreError;

/// Exit status: the operation failed, or `check` found problems.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: the command line or an input file is invalid (clap uses 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the allocation store cannot be reached or is busy.
pub const EXIT_STORE_UNAVAILABLE: u8 = 3;

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
    /// No definition of the network was found anywhere plexusctl looks.
    #[error("network {network:?} is not defined: {searched}")]
    UnknownNetwork {
        /// The requested name.
        network: String,
        /// Where plexusctl looked, for the operator to fix.
        searched: String,
    },
    /// A CNI plugin run by `exec` failed.
    #[error("{0}")]
    Plugin(String),
    /// The command ran and found or caused problems, already reported on stdout/stderr.
    #[error("{0}")]
    Problems(String),
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

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Store(StoreError::Unavailable { .. } | StoreError::Busy { .. }) => {
                EXIT_STORE_UNAVAILABLE
            }
            CtlError::Invalid { .. } | CtlError::UnknownNetwork { .. } => EXIT_USAGE,
            CtlError::Store(StoreError::Config { .. }) => EXIT_USAGE,
            _ => EXIT_FAILURE,
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
    fn exit_codes_distinguish_usage_store_and_failure() {
        let unavailable = CtlError::Store(StoreError::Unavailable { reason: "x".into() });
        assert_eq!(unavailable.exit_code(), EXIT_STORE_UNAVAILABLE);
        assert_eq!(CtlError::invalid("f", "bad").exit_code(), EXIT_USAGE);
        assert_eq!(
            CtlError::Problems("2 problems".into()).exit_code(),
            EXIT_FAILURE
        );
        let pipe = CtlError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        assert!(!CtlError::Problems(String::new()).is_broken_pipe());
    }
}
