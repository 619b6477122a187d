//! NetworkAttachmentDefinitions on the server (the CRD `scripts/with-kube` installs, as
//! Multus would): written as NPWG users write them, read back, and recognised by plexus.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use plexus_k8s::nad::NadSpec;
use plexus_k8s::{NetworkAttachmentDefinition, PlexusAttachment};
use plexus_model::NetworkRefKind;
use serde_json::json;

use crate::support::{apply_crds, client, delete_namespace, namespace};

#[tokio::test]
async fn nads_round_trip_and_name_plexus_networks() {
    let Some(client) = client("nads_round_trip_and_name_plexus_networks").await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "nads").await;
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &ns);
    let configs = [
        (
            "plexus-blue",
            json!({"cniVersion": "1.0.0", "name": "plexus-blue", "type": "plexus",
                   "clusterNetwork": "blue"}),
        ),
        (
            "macvlan-red",
            json!({"cniVersion": "1.0.0", "name": "macvlan-red", "plugins": [
                {"type": "macvlan", "master": "eth0",
                 "ipam": {"type": "plexus-ipam", "network": "red"}},
                {"type": "tuning", "sysctl": {"net.ipv4.conf.net1.arp_notify": "1"}}]}),
        ),
        (
            "whereabouts",
            json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                   "ipam": {"type": "whereabouts", "range": "10.2.0.0/24"}}),
        ),
    ];
    for (name, config) in &configs {
        let nad = NetworkAttachmentDefinition::new(
            name,
            NadSpec {
                config: config.to_string(),
            },
        );
        nads.create(&PostParams::default(), &nad)
            .await
            .expect("create NAD");
    }
    // A NAD without spec (its configuration is on disk, named like the NAD).
    let ar = ApiResource::erase::<NetworkAttachmentDefinition>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    raw.create(&PostParams::default(), &DynamicObject::new("on-disk", &ar))
        .await
        .expect("create NAD without spec");

    let mut listed = nads.list(&Default::default()).await.expect("list").items;
    listed.sort_by_key(|n| n.metadata.name.clone());
    let names: Vec<&str> = listed
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        ["macvlan-red", "on-disk", "plexus-blue", "whereabouts"]
    );
    for nad in &listed {
        let name = nad.metadata.name.as_deref().unwrap_or_default();
        let config = nad.cni_config().unwrap_or_else(|e| panic!("{name}: {e}"));
        match name {
            "plexus-blue" => {
                let Some(PlexusAttachment::MetaPlugin { network: Some(net) }) =
                    config.and_then(|c| c.plexus)
                else {
                    panic!("{name}: not read as plexus' meta-plugin");
                };
                assert_eq!(net.kind, NetworkRefKind::ClusterNetwork);
                assert_eq!(net.name, "blue");
            }
            "macvlan-red" => {
                let config = config.expect("a config");
                assert!(config.is_list);
                assert_eq!(
                    config.plexus,
                    Some(PlexusAttachment::Ipam {
                        plugin: "macvlan".into(),
                        network: Some("red".into()),
                    })
                );
            }
            "whereabouts" => assert_eq!(config.expect("a config").plexus, None),
            "on-disk" => {
                assert_eq!(nad.spec.config, "");
                assert_eq!(config, None);
            }
            other => panic!("unexpected NAD {other}"),
        }
    }
    // The config string is kept byte for byte.
    let read = nads.get("plexus-blue").await.expect("get");
    assert_eq!(read.spec.config, configs[0].1.to_string());
    delete_namespace(&client, &ns).await;
}
