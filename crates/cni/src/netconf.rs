//! The network configuration a runtime writes to a plugin's stdin.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::args::parse_ip_maybe_with_prefix;
use crate::env::is_spec_identifier;
use crate::error::Error;
use crate::result::SuccessResult;
use crate::version::CniVersion;

/// The largest configuration accepted on stdin. Real configurations are a few KiB; the bound
/// keeps a runaway writer from exhausting memory.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// The GC key listing the attachments that are still valid (CNI 1.1.0 as amended).
pub const KEY_VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The older name of [`KEY_VALID_ATTACHMENTS`]; libcni v1.2.3+ sends both.
pub const KEY_ATTACHMENTS_LEGACY: &str = "cni.dev/attachments";

/// One container attachment, identified as the CNI spec does: (container ID, ifname).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID` at ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` at ADD.
    pub ifname: String,
}

/// A parsed plugin configuration, with the runtime-injected fields pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: always one of the supported versions.
    pub cni_version: CniVersion,
    /// `name`: the network name.
    pub name: String,
    /// `type`: the plugin binary's name.
    pub plugin_type: String,
    /// `ipam`, if present (an object).
    pub ipam: Option<Value>,
    /// `runtimeConfig` (capability arguments from the runtime); empty if absent.
    pub runtime_config: Map<String, Value>,
    /// `args` (conventions: `args.cni.ips`, `args.cni.labels`), if present (an object).
    pub args: Option<Value>,
    /// `prevResult`, if present (an object); see [`NetConf::parsed_prev_result`].
    pub prev_result: Option<Value>,
    /// GC only: `cni.dev/valid-attachments`, else the older `cni.dev/attachments`, else
    /// `None` (the key is absent: the caller gave no valid set, which upstream `cnitool gc`
    /// means as "collect everything"). A JSON `null` list is read as an empty list, because
    /// that is how Go's libcni encodes an empty (nil) slice.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole object as received, for pass-through to delegates.
    pub raw: Value,
}

impl NetConf {
    /// Parses a configuration from stdin bytes.
    ///
    /// Errors: more than [`MAX_CONFIG_BYTES`] → code 7; empty, not JSON, not an object, or a field
    /// of the wrong JSON type → code 6 (decode failure); `cniVersion`, `name` or `type`
    /// missing or empty → code 7 naming the field; a `cniVersion` that is not a version →
    /// code 6; a version plexus does not support → code 1; a `name` outside the spec grammar
    /// (alphanumeric first, then alphanumerics, `_`, `.`, `-`) → code 7.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, Error> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(Error::invalid_config(format!(
                "network configuration is {} bytes; the limit is {MAX_CONFIG_BYTES} bytes (1 MiB)",
                bytes.len()
            )));
        }
        if bytes.trim_ascii().is_empty() {
            return Err(Error::decode_failure("network configuration is empty"));
        }
        let raw: Value = serde_json::from_slice(bytes).map_err(|err| {
            Error::decode_failure("network configuration is not valid JSON")
                .with_details(err.to_string())
        })?;
        let Value::Object(object) = &raw else {
            return Err(Error::decode_failure(format!(
                "network configuration must be a JSON object, not {}",
                json_type_name(&raw)
            )));
        };

        let version_text = required_string(object, "cniVersion")?;
        let cni_version: CniVersion = version_text.parse()?;
        if !cni_version.is_supported() {
            return Err(Error::incompatible_version(format!(
                "cniVersion {cni_version} is not supported; supported versions: {}",
                crate::version::SUPPORTED_VERSIONS.join(", ")
            )));
        }

        let name = required_string(object, "name")?;
        if !is_spec_identifier(name) {
            return Err(Error::invalid_config(format!(
                "invalid network name {name:?}: it must start with a letter or digit and \
                 contain only letters, digits, '_', '.' and '-'"
            )));
        }
        let plugin_type = required_string(object, "type")?;

        let runtime_config = match optional_object(object, "runtimeConfig")? {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };

        Ok(NetConf {
            cni_version,
            name: name.to_owned(),
            plugin_type: plugin_type.to_owned(),
            ipam: optional_object(object, "ipam")?.cloned(),
            runtime_config,
            args: optional_object(object, "args")?.cloned(),
            prev_result: optional_object(object, "prevResult")?.cloned(),
            valid_attachments: parse_valid_attachments(object)?,
            raw: raw.clone(),
        })
    }

    /// The addresses the runtime asked for through `runtimeConfig.ips` and `args.cni.ips`
    /// (CNI conventions), in that order without duplicates; each entry is `ip` or
    /// `ip/prefix` and the prefix is dropped. A malformed entry or list is a code 7 error
    /// naming it.
    pub fn requested_ips(&self) -> Result<Vec<IpAddr>, Error> {
        let from_runtime = self.runtime_config.get("ips");
        let from_args = self
            .args
            .as_ref()
            .and_then(|args| args.get("cni"))
            .and_then(|cni| cni.get("ips"));
        let mut ips = Vec::new();
        // Duplicates are dropped through a set: a 1 MiB config lists ~50,000 addresses, and
        // a scan of `ips` per address would cost seconds (found by fuzzing).
        let mut seen = HashSet::new();
        for (location, list) in [
            ("runtimeConfig.ips", from_runtime),
            ("args.cni.ips", from_args),
        ] {
            for ip in parse_ip_list(location, list)? {
                if seen.insert(ip) {
                    ips.push(ip);
                }
            }
        }
        Ok(ips)
    }

    /// `runtimeConfig.ipRanges` (host-local `ranges` shape), if the runtime sent it.
    pub fn runtime_ip_ranges(&self) -> Option<&Value> {
        self.runtime_config.get("ipRanges")
    }

    /// `prevResult` parsed as a result, or `None` when absent (code 6/7 when malformed).
    pub fn parsed_prev_result(&self) -> Result<Option<SuccessResult>, Error> {
        self.prev_result
            .as_ref()
            .map(SuccessResult::from_json)
            .transpose()
    }
}

