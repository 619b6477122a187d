//! What every backend's configuration shares: [`Secret`] (a string no output shows), the
//! JSON type names of error messages, and the string and absolute-path checks of the
//! `"store"` object's values.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::error::StoreError;

/// A secret string whose `Debug` output is `<redacted>`. It has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a JSON value is, for "must be a string, found a number".
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The string `value` of the key `field`.
pub(crate) fn string(field: &str, value: &Value) -> Result<String, StoreError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(StoreError::config(
            field,
            format!("must be a string, found {}", json_kind(other)),
        )),
    }
}

/// `path` when it is absolute: the plugin's working directory is whatever the container
/// runtime left it in, so a relative path would mean nothing.
pub(crate) fn absolute(field: impl Into<String>, path: PathBuf) -> Result<PathBuf, StoreError> {
    if !path.is_absolute() {
        return Err(StoreError::config(
            field,
            format!(
                "must be an absolute path, found {:?}",
                path.display().to_string()
            ),
        ));
    }
    Ok(path)
}

/// The absolute path `value` of the key `field`.
pub(crate) fn absolute_path(field: &str, value: &Value) -> Result<PathBuf, StoreError> {
    absolute(field, PathBuf::from(string(field, value)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reason(err: StoreError) -> String {
        match err {
            StoreError::Config { field, reason } => {
                assert_eq!(field, "ipam.store.f");
                reason
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn paths_must_be_absolute_strings() {
        let f = "ipam.store.f";
        assert_eq!(
            absolute_path(f, &json!("/etc/x")).unwrap(),
            PathBuf::from("/etc/x")
        );
        let err = reason(absolute_path(f, &json!("etc/x")).unwrap_err());
        assert_eq!(err, "must be an absolute path, found \"etc/x\"");
        let err = reason(absolute_path(f, &json!("")).unwrap_err());
        assert_eq!(err, "must be an absolute path, found \"\"");
        for (value, kind) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(1), "a number"),
            (json!([]), "an array"),
            (json!({}), "an object"),
        ] {
            let err = reason(absolute_path(f, &value).unwrap_err());
            assert_eq!(err, format!("must be a string, found {kind}"));
        }
    }
}
