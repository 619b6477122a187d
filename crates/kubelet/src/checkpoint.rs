//! The kubelet device manager's checkpoint file
//! (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`): which devices of which
//! device-plugin resource the kubelet allocated to which container of which pod (by UID).
//! DANM read its SR-IOV device IDs from here; plexus uses it when the pod-resources API
//! does not answer.
//!
//! The file is JSON written by the kubelet:
//! `{"Data": {"PodDeviceEntries": [{"PodUID", "ContainerName", "ResourceName",
//! "DeviceIDs", "AllocResp"}], "RegisteredDevices": {resource: [ids]}}, "Checksum": n}`.
//! `DeviceIDs` is a list up to Kubernetes 1.20 and a map from NUMA node (`"-1"` when
//! unknown) to a list since 1.21 (the change that broke DANM's lookup); both are read.
//! `AllocResp` and `Checksum` are not used (the checksum is a hash of Go's in-memory
//! object, not of the file's bytes). The file is untrusted input: it is size-capped, and a
//! malformed one is an error, never a panic.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Largest checkpoint file read (a node with thousands of devices writes far less).
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024 * 1024;

/// Why a checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Larger than [`MAX_CHECKPOINT_BYTES`].
    #[error("the checkpoint is {0} bytes, more than the {MAX_CHECKPOINT_BYTES} read")]
    TooLarge(usize),
    /// Not JSON of the kubelet's shape.
    #[error("not a kubelet device checkpoint: {0}")]
    Malformed(String),
}

/// One allocation: devices of one resource held by one container of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDeviceEntry {
    /// The pod's UID.
    pub pod_uid: String,
    /// The container holding the devices.
    pub container: String,
    /// The device-plugin resource (`intel.com/sriov_netdevice`).
    pub resource: String,
    /// The device IDs (PCI addresses for SR-IOV), NUMA nodes in ascending order.
    pub device_ids: Vec<String>,
}

/// A parsed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Every allocation, in file order.
    pub entries: Vec<PodDeviceEntry>,
    /// The devices each resource's plugin registered (allocated or not).
    pub registered: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "Data")]
    data: Option<RawData>,
}

#[derive(Deserialize)]
struct RawData {
    #[serde(rename = "PodDeviceEntries", default)]
    entries: Option<Vec<RawEntry>>,
    #[serde(rename = "RegisteredDevices", default)]
    registered: Option<BTreeMap<String, Option<Vec<String>>>>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "PodUID")]
    pod_uid: String,
    #[serde(rename = "ContainerName", default)]
    container: String,
    #[serde(rename = "ResourceName")]
    resource: String,
    #[serde(rename = "DeviceIDs", default)]
    device_ids: Option<RawIds>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawIds {
    /// Kubernetes ≤ 1.20.
    List(Vec<String>),
    /// Kubernetes ≥ 1.21: NUMA node → IDs.
    Numa(BTreeMap<String, Option<Vec<String>>>),
}

impl RawIds {
    fn flatten(self) -> Vec<String> {
        match self {
            RawIds::List(ids) => ids,
            RawIds::Numa(map) => {
                let mut nodes: Vec<(String, Vec<String>)> = map
                    .into_iter()
                    .map(|(node, ids)| (node, ids.unwrap_or_default()))
                    .collect();
                // Numeric order ("-1", "0", "2", "10"), anything else after, by text.
                nodes.sort_by(|(a, _), (b, _)| {
                    let key = |s: &str| (s.parse::<i64>().map_or((1, 0), |n| (0, n)), s.to_owned());
                    key(a).cmp(&key(b))
                });
                nodes.into_iter().flat_map(|(_, ids)| ids).collect()
            }
        }
    }
}

/// Parses a checkpoint file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge(bytes.len()));
    }
    let raw: RawFile = serde_json::from_slice(bytes).map_err(|e| {
        let mut text = e.to_string();
        text.truncate(200);
        CheckpointError::Malformed(text)
    })?;
    let data = raw
        .data
        .ok_or_else(|| CheckpointError::Malformed("no \"Data\" object".to_owned()))?;
    let entries = data
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| PodDeviceEntry {
            pod_uid: e.pod_uid,
            container: e.container,
            resource: e.resource,
            device_ids: dedup(e.device_ids.map(RawIds::flatten).unwrap_or_default()),
        })
        .collect();
    let registered = data
        .registered
        .unwrap_or_default()
        .into_iter()
        .map(|(resource, ids)| (resource, ids.unwrap_or_default()))
        .collect();
    Ok(Checkpoint {
        entries,
        registered,
    })
}

