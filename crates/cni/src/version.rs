//! CNI specification versions: parsing, ordering, and which features each version has.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// The CNI specification versions plexus speaks, oldest first.
///
/// 0.1.0 and 0.2.0 are not supported: their result format predates the one plexus emits.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A CNI specification version such as `1.1.0`.
///
/// Ordering is numeric (`0.10.0` > `0.4.0`). Parsing accepts exactly three dot-separated
/// decimal numbers without signs, spaces or leading zeros, so `Display` and `FromStr`
/// round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CniVersion {
    // Field order matters: the derived `Ord` compares major, then minor, then patch.
    major: u16,
    minor: u16,
    patch: u16,
}

impl CniVersion {
    /// CNI 0.3.0: the first version with the rich result (and the oldest plexus supports).
    pub const V0_3_0: CniVersion = CniVersion::new(0, 3, 0);
    /// CNI 0.3.1.
    pub const V0_3_1: CniVersion = CniVersion::new(0, 3, 1);
    /// CNI 0.4.0: adds CHECK and `prevResult` on DEL.
    pub const V0_4_0: CniVersion = CniVersion::new(0, 4, 0);
    /// CNI 1.0.0: drops `version` from result IPs.
    pub const V1_0_0: CniVersion = CniVersion::new(1, 0, 0);
    /// CNI 1.1.0: adds STATUS, GC and new result fields.
    pub const V1_1_0: CniVersion = CniVersion::new(1, 1, 0);
    /// The newest version plexus implements.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The major version number.
    pub const fn major(&self) -> u16 {
        self.major
    }

    /// The minor version number.
    pub const fn minor(&self) -> u16 {
        self.minor
    }

    /// The patch version number.
    pub const fn patch(&self) -> u16 {
        self.patch
    }

    /// Whether this version has the CHECK verb (0.4.0 and later).
    pub fn supports_check(&self) -> bool {
        *self >= Self::V0_4_0
    }

    /// Whether this version has the STATUS and GC verbs (1.1.0 and later).
    pub fn supports_status_gc(&self) -> bool {
        *self >= Self::V1_1_0
    }

    /// Whether this version is one of [`SUPPORTED_VERSIONS`].
    pub fn is_supported(&self) -> bool {
        Self::supported().contains(self)
    }

    /// [`SUPPORTED_VERSIONS`] as values, oldest first.
    pub fn supported() -> [CniVersion; 5] {
        [
            Self::V0_3_0,
            Self::V0_3_1,
            Self::V0_4_0,
            Self::V1_0_0,
            Self::V1_1_0,
        ]
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Parses one component of a version: decimal digits only, no leading zero unless it is "0".
fn parse_component(part: &str) -> Option<u16> {
    let canonical = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    if canonical { part.parse().ok() } else { None }
}

impl FromStr for CniVersion {
    type Err = Error;

    /// Parses `X.Y.Z`; anything else is a code 6 (decode failure) error naming the input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            Error::decode_failure(format!(
                "invalid CNI version {s:?}: expected three dot-separated numbers such as \"1.1.0\""
            ))
        };
        let mut parts = s.split('.');
        let mut next = || parts.next().and_then(parse_component);
        let (Some(major), Some(minor), Some(patch)) = (next(), next(), next()) else {
            return Err(invalid());
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self::new(major, minor, patch))
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|err: Error| serde::de::Error::custom(err.msg))
    }
}

#[cfg(test)]
mod tests;
