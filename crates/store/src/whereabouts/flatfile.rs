//! whereabouts' flat file, `whereabouts.conf`: IPAM settings every whereabouts network on a
//! node shares, merged into the network's own `ipam` section the way whereabouts does it.
//!
//! - **Which sections**: whereabouts-style ones only ([`is_whereabouts_style`]). A section
//!   with host-local `ranges` or `subnet`, a stored `network` or a `static` list is
//!   plexus' or host-local's syntax and never reads the file.
//! - **Where**: the first existing of `ipam.configuration_path` (a file, or a directory
//!   holding `whereabouts.conf`), then [`FLAT_FILE_DIRS`]`/whereabouts.conf` in order;
//!   [`FLAT_FILE_DIRS_ENV`] replaces the default directories (colon-separated; empty:
//!   none). No file is fine (whereabouts ≥ 0.6.2 refuses to run without one; plexus needs
//!   none).
//! - **What**: every key plexus uses from it ([`FLAT_FILE_KEYS`]) that the section leaves
//!   empty (absent, `null`, `""`, `[]`, `0`, `false`; objects key by key), so the network's
//!   own settings win. `enable_overlapping_ranges` never comes from the file (whereabouts
//!   keeps the network's value), nor do whereabouts' own tuning keys (leader election,
//!   reconciler schedule), which plexus would only call ignored.
//!
//! The file typically holds `datastore` and `kubernetes.kubeconfig` (what whereabouts'
//! DaemonSet writes) or the `etcd_*` keys: [`super::store_of_section`] then decides the
//! store as if the network said it. Its contents (passwords included) are never logged
//! nor quoted in errors.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::StoreError;

/// The directories searched for `whereabouts.conf` after `configuration_path`, in order
/// (whereabouts' own list).
pub const FLAT_FILE_DIRS: &[&str] = &[
    "/etc/kubernetes/cni/net.d/whereabouts.d",
    "/etc/cni/net.d/whereabouts.d",
    "/host/etc/cni/net.d/whereabouts.d",
];

/// Environment variable replacing [`FLAT_FILE_DIRS`]: colon-separated directories, empty
/// for none (tests, and nodes that keep the file elsewhere).
pub const FLAT_FILE_DIRS_ENV: &str = "PLEXUS_WHEREABOUTS_FLATFILE_DIRS";

/// The file name looked for in each directory.
pub const FLAT_FILE_NAME: &str = "whereabouts.conf";

/// The keys taken from the file when the section leaves them empty.
pub const FLAT_FILE_KEYS: &[&str] = &[
    "range",
    "range_start",
    "range_end",
    "exclude",
    "ipRanges",
    "gateway",
    "routes",
    "dns",
    "addresses",
    "network_name",
    "datastore",
    "kubernetes",
    "etcd_host",
    "etcd_username",
    "etcd_password",
    "etcd_key_file",
    "etcd_cert_file",
    "etcd_ca_cert_file",
    "log_file",
    "log_level",
];

/// Keys that make a section plexus' or host-local's syntax rather than whereabouts'.
const NOT_WHEREABOUTS: &[&str] = &["ranges", "subnet", "network", "static"];

/// The longest flat file read (whereabouts' is a few hundred bytes).
const MAX_BYTES: u64 = 1 << 20;

/// A section merged with the flat file.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The section with the file's settings filled in.
    pub ipam: Map<String, Value>,
    /// The file read.
    pub file: PathBuf,
    /// The keys taken from it.
    pub keys: Vec<String>,
}

/// Whether `ipam` is whereabouts-style: none of host-local's `ranges`/`subnet`, plexus'
/// stored `network` or echo `static`.
pub fn is_whereabouts_style(ipam: &Map<String, Value>) -> bool {
    !NOT_WHEREABOUTS
        .iter()
        .any(|key| ipam.get(*key).is_some_and(|v| !v.is_null()))
}

