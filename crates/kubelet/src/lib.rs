//! What the kubelet allocated to a pod from device-plugin resources: SR-IOV virtual
//! functions, DPDK-bound devices, anything a device plugin hands out by ID.
//!
//! [`pod_devices`] asks the kubelet's pod-resources API first ([`podresources`]: gRPC
//! `v1.PodResourcesLister/List` on a unix socket, the pod found by namespace and name) and
//! falls back to the device manager's checkpoint file ([`checkpoint`], DANM's source, the
//! pod found by UID) when the API does not answer or does not list the pod. The answer is
//! every device ID per resource, over all the pod's containers, in the kubelet's order.
//!
//! Device IDs end up in delegate configurations and log lines, so an ID that is empty,
//! longer than [`MAX_DEVICE_ID_BYTES`] or holds a control character is refused
//! ([`DeviceError::BadId`]).

pub mod checkpoint;
#[cfg(feature = "fake")]
pub mod fake;
pub mod podresources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where the kubelet serves the pod-resources API.
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Where the kubelet's device manager keeps its checkpoint.
pub const DEFAULT_CHECKPOINT_FILE: &str =
    "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";
/// How long the pod-resources API may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest device ID accepted.
pub const MAX_DEVICE_ID_BYTES: usize = 256;

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The pod-resources API socket.
    pub pod_resources_socket: PathBuf,
    /// The checkpoint file.
    pub checkpoint_file: PathBuf,
    /// Deadline of the API call (connect included).
    pub timeout: Duration,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            pod_resources_socket: PathBuf::from(DEFAULT_POD_RESOURCES_SOCKET),
            checkpoint_file: PathBuf::from(DEFAULT_CHECKPOINT_FILE),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The pod, as `CNI_ARGS` names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodKey {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME` (the API finds pods by namespace and name).
    pub name: Option<String>,
    /// `K8S_POD_UID` (the checkpoint finds pods by UID).
    pub uid: Option<String>,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.namespace,
            self.name.as_deref().unwrap_or("<no K8S_POD_NAME>")
        )?;
        if let Some(uid) = &self.uid {
            write!(f, " (uid {uid})")?;
        }
        Ok(())
    }
}

/// Which source answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The pod-resources API.
    PodResources,
    /// The checkpoint file.
    Checkpoint,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::PodResources => "the kubelet pod-resources API",
            Origin::Checkpoint => "the kubelet device checkpoint",
        })
    }
}

/// The devices of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDevices {
    /// Where they were read.
    pub origin: Origin,
    /// Device IDs per resource name, over all containers, without repeats.
    pub resources: BTreeMap<String, Vec<String>>,
}

/// Why the pod's devices are unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Neither source could say.
    #[error("cannot learn the devices of pod {pod}: {}", .reasons.join("; "))]
    Unavailable {
        /// The pod.
        pod: String,
        /// One reason per source.
        reasons: Vec<String>,
    },
    /// A source named a device ID plexus will not pass on.
    #[error("{origin} lists an unusable device ID for resource {resource}: {reason}")]
    BadId {
        /// The source.
        origin: Origin,
        /// The resource.
        resource: String,
        /// Why.
        reason: String,
    },
}

fn check_ids(devices: &PodDevices) -> Result<(), DeviceError> {
    for (resource, ids) in &devices.resources {
        for id in ids {
            let reason = if id.is_empty() {
                Some("it is empty".to_owned())
            } else if id.len() > MAX_DEVICE_ID_BYTES {
                Some(format!("it is longer than {MAX_DEVICE_ID_BYTES} bytes"))
            } else if id.chars().any(char::is_control) {
                Some("it contains a control character".to_owned())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(DeviceError::BadId {
                    origin: devices.origin,
                    resource: resource.clone(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// The devices the kubelet allocated to `pod`: from the pod-resources API when it answers
/// and lists the pod, else from the checkpoint (which needs the pod's UID). A pod either
/// source knows without devices has an empty map; an error only when neither could say.
pub async fn pod_devices(sources: &Sources, pod: &PodKey) -> Result<PodDevices, DeviceError> {
    let mut reasons = Vec::new();
    let mut api_answered = false;
    match &pod.name {
        None => reasons.push("CNI_ARGS has no K8S_POD_NAME for the pod-resources API".to_owned()),
        Some(name) => {
            match podresources::list(&sources.pod_resources_socket, sources.timeout).await {
                Ok(pods) => {
                    api_answered = true;
                    if let Some(found) = pods
                        .iter()
                        .find(|p| p.namespace == pod.namespace && &p.name == name)
                    {
                        let mut resources: BTreeMap<String, Vec<String>> = BTreeMap::new();
                        for container in &found.containers {
                            for devices in &container.devices {
                                resources
                                    .entry(devices.resource_name.clone())
                                    .or_default()
                                    .extend(devices.device_ids.iter().cloned());
                            }
                        }
                        let devices = PodDevices {
                            origin: Origin::PodResources,
                            resources: resources
                                .into_iter()
                                .map(|(r, ids)| (r, checkpoint::dedup(ids)))
                                .collect(),
                        };
                        check_ids(&devices)?;
                        return Ok(devices);
                    }
                    reasons.push(format!(
                        "the pod-resources API does not list the pod ({} pods listed)",
                        pods.len()
                    ));
                }
                Err(e) => reasons.push(e.to_string()),
            }
        }
    }
    if !reasons.is_empty() {
        tracing::info!(pod = %pod, reasons = %reasons.join("; "), "trying the kubelet device checkpoint");
    }
    match from_checkpoint(sources, pod).await {
        Ok(devices) => {
            check_ids(&devices)?;
            Ok(devices)
        }
        // The API answered and the pod holds nothing there: it has no devices.
        Err(reason) if api_answered => {
            tracing::warn!(pod = %pod, %reason, "the pod-resources API does not list the pod and the checkpoint cannot say: no devices");
            Ok(PodDevices {
                origin: Origin::PodResources,
                resources: BTreeMap::new(),
            })
        }
        Err(reason) => {
            reasons.push(reason);
            Err(DeviceError::Unavailable {
                pod: pod.to_string(),
                reasons,
            })
        }
    }
}

async fn from_checkpoint(sources: &Sources, pod: &PodKey) -> Result<PodDevices, String> {
    let Some(uid) = &pod.uid else {
        return Err(
            "the checkpoint identifies pods by UID and CNI_ARGS has no K8S_POD_UID".to_owned(),
        );
    };
    let path = &sources.checkpoint_file;
    let shown = path.display();
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("checkpoint {shown}: {e}"))?;
    if meta.len() > checkpoint::MAX_CHECKPOINT_BYTES as u64 {
        return Err(format!(
            "checkpoint {shown}: {}",
            checkpoint::CheckpointError::TooLarge(
                usize::try_from(meta.len()).unwrap_or(usize::MAX)
            )
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("checkpoint {shown}: {e}"))?;
    let parsed = checkpoint::parse(&bytes).map_err(|e| format!("checkpoint {shown}: {e}"))?;
    Ok(PodDevices {
        origin: Origin::Checkpoint,
        resources: parsed.devices_of(uid),
    })
}
