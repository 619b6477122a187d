//! The result cache, in libcni's layout and format so libcni-based runtimes and plexusctl
//! can read each other's entries: `<cache>/results/<network>-<containerID>-<ifname>`
//! holding `{"kind": "cniCacheV1", "containerId", "ifName", "networkName", "netns",
//! "config" (base64 of the configuration file), "cniArgs", "result"}`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};

use crate::error::{CtlError, CtlResult};

/// libcni's cache entry kind.
pub const CACHE_KIND: &str = "cniCacheV1";
/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The network name.
    pub network: String,
    /// The netns path at ADD.
    pub netns: String,
    /// The final ADD result (in the list's version).
    pub result: Value,
}

/// The cache file of one attachment.
pub fn entry_path(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> CtlResult<PathBuf> {
    for (what, part) in [
        ("network name", network),
        ("container id", container_id),
        ("interface name", ifname),
    ] {
        check_file_component(what, part)?;
    }
    Ok(cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}")))
}

/// Refuses a name that would leave the cache directory or hide in it: empty, `/`, `..`,
/// NUL or another control character, a leading `.`, or longer than 200 bytes.
fn check_file_component(what: &str, part: &str) -> CtlResult<()> {
    let problem = if part.is_empty() {
        Some("it is empty")
    } else if part.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if part.contains('/') || part.contains("..") {
        Some("it contains '/' or '..'")
    } else if part.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if part.starts_with('.') {
        Some("it starts with '.'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(CtlError::invalid(
            what,
            format!(
                "{:?} cannot name a cache entry: {problem}",
                part.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// Writes the entry for a successful ADD (0600, directory created 0700).
pub fn write(cache_dir: &Path, entry: &CacheEntry, config: &[u8], cni_args: &str) -> CtlResult<()> {
    let path = entry_path(
        cache_dir,
        &entry.network,
        &entry.container_id,
        &entry.ifname,
    )?;
    let dir = cache_dir.join("results");
    create_private_dir(&dir)?;
    let args: Vec<Value> = cni_args
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| json!([k, v]))
        .collect();
    let doc = json!({
        "kind": CACHE_KIND,
        "containerId": entry.container_id,
        "config": base64::engine::general_purpose::STANDARD.encode(config),
        "ifName": entry.ifname,
        "networkName": entry.network,
        "netns": entry.netns,
        "cniArgs": args,
        "result": entry.result,
    });
    let tmp = path.with_extension("tmp");
    write_private(&tmp, doc.to_string().as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(|e| CtlError::io(&path, e))
}

/// Creates `dir` (and missing ancestors) 0700 like libcni, and tightens an existing one:
/// entries hold netns paths, pod identities and whole network configurations.
fn create_private_dir(dir: &Path) -> CtlResult<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CtlError::io(dir, e))?;
    // `mode` is filtered by the umask and ignored for an existing directory.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| CtlError::io(dir, e))
}

/// Writes `bytes` to a file that is 0600 whatever the umask and whatever a stale file of
/// the same name had.
fn write_private(path: &Path, bytes: &[u8]) -> CtlResult<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CtlError::io(path, e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CtlError::io(path, e))?;
    file.write_all(bytes).map_err(|e| CtlError::io(path, e))
}

/// Reads the entry of one attachment, if there is one.
pub fn read(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> CtlResult<Option<CacheEntry>> {
    let path = entry_path(cache_dir, network, container_id, ifname)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CtlError::io(&path, e)),
    }
}

/// Every cached attachment of `network`.
pub fn list(cache_dir: &Path, network: &str) -> CtlResult<Vec<CacheEntry>> {
    let dir = cache_dir.join("results");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CtlError::io(&dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| CtlError::io(&dir, e))?.path();
        if path.extension().is_some_and(|e| e == "tmp") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CtlError::io(&path, e))?;
        let cached = parse(&path, &text)?;
        if cached.network == network {
            found.push(cached);
        }
    }
    found.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
    Ok(found)
}