/// `ids` without repeats, first occurrence kept.
pub(crate) fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl Checkpoint {
    /// The devices of the pod with `uid`, per resource, over all its containers (file
    /// order, no repeats).
    pub fn devices_of(&self, uid: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in self.entries.iter().filter(|e| e.pod_uid == uid) {
            out.entry(entry.resource.clone())
                .or_default()
                .extend(entry.device_ids.iter().cloned());
        }
        out.into_iter().map(|(r, ids)| (r, dedup(ids))).collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn both_kubelet_formats_are_read() {
        let old = json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "u1", "ContainerName": "app", "ResourceName": "intel.com/sriov",
             "DeviceIDs": ["0000:03:02.1", "0000:03:02.0"], "AllocResp": "CgA="}],
            "RegisteredDevices": {"intel.com/sriov": ["0000:03:02.0", "0000:03:02.1"]}},
            "Checksum": 1234});
        let parsed = parse(old.to_string().as_bytes()).unwrap();
        assert_eq!(
            parsed.devices_of("u1")["intel.com/sriov"],
            ["0000:03:02.1", "0000:03:02.0"]
        );
        assert_eq!(parsed.registered["intel.com/sriov"].len(), 2);

        let numa = json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "u1", "ContainerName": "a", "ResourceName": "r",
             "DeviceIDs": {"10": ["d"], "-1": ["a"], "2": ["c", "a"], "0": null}},
            {"PodUID": "u1", "ContainerName": "b", "ResourceName": "r", "DeviceIDs": {"0": ["e"]}},
            {"PodUID": "u2", "ContainerName": "a", "ResourceName": "r", "DeviceIDs": {"0": ["x"]}}],
            "RegisteredDevices": null}, "Checksum": 1});
        let parsed = parse(numa.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.devices_of("u1")["r"], ["a", "c", "d", "e"]);
        assert_eq!(parsed.devices_of("u2")["r"], ["x"]);
        assert!(parsed.devices_of("u3").is_empty());
    }

    #[test]
    fn malformed_files_are_errors() {
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"{"Data": {"PodDeviceEntries": [{"PodUID": 5}]}}"#,
            br#"{"Data": {"PodDeviceEntries": [{"PodUID": "u", "ResourceName": "r", "DeviceIDs": 3}]}}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(CheckpointError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let empty = parse(br#"{"Data": {"PodDeviceEntries": null}}"#).unwrap();
        assert_eq!(empty, Checkpoint::default());
        let huge = vec![b' '; MAX_CHECKPOINT_BYTES + 1];
        assert!(matches!(parse(&huge), Err(CheckpointError::TooLarge(_))));
    }

    fn entry() -> impl Strategy<Value = (String, String, Vec<String>, bool)> {
        (
            "[a-c]{1,2}",
            "[a-z]{1,3}\\.io/[a-z]{1,4}",
            proptest::collection::vec("[0-9a-f:.]{1,12}", 0..5),
            any::<bool>(),
        )
    }

    proptest! {
        /// Whatever the kubelet writes (either shape) reads back as the devices it wrote.
        #[test]
        fn written_entries_read_back(entries in proptest::collection::vec(entry(), 0..8)) {
            let raw: Vec<Value> = entries
                .iter()
                .map(|(uid, resource, ids, numa)| {
                    let ids = if *numa { json!({"-1": ids}) } else { json!(ids) };
                    json!({"PodUID": uid, "ContainerName": "c", "ResourceName": resource,
                           "DeviceIDs": ids, "AllocResp": "CgA="})
                })
                .collect();
            let text = json!({"Data": {"PodDeviceEntries": raw, "RegisteredDevices": {}},
                              "Checksum": 7}).to_string();
            let parsed = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(parsed.entries.len(), entries.len());
            for (uid, resource, _, _) in &entries {
                let mut expected = Vec::new();
                for (u, r, ids, _) in &entries {
                    if u == uid && r == resource {
                        expected.extend(ids.iter().cloned());
                    }
                }
                let got = parsed.devices_of(uid);
                prop_assert_eq!(&got[resource], &dedup(expected));
            }
        }

        /// Arbitrary bytes are parsed or refused, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        /// Arbitrary JSON values in the entries' places are parsed or refused.
        #[test]
        fn arbitrary_entry_values_never_panic(uid in any::<String>(), ids in any::<Vec<String>>(),
                                              node in any::<String>()) {
            let text = json!({"Data": {"PodDeviceEntries": [
                {"PodUID": uid, "ResourceName": "r", "DeviceIDs": {node: ids}}]}}).to_string();
            let parsed = parse(text.as_bytes()).unwrap();
            prop_assert!(parsed.devices_of(&uid)["r"].len() <= ids.len());
        }
    }
}