/// `ipam` merged with the flat file found for it (the directories of
/// [`flat_file_dirs`]); `None` when the section is not whereabouts-style, no file exists,
/// or the file adds nothing.
pub fn with_flat_file(ipam: &Map<String, Value>) -> Result<Option<Merged>, StoreError> {
    if !is_whereabouts_style(ipam) {
        return Ok(None);
    }
    let Some(file) = find_flat_file(ipam, &flat_file_dirs())? else {
        return Ok(None);
    };
    let flat = read_flat_file(&file)?;
    let mut merged = ipam.clone();
    let keys = merge_flat_file(&mut merged, &flat);
    Ok((!keys.is_empty()).then_some(Merged {
        ipam: merged,
        file,
        keys,
    }))
}

/// [`FLAT_FILE_DIRS`], or what [`FLAT_FILE_DIRS_ENV`] says instead.
pub fn flat_file_dirs() -> Vec<PathBuf> {
    match std::env::var_os(FLAT_FILE_DIRS_ENV) {
        Some(dirs) => std::env::split_paths(&dirs)
            .filter(|d| !d.as_os_str().is_empty())
            .collect(),
        None => FLAT_FILE_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// The flat file to read, if any: `configuration_path` first, then `dirs`.
pub fn find_flat_file(
    ipam: &Map<String, Value>,
    dirs: &[PathBuf],
) -> Result<Option<PathBuf>, StoreError> {
    let field = "ipam.configuration_path";
    let mut candidates = Vec::new();
    match ipam.get("configuration_path") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(Value::String(s)) => {
            let path = Path::new(s.trim());
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(StoreError::config(
                    field,
                    format!("{s:?} must not contain \"..\""),
                ));
            }
            candidates.push(path.to_path_buf());
        }
        Some(other) => {
            return Err(StoreError::config(
                field,
                format!("must be a string (the path of whereabouts.conf), found {other}"),
            ));
        }
    }
    candidates.extend(dirs.iter().map(|dir| dir.join(FLAT_FILE_NAME)));
    for candidate in candidates {
        if candidate.is_dir() {
            let inside = candidate.join(FLAT_FILE_NAME);
            if inside.exists() {
                return Ok(Some(inside));
            }
        } else if candidate.exists() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// The JSON object in `path` (an error naming the file when it is unreadable or no object;
/// the contents are never quoted, they may hold a password).
pub fn read_flat_file(path: &Path) -> Result<Map<String, Value>, StoreError> {
    let fail = |why: String| {
        StoreError::config(
            "ipam.configuration_path",
            format!(
                "cannot use whereabouts' flat file {}: {why}; fix or remove it, or point \
                 ipam.configuration_path elsewhere",
                path.display()
            ),
        )
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if size > MAX_BYTES {
        return Err(fail(format!(
            "it is {size} bytes; the limit is {MAX_BYTES}"
        )));
    }
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    match serde_json::from_slice(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(fail("it is not a JSON object".into())),
        Err(e) => Err(fail(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Fills the [`FLAT_FILE_KEYS`] that `ipam` leaves empty from `flat`; returns their names.
pub fn merge_flat_file(ipam: &mut Map<String, Value>, flat: &Map<String, Value>) -> Vec<String> {
    let mut taken = Vec::new();
    for key in FLAT_FILE_KEYS {
        let Some(theirs) = flat.get(*key) else {
            continue;
        };
        let changed = match ipam.get_mut(*key) {
            Some(Value::Object(ours)) => match theirs {
                Value::Object(theirs) => fill_object(ours, theirs),
                _ => false,
            },
            Some(ours) if !is_empty(ours) => false,
            _ if is_empty(theirs) => false,
            _ => {
                ipam.insert((*key).to_string(), theirs.clone());
                true
            }
        };
        if changed {
            taken.push((*key).to_string());
        }
    }
    taken
}

/// Fills the empty fields of `ours` from `theirs`, nested objects field by field.
fn fill_object(ours: &mut Map<String, Value>, theirs: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, value) in theirs {
        match ours.get_mut(key) {
            Some(Value::Object(inner)) => {
                if let Value::Object(value) = value {
                    changed |= fill_object(inner, value);
                }
            }
            Some(existing) if !is_empty(existing) => {}
            _ if is_empty(value) => {}
            _ => {
                ours.insert(key.clone(), value.clone());
                changed = true;
            }
        }
    }
    changed
}

/// A Go zero value: what whereabouts' merge treats as "not set".
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests;
