//! Typed reads of netconf JSON that fail with a [`ConfigError`] naming the field path.
//!
//! Optional fields follow Go's decoding, which the configs were written against: `null` is
//! absent, and an empty string for an optional address is absent too.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{ConfigError, RangeError, RangeField};

/// Longest value echoed into an error; keeps a stray object from flooding the log line.
const MAX_VALUE_CHARS: usize = 120;

/// A JSON object.
pub(crate) type Object = Map<String, Value>;

/// The value as the user wrote it: strings unquoted, anything else as JSON text, truncated.
pub(crate) fn render(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// `parent.key`, or `key` at the top of `ipam`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A field of `obj`, treating `null` as absent.
pub(crate) fn field<'v>(obj: &'v Object, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A non-empty string field, treating `null` and `""` as absent.
pub(crate) fn text_field<'v>(
    obj: &'v Object,
    key: &str,
    path: &str,
) -> Result<Option<&'v str>, ConfigError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => as_str(path, v).map(|s| (!s.is_empty()).then_some(s)),
    }
}

/// Error for a value of the wrong JSON type.
pub(crate) fn wrong_type(path: &str, value: &Value, expected: &str) -> ConfigError {
    ConfigError::new(path, render(value), format!("expected {expected}"))
}

/// The value as a string.
pub(crate) fn as_str<'v>(path: &str, value: &'v Value) -> Result<&'v str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, value, "a string"))
}

/// The value as an array.
pub(crate) fn as_array<'v>(
    path: &str,
    value: &'v Value,
    expected: &str,
) -> Result<&'v [Value], ConfigError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(path, value, expected))
}

/// The value as an object.
pub(crate) fn as_object<'v>(
    path: &str,
    value: &'v Value,
    expected: &str,
) -> Result<&'v Object, ConfigError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, value, expected))
}

/// Parse an IP address string.
pub(crate) fn parse_ip(path: &str, text: &str) -> Result<IpAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::new(
            path,
            text,
            "not an IP address (expected e.g. 10.0.0.1 or fd00::1)",
        )
    })
}

/// Parse a CIDR string, host bits kept.
pub(crate) fn parse_cidr(path: &str, text: &str) -> Result<IpNet, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::new(
            path,
            text,
            "not a CIDR (expected address/prefix, e.g. 10.0.0.0/24 or fd00::/64)",
        )
    })
}

/// An optional IP address field (`null` and `""` are absent).
pub(crate) fn ip_field(obj: &Object, key: &str, path: &str) -> Result<Option<IpAddr>, ConfigError> {
    text_field(obj, key, path)?
        .map(|s| parse_ip(path, s))
        .transpose()
}

/// A list of CIDRs or bare addresses (bare → /32 or /128), host bits kept.
pub(crate) fn cidr_list(path: &str, value: &Value) -> Result<Vec<IpNet>, ConfigError> {
    let items = as_array(path, value, "a list of CIDRs or addresses")?;
    let mut nets = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let text = as_str(&item_path, item)?;
        let net = if text.contains('/') {
            parse_cidr(&item_path, text)?
        } else {
            IpNet::from(parse_ip(&item_path, text).map_err(|mut e| {
                e.reason =
                    "not a CIDR or IP address (expected e.g. 10.0.0.0/28 or 10.0.0.7)".into();
                e
            })?)
        };
        nets.push(net);
    }
    Ok(nets)
}

/// Field paths of one range, in the syntax the user wrote, for mapping [`RangeError`]s.
#[derive(Debug, Clone)]
pub(crate) struct RangePaths {
    /// Path of the range object itself (`ranges[0][1]`, `ipRanges[2]`, `range`).
    pub(crate) object: String,
    /// Path of the subnet.
    pub(crate) subnet: String,
    /// Path of the start address.
    pub(crate) start: String,
    /// Path of the end address.
    pub(crate) end: String,
    /// Path of the gateway.
    pub(crate) gateway: String,
    /// Path of the exclusion list (`[i]` is appended).
    pub(crate) exclude: String,
}

impl RangePaths {
    /// The path a [`RangeField`] of this range is written at.
    pub(crate) fn of(&self, field: RangeField) -> String {
        match field {
            RangeField::Subnet => self.subnet.clone(),
            RangeField::Start => self.start.clone(),
            RangeField::End => self.end.clone(),
            RangeField::Gateway => self.gateway.clone(),
            RangeField::Exclude(i) => format!("{}[{i}]", self.exclude),
            RangeField::Range(_) => self.object.clone(),
        }
    }

    /// A [`RangeError`] of this range as a [`ConfigError`] at the right path.
    pub(crate) fn error(&self, err: &RangeError) -> ConfigError {
        ConfigError::new(self.of(err.field()), err.value(), err.to_string())
    }
}

/// A [`RangeError`] from building a set, at the path of the offending range.
pub(crate) fn set_error(paths: &[RangePaths], err: &RangeError) -> ConfigError {
    match err.field() {
        RangeField::Range(i) => {
            let path = paths.get(i).map(|p| p.object.clone()).unwrap_or_default();
            ConfigError::new(path, err.value(), err.to_string())
        }
        _ => match paths.first() {
            Some(first) => first.error(err),
            None => ConfigError::new("", err.value(), err.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_keeps_strings_raw_and_truncates() {
        assert_eq!(render(&json!("10.0.0.1")), "10.0.0.1");
        assert_eq!(render(&json!(42)), "42");
        assert_eq!(render(&json!({"a": 1})), "{\"a\":1}");
        let long = "x".repeat(500);
        assert_eq!(render(&json!(long)).chars().count(), MAX_VALUE_CHARS + 3);
    }

    #[test]
    fn optional_ip_treats_null_and_empty_as_absent() {
        let obj = json!({"a": null, "b": "", "c": "10.0.0.1", "d": 7, "e": "nope"});
        let obj = obj.as_object().expect("object");
        assert_eq!(ip_field(obj, "a", "a"), Ok(None));
        assert_eq!(ip_field(obj, "b", "b"), Ok(None));
        assert_eq!(ip_field(obj, "missing", "m"), Ok(None));
        assert_eq!(
            ip_field(obj, "c", "c"),
            Ok(Some("10.0.0.1".parse().expect("ip")))
        );
        let err = ip_field(obj, "d", "x.d").expect_err("number");
        assert_eq!((err.field.as_str(), err.value.as_str()), ("x.d", "7"));
        assert_eq!(err.reason, "expected a string");
        let err = ip_field(obj, "e", "x.e").expect_err("garbage");
        assert!(err.reason.starts_with("not an IP address"), "{err}");
    }

    #[test]
    fn cidr_list_promotes_bare_addresses() {
        let nets = cidr_list("exclude", &json!(["10.0.0.5/30", "10.0.0.9", "fd00::1"]))
            .expect("valid list");
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.5/30", "10.0.0.9/32", "fd00::1/128"]);
        let err = cidr_list("exclude", &json!(["10.0.0.0/24", "ten"])).expect_err("bad item");
        assert_eq!(err.field, "exclude[1]");
        assert_eq!(err.value, "ten");
        let err = cidr_list("exclude", &json!("10.0.0.0/24")).expect_err("not a list");
        assert_eq!(err.field, "exclude");
    }
}
