//! `plexus_k8s::api` against a scripted API server (a `tower` service answering each
//! request from a table), for what a real server cannot be made to do on cue: a 503 at a
//! chosen GET, a 409 on the status patch while the pod is still the same incarnation, a
//! connection failure, a whole kind missing (no CRD). The real-server tests are in
//! `tests/api_server/`.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use plexus_k8s::api::{ApiError, KubeApi};
use plexus_k8s::pod::{PodError, PodKey};
use plexus_k8s::resolve::Policy;
use serde_json::{Value, json};

/// What the scripted server answers to a method and path: `Some((status, body))`, or
/// `None` to fail the connection.
type Script = dyn Fn(&Method, &str) -> Option<(u16, Value)> + Send + Sync;

/// A client of a server answering from `script`, and the log of `METHOD path` it saw.
fn scripted(script: Arc<Script>) -> (KubeApi, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let service = tower::service_fn(move |request: Request<Body>| {
        let script = script.clone();
        let seen = seen.clone();
        async move {
            let path = request.uri().path().to_owned();
            seen.lock()
                .unwrap()
                .push(format!("{} {path}", request.method()));
            match script(request.method(), &path) {
                Some((status, body)) => Ok(Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap()),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by the scripted server",
                )),
            }
        }
    });
    (KubeApi::new(Client::new(service, "default")), log)
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("scripted {reason}"), "reason": reason, "code": code}),
    )
}

fn pod(uid: &str, annotations: Value) -> (u16, Value) {
    (
        200,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-0", "namespace": "team-a", "uid": uid,
                            "annotations": annotations},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]}}),
    )
}

fn key(uid: &str) -> PodKey {
    PodKey {
        namespace: "team-a".into(),
        name: "web-0".into(),
        uid: Some(uid.into()),
    }
}

const POD: &str = "/api/v1/namespaces/team-a/pods/web-0";
const DEFAULT_NET: &str = "/apis/plexus.io/v1/clusternetworks/default";
const NAD: &str = "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions/n1";

fn default_network() -> (u16, Value) {
    (
        200,
        json!({"apiVersion": "plexus.io/v1", "kind": "ClusterNetwork",
               "metadata": {"name": "default"},
               "spec": {"NetworkID": "d", "Options": {"cidr": "10.0.0.0/16"}}}),
    )
}

#[tokio::test]
async fn a_missing_kind_is_absent_and_a_503_at_one_get_is_retryable() {
    let npwg = json!({"k8s.v1.cni.cncf.io/networks": "n1"});
    // DANM is not installed: every danm.k8s.io path is a 404; so is plexus' TenantNetwork
    // "default". The NAD GET answers 503.
    let (api, log) = scripted(Arc::new(move |method: &Method, path: &str| {
        assert_eq!(method, Method::GET, "{path}");
        Some(match path {
            POD => pod("u1", npwg.clone()),
            DEFAULT_NET => default_network(),
            NAD => status(503, "ServiceUnavailable"),
            _ => status(404, "NotFound"),
        })
    }));
    let err = api
        .pod_networks(&key("u1"), &Policy::default())
        .await
        .unwrap_err();
    let ApiError::Refused {
        code: 503, what, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        what.contains("NetworkAttachmentDefinition.k8s.cni.cncf.io team-a/n1"),
        "{what}"
    );
    let cni = err.to_cni_error();
    assert_eq!(
        (cni.code, cni.details.as_str()),
        (11, "retry the operation later")
    );
    // The pod first; then the five default candidates and the NAD, read concurrently
    // (the first failure ends the round, so not every other read need have been sent).
    let log = log.lock().unwrap();
    assert_eq!(log[0], format!("GET {POD}"));
    assert!(log.contains(&format!("GET {NAD}")), "{log:?}");
    assert!(log.len() <= 7, "{log:?}");
}

#[tokio::test]
async fn without_danm_the_default_network_resolves_from_plexus_objects() {
    let (api, _) = scripted(Arc::new(|_: &Method, path: &str| {
        Some(match path {
            POD => pod("u1", json!({})),
            DEFAULT_NET => default_network(),
            _ => status(404, "NotFound"),
        })
    }));
    let (_, got) = api
        .pod_networks(&key("u1"), &Policy::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].network().unwrap().key.kind(),
        "ClusterNetwork.plexus.io"
    );
}

#[tokio::test]
async fn a_conflict_on_the_same_incarnation_is_not_a_uid_mismatch() {
    for (code, same_pod, expect_mismatch) in
        [(409, true, false), (422, true, false), (422, false, true)]
    {
        let (api, log) = scripted(Arc::new(move |method: &Method, path: &str| {
            assert_eq!(path, POD);
            Some(match *method {
                Method::PATCH => status(code, "Conflict"),
                _ if same_pod => pod("u1", json!({})),
                _ => pod("u2", json!({})),
            })
        }));
        let err = api
            .write_network_status(&key("u1"), "u1", Some(&[]))
            .await
            .unwrap_err();
        match (&err, expect_mismatch) {
            (ApiError::Pod(PodError::UidMismatch { found, .. }), true) => {
                assert_eq!(found.as_deref(), Some("u2"));
            }
            (ApiError::Refused { code: c, what, .. }, false) => {
                assert_eq!(*c, code);
                assert!(
                    what.starts_with("patch network-status of pod team-a/web-0"),
                    "{what}"
                );
            }
            other => panic!("{code}, same pod {same_pod}: {other:?}"),
        }
        // The patch, then one read to tell a replaced pod from a refused write.
        assert_eq!(
            *log.lock().unwrap(),
            [format!("PATCH {POD}"), format!("GET {POD}")]
        );
    }
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_to_retry() {
    let (api, _) = scripted(Arc::new(|_: &Method, _: &str| None));
    let err = api.pod(&key("u1")).await.unwrap_err();
    let ApiError::Transport { what, detail } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(what, "get pod team-a/web-0");
    assert!(!detail.is_empty());
    assert_eq!(err.to_cni_error().code, 11);
}

#[tokio::test]
async fn removing_the_status_of_a_pod_that_is_gone_succeeds_but_writing_it_does_not() {
    let (api, _) = scripted(Arc::new(|_: &Method, _: &str| {
        Some(status(404, "NotFound"))
    }));
    api.write_network_status(&key("u1"), "u1", None)
        .await
        .unwrap();
    let err = api
        .write_network_status(&key("u1"), "u1", Some(&[]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Pod(PodError::NotFound {
            pod: "team-a/web-0".into()
        })
    );
}
