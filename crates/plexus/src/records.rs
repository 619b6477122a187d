//! Endpoint records: what plexus set up for one pod attachment (`CNI_CONTAINERID` +
//! `CNI_IFNAME`), so that DEL, CHECK and GC work from facts, not from a request that may
//! have changed since.
//!
//! A record is written *before* anything is created (every planned interface with its
//! temporary name, every store key) and rewritten with the results once ADD succeeds, so
//! a crashed ADD is still torn down completely by the next DEL. Files live in `stateDir`
//! as `<containerID>.<ifname>.json` (both already validated as safe by the CNI layer),
//! written atomically (temporary file + rename).
//!
//! The store is gaining endpoint details written in the same transaction as the claim;
//! once it has them the records move there behind the same functions.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PlexusError;

/// One interface of a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// Network (qualified name), the store key's network.
    pub network: String,
    /// The network's `NetworkID`.
    pub network_id: String,
    /// Final interface name in the pod.
    pub ifname: String,
    /// Name the link had before its rename (built-in drivers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary: Option<String>,
    /// `macvlan`, `ipvlan` or `delegate`.
    pub driver: String,
    /// Delegate plugin configurations as sent (DEL replays them in reverse).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegate: Vec<Value>,
    /// Whether the store holds addresses under `(network, containerID, ifname)`.
    pub claimed: bool,
    /// Addresses the interface got.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// MAC address, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Policy routing table, if the network has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt_table: Option<u8>,
    /// The delegate's ADD result (CHECK sends it back as `prevResult`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Routes plexus added for this interface (main table and policy table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RecordedRoute>,
    /// The name the delegate reported for the interface, when it is not `ifname` (every
    /// kernel operation and check of plexus uses it; `ifname` stays the store key and the
    /// delegate's `CNI_IFNAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The interface is not a kernel link (user-space: vhost-user, DPDK): plexus set
    /// nothing up on it and CHECK does not look for it in the kernel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub userspace: bool,
    /// The device-plugin device the interface was given (its delegate's `deviceID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl AttachmentRecord {
    /// The interface's name in the pod: as the delegate reported it, else `ifname`.
    pub fn link_name(&self) -> &str {
        self.link.as_deref().unwrap_or(&self.ifname)
    }
}

/// A route plexus added in the pod, out of the attachment's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRoute {
    /// Destination.
    pub dst: IpNet,
    /// Gateway.
    pub gw: std::net::IpAddr,
    /// Routing table (254 = main); a policy table also has a `from <address>` rule.
    pub table: u32,
}

/// Everything set up for one CNI attachment of the meta-plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME` of the plexus call.
    pub ifname: String,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// The node.
    pub node: String,
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID` when given.
    pub pod: [Option<String>; 3],
    /// False while the ADD is in progress.
    pub complete: bool,
    /// The interfaces, in pod order.
    pub attachments: Vec<AttachmentRecord>,
}

/// The directory of endpoint records.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// Records kept in `dir` (created with mode 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Records { dir: dir.into() }
    }

    fn path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.{ifname}.json"))
    }

    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PlexusError {
        let path = path.display().to_string();
        move |source| PlexusError::Io { what, path, source }
    }

    /// Writes `record` atomically.
    pub fn save(&self, record: &EndpointRecord) -> Result<(), PlexusError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(Self::io("cannot create the state directory", &self.dir))?;
        let path = self.path(&record.container_id, &record.ifname);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_vec_pretty(record).map_err(|e| PlexusError::Io {
            what: "cannot encode endpoint record",
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, text).map_err(Self::io("cannot write endpoint record", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io("cannot write endpoint record", &path))
    }

    /// The record of `(container_id, ifname)`, if there is one.
    pub fn load(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<EndpointRecord>, PlexusError> {
        let path = self.path(container_id, ifname);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| PlexusError::Io {
                    what: "cannot decode endpoint record",
                    path: path.display().to_string(),
                    source: std::io::Error::other(e),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io("cannot read endpoint record", &path)(e)),
        }
    }

    /// Removes the record; absent is success.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<(), PlexusError> {
        let path = self.path(container_id, ifname);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Self::io("cannot remove endpoint record", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every record (unreadable files are skipped with a warning).
    pub fn list(&self) -> Result<Vec<EndpointRecord>, PlexusError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io("cannot list endpoint records", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => out.push(record),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping endpoint record")
                }
            }
        }
        out.sort_by(|a: &EndpointRecord, b| {
            (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().join("endpoints"));
        let record = EndpointRecord {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            netns: Some("/run/netns/x".into()),
            node: "n".into(),
            pod: [Some("ns".into()), None, None],
            complete: false,
            attachments: vec![AttachmentRecord {
                network: "blue".into(),
                network_id: "blue".into(),
                ifname: "eth0".into(),
                temporary: Some("plx0123".into()),
                driver: "macvlan".into(),
                delegate: Vec::new(),
                claimed: true,
                addresses: vec!["10.0.0.2/24".parse().unwrap()],
                mac: None,
                rt_table: Some(100),
                result: None,
                routes: vec![RecordedRoute {
                    dst: "192.168.0.0/16".parse().unwrap(),
                    gw: "10.0.0.1".parse().unwrap(),
                    table: 100,
                }],
                link: None,
                userspace: false,
                device_id: Some("0000:03:02.1".into()),
            }],
        };
        assert_eq!(records.load("c1", "eth0").unwrap(), None);
        records.save(&record).unwrap();
        assert_eq!(records.load("c1", "eth0").unwrap(), Some(record.clone()));
        assert_eq!(records.list().unwrap(), vec![record]);
        records.remove("c1", "eth0").unwrap();
        records.remove("c1", "eth0").unwrap();
        assert!(records.list().unwrap().is_empty());
    }
}
