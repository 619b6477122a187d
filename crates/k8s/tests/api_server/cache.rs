//! The node agent's watch cache on the real server: it becomes ready, watches every kind
//! the server serves, answers for its node's pods as the API does, leaves other nodes'
//! pods, unknown incarnations and objects it has not seen yet to the API, and follows a
//! pod's re-creation.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use plexus_k8s::api::KubeApi;
use plexus_k8s::cache::{NodeCache, Source, pod_networks};
use plexus_k8s::nad::NadSpec;
use plexus_k8s::pod::PodKey;
use plexus_k8s::resolve::{Policy, ResolvedAttachment};
use plexus_k8s::{ClusterNetwork, NetworkAttachmentDefinition};
use serde_json::json;

use crate::support::{KUBECONFIG_VAR, apply_crds, client, delete_namespace, namespace, unique};

fn pod(name: &str, node: &str, networks: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": node, "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "registry.invalid/none"}]},
    }))
    .unwrap()
}

/// Create `pod`, retrying while the namespace's default service account is missing.
async fn create(api: &Api<Pod>, pod: &Pod) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => return created,
            Err(kube::Error::Api(s)) if s.message.contains("service account") => {
                assert!(Instant::now() < deadline, "{s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating a pod: {e}"),
        }
    }
}

/// Wait (at most 30 s) until `check` holds of the cache.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "the cache never saw: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(attachments: &[ResolvedAttachment]) -> Vec<String> {
    attachments
        .iter()
        .map(ResolvedAttachment::status_name)
        .collect()
}

fn key(ns: &str, name: &str, pod: &Pod) -> PodKey {
    PodKey {
        namespace: ns.into(),
        name: name.into(),
        uid: pod.metadata.uid.clone(),
    }
}

#[tokio::test]
async fn the_watch_cache_answers_for_its_node_and_falls_back_to_the_api() {
    let test = "the_watch_cache_answers_for_its_node_and_falls_back_to_the_api";
    let Some(client) = client(test).await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "cache").await;
    let node = unique("node");
    let default = unique("cache-dflt");
    let pp = PostParams::default();
    let spec =
        serde_json::from_value(json!({"NetworkID": "c", "Options": {"cidr": "10.70.0.0/16"}}))
            .unwrap();
    Api::<ClusterNetwork>::all(client.clone())
        .create(&pp, &ClusterNetwork::new(&default, spec))
        .await
        .unwrap();
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &ns);
    let nad = |name: &str| {
        NetworkAttachmentDefinition::new(
            name,
            NadSpec {
                config: r#"{"cniVersion":"1.0.0","type":"macvlan"}"#.into(),
            },
        )
    };
    nads.create(&pp, &nad("n1")).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mine = create(&pods, &pod("mine", &node, "n1")).await;
    let theirs = create(&pods, &pod("theirs", "another-node", "n1")).await;

    let api = KubeApi::from_kubeconfig(Some(std::env::var(KUBECONFIG_VAR).unwrap().as_ref()))
        .await
        .unwrap();
    let cache = NodeCache::start(&api, &node).await.unwrap();
    cache.wait_ready(Duration::from_secs(30)).await.unwrap();
    // apply_crds installed DANM's CRDs too: every kind is watched.
    assert_eq!(cache.watched().len(), 7, "{:?}", cache.watched());
    let policy = Policy {
        default_network: default.clone(),
        ..Policy::default()
    };

    // Its node's pod: the cache answers as the API does.
    let mine_key = key(&ns, "mine", &mine);
    eventually("the pod mine", || {
        cache.pod_networks(&mine_key, &policy).is_some()
    })
    .await;
    let (_, direct) = api.pod_networks(&mine_key, &policy).await.unwrap();
    let (_, cached, source) = pod_networks(Some(&cache), &api, &mine_key, &policy)
        .await
        .unwrap();
    assert_eq!(source, Source::Cache);
    assert_eq!(cached, direct);
    assert_eq!(names(&cached), [default.clone(), format!("{ns}/n1")]);

    // Another node's pod is not watched: the API answers.
    let theirs_key = key(&ns, "theirs", &theirs);
    assert!(cache.pod(&theirs_key).is_none());
    let (_, got, source) = pod_networks(Some(&cache), &api, &theirs_key, &policy)
        .await
        .unwrap();
    assert_eq!((source, got.len()), (Source::Api, 2));

    // A NAD the cache has not seen yet cannot make it answer wrongly: until it has, the
    // API answers; afterwards the cache does.
    nads.create(&pp, &nad("n2")).await.unwrap();
    let late = create(&pods, &pod("late", &node, "n2")).await;
    let late_key = key(&ns, "late", &late);
    let (_, got, _) = pod_networks(Some(&cache), &api, &late_key, &policy)
        .await
        .unwrap();
    assert_eq!(names(&got)[1], format!("{ns}/n2"));
    eventually("the pod late and NAD n2", || {
        cache.pod_networks(&late_key, &policy).is_some()
    })
    .await;

    // Re-created under its name: the old incarnation is never answered from the cache,
    // and the new one is once the watch has seen it.
    pods.delete(
        "mine",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    eventually("the deletion of mine", || cache.pod(&mine_key).is_none()).await;
    let again = create(&pods, &pod("mine", &node, "n1")).await;
    let new_key = key(&ns, "mine", &again);
    eventually("the new mine", || {
        cache.pod_networks(&new_key, &policy).is_some()
    })
    .await;
    assert!(cache.pod(&mine_key).is_none());
    let err = pod_networks(Some(&cache), &api, &mine_key, &policy)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("re-created"), "{err}");

    drop(cache);
    Api::<ClusterNetwork>::all(client.clone())
        .delete(&default, &DeleteParams::default())
        .await
        .unwrap();
    delete_namespace(&client, &ns).await;
}
