//! The two sources end to end: a fake kubelet serving the pod-resources API on a unix
//! socket (tonic), and a checkpoint file; which one answers, and what each says.

use std::path::Path;
use std::time::Duration;

use plexus_kubelet::fake::{FakeKubelet, FakePod};
use plexus_kubelet::{DeviceError, Origin, PodKey, Sources, pod_devices};
use serde_json::json;

const RESOURCE: &str = "intel.com/sriov_a";

fn sources(dir: &Path) -> Sources {
    Sources {
        pod_resources_socket: dir.join("kubelet.sock"),
        checkpoint_file: dir.join("kubelet_internal_checkpoint"),
        timeout: Duration::from_secs(2),
    }
}

fn pod(uid: Option<&str>) -> PodKey {
    PodKey {
        namespace: "ns".into(),
        name: Some("web-0".into()),
        uid: uid.map(str::to_owned),
    }
}

fn write_checkpoint(dir: &Path, uid: &str, ids: &[&str]) {
    let text = json!({"Data": {"PodDeviceEntries": [
        {"PodUID": uid, "ContainerName": "app", "ResourceName": RESOURCE,
         "DeviceIDs": {"-1": ids}, "AllocResp": "CgA="}],
        "RegisteredDevices": {RESOURCE: ids}}, "Checksum": 1});
    std::fs::write(dir.join("kubelet_internal_checkpoint"), text.to_string()).unwrap();
}

#[tokio::test]
async fn the_api_answers_first_with_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let s = sources(dir.path());
    let kubelet = FakeKubelet::start(
        &s.pod_resources_socket,
        vec![
            FakePod::new("ns", "other").devices("c", RESOURCE, &["0000:03:00.7"]),
            FakePod::new("ns", "web-0")
                .devices("app", RESOURCE, &["0000:03:00.2", "0000:03:00.3"])
                .devices("side", RESOURCE, &["0000:03:00.4"])
                .devices("side", "example.com/dpdk", &["0000:05:00.1"]),
        ],
    )
    .unwrap();
    write_checkpoint(dir.path(), "uid-1", &["0000:09:00.0"]);
    let devices = pod_devices(&s, &pod(Some("uid-1"))).await.unwrap();
    assert_eq!(devices.origin, Origin::PodResources);
    assert_eq!(
        devices.resources[RESOURCE],
        ["0000:03:00.2", "0000:03:00.3", "0000:03:00.4"]
    );
    assert_eq!(devices.resources["example.com/dpdk"], ["0000:05:00.1"]);
    assert_eq!(kubelet.calls(), 1);
}

#[tokio::test]
async fn the_checkpoint_answers_when_the_api_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let s = sources(dir.path());
    write_checkpoint(dir.path(), "uid-1", &["0000:09:00.0", "0000:09:00.1"]);
    // No socket at all.
    let devices = pod_devices(&s, &pod(Some("uid-1"))).await.unwrap();
    assert_eq!(devices.origin, Origin::Checkpoint);
    assert_eq!(
        devices.resources[RESOURCE],
        ["0000:09:00.0", "0000:09:00.1"]
    );
    // A socket nobody listens on (a kubelet that died).
    std::os::unix::net::UnixListener::bind(&s.pod_resources_socket).unwrap();
    let devices = pod_devices(&s, &pod(Some("uid-1"))).await.unwrap();
    assert_eq!(devices.origin, Origin::Checkpoint);
    std::fs::remove_file(&s.pod_resources_socket).unwrap();
    // An API that does not list the pod.
    let _kubelet =
        FakeKubelet::start(&s.pod_resources_socket, vec![FakePod::new("ns", "x")]).unwrap();
    let devices = pod_devices(&s, &pod(Some("uid-1"))).await.unwrap();
    assert_eq!(devices.origin, Origin::Checkpoint);
    // ... and a pod the checkpoint does not hold either: known, without devices.
    let devices = pod_devices(&s, &pod(Some("uid-2"))).await.unwrap();
    assert!(devices.resources.is_empty());
}

#[tokio::test]
async fn no_source_is_an_error_naming_each_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = sources(dir.path());
    let err = pod_devices(&s, &pod(None)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DeviceError::Unavailable { .. }), "{text}");
    assert!(text.contains("no pod-resources socket"), "{text}");
    assert!(text.contains("K8S_POD_UID"), "{text}");
    assert!(text.contains("ns/web-0"), "{text}");

    std::fs::write(&s.checkpoint_file, b"{\"Data\": 5}").unwrap();
    let err = pod_devices(&s, &pod(Some("u"))).await.unwrap_err();
    assert!(
        err.to_string().contains("not a kubelet device checkpoint"),
        "{err}"
    );
}

#[tokio::test]
async fn unusable_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = sources(dir.path());
    let _kubelet = FakeKubelet::start(
        &s.pod_resources_socket,
        vec![FakePod::new("ns", "web-0").devices("app", RESOURCE, &["ok", "bad\nid"])],
    )
    .unwrap();
    let err = pod_devices(&s, &pod(None)).await.unwrap_err();
    assert!(
        matches!(&err, DeviceError::BadId { resource, .. } if resource == RESOURCE),
        "{err}"
    );
}
