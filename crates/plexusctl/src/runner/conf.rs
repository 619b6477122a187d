//! Loading a network configuration by name from a CNI configuration directory, the way
//! libcni does: `*.conf`, `*.conflist` and `*.json` in name order, a single-plugin `.conf`
//! wrapped into a list, and the version chosen as the highest of `cniVersion` and
//! `cniVersions` that plexus speaks.

use std::path::{Path, PathBuf};

use plexus_cni::CniVersion;
use serde_json::{Value, json};

use crate::error::{CtlError, CtlResult};
use crate::netdef::cni_config_files;

/// A network configuration list ready to run.
#[derive(Debug, Clone)]
pub struct ConfList {
    /// The network name.
    pub name: String,
    /// The version the list runs at.
    pub version: CniVersion,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC`.
    pub disable_gc: bool,
    /// The plugin objects, in order.
    pub plugins: Vec<Value>,
    /// The file's bytes, as libcni caches them.
    pub raw: Vec<u8>,
    /// The file.
    pub source: PathBuf,
}

/// Finds the configuration named `name` in `dir`.
pub fn load(dir: &Path, name: &str) -> CtlResult<ConfList> {
    let files = cni_config_files(dir);
    let mut names = Vec::new();
    for path in &files {
        let Ok(raw) = std::fs::read(path) else {
            continue;
        };
        let Ok(value) = serde_json::from_slice::<Value>(&raw) else {
            tracing::warn!("{}: not JSON, skipped", path.display());
            continue;
        };
        match value.get("name").and_then(Value::as_str) {
            Some(found) if found == name => return parse(path, raw, value),
            Some(found) => names.push(found.to_string()),
            None => {}
        }
    }
    Err(CtlError::UnknownNetwork {
        network: name.to_string(),
        nearest: crate::known::nearest(name, names.iter().map(String::as_str)).map(str::to_string),
        searched: format!(
            "no configuration with that name in {} ({} file(s) looked at)",
            dir.display(),
            files.len()
        ),
    })
}

/// Parses one configuration (a list, or a single plugin that becomes a list of one).
pub fn parse(path: &Path, raw: Vec<u8>, value: Value) -> CtlResult<ConfList> {
    let what = path.display().to_string();
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CtlError::invalid(&what, "has no \"name\""))?
        .to_string();
    let version = select_version(&value).map_err(|reason| CtlError::invalid(&what, reason))?;
    let plugins = match value.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(_) => {
            return Err(CtlError::invalid(
                &what,
                "\"plugins\" must be a non-empty list",
            ));
        }
        // A single-plugin .conf: the whole object is the plugin.
        None => vec![value.clone()],
    };
    for (i, plugin) in plugins.iter().enumerate() {
        if plugin
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(CtlError::invalid(
                &what,
                format!("plugins[{i}] has no \"type\""),
            ));
        }
    }
    Ok(ConfList {
        name,
        version,
        disable_check: flag(&value, "disableCheck"),
        disable_gc: flag(&value, "disableGC"),
        plugins,
        raw,
        source: path.to_path_buf(),
    })
}

/// libcni accepts the booleans as strings too.
fn flag(value: &Value, key: &str) -> bool {
    match value.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The highest version among `cniVersion` and `cniVersions` that plexus speaks.
pub fn select_version(value: &Value) -> Result<CniVersion, String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(v) = value.get("cniVersion").and_then(Value::as_str) {
        candidates.push(v.to_string());
    }
    if let Some(list) = value.get("cniVersions").and_then(Value::as_array) {
        candidates.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if candidates.is_empty() {
        return Err("has no \"cniVersion\"".to_string());
    }
    candidates
        .iter()
        .filter_map(|v| v.parse::<CniVersion>().ok())
        .filter(CniVersion::is_supported)
        .max()
        .ok_or_else(|| {
            format!(
                "none of the versions {candidates:?} is supported (supported: {})",
                plexus_cni::SUPPORTED_VERSIONS.join(", ")
            )
        })
}

/// The configuration one plugin receives: its object with `cniVersion` and `name` set,
/// `runtimeConfig` for the capabilities it declares, and `prevResult` when given.
pub fn plugin_config(
    plugin: &Value,
    list_name: &str,
    version: CniVersion,
    runtime_config: &Value,
    prev_result: Option<&Value>,
) -> Value {
    let mut conf = plugin.clone();
    conf["cniVersion"] = json!(version.to_string());
    conf["name"] = json!(list_name);
    if let (Some(caps), Some(runtime)) = (
        plugin.get("capabilities").and_then(Value::as_object),
        runtime_config.as_object(),
    ) {
        let granted: serde_json::Map<String, Value> = runtime
            .iter()
            .filter(|(cap, _)| caps.get(*cap).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !granted.is_empty() {
            conf["runtimeConfig"] = Value::Object(granted);
        }
    }
    if let Some(obj) = conf.as_object_mut() {
        obj.remove("capabilities");
        match prev_result {
            Some(prev) => {
                obj.insert("prevResult".into(), prev.clone());
            }
            None => {
                obj.remove("prevResult");
            }
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_selection() {
        let v = |j: Value| select_version(&j);
        assert_eq!(
            v(json!({"cniVersion": "0.4.0"})).unwrap().to_string(),
            "0.4.0"
        );
        assert_eq!(
            v(json!({"cniVersion": "1.0.0", "cniVersions": ["1.1.0", "9.9.9"]}))
                .unwrap()
                .to_string(),
            "1.1.0"
        );
        assert!(
            v(json!({"cniVersion": "0.2.0"}))
                .unwrap_err()
                .contains("supported")
        );
        assert!(v(json!({})).is_err());
    }

    #[test]
    fn loads_by_name_and_wraps_single_plugins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.1.0","name":"b","disableGC":"true","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        let a = load(dir.path(), "a").unwrap();
        assert_eq!(a.plugins.len(), 1);
        assert_eq!(a.plugins[0]["type"], "bridge");
        let b = load(dir.path(), "b").unwrap();
        assert_eq!(b.plugins.len(), 2);
        assert!(b.disable_gc && !b.disable_check);
        let err = load(dir.path(), "zzz").unwrap_err().to_string();
        assert!(err.contains("2 file(s)"), "{err}");
    }

    #[test]
    fn plugin_config_injects_what_the_plugin_asked_for() {
        let plugin = json!({"type": "bridge", "capabilities": {"ips": true, "mac": false}});
        let runtime = json!({"ips": ["10.0.0.5/24"], "mac": "aa:bb:cc:dd:ee:ff"});
        let prev = json!({"cniVersion": "0.4.0"});
        let conf = plugin_config(&plugin, "net", CniVersion::V0_4_0, &runtime, Some(&prev));
        assert_eq!(conf["cniVersion"], "0.4.0");
        assert_eq!(conf["name"], "net");
        assert_eq!(conf["runtimeConfig"], json!({"ips": ["10.0.0.5/24"]}));
        assert_eq!(conf["prevResult"], prev);
        assert!(conf.get("capabilities").is_none());
        let bare = plugin_config(
            &json!({"type": "x"}),
            "net",
            CniVersion::V1_0_0,
            &runtime,
            None,
        );
        assert!(bare.get("runtimeConfig").is_none() && bare.get("prevResult").is_none());
    }
}
