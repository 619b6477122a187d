//! Running one plugin binary: finding it on CNI_PATH, the CNI environment, stdin/stdout,
//! reading its error object, and asking which versions it supports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use plexus_cni::CniVersion;
use serde_json::{Value, json};

use crate::error::{CtlError, CtlResult};

/// The CNI environment of one call (the attachment parts are empty for STATUS and GC).
#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: String,
    /// `CNI_PATH` entries.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// `CNI_PATH` joined with `:`.
    pub fn path_var(&self) -> String {
        self.path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// The first executable called `plugin` in `path`.
pub fn find_plugin(path: &[PathBuf], plugin: &str) -> CtlResult<PathBuf> {
    if plugin.contains('/') || plugin == "." || plugin == ".." {
        return Err(CtlError::invalid(
            "plugin type",
            format!("{plugin:?} is not a plugin name"),
        ));
    }
    path.iter()
        .map(|dir| dir.join(plugin))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            CtlError::Plugin(format!(
                "plugin {plugin:?} not found in CNI_PATH {}",
                path.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// Runs `binary` for `command` with `stdin`; returns its stdout parsed as JSON (`Null`
/// when empty). A non-zero exit becomes [`CtlError::Plugin`] carrying the plugin's error
/// object (code, msg, details).
pub fn invoke(binary: &Path, command: &str, env: &CniEnv, stdin: &Value) -> CtlResult<Value> {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tracing::debug!(plugin = %name, command, "invoking {}", binary.display());
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", &env.args)
        .env("CNI_PATH", env.path_var())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CtlError::Plugin(format!("cannot run plugin {}: {e}", binary.display())))?;
    let input = stdin.to_string();
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits without reading stdin closes the pipe; its exit status says
        // what happened.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| CtlError::Plugin(format!("plugin {name} ({command}): {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(CtlError::Plugin(format!(
            "plugin {name} ({command}) failed: {}",
            describe_error(&name, &stdout, output.status.code())
        )));
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).map_err(|e| {
        CtlError::Plugin(format!(
            "plugin {name} ({command}) printed invalid JSON: {e}: {stdout}"
        ))
    })
}

/// The CNI error object on the stdout of `plugin` (the binary's file name) that failed, as
/// one line. The code is named after its constant in `plexus_cni::codes` when it has one
/// for that plugin (`code 100 plexus::POOL_EXHAUSTED`; see `docs/errors.md`).
pub fn describe_error(plugin: &str, stdout: &str, status: Option<i32>) -> String {
    match serde_json::from_str::<Value>(stdout) {
        Ok(err) if err.get("code").is_some() || err.get("msg").is_some() => {
            let code = match err.get("code") {
                None => "?".to_owned(),
                Some(value) => match value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .and_then(|n| plexus_cni::codes::name_of(n, plugin))
                {
                    Some(name) => format!("{value} {name}"),
                    None => value.to_string(),
                },
            };
            let msg = err.get("msg").and_then(Value::as_str).unwrap_or_default();
            match err
                .get("details")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                Some(details) => format!("code {code}: {msg} ({details})"),
                None => format!("code {code}: {msg}"),
            }
        }
        _ => {
            let exit = status.map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
            let text = stdout.trim();
            if text.is_empty() {
                format!("exited with {exit} and no error object")
            } else {
                format!("exited with {exit}: {text}")
            }
        }
    }
}

/// The versions `binary` supports (its VERSION reply).
pub fn supported_versions(
    binary: &Path,
    env: &CniEnv,
    asking: CniVersion,
) -> CtlResult<Vec<String>> {
    let reply = invoke(
        binary,
        "VERSION",
        env,
        &json!({"cniVersion": asking.to_string()}),
    )?;
    Ok(parse_version_reply(&reply))
}

/// `supportedVersions` of a VERSION reply; a bare 0.1.0/0.2.0 reply means both of those.
pub fn parse_version_reply(reply: &Value) -> Vec<String> {
    match reply.get("supportedVersions").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => vec!["0.1.0".to_string(), "0.2.0".to_string()],
    }
}

/// The version to call a plugin with: the list's version when the plugin supports it,
/// else the highest version both the plugin and plexus speak below it (the conf is then
/// downgraded). `None` when there is none.
pub fn negotiate(list: CniVersion, plugin_supports: &[String]) -> Option<CniVersion> {
    let mut usable: Vec<CniVersion> = plugin_supports
        .iter()
        .filter_map(|v| v.parse::<CniVersion>().ok())
        .filter(|v| v.is_supported() && *v <= list)
        .collect();
    usable.sort();
    usable.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_downgrades_for_older_plugins() {
        let debian = vs(&["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]);
        assert_eq!(
            negotiate(CniVersion::V1_1_0, &debian),
            Some(CniVersion::V1_0_0)
        );
        assert_eq!(
            negotiate(CniVersion::V0_4_0, &debian),
            Some(CniVersion::V0_4_0)
        );
        let plexus = vs(plexus_cni::SUPPORTED_VERSIONS);
        assert_eq!(
            negotiate(CniVersion::V1_1_0, &plexus),
            Some(CniVersion::V1_1_0)
        );
        assert_eq!(
            negotiate(CniVersion::V0_3_0, &vs(&["0.1.0", "0.2.0"])),
            None
        );
    }

    #[test]
    fn version_replies_and_errors() {
        assert_eq!(
            parse_version_reply(&json!({"cniVersion": "0.2.0"})),
            vs(&["0.1.0", "0.2.0"])
        );
        assert_eq!(
            parse_version_reply(&json!({"supportedVersions": ["1.0.0"]})),
            vs(&["1.0.0"])
        );
        assert_eq!(
            describe_error("bridge", r#"{"code":7,"msg":"bad","details":"x"}"#, Some(1)),
            "code 7 INVALID_CONFIG: bad (x)"
        );
        assert_eq!(
            describe_error("plexus-ipam", r#"{"code":100,"msg":"full"}"#, Some(1)),
            "code 100 plexus::POOL_EXHAUSTED: full"
        );
        // Another plugin's 100 is its own, and unknown codes stay bare.
        assert_eq!(
            describe_error("host-local", r#"{"code":100,"msg":"full"}"#, Some(1)),
            "code 100: full"
        );
        assert_eq!(
            describe_error("plexus", r#"{"code":"x","msg":"odd"}"#, Some(1)),
            "code \"x\": odd"
        );
        assert_eq!(
            describe_error("bridge", "", Some(2)),
            "exited with status 2 and no error object"
        );
        assert_eq!(
            describe_error("bridge", "boom", None),
            "exited with a signal: boom"
        );
    }

    #[test]
    fn plugins_are_found_on_the_path_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fake"), "").unwrap();
        let path = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_plugin(&path, "fake").unwrap(), dir.path().join("fake"));
        assert!(
            find_plugin(&path, "missing")
                .unwrap_err()
                .to_string()
                .contains("not found")
        );
        assert!(find_plugin(&path, "../fake").is_err());
    }
}