/// Removes the entry of one attachment (absent is fine).
pub fn remove(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> CtlResult<()> {
    let path = entry_path(cache_dir, network, container_id, ifname)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CtlError::io(&path, e)),
    }
}

fn parse(path: &Path, text: &str) -> CtlResult<CacheEntry> {
    let what = path.display().to_string();
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| CtlError::invalid(&what, format!("not a CNI cache entry: {e}")))?;
    let field = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let entry = CacheEntry {
        container_id: field("containerId"),
        ifname: field("ifName"),
        network: field("networkName"),
        netns: field("netns"),
        result: doc.get("result").cloned().unwrap_or(Value::Null),
    };
    if entry.container_id.is_empty() || entry.ifname.is_empty() {
        return Err(CtlError::invalid(
            what,
            "CNI cache entry without containerId/ifName",
        ));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_libcni_layout() {
        let dir = tempfile::tempdir().unwrap();
        let entry = CacheEntry {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            network: "blue".into(),
            netns: "/run/netns/x".into(),
            result: json!({"cniVersion": "1.0.0", "ips": []}),
        };
        write(
            dir.path(),
            &entry,
            b"{\"name\":\"blue\"}",
            "K8S_POD_NAME=p;IgnoreUnknown=1",
        )
        .unwrap();
        let path = entry_path(dir.path(), "blue", "c1", "eth0").unwrap();
        assert!(path.ends_with("results/blue-c1-eth0"));
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(raw["kind"], CACHE_KIND);
        assert_eq!(raw["config"], "eyJuYW1lIjoiYmx1ZSJ9");
        assert_eq!(raw["cniArgs"][0], json!(["K8S_POD_NAME", "p"]));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            read(dir.path(), "blue", "c1", "eth0").unwrap(),
            Some(entry.clone())
        );
        assert_eq!(list(dir.path(), "blue").unwrap(), vec![entry]);
        assert!(list(dir.path(), "red").unwrap().is_empty());
        remove(dir.path(), "blue", "c1", "eth0").unwrap();
        remove(dir.path(), "blue", "c1", "eth0").unwrap();
        assert_eq!(read(dir.path(), "blue", "c1", "eth0").unwrap(), None);
    }

    #[test]
    fn cache_files_are_private_even_over_loose_leftovers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        // A results directory and a stale temporary file left world-readable (umask 000).
        std::fs::create_dir(&results).unwrap();
        std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o777)).unwrap();
        let stale = results.join("blue-c1-eth0.tmp");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o666)).unwrap();
        let entry = CacheEntry {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            network: "blue".into(),
            netns: "/run/netns/x".into(),
            result: json!({"cniVersion": "1.0.0", "ips": []}),
        };
        write(dir.path(), &entry, b"{}", "").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&results), 0o700);
        assert_eq!(mode(&results.join("blue-c1-eth0")), 0o600);
        // A fresh cache directory tree is 0700 too.
        let fresh = dir.path().join("a/b");
        write(&fresh, &entry, b"{}", "").unwrap();
        assert_eq!(mode(&fresh.join("results")), 0o700);
    }

    #[test]
    fn hostile_names_cannot_leave_the_cache_directory() {
        let dir = tempfile::tempdir().unwrap();
        for (network, container, ifname) in [
            ("../../etc", "c1", "eth0"),
            ("blue", "../c1", "eth0"),
            ("blue", "c1", "eth/0"),
            ("blue", "c\u{0}1", "eth0"),
            ("blue", "c1\n", "eth0"),
            ("", "c1", "eth0"),
            (".hidden", "c1", "eth0"),
        ] {
            let err = entry_path(dir.path(), network, container, ifname).unwrap_err();
            assert!(
                err.to_string().contains("cannot name a cache entry"),
                "{err}"
            );
            assert!(read(dir.path(), network, container, ifname).is_err());
            assert!(remove(dir.path(), network, container, ifname).is_err());
        }
    }
}