/// The JSON type of `value`, for error messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required non-empty string field: absent, null or empty → code 7, not a string → code 6.
fn required_string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, Error> {
    match object.get(field) {
        None | Some(Value::Null) => Err(Error::invalid_config(format!(
            "network configuration is missing required field {field:?}"
        ))),
        Some(Value::String(text)) if text.is_empty() => Err(Error::invalid_config(format!(
            "network configuration field {field:?} is empty"
        ))),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(Error::decode_failure(format!(
            "network configuration field {field:?} must be a string, not {}",
            json_type_name(other)
        ))),
    }
}

/// An optional object field: absent or null → `None`; not an object → code 6.
fn optional_object<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Value>, Error> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value)),
        Some(other) => Err(Error::decode_failure(format!(
            "network configuration field {field:?} must be an object, not {}",
            json_type_name(other)
        ))),
    }
}

/// Reads the GC valid set from the new key, falling back to the legacy one.
fn parse_valid_attachments(object: &Map<String, Value>) -> Result<Option<Vec<Attachment>>, Error> {
    let Some((key, value)) = [KEY_VALID_ATTACHMENTS, KEY_ATTACHMENTS_LEGACY]
        .into_iter()
        .find_map(|key| object.get(key).map(|value| (key, value)))
    else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(Some(Vec::new()));
    }
    Vec::<Attachment>::deserialize(value)
        .map(Some)
        .map_err(|err| {
            Error::decode_failure(format!(
                "{key:?} must be a list of {{\"containerID\": string, \"ifname\": string}}"
            ))
            .with_details(err.to_string())
        })
}

/// Parses a conventions-style address list (`["10.0.0.5/24", "fd00::5"]`); `None` is empty.
fn parse_ip_list(location: &str, list: Option<&Value>) -> Result<Vec<IpAddr>, Error> {
    let items = match list {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::invalid_config(format!(
                "{location} must be a list of IP addresses, not {}",
                json_type_name(other)
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_str()
                .and_then(|text| parse_ip_maybe_with_prefix(text.trim()))
                .ok_or_else(|| {
                    Error::invalid_config(format!(
                        "{location}[{index}] = {item} is not an IP address \
                         (expected e.g. \"10.0.0.5\", \"10.0.0.5/24\" or \"fd00::5\")"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
