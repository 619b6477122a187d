//! `ipam.blocks`: the per-node address block policy.
//!
//! ```json
//! "blocks": {"v4": 26, "v6": 122, "release_after_seconds": 600}
//! "blocks": false
//! ```
//! Absent, `null` or `true` means the defaults; `false` turns blocks off.

use serde_json::Value;

use super::json::{Object, as_object, field, join, render, wrong_type};
use super::warn_unknown_keys;
use crate::blocks::{BlockPolicy, V4_PREFIXES, V6_PREFIXES};
use crate::error::ConfigError;
/// Longest accepted grace period of an empty block: 30 days.
const MAX_RELEASE_AFTER_SECS: u64 = 30 * 24 * 3600;

/// Parses `ipam.blocks`.
pub(crate) fn parse_blocks(
    ipam: &Object,
    warnings: &mut Vec<String>,
) -> Result<BlockPolicy, ConfigError> {
    let path = "blocks";
    let obj = match field(ipam, path) {
        None | Some(Value::Bool(true)) => return Ok(BlockPolicy::default()),
        Some(Value::Bool(false)) => return Ok(BlockPolicy::disabled()),
        Some(v) => as_object(
            path,
            v,
            "true, false or an object like {\"v4\": 26, \"v6\": 122, \"release_after_seconds\": 600}",
        )?,
    };
    warn_unknown_keys(path, obj, &["v4", "v6", "release_after_seconds"], warnings);
    let mut policy = BlockPolicy::default();
    if let Some(v) = field(obj, "v4") {
        policy.v4_prefix = prefix(&join(path, "v4"), v, V4_PREFIXES)?;
    }
    if let Some(v) = field(obj, "v6") {
        policy.v6_prefix = prefix(&join(path, "v6"), v, V6_PREFIXES)?;
    }
    if let Some(v) = field(obj, "release_after_seconds") {
        let at = join(path, "release_after_seconds");
        policy.release_after_secs = v
            .as_u64()
            .filter(|s| *s <= MAX_RELEASE_AFTER_SECS)
            .ok_or_else(|| {
                ConfigError::new(
                    &at,
                    render(v),
                    format!("expected whole seconds from 0 to {MAX_RELEASE_AFTER_SECS}"),
                )
            })?;
    }
    Ok(policy)
}

/// A block prefix length within `allowed`.
fn prefix(
    path: &str,
    value: &Value,
    allowed: std::ops::RangeInclusive<u8>,
) -> Result<u8, ConfigError> {
    let Some(n) = value.as_u64() else {
        return Err(wrong_type(path, value, "a prefix length such as 26"));
    };
    u8::try_from(n)
        .ok()
        .filter(|p| allowed.contains(p))
        .ok_or_else(|| {
            ConfigError::new(
                path,
                render(value),
                format!(
                    "block prefix must be from {} to {} (blocks of 4096 down to 4 addresses)",
                    allowed.start(),
                    allowed.end(),
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<BlockPolicy, ConfigError> {
        let ipam = json!({ "blocks": v });
        let mut warnings = Vec::new();
        parse_blocks(ipam.as_object().unwrap(), &mut warnings)
    }

    #[test]
    fn absent_true_and_null_are_defaults_false_disables() {
        let empty = serde_json::Map::new();
        assert_eq!(
            parse_blocks(&empty, &mut Vec::new()).unwrap(),
            BlockPolicy::default()
        );
        assert_eq!(parse(json!(true)).unwrap(), BlockPolicy::default());
        assert_eq!(parse(Value::Null).unwrap(), BlockPolicy::default());
        let off = parse(json!(false)).unwrap();
        assert!(!off.enabled);
        assert!(BlockPolicy::default().enabled);
    }

    #[test]
    fn object_sets_each_field() {
        let p = parse(json!({"v4": 28, "v6": 120, "release_after_seconds": 30})).unwrap();
        assert_eq!(
            p,
            BlockPolicy {
                v4_prefix: 28,
                v6_prefix: 120,
                release_after_secs: 30,
                enabled: true
            }
        );
        let partial = parse(json!({"v4": 24})).unwrap();
        assert_eq!(partial.v6_prefix, 122);
        assert_eq!(partial.release_after_secs, 600);
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (json!({"v4": 19}), "blocks.v4"),
            (json!({"v4": 31}), "blocks.v4"),
            (json!({"v4": "26"}), "blocks.v4"),
            (json!({"v6": 115}), "blocks.v6"),
            (json!({"v6": 127}), "blocks.v6"),
            (json!({"v6": -1}), "blocks.v6"),
            (
                json!({"release_after_seconds": -5}),
                "blocks.release_after_seconds",
            ),
            (
                json!({"release_after_seconds": 1.5}),
                "blocks.release_after_seconds",
            ),
            (json!("yes"), "blocks"),
        ];
        for (v, expected) in cases {
            let err = parse(v.clone()).unwrap_err();
            assert_eq!(err.field, expected, "for {v}");
        }
        let msg = parse(json!({"v4": 31})).unwrap_err().to_string();
        assert!(msg.contains("from 20 to 30"), "{msg}");
    }

    #[test]
    fn unknown_keys_warn() {
        let ipam = json!({"blocks": {"v44": 26}});
        let mut warnings = Vec::new();
        assert_eq!(
            parse_blocks(ipam.as_object().unwrap(), &mut warnings).unwrap(),
            BlockPolicy::default()
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("blocks.v44"), "{warnings:?}");
    }
}
