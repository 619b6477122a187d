//! The CNI error type and the single function that renders it as CNI output.
//!
//! Every failure a plexus binary reports to its runtime is an [`Error`] carrying one of the
//! codes of [`crate::codes`]; [`render_error`] is the only place that turns one into the JSON
//! error object on stdout and the process exit code.

use serde::Serialize;

use crate::codes;
use crate::version::CniVersion;

/// The CNI version written into error objects when the configuration's version is unknown.
const FALLBACK_ERROR_VERSION: CniVersion = CniVersion::V1_1_0;

/// The process exit code of a plugin that reports an error (the spec requires non-zero;
/// libcni's skel uses 1 for every error, and so does plexus).
pub const ERROR_EXIT_CODE: i32 = 1;

/// A CNI error: a spec code, a short message, and optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{} (CNI error code {code})", details_suffix(.details))]
pub struct Error {
    /// The CNI error code (see [`crate::codes`]; plexus' own codes, 100 or more, are in
    /// [`crate::codes::plexus`]).
    pub code: u32,
    /// A short, human-readable description of what went wrong.
    pub msg: String,
    /// Longer details; omitted from the JSON error object when empty.
    pub details: String,
}

/// Formats the details part of the `Display` output: nothing when there are none.
fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(": {details}")
    }
}

impl Error {
    /// An error with the given code, message and details.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Replaces the details of this error.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 1: incompatible CNI version.
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(codes::INCOMPATIBLE_VERSION, msg, "")
    }

    /// Code 2: unsupported field; the message must name the key and value.
    pub fn unsupported_field(msg: impl Into<String>) -> Self {
        Self::new(codes::UNSUPPORTED_FIELD, msg, "")
    }

    /// Code 3: the container is unknown or does not exist.
    pub fn unknown_container(msg: impl Into<String>) -> Self {
        Self::new(codes::UNKNOWN_CONTAINER, msg, "")
    }

    /// Code 4: invalid or missing environment variables; the message must name them.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ENV, msg, "")
    }

    /// Code 5: an I/O failure.
    pub fn io_failure(msg: impl Into<String>) -> Self {
        Self::new(codes::IO_FAILURE, msg, "")
    }

    /// Code 6: the configuration or a version string could not be decoded.
    pub fn decode_failure(msg: impl Into<String>) -> Self {
        Self::new(codes::DECODE_FAILURE, msg, "")
    }

    /// Code 7: the network configuration is invalid.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_CONFIG, msg, "")
    }

    /// Code 11: a transient failure; the runtime should try again later.
    pub fn try_again_later(msg: impl Into<String>) -> Self {
        Self::new(codes::TRY_AGAIN_LATER, msg, "")
    }

    /// Code 50: the plugin cannot service ADD (STATUS).
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(codes::NOT_AVAILABLE, msg, "")
    }

    /// Code 51: the plugin cannot service ADD and existing containers may have limited
    /// connectivity (STATUS).
    pub fn not_available_limited(msg: impl Into<String>) -> Self {
        Self::new(codes::NOT_AVAILABLE_LIMITED, msg, "")
    }

    /// Code 999: an internal error.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, msg, "")
    }
}

/// The CNI error object as it goes on the wire.
#[derive(Serialize)]
struct ErrorObject<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

/// The only function in plexus that turns an error into CNI output.
///
/// Returns the JSON error object `{"cniVersion","code","msg","details"}` (`details` omitted
/// when empty; no trailing newline) for stdout, and the process exit code, which is always
/// [`ERROR_EXIT_CODE`] (1), as libcni's skel does for every error. `version` is the
/// configuration's `cniVersion` when it is known; otherwise the error object says `1.1.0`.
pub fn render_error(err: &Error, version: Option<&CniVersion>) -> (String, i32) {
    let object = ErrorObject {
        cni_version: version.unwrap_or(&FALLBACK_ERROR_VERSION).to_string(),
        code: err.code,
        msg: &err.msg,
        details: &err.details,
    };
    // Serialising plain strings and integers cannot fail; the fallback keeps even that
    // impossible case a valid CNI error object instead of a panic.
    let json = serde_json::to_string(&object).unwrap_or_else(|_| {
        format!(
            r#"{{"cniVersion":"{FALLBACK_ERROR_VERSION}","code":{},"msg":"internal error"}}"#,
            codes::INTERNAL
        )
    });
    (json, ERROR_EXIT_CODE)
}

#[cfg(test)]
mod tests;
